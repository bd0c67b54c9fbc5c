"""Publishing for the app: a run's model and card to the Hugging Face Hub, with the user's own token."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from astapp.jobs.manager import JobManager
from astapp.jobs.registry import run_dir
from astapp.jobs.sessions import Session

PLACEHOLDER_REPO = "your-name/your-model"


class Publishing:
    """A run's model and card to the Hub: the card's preview, the push, a suggested repository name."""

    def __init__(self, root: Path, manager: JobManager, hub_api: Any = None):
        self.root = root  # the data root the runs live under
        self.manager = manager
        self.hub_api = hub_api  # huggingface_hub.HfApi (None: its default; tests inject one)

    def _own_run(self, session: Session, run_id: str | None) -> Path:
        from astapp.export.publish import PublishError

        if not run_id:
            raise PublishError("Pick a finished run to publish.")
        return run_dir(self.root, session.owner, run_id, write=True)  # only your own runs

    def card_preview(self, session: Session, run_id: str | None, repo_id: str, license: str = "other") -> str:
        """The README.md model card the Hub would show (nothing is uploaded). Without a repository name yet
        the card shows a placeholder: a preview should not wait for the name it is helping to choose."""
        from astapp.export.publish import card_text, check_repo_id

        repo = check_repo_id(repo_id) if str(repo_id or "").strip() else PLACEHOLDER_REPO
        return card_text(self._own_run(session, run_id), repo, license or "other")

    def publish(self, session: Session, run_id: str | None, repo_id: str, token: str | None, private: bool = True,
                license: str = "other", progress: Callable[[str], None] | None = None) -> str:
        """Upload the run's model and card (private unless asked otherwise); the repository's URL."""
        from astapp.export.publish import push

        return push(self._own_run(session, run_id), repo_id, token, private=private, license=license or "other",
                    api=self.hub_api, progress=progress)

    def repo_suggestion(self, session: Session, run_id: str | None, username: str | None) -> str:
        """"<user>/<run name as a slug>" for the signed-in user ("" when not signed in or no run)."""
        from astapp.export.publish import slug

        if not username or not run_id:
            return ""
        return f"{username}/{slug(self.manager.get_run(session.owner, run_id).name)}"
