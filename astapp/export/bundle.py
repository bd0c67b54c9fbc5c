"""The model download: a run's transformers model plus its checked ONNX files (and the browser demo) in one zip.

The ONNX files are made once per trained model and kept in `<run>/onnx/` (its `check.json` records which
model they came from, so a re-exported model gets new ones); an exported folder that is not a run gets
them in a temporary folder. They are checked on the run's validation clips (metrics.json's paths under
the run's dataset, a folder or a zip/manifest resolved as training resolved it), or on generated clips
when those are gone; check.json then says so, and int8 is recommended only on enough real clips. A failed check, or onnx packages
that are not installed, still gives the complete transformers model, with the reason in its README.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.errors import AccessError, AstappError, UploadError
from astapp.core.paths import inside
from astapp.core.runfolder import METRICS, MODEL, read_json
from astapp.predict.calibrate import dataset_root
from astapp.predict.onnx_backend import ONNX_DIR

MAX_CLIPS = 64  # validation clips the ONNX check runs at most (bounds the export time of a big model)
DEMO = "demo.html"
WEB = Path(__file__).resolve().parents[2] / "assets" / "web"  # demo.html and vendor/ (the browser runtime)
VENDOR = "vendor"


def vendor_files() -> list[Path]:
    """The browser runtime demo.html loads (Transformers.js, onnxruntime-web's wasm; ~27 MB, ~7 MB zipped)."""
    folder = WEB / VENDOR
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def model_stamp(model_folder: Path) -> str:
    """Changes whenever the model folder is written again (export_model replaces it atomically)."""
    stats = [(model_folder / n).stat() for n in ("config.json", "model.safetensors") if (model_folder / n).is_file()]
    return ";".join(f"{s.st_mtime_ns}:{s.st_size}" for s in stats)


def validation_clips(run: Path, labels: list[str], limit: int = MAX_CLIPS) -> tuple[list[np.ndarray], list[int]]:
    """The run's validation clips that are still on disk (16 kHz mono) and their label indices."""
    from astapp.data.audio import load_audio
    from astapp.data.ingest import scan

    preds = read_json(run / METRICS).get("predictions") or []
    root = dataset_root(run)
    if root is None:
        return [], []
    bases = [root]
    with contextlib.suppress(UploadError):
        bases.append(scan(root).root)
    index = {name: i for i, name in enumerate(labels)}
    clips, truth = [], []
    for p in preds:
        if len(clips) >= limit:
            break
        if not isinstance(p, dict) or p.get("true") not in index:
            continue
        for base in bases:
            try:
                path = inside(base, str(p.get("path", "")))
            except AccessError:
                continue
            if path.is_file():
                with contextlib.suppress(AstappError):
                    clips.append(load_audio(path, max_seconds=30))
                    truth.append(index[p["true"]])
                break
    return clips, truth


def generated_clips(n: int = 24) -> list[np.ndarray]:
    """Stand-in clips for a model without its dataset: every test-signal kind, a few lengths."""
    from astapp.data.synth import KINDS, make_signal

    rng = np.random.default_rng(0)
    return [make_signal(KINDS[i % len(KINDS)], (0.5, 1.0, 2.5)[i % 3], rng=rng) for i in range(n)]


def ensure_onnx(model_folder: Path, cache: Path) -> dict[str, Any]:
    """`cache/` holds the ONNX files and check of this model (made now unless already there)."""
    from astapp.export.to_onnx import LAYOUT, export_onnx, missing_packages

    stamp = model_stamp(model_folder)
    check = read_json(cache / "check.json")
    if check and check.get("model_stamp") == stamp and check.get("layout", 1) == LAYOUT:
        return check  # the same model in the same ONNX layout (older exports lack pooler_output)
    missing = missing_packages()
    if missing:
        return {"passed": False, "error": f"ONNX export skipped: {missing}"}
    labels = [str(v) for _, v in sorted((int(k), v) for k, v in
                                         (read_json(model_folder / "config.json").get("id2label") or {}).items())]
    run = model_folder.parent
    clips, truth = validation_clips(run, labels) if (run / METRICS).is_file() else ([], [])
    source = "validation"
    if not clips:
        clips, truth, source = generated_clips(), [], "generated"
    check = export_onnx(model_folder, cache, clips, truth or None, source=source)
    check["model_stamp"] = stamp
    from astapp.core.fsutil import atomic_write_text

    atomic_write_text(cache / "check.json", json.dumps(check, indent=2))
    return check


def _model_folder(source: Path) -> Path:
    folder = source / MODEL if (source / MODEL / "config.json").is_file() else source
    if not (folder / "config.json").is_file():
        from astapp.core.errors import ModelLoadError

        raise ModelLoadError(f"{source} has no trained model (no model/ folder with config.json); "
                             "finish or stop a training run first.")
    return folder


def build_zip(source: str | Path, out_zip: str | Path, top: str, onnx: bool = True,
              browser: bool = False) -> tuple[Path, dict[str, Any] | None]:
    """Zip the model of a run (or an exported folder) under `top/`: with onnx/ and demo.html when `onnx` and
    the check passes (the README says how the check went), and with `browser` the runtime demo.html needs
    (vendor/), which makes the folder a page any static server can host offline. Returns (zip, check)."""
    from astapp.export.to_onnx import readme_section

    source, out_zip = Path(source), Path(out_zip)
    folder = _model_folder(source)
    with tempfile.TemporaryDirectory(prefix="astapp-onnx-") as scratch:
        check = None
        onnx_dir = None
        if onnx:
            onnx_dir = source / ONNX_DIR if folder != source else Path(scratch) / ONNX_DIR
            try:
                check = ensure_onnx(folder, onnx_dir)
            except PermissionError:  # a run shared read-only: make them for this download only
                onnx_dir = Path(scratch) / ONNX_DIR
                check = ensure_onnx(folder, onnx_dir)
        entries: list[tuple[str, Path | bytes]] = []
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            if path.is_file() and not path.is_symlink() and rel != "README.md" and not rel.startswith(f"{ONNX_DIR}/"):
                entries.append((rel, path))
        readme = (folder / "README.md").read_text(encoding="utf-8") if (folder / "README.md").is_file() else ""
        from astapp.export.publish import unknown_section

        readme += unknown_section(folder)  # how the unknown score is calibrated now (it may have been redone)
        if check is not None:
            readme += readme_section(check)
            if onnx_dir is not None and onnx_dir.is_dir():
                entries += [(f"{ONNX_DIR}/{p.name}", p) for p in sorted(onnx_dir.iterdir())
                            if p.is_file() and (check.get("passed") or p.name == "check.json")]
        entries.append(("README.md", readme.encode("utf-8")))
        if check and check.get("passed") and (WEB / DEMO).is_file():
            entries.append((DEMO, WEB / DEMO))
            if browser:
                entries += [(f"{VENDOR}/{p.name}", p) for p in vendor_files()]
        return _write_zip(entries, out_zip, top), check


def _write_zip(entries: list[tuple[str, Path | bytes]], out_zip: Path, top: str) -> Path:
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_zip.name}.", suffix=".partial", dir=out_zip.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, item in entries:
                if isinstance(item, Path):
                    zf.write(item, f"{top}/{name}")
                else:
                    zf.writestr(f"{top}/{name}", item)
        os.replace(tmp, out_zip)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_zip
