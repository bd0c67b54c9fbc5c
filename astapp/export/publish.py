"""Publish a run to the Hugging Face Hub: its exported model and a model card the Hub indexes.

`prepare` writes exactly the folder that would be uploaded (the model, a README.md model card built
with `huggingface_hub.ModelCard` / `ModelCardData` — pipeline tag, library, base model, license, tags
and a model-index with the validation accuracy and macro F1 — and the confusion matrix image). `push`
checks the token and the repo, creates the repo (private by default) and uploads the folder in one
commit with huggingface_hub's own API, so an interrupted push leaves nothing half-published and a
retry sends only what the Hub does not have yet.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from astapp.core import runfolder
from astapp.core.errors import AstappError

Progress = Callable[[str], None]
TAGS = ["audio-classification", "audio-spectrogram-transformer", "astapp"]
CARD_IMAGE = "confusion_matrix.png"


class PublishError(AstappError):
    """The model cannot be published as asked (no model, bad repo id, token, Hub unreachable)."""


def check_repo_id(repo_id: str) -> str:
    """`owner/name` as the Hub spells ids; PublishError naming what is wrong otherwise."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    repo_id = str(repo_id or "").strip()
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PublishError(f"Give the repository as owner/name (e.g. alice/dog-barks), not {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise PublishError(f"{repo_id!r} is not a valid Hugging Face repository id: {e}") from None
    return repo_id


def _run_files(run: Path) -> dict[str, Any]:
    if not runfolder.has_model(run):
        raise PublishError(f"Run {run.name} has no trained model yet; wait for it to finish (or stop it) first.")
    return {"metrics": runfolder.read_json(run / runfolder.METRICS), "report": runfolder.read_json(run / runfolder.REPORT),
            "config": runfolder.read_json(run / runfolder.CONFIG),
            "settings": runfolder.read_json(run / runfolder.MODEL / "astapp.json")}


def _base_model(source: str) -> str | None:
    """The Hub id the run was fine-tuned from (None for a local folder or a model trained from scratch)."""
    from astapp.model.sources import looks_like_path

    source = str(source or "").strip()
    if not source or source.lower().startswith("scratch:") or looks_like_path(source):
        return None
    return source


def card_data(run: Path, repo_id: str, license: str = "other") -> Any:
    """The card's metadata: what the Hub shows beside the model and indexes for search and leaderboards."""
    from huggingface_hub import EvalResult, ModelCardData

    files = _run_files(run)
    m, cfg = files["metrics"], files["config"]
    split = _split_name(files)
    results = [EvalResult(task_type="audio-classification", task_name="Audio classification", dataset_type="custom",
                          dataset_name=_dataset_name(cfg), dataset_split=split, metric_type=kind,
                          metric_name=name, metric_value=round(float(m[key]), 4))
               for key, kind, name in (("accuracy", "accuracy", "Accuracy"), ("f1_macro", "f1", "Macro F1"))
               if isinstance(m.get(key), (int, float))]
    return ModelCardData(library_name="transformers", pipeline_tag="audio-classification", license=license,
                         base_model=_base_model(cfg.get("model", "")), tags=list(TAGS), metrics=["accuracy", "f1"],
                         model_name=repo_id.split("/")[-1], eval_results=results or None)


def _dataset_name(cfg: dict[str, Any]) -> str:
    """The dataset's folder name, without the content hash astapp adds to extracted uploads."""
    name = Path(str(cfg.get("data", "dataset")).rstrip("/")).name
    return re.sub(r"-[0-9a-f]{20}$", "", name) or "dataset"


def _source_words(source: str, base: str | None) -> str:
    if base:
        return f"fine-tuned from [`{base}`](https://huggingface.co/{base})"
    if str(source).lower().startswith("scratch:"):
        return f"trained from scratch (`{source}`, random initial weights)"
    return "fine-tuned from a local checkpoint"


def _public_config(cfg: dict[str, Any], base: str | None) -> dict[str, Any]:
    """The run's settings without this server's paths (the card is public)."""
    out = {k: v for k, v in cfg.items() if k not in ("output", "resume")}
    out["data"] = _dataset_name(cfg)
    if not base and not str(cfg.get("model", "")).lower().startswith("scratch:"):
        out["model"] = "(local checkpoint)"
    return out


def _split_name(files: dict[str, Any]) -> str:
    folds = files["report"].get("folds") or {}
    fold = files["config"].get("val_fold") or ""
    if len(folds) > 1:
        from astapp.data.dataset import validation_fold

        return f"fold {fold or validation_fold(list(folds))}"
    return "validation"


def card_text(run: Path, repo_id: str, license: str = "other") -> str:
    """The whole README.md: metadata front matter and the body."""
    from huggingface_hub import ModelCard

    data = card_data(run, repo_id, license)
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(run, repo_id, data)}"))


def _body(run: Path, repo_id: str, data: Any) -> str:
    from astapp.core.events import fmt_score
    from astapp.model.folder import usage_snippet

    files = _run_files(run)
    m, rep, cfg = files["metrics"], files["report"], files["config"]
    labels = [str(x) for x in m.get("labels") or files["settings"].get("labels") or []]
    classes = rep.get("classes") or []
    durations = sorted(float(d) for d in rep.get("durations") or [])
    rates = ", ".join(f"{k} Hz × {v}" for k, v in (rep.get("sample_rates") or {}).items())
    n_val = int(m.get("num_validation") or len(m.get("predictions") or []))
    lines = [f"# {repo_id.split('/')[-1]}", "",
             f"An Audio Spectrogram Transformer that tells apart {len(labels)} sounds: "
             + ", ".join(f"`{x}`" for x in labels) + f", {_source_words(cfg.get('model', ''), data.base_model)} "
             "with astapp.", "",
             "## Results", "", f"On {n_val} held-out clips ({_split_name(files)}):", "",
             "| metric | value |", "|---|---|"]
    for key, name in (("accuracy", "accuracy"), ("precision_macro", "macro precision"),
                      ("recall_macro", "macro recall"), ("f1_macro", "macro F1")):
        if isinstance(m.get(key), (int, float)):
            lines.append(f"| {name} | {fmt_score(m[key])} |")
    if m.get("best_epoch") is not None:
        lines.append(f"| best epoch | {m['best_epoch']:g} of {float(m.get('epochs') or 0):g} |")
    per_class = m.get("per_class") or {}
    if per_class:
        lines += ["", "| class | precision | recall | F1 | clips |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {fmt_score(v['precision'])} | {fmt_score(v['recall'])} | {fmt_score(v['f1'])} | "
                  f"{v['support']} |" for name, v in per_class.items()]
    lines += ["", f"![Confusion matrix (validation)]({CARD_IMAGE})", "",
              "## Use", "", "With `pip install transformers torch soundfile` (no ffmpeg needed):", "",
              "```python", usage_snippet(folder=repo_id).rstrip(), "```", "",
              "## Training data", "", f"{sum(int(c['clips']) for c in classes)} clips, "
              f"{sum(float(c['seconds']) for c in classes) / 60:.1f} min of audio (layout `{rep.get('layout', '?')}`).",
              "", "| class | clips | seconds |", "|---|---|---|"]
    lines += [f"| {c['name']} | {c['clips']} | {float(c['seconds']):.1f} |" for c in classes]
    if durations:
        lines += ["", f"Clip durations: min {durations[0]:.2f} s, median {durations[len(durations) // 2]:.2f} s, "
                      f"max {durations[-1]:.2f} s. Sample rates: {rates or 'unknown'} (all resampled to 16 kHz mono)."]
    lines += ["", "## Training", "",
              f"Mode `{cfg.get('mode')}`, {float(cfg.get('epochs') or 0):g} epochs, learning rate {cfg.get('lr')}, batch "
              f"{cfg.get('batch_size')}, input {m.get('max_length')} frames ({float(m.get('max_length') or 0) / 100:.2f} s), "
              f"augmentation `{(cfg.get('augment') or {}).get('preset', 'none')}`, seed {cfg.get('seed')}. "
              "Every setting:", "", "<details><summary>config.json</summary>", "", "```json",
              json.dumps(_public_config(cfg, data.base_model), indent=2, ensure_ascii=False), "```", "",
              "</details>", "",
              "## Limitations", ""]
    lines.append(f"- The scores come from {n_val} validation clips; with few clips a single one moves accuracy by "
                 f"{1 / max(n_val, 1):.1%}. Check the model on recordings of your own before relying on it.")
    if not data.base_model and str(cfg.get("model", "")).lower().startswith("scratch:"):
        lines.append("- This model was trained **from scratch** (random initial weights), not fine-tuned from a "
                     "pretrained AST: it knows only these clips and will generalise poorly to other recordings.")
    has_unknown = (run / runfolder.MODEL / "unknown.json").is_file()
    lines.append(f"- It only knows these {len(labels)} classes: " + (
        "with astapp its unknown score flags other sounds (see *Unknown sounds*); plain `transformers` still "
        "assigns them one of the classes." if has_unknown else "any other sound is still assigned one of them."))
    return "\n".join(lines) + "\n" + unknown_section(run / runfolder.MODEL)


def unknown_section(model_folder: Path) -> str:
    """The card's "Unknown sounds" section: whether the model has an unknown score, how it was calibrated,
    its AUROC when other sounds were used, and how to use the threshold (`astapp.evaluation.unknown`)."""
    from astapp.evaluation import unknown

    stats = unknown.load(model_folder)
    head = ["", "## Unknown sounds (\"none of these\")", ""]
    if stats is None:
        return "\n".join(head + [
            "This model has **no unknown score** (it was exported before astapp had them): it assigns every sound "
            "one of its classes. `python3 -m astapp calibrate --run RUN` gives it one.", ""])
    cal = stats.calibration or {}
    known, other = len(cal.get("known") or []), len(cal.get("other") or [])
    lines = head + [
        f"This model has an **unknown score** (`{unknown.STATS_JSON}` and `{unknown.STATS_NPZ}` beside "
        f"`config.json`): `{stats.method}`, how unlike the training clips a clip is (higher = less like them)."]
    if stats.threshold is None:
        lines.append(f"It has no threshold: {stats.reason or 'it was never calibrated.'}")
    else:
        how = f"Calibrated on {known or stats.known.get('count', 0)} validation clips"
        how += f" and {other} recordings of other sounds" if other else ""
        how += f": threshold **{stats.threshold:.4g}** keeps {stats.keep:.1%} of the known clips"
        if cal.get("auroc") is not None:
            how += (f"; AUROC known vs other sounds **{cal['auroc']:.3f}**, "
                    f"{float(cal.get('other_rejected') or 0):.1%} of them rejected at this threshold")
        lines.append(how + ".")
    lines += ["", "With astapp, `python3 -m astapp predict --model THIS_FOLDER clip.wav` gives every clip its "
              "`\"unknown\"` score and the label `\"unknown\"` above the threshold (the top classes stay listed); "
              "`--unknown-threshold X` overrides it, and `python3 -m astapp calibrate --run RUN --other FOLDER` "
              "recalibrates it on sounds the model should reject. Plain `transformers` ignores these files.", ""]
    return "\n".join(lines)


def prepare(run: Path, repo_id: str, out_dir: Path, license: str = "other") -> Path:
    """Write exactly what `push` uploads into `out_dir` (created; must be empty or missing)."""
    from astapp.evaluation.figures import confusion_matrix

    run, out_dir = Path(run), Path(out_dir)
    repo_id = check_repo_id(repo_id)
    files = _run_files(run)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise PublishError(f"{out_dir} is not empty; give a new or empty folder for the dry run.")
    shutil.copytree(run / runfolder.MODEL, out_dir, dirs_exist_ok=True)
    (out_dir / "README.md").write_text(card_text(run, repo_id, license), encoding="utf-8")
    m = files["metrics"]
    if m.get("confusion_matrix"):
        fig = confusion_matrix(m["confusion_matrix"], [str(x) for x in m.get("labels") or []])
        fig.savefig(out_dir / CARD_IMAGE, dpi=100)
    return out_dir


HUB_OFFLINE = ("Could not reach the Hugging Face Hub from this machine, so nothing was published. The model is "
               "safe in its run folder: download it as a zip from the Predict tab (or `python3 -m astapp export`), "
               "or publish again when the machine is online.")


def _hub_problem(exc: BaseException, repo_id: str) -> PublishError:
    """The user's sentence for an error from the Hub."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401:
        return PublishError("The Hub refused the token (401): it is invalid or expired. Sign in again, or create a "
                            "new token with write access at https://huggingface.co/settings/tokens.")
    if status == 403:
        return PublishError(f"The Hub refused to write {repo_id} (403): the name belongs to another account, or the "
                            "token may not write there. Use a repo under your own name or an organisation you can "
                            "write to, with a token that has write access.")
    from astapp.core.errors import HUB_UNREACHABLE, user_error

    known = user_error(exc)
    if known is not None and str(known) == HUB_UNREACHABLE:  # that sentence's advice is for training
        return PublishError(HUB_OFFLINE)
    if known is not None:
        return PublishError(f"Could not publish to the Hugging Face Hub: {known}")
    return PublishError(f"The Hub answered with an error ({type(exc).__name__}: {str(exc)[:200]}); try again in a "
                        "moment.")


def push(run: Path, repo_id: str, token: str | None, private: bool = True, license: str = "other",
         api: Any = None, progress: Progress | None = None) -> str:
    """Upload the run's model and card to `repo_id` (created private unless `private=False`); the repo URL.

    `api` is a `huggingface_hub.HfApi` (injected by tests; no Hub is reachable there)."""
    from huggingface_hub import HfApi

    say = progress or (lambda _msg: None)
    repo_id = check_repo_id(repo_id)
    if not token:
        raise PublishError("No Hugging Face token: sign in with Hugging Face (on a Space), paste a token with write "
                           "access, or set HF_TOKEN for the command line. Nothing was published.")
    api = api or HfApi()
    say("Checking the token")
    try:
        who = api.whoami(token=token)
    except Exception as e:  # noqa: BLE001 - every Hub or network failure becomes one sentence
        raise PublishError(f"{_hub_problem(e, repo_id)} Nothing was published.") from None
    role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise PublishError("This token can only read: create one with write access at "
                           "https://huggingface.co/settings/tokens (or sign in again). Nothing was published.")
    owner = repo_id.split("/")[0]
    mine = {who.get("name")} | {o.get("name") for o in who.get("orgs") or [] if isinstance(o, dict)}
    if owner not in mine:
        raise PublishError(f"You ({who.get('name')}) cannot publish under {owner!r}: use {who.get('name')}/"
                           f"{repo_id.split('/')[1]} or an organisation you belong to.")
    with tempfile.TemporaryDirectory(prefix="astapp-publish-") as tmp:
        folder = prepare(run, repo_id, Path(tmp) / "repo", license)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        try:
            say(f"Creating {repo_id} ({'private' if private else 'public'})")
            api.create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="model")
            if private and not getattr(api.repo_info(repo_id, token=token), "private", True):
                raise PublishError(f"{repo_id} already exists and is public, but you asked for a private model; "
                                   "pick another name, or make that repo private on the Hub first.")
            size = sum(p.stat().st_size for p in files) / 2**20
            say(f"Uploading {len(files)} files ({size:.1f} MB) in one commit")
            api.upload_folder(repo_id=repo_id, folder_path=str(folder), token=token, repo_type="model",
                              commit_message=f"astapp: {run.name}")
        except PublishError:
            raise
        except Exception as e:  # noqa: BLE001
            problem = _hub_problem(e, repo_id)
            raise PublishError(f"{problem} The upload is one commit, so nothing was half-published; publish again "
                               "to retry (files the Hub already has are not sent twice).") from None
    say("Published")
    return f"https://huggingface.co/{repo_id}"


def slug(name: str) -> str:
    """A repo-name suggestion from a run's display name ("Your dataset: dogs.zip · ast" -> "dogs-ast")."""
    text = re.sub(r"^(your dataset|hub dataset|example):\s*", "", str(name), flags=re.I)
    text = re.sub(r"\.zip\b", "", text)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "astapp-model"
