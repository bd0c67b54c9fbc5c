"""An exported model as ONNX (fp32 and int8) in the layout Transformers.js loads, checked before it ships.

`torch.onnx.export` (the dynamo exporter, onnxscript) writes `onnx/model.onnx` with a dynamic batch and two
outputs, `logits` (what Transformers.js reads) and `pooler_output` (the pooled embedding the head sees, which
the unknown score's distances need, so `predict --onnx` scores unknown sounds without torch);
onnxruntime's dynamic quantization writes `onnx/model_quantized.onnx` (int8 weights). Both run in
onnxruntime on the given clips (the run's validation clips) with the numpy features that
`predict --onnx` uses, against PyTorch on the same features: the fp32 file must give the same top-1
on every clip and probabilities within `tol`, otherwise no ONNX file is kept and `onnx/check.json`
says why (never a silently wrong model); the embeddings must agree too (`max_embedding_diff`, relative to
their scale). The int8 agreement and accuracy are measured and reported.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.errors import ModelLoadError
from astapp.core.fsutil import atomic_dir
from astapp.core.scores import softmax
from astapp.predict.onnx_backend import FP32, INT8, ONNX_DIR, OnnxBackend
from astapp.predict.predictor import Predictor

CHECK = "check.json"  # onnx/check.json: the validation numbers (or why the export failed)
PACKAGES = "pip install onnx==1.23.2 onnxruntime==1.32.0 onnxscript==0.7.2"
TOLERANCE = 1e-3
OPSET = 18
LAYOUT = 2  # 1: logits only; 2: + pooler_output (a cached export of another layout is made again)
OUTPUTS = ("logits", "pooler_output")


def missing_packages() -> str | None:
    """None when ONNX export can run, else the sentence with the install command."""
    import importlib.util

    absent = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
    return None if not absent else f"{', '.join(absent)} not installed; install with `{PACKAGES}`."


def _torch_export(model_folder: Path, path: Path) -> Any:
    """Write the fp32 ONNX file (dynamic batch) and return the PyTorch model it came from."""
    import torch
    from transformers import ASTForAudioClassification

    try:
        model = ASTForAudioClassification.from_pretrained(model_folder, attn_implementation="sdpa",
                                                          dtype=torch.float32, local_files_only=True).eval()
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise ModelLoadError(f"Could not load the model in {model_folder}: {e}. Export it again.") from e

    class Logits(torch.nn.Module):
        """The plain tensor-in, tensors-out graph Transformers.js expects (input_values -> logits first), plus
        the pooled embedding for the unknown score."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            pooled = self.inner.audio_spectrogram_transformer(input_values).pooler_output
            return self.inner.classifier(pooled), pooled

    cfg = model.config
    dummy = torch.zeros(2, int(cfg.max_length), int(cfg.num_mel_bins))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.inference_mode(False):
        warnings.simplefilter("ignore")
        torch.onnx.export(Logits(model), (dummy,), str(path), input_names=["input_values"],
                          output_names=list(OUTPUTS), opset_version=OPSET, dynamo=True, external_data=False,
                          dynamic_shapes={"input_values": {0: torch.export.Dim("batch", min=1, max=1024)}})
    return model


def _quantize(src: Path, dst: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice is for static quantization
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def _batched(fn: Any, x: np.ndarray, size: int = 16) -> np.ndarray:
    return np.concatenate([np.asarray(fn(x[b:b + size])) for b in range(0, len(x), size)])


def _onnx(folder: Path, quantized: bool = False) -> tuple[Predictor, OnnxBackend]:
    runner = Predictor(folder, backend="onnx", quantized=quantized)
    assert isinstance(runner.backend, OnnxBackend)
    return runner, runner.backend


def _clip_probs(onnx: tuple[Predictor, OnnxBackend], clips: Sequence[np.ndarray],
                logits_fn: Any) -> tuple[np.ndarray, np.ndarray]:
    """(per-window probabilities, per-clip mean probabilities) with the predictor's windows, the ONNX
    backend's numpy features going through `logits_fn` (onnxruntime, or PyTorch on the same features),
    so the check compares the two models and nothing else."""
    runner, backend = onnx
    windows, owner = [], []
    for ci, wav in enumerate(clips):
        for s in runner.window_starts(len(wav)):
            windows.append(wav[s:s + runner.window_samples])
            owner.append(ci)
    win = softmax(_batched(logits_fn, backend.features(windows)))
    owner_a = np.asarray(owner)
    per_clip = np.stack([win[owner_a == ci].mean(axis=0) for ci in range(len(clips))])
    return win, per_clip


def validate(folder: Path, model: Any, clips: Sequence[np.ndarray], truth: Sequence[int] | None,
             tol: float = TOLERANCE) -> dict[str, Any]:
    """Compare ONNX fp32 and int8 with PyTorch on `clips` (16 kHz mono); `truth` gives accuracy."""
    import torch

    def torch_logits(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(input_values=torch.from_numpy(x)).logits.numpy()

    fp32 = _onnx(folder)
    ref_win, ref = _clip_probs(fp32, clips, torch_logits)
    emb_diff = _embedding_diff(fp32[1], model, clips[:16])
    out: dict[str, Any] = {"clips": len(clips), "windows": len(ref_win), "tolerance": tol}
    top_ref = ref.argmax(1)
    y = np.asarray(truth) if truth is not None else None
    out["pytorch_accuracy"] = None if y is None else float((top_ref == y).mean())
    for key, quantized in (("fp32", False), ("int8", True)):
        onnx = fp32 if not quantized else _onnx(folder, quantized=True)
        t0 = time.perf_counter()
        win, per = _clip_probs(onnx, clips, onnx[1].run)
        top = per.argmax(1)
        out[key] = {"top1_agreement": float((top == top_ref).mean()),
                    "max_prob_diff": float(np.abs(win - ref_win).max()),
                    "accuracy": None if y is None else float((top == y).mean()),
                    "seconds": round(time.perf_counter() - t0, 3),
                    "size_mb": round((folder / ONNX_DIR / (INT8 if quantized else FP32)).stat().st_size / 1e6, 3)}
    f = out["fp32"]
    f["max_embedding_diff"] = emb_diff
    out["passed"] = bool(f["top1_agreement"] == 1.0 and f["max_prob_diff"] <= tol and emb_diff <= tol)
    if not out["passed"]:
        out["error"] = (f"the ONNX model disagrees with PyTorch (top-1 agreement {f['top1_agreement']:.1%}, "
                        f"max probability difference {f['max_prob_diff']:.2g}, max relative embedding difference "
                        f"{emb_diff:.2g}; tolerance {tol:g})")
    return out


def _embedding_diff(backend: OnnxBackend, model: Any, clips: Sequence[np.ndarray]) -> float:
    """The largest difference between the ONNX and PyTorch pooled embeddings of the clips' first windows,
    relative to the embeddings' largest magnitude (what the unknown score's distances are computed from)."""
    import torch

    feats = backend.features([c[:backend.window] for c in clips])
    with torch.inference_mode():
        ref = model.audio_spectrogram_transformer(torch.from_numpy(feats)).pooler_output.numpy()
    ours = _batched(lambda x: backend.embed_logits_of(x)[0], feats)
    return float(np.abs(ours - ref).max() / max(float(np.abs(ref).max()), 1e-6))


INT8_MIN_AGREEMENT = 0.97  # below this top-1 agreement with PyTorch, int8 is not recommended
INT8_MIN_CLIPS = 20  # fewer real clips than this cannot vouch for int8


def int8_advice(int8: dict[str, Any], clips: int, source: str) -> dict[str, Any]:
    """Whether the int8 file may stand in for fp32: `recommended`, and `why_not` when it may not.

    A weak model's logit margins are tiny, and int8 rounding flips them: measured on a zip-trained run, int8
    agreed with PyTorch on 22 of 32 real clips while 24 generated signals showed 1.0. So only the run's own
    validation clips, enough of them, and a high agreement vouch for it."""
    agreement = float(int8.get("top1_agreement") or 0.0)
    if source != "validation":
        why = f"it was checked on {clips} {source} clips, not on the run's validation clips"
    elif clips < INT8_MIN_CLIPS:
        why = f"only {clips} validation clips were checked (at least {INT8_MIN_CLIPS} are needed)"
    elif agreement < INT8_MIN_AGREEMENT:
        why = f"it agrees with PyTorch on {agreement:.1%} of the validation clips (below {INT8_MIN_AGREEMENT:.0%})"
    else:
        return {"recommended": True}
    return {"recommended": False, "why_not": why + "; use the fp32 model (onnx/model.onnx)"}


def export_onnx(model_folder: str | Path, out_dir: str | Path, clips: Sequence[np.ndarray],
                truth: Sequence[int] | None = None, source: str = "validation", tol: float | None = None) -> dict[str, Any]:
    """Write `out_dir/` = {model.onnx, model_quantized.onnx, check.json} atomically and return the check.
    When the check fails (or the export itself does), `out_dir` holds only check.json saying why."""
    model_folder, out_dir = Path(model_folder), Path(out_dir)
    tol = TOLERANCE if tol is None else float(tol)
    if not clips:
        raise ModelLoadError("No clips to check the ONNX export on; export again with the dataset in place.")
    t0 = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        check: dict[str, Any] = {"source": source, "opset": OPSET, "layout": LAYOUT, "outputs": list(OUTPUTS)}
        model = None
        try:
            stage = tmp / "stage"
            (stage / ONNX_DIR).mkdir(parents=True)
            for name in ("config.json", "preprocessor_config.json"):
                (stage / name).write_bytes((model_folder / name).read_bytes())
            model = _torch_export(model_folder, stage / ONNX_DIR / FP32)
            _quantize(stage / ONNX_DIR / FP32, stage / ONNX_DIR / INT8)
            check.update(validate(stage, model, clips, truth, tol))
            check["int8"].update(int8_advice(check["int8"], len(clips), source))
        except Exception as e:  # noqa: BLE001 - an exporter failure must still leave the transformers model
            if model is None and isinstance(e, ModelLoadError):
                raise  # the transformers model itself does not load: nothing to export
            check.update(passed=False, error=f"the ONNX export failed ({type(e).__name__}: {e})")
        if check.get("passed"):
            for name in (FP32, INT8):
                (stage / ONNX_DIR / name).replace(tmp / name)
        shutil.rmtree(tmp / "stage", ignore_errors=True)
        check["export_seconds"] = round(time.perf_counter() - t0, 2)
        (tmp / CHECK).write_text(json.dumps(check, indent=2), encoding="utf-8")
    return check


def readme_section(check: dict[str, Any]) -> str:
    """The model card's ONNX section: what is in onnx/ and how well it agrees, or why it is absent."""
    if not check.get("passed"):
        return ("\n## ONNX\n\nNo ONNX model in this export: " + str(check.get("error", "the check failed"))
                + ". The transformers model above is complete; see `onnx/check.json`.\n")

    def pct(v: Any) -> str:
        return "n/a" if v is None else f"{v:.1%}"

    f, q = check["fp32"], check["int8"]
    src = (f"the run's {check['clips']} validation clips" if check.get("source") == "validation"
           else f"{check['clips']} generated clips (the validation clips were not found)")
    return "\n".join([
        "", "## ONNX (onnxruntime, Transformers.js)", "",
        "`onnx/model.onnx` (fp32) and `onnx/model_quantized.onnx` (int8 dynamic quantization) take "
        "`input_values` (batch, frames, 128 mel bins) and return `logits` and `pooler_output` (the pooled "
        "embedding, from which astapp computes the unknown score without torch); `config.json` and "
        "`preprocessor_config.json` beside `onnx/` make this folder a Transformers.js model.",
        f"Checked against PyTorch on {src} (`onnx/check.json`):", "",
        "| model | size (MB) | top-1 agreement with PyTorch | max prob. difference | accuracy |",
        "|---|---|---|---|---|",
        f"| PyTorch fp32 | | | | {pct(check.get('pytorch_accuracy'))} |",
        f"| ONNX fp32 | {f['size_mb']:.1f} | {pct(f['top1_agreement'])} | {f['max_prob_diff']:.1e} | {pct(f['accuracy'])} |",
        f"| ONNX int8 | {q['size_mb']:.1f} | {pct(q['top1_agreement'])} | {q['max_prob_diff']:.1e} | {pct(q['accuracy'])} |",
        "", "Without torch: `pip install onnxruntime numpy soundfile soxr` and astapp, then "
        "`python3 -m astapp predict --onnx --model PATH/TO/THIS/FOLDER my_clip.wav` (add `--int8` for the "
        "quantized model).", ""])
