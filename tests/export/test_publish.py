"""Publishing to the Hugging Face Hub (model card, dry run, push) and "Sign in with Hugging Face".

There is no Hub here: pushes go to an injected `HfApi` stand-in that records every call and behaves as
the Hub does in the cases tested. The network call itself is not exercised; everything up to it is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import build_tiny_ast

from astapp.cli import main
from astapp.core import runfolder
from astapp.core.runfolder import read_json
from astapp.export.publish import PublishError, push


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, small_dataset) -> Path:
    """A real finished run (tiny AST, 1 epoch) whose config says it was fine-tuned from a Hub model."""
    import os

    from astapp.core.config import TrainConfig
    from astapp.jobs.record import RunRecord, run_job

    work = tmp_path_factory.mktemp("publish")
    ckpt = build_tiny_ast(work / "ckpt", max_length=128)
    run = work / "runs" / "owner" / "20261202-000000-abcdef"
    os.environ["ASTAPP_CACHE_DIR"] = str(work / "cache")
    cfg = TrainConfig(data=str(small_dataset), model=str(ckpt), output=str(run), epochs=1, batch_size=4, lr=1e-3,
                      max_length=64, threads=1, precision="fp32")
    RunRecord(run).create(cfg, "Your dataset: sounds.zip · tiny-ast", "owner")
    run_job(cfg)
    saved = json.loads((run / runfolder.CONFIG).read_text())  # as if it had come from the Hub
    RunRecord(run).config(TrainConfig.from_dict({**saved, "model": "MIT/ast-finetuned-audioset-10-10-0.4593"}))
    return run


class FakeHub:
    """Stands in for `huggingface_hub.HfApi`: records calls; `fail_upload` makes the first upload break."""

    def __init__(self, name="alice", role="write", orgs=("lab",), existing_public=(), fail_upload=False):
        self.name, self.role, self.orgs = name, role, orgs
        self.existing_public, self.fail_upload = set(existing_public), fail_upload
        self.calls: list[tuple] = []
        self.uploaded: dict[str, bytes] = {}

    def whoami(self, token=None, **_):
        self.calls.append(("whoami", token))
        return {"name": self.name, "orgs": [{"name": o} for o in self.orgs],
                "auth": {"accessToken": {"role": self.role}}}

    def create_repo(self, repo_id, token=None, private=None, exist_ok=False, repo_type=None, **_):
        self.calls.append(("create_repo", repo_id, private, exist_ok, repo_type))

    def repo_info(self, repo_id, token=None, **_):
        self.calls.append(("repo_info", repo_id))
        return type("Info", (), {"private": repo_id not in self.existing_public})()

    def upload_folder(self, repo_id, folder_path, token=None, repo_type=None, commit_message=None, **_):
        files = sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file())
        self.calls.append(("upload_folder", repo_id, files, commit_message))
        if self.fail_upload:
            self.fail_upload = False
            raise ConnectionError("connection reset by peer")
        self.uploaded = {f: (Path(folder_path) / f).read_bytes() for f in files}


def _tree(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


def test_dry_run_writes_the_folder_with_a_valid_model_card(finished_run, small_dataset, tmp_path, capsys):
    from huggingface_hub import ModelCard, ModelCardData
    from transformers import pipeline

    out = tmp_path / "dry"
    assert main(["push", "--run", str(finished_run), "--repo", "alice/sounds", "--dry-run", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert {"README.md", "config.json", "model.safetensors", "preprocessor_config.json", "confusion_matrix.png"} \
        <= {p.name for p in out.iterdir()}
    card = ModelCard.load(out / "README.md")
    meta = card.data.to_dict()
    assert (meta["library_name"], meta["pipeline_tag"], meta["license"]) == ("transformers", "audio-classification",
                                                                              "other")
    assert meta["base_model"] == "MIT/ast-finetuned-audioset-10-10-0.4593"
    assert {"audio-classification", "astapp"} <= set(meta["tags"])
    metrics = read_json(finished_run / runfolder.METRICS)
    parsed = ModelCardData(**meta)  # validates as huggingface_hub's own card data
    got = {r.metric_type: r.metric_value for r in parsed.eval_results}
    assert got == {"accuracy": round(metrics["accuracy"], 4), "f1": round(metrics["f1_macro"], 4)}
    assert parsed.eval_results[0].task_type == "audio-classification"
    text = card.text
    for words in ("## Results", "## Use", "load_16k", 'model="alice/sounds"', "## Training data", "| chirp |",
                  "## Limitations", "confusion_matrix.png", "\"mode\": \"full\"", "## Unknown sounds",
                  "has an **unknown score**", "threshold **", "--unknown-threshold"):
        assert words in text, words
    assert str(small_dataset) not in text and str(finished_run) not in text, "no server paths on a public card"
    # The folder is a model plain transformers loads, agreeing with astapp's own prediction.
    import soundfile as sf

    wav, sr = sf.read(sorted((small_dataset / "tone").iterdir())[0], dtype="float32")
    wav = wav[: int(0.6 * sr)]  # within the model's 0.64 s: one window for astapp, no truncation for the pipeline
    clip = tmp_path / "short.wav"
    sf.write(clip, wav, sr)
    theirs = pipeline("audio-classification", model=str(out))({"raw": wav, "sampling_rate": sr}, top_k=1)[0]
    assert main(["predict", "--model", str(finished_run / "model"), str(clip), "--top-k", "1"]) == 0
    ours = json.loads(capsys.readouterr().out)
    assert theirs["label"] == ours["label"] and abs(theirs["score"] - ours["prob"]) < 1e-4


def test_push_uploads_that_folder_privately_in_one_commit(finished_run, tmp_path):
    hub = FakeHub()
    before = _tree(finished_run)
    steps: list[str] = []
    url = push(finished_run, "lab/sounds", "hf_write_token", api=hub, progress=steps.append)
    assert url == "https://huggingface.co/lab/sounds"  # an organisation the user belongs to
    kinds = [c[0] for c in hub.calls]
    assert kinds == ["whoami", "create_repo", "repo_info", "upload_folder"]
    assert hub.calls[1] == ("create_repo", "lab/sounds", True, True, "model")  # private unless asked
    uploaded = hub.calls[3][2]
    assert {"README.md", "model.safetensors", "config.json", "confusion_matrix.png"} <= set(uploaded)
    assert b"pipeline_tag: audio-classification" in hub.uploaded["README.md"]
    assert steps[0] == "Checking the token" and steps[-1] == "Published"
    assert _tree(finished_run) == before, "publishing never changes the run"
    public = FakeHub()
    push(finished_run, "alice/sounds", "t", private=False, api=public)
    assert public.calls[1][2] is False


@pytest.mark.parametrize("repo, hub, token, words", [
    ("sounds", FakeHub(), "t", "owner/name"),
    ("alice/bad name!", FakeHub(), "t", "not a valid Hugging Face repository id"),
    ("bob/sounds", FakeHub(), "t", "You (alice) cannot publish under 'bob'"),
    ("alice/sounds", FakeHub(role="read"), "t", "This token can only read"),
    ("alice/sounds", FakeHub(), None, "No Hugging Face token"),
    ("alice/sounds", FakeHub(existing_public={"alice/sounds"}), "t", "already exists and is public"),
])
def test_refusals_are_one_sentence_and_publish_nothing(finished_run, repo, hub, token, words):
    with pytest.raises(PublishError, match=words.replace("(", r"\(").replace(")", r"\)").replace("!", "!")):
        push(finished_run, repo, token, api=hub)
    assert not [c for c in hub.calls if c[0] == "upload_folder"]


def test_an_interrupted_push_publishes_nothing_and_a_retry_finishes(finished_run):
    hub = FakeHub(fail_upload=True)
    with pytest.raises(PublishError, match="nothing was half-published; publish again"):
        push(finished_run, "alice/sounds", "t", api=hub)
    assert hub.uploaded == {}
    assert push(finished_run, "alice/sounds", "t", api=hub).endswith("alice/sounds") and hub.uploaded


def test_hub_errors_become_sentences(finished_run):
    import httpx
    from huggingface_hub.errors import HfHubHTTPError

    def Response(code):  # noqa: N802 - what the Hub client raises with: a real HTTP response
        return httpx.Response(code, request=httpx.Request("POST", "https://huggingface.co/api/repos/create"))

    for code, words in ((401, "refused the token"), (403, "belongs to another account")):
        hub = FakeHub()

        def create_repo(*a, code=code, **k):
            raise HfHubHTTPError("denied", response=Response(code))

        hub.create_repo = create_repo
        with pytest.raises(PublishError, match=words):
            push(finished_run, "alice/sounds", "t", api=hub)
    offline = FakeHub()
    offline.whoami = lambda **k: (_ for _ in ()).throw(ConnectionError("Name or service not known"))
    with pytest.raises(PublishError, match="Could not reach the Hugging Face Hub") as offline_error:
        push(finished_run, "alice/sounds", "t", api=offline)
    said = str(offline_error.value)  # advice for publishing, said once (not the training advice)
    assert "scratch" not in said and "checkpoint folder" not in said and said.count("reach") == 1


def test_a_run_without_a_model_cannot_be_published(tmp_path):
    from astapp.core.config import TrainConfig
    from astapp.jobs.record import RunRecord

    run = tmp_path / "r"
    RunRecord(run).create(TrainConfig(data="d", output=str(run)), "n", "o")
    with pytest.raises(PublishError, match="has no trained model yet"):
        push(run, "alice/x", "t", api=FakeHub())
    assert main(["push", "--run", str(run), "--repo", "alice/x", "--dry-run", str(tmp_path / "d")]) == 2


# --- Sign in with Hugging Face ---------------------------------------------------------------------

def _oauth_request(user: str | None, expires_in: float = 3600):
    """A `gr.Request` as Gradio builds it for a signed-in browser: the OAuth answer lives in the session."""
    import gradio as gr
    from starlette.requests import Request

    session = {} if user is None else {"oauth_info": {"expires_at": time.time() + expires_in,
                                                      "userinfo": {"preferred_username": user, "name": user}}}
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b"", "session": session}
    return gr.Request(request=Request(scope), session_hash=f"hash-{user}")


def test_signed_in_users_own_their_runs_on_any_browser_and_see_no_one_elses(tmp_path):
    from fake_train import make_fake_train, tiny_cfg

    from astapp.core.errors import AccessError
    from astapp.jobs.manager import JobManager
    from astapp.service import Service
    from astapp.ui.common import hf_username, session, session_token, user_token

    assert hf_username(_oauth_request("alice")) == "alice"
    assert hf_username(_oauth_request("alice", expires_in=-1)) is None  # an expired sign-in counts as none
    assert session_token("a" * 32, _oauth_request("alice")) == user_token("hf:alice") != user_token("alice")
    assert session_token("a" * 32, _oauth_request(None)) == "a" * 32  # not signed in: the browser's token

    jm = JobManager(tmp_path, train_fn=make_fake_train())
    try:
        svc = Service(jm, hub_online=False)
        alice_here = session(svc, "b" * 32, _oauth_request("alice"))
        alice_elsewhere = session(svc, "c" * 32, _oauth_request("alice"))  # another browser, same account
        bob = session(svc, "b" * 32, _oauth_request("bob"))  # same browser token, another account
        assert alice_here.owner == alice_elsewhere.owner != bob.owner
        job = jm.submit(alice_here.owner, tiny_cfg())
        assert jm.wait(job, 15) == "finished"
        assert [r.id for r in svc.runs(alice_elsewhere, need_model=True)] == [job]
        assert svc.runs(bob) == []
        for attempt in (lambda: svc.predicting.download(bob, job), lambda: svc.evaluation.load(bob, job),
                        lambda: svc.publishing.publish(bob, job, "bob/x", "t")):
            with pytest.raises(AccessError, match="no run"):
                attempt()
    finally:
        jm.shutdown(timeout=5)


@pytest.mark.slow
def test_publishing_through_the_app(tmp_path):
    """The Predict tab's card preview and Publish, with a token typed in (off a Space), on the session's own
    run only; the Hub is the stand-in above."""
    from app_helpers import call, client, launched
    from fake_train import make_fake_train, tiny_cfg
    from gradio_client.exceptions import AppError

    from astapp.jobs.manager import JobManager
    from astapp.jobs.sessions import owner_id
    from astapp.service import Service

    hub = FakeHub()
    manager = JobManager(tmp_path / "data", train_fn=make_fake_train())
    try:
        with launched(manager, service=Service(manager, hub_online=False, hub_api=hub)) as url:
            alice, bob = client(url), client(url)
            run = manager.submit(owner_id(alice.session_hash), tiny_cfg(), name="Your dataset: birds.zip · tiny")
            assert manager.wait(run, 15) == "finished"
            card = call(alice, run, "alice/birds", "mit", api_name="/model_card")
            assert card.startswith("---") and "license: mit" in card and "# birds" in card
            unnamed = call(alice, run, "", "mit", api_name="/model_card")  # before a name is chosen
            assert unnamed.startswith("---") and "your-name/your-model" in unnamed
            done = call(alice, run, "alice/birds", True, "mit", "hf_token_typed_in", api_name="/publish_model")
            assert done.startswith("Published: [https://huggingface.co/alice/birds]") and "(private)" in done
            assert ("create_repo", "alice/birds", True, True, "model") in hub.calls
            assert ("whoami", "hf_token_typed_in") in hub.calls
            with pytest.raises(AppError, match="no run"):
                call(bob, run, "bob/birds", True, "mit", "t", api_name="/publish_model")
    finally:
        manager.shutdown(timeout=5)


def test_the_card_says_how_the_unknown_score_was_calibrated(tmp_path):
    import numpy as np

    from astapp.evaluation import unknown
    from astapp.export.publish import unknown_section

    assert "no unknown score" in unknown_section(tmp_path)  # a model from before unknown scores
    known, other = np.linspace(0, 1, 20), np.linspace(0.8, 2, 10)
    stats = unknown.set_threshold(unknown.UnknownStats(method="energy"), known, 0.9, other)
    unknown.save(stats, tmp_path)
    text = unknown_section(tmp_path)
    assert "`energy`" in text and "20 validation clips and 10 recordings of other sounds" in text
    assert f"threshold **{stats.threshold:.4g}** keeps 90.0%" in text
    assert f"AUROC known vs other sounds **{stats.calibration['auroc']:.3f}**" in text
    unknown.save(unknown.set_threshold(unknown.UnknownStats(method="energy"), np.zeros(0)), tmp_path)
    assert "no threshold: No validation clips" in unknown_section(tmp_path)
