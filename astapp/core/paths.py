"""Where astapp keeps its data, and the checks that keep every path a user hands back inside it.

Layout under the data root::

    <root>/runs/<owner>/<run_id>/      one folder per training run (survives restarts)
    <root>/runs/<owner>/.cache/        the owner's one cache root: decoded datasets, features, stats
    <root>/workspaces/<owner>/         one per session: uploads, extracted datasets, the session's state
    <root>/shared/                     read-only assets extracted once per installation (the example)

The root is `ASTAPP_DATA_DIR` when set; on a Hugging Face Space (`SPACE_ID` set) it is
`/data/astapp` when the persistent `/data` volume is there and writable; otherwise `./.astapp`.

Ids and file names that come back from the browser are untrusted: `check_id` accepts only a safe
pattern and `inside` resolves a path and refuses anything that escapes its base folder.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from astapp.core.errors import AccessError

log = logging.getLogger(__name__)

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def data_root(env: dict[str, str] | None = None, persistent: Path = Path("/data")) -> Path:
    """The folder that holds runs, workspaces and caches (created if missing)."""
    env = os.environ if env is None else env
    explicit = env.get("ASTAPP_DATA_DIR", "").strip()
    if explicit:
        root = Path(explicit).expanduser()
    elif env.get("SPACE_ID"):
        if persistent.is_dir() and os.access(persistent, os.W_OK):
            root = persistent / "astapp"
        else:
            root = Path.cwd() / ".astapp"
            log.warning("No writable persistent storage at %s: runs are kept in %s and are lost when "
                        "the Space restarts. Enable persistent storage in the Space settings to keep them.",
                        persistent, root)
    else:
        root = Path.cwd() / ".astapp"
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def runs_dir(root: Path) -> Path:
    return Path(root) / "runs"


def workspaces_dir(root: Path) -> Path:
    return Path(root) / "workspaces"


def owner_cache(root: Path, owner: str) -> Path:
    """The owner's cache root. Training puts its caches beside the run folder (`.cache` next to
    `<run_id>/`), which for a run under `runs/<owner>/` is exactly this folder."""
    return runs_dir(root) / owner / ".cache"


def shared_dir(root: Path) -> Path:
    return Path(root) / "shared"


def check_id(value: object, what: str = "id") -> str:
    """Return `value` if it is a safe single path component (letters, digits, `_`, `-`, `.`)."""
    if not isinstance(value, str) or not SAFE_ID.match(value) or ".." in value:
        shown = repr(value)[:60]
        raise AccessError(f"Invalid {what} {shown}: use one of the names listed by the app.")
    return value


def inside(base: Path, *parts: str | os.PathLike[str]) -> Path:
    """`base/parts...` resolved (symlinks followed); refuses any result outside `base`."""
    base_r = Path(base).resolve()
    target = base_r.joinpath(*parts).resolve()
    if target != base_r and base_r not in target.parents:
        raise AccessError(f"The path {str(Path(*parts))[:80]!r} is outside your files; "
                          "choose a file listed by the app.")
    return target
