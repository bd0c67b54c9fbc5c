"""Export a trained model as a self-contained folder that plain transformers can use.

The folder holds what `transformers.pipeline("audio-classification", model=FOLDER)` needs
(config with labels, weights, a feature-extractor config carrying the dataset's mean/std and input
length) plus `astapp.json` (the same settings and run extras such as metrics) and a model card.
Importing it loads no torch (the app shows the usage snippet and zips models without it).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from astapp.core.config import NUM_MEL_BINS, SAMPLE_RATE
from astapp.core.fsutil import atomic_dir, atomic_write_text

ASTAPP_JSON = "astapp.json"
FORMAT_VERSION = 1


def export_model(model: Any, labels: list[str], max_length: int, mean: float, std: float,
                 out_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the export folder atomically (a crash never leaves half a model) and return its path."""
    from astapp.features.fbank import feature_extractor_config

    model = getattr(model, "module", model)  # unwrap DDP / DataParallel
    cfg = model.config
    labels = [str(label) for label in labels]
    if cfg.num_labels != len(labels):
        raise ValueError(f"model has {cfg.num_labels} outputs but {len(labels)} labels were given")
    if int(cfg.max_length) != int(max_length):
        raise ValueError(f"model expects {cfg.max_length} frames but max_length={max_length}")
    cfg.id2label = dict(enumerate(labels))
    cfg.label2id = {label: i for i, label in enumerate(labels)}
    cfg.problem_type = (extra or {}).get("problem_type") or "single_label_classification"
    if (extra or {}).get("thresholds"):  # multi-label: each label's tuned threshold travels with the config
        cfg.thresholds = dict(extra["thresholds"])
    settings = {"format": FORMAT_VERSION, "labels": labels, "max_length": int(max_length),
                "mean": float(mean), "std": float(std), "sample_rate": SAMPLE_RATE,
                "num_mel_bins": NUM_MEL_BINS}
    meta = {**(extra or {}), **settings}
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        feature_extractor_config(max_length, mean, std).save_pretrained(tmp)
        (tmp / ASTAPP_JSON).write_text(json.dumps(meta, indent=2, ensure_ascii=False, default=str),
                                       encoding="utf-8")
        (tmp / "README.md").write_text(model_card(labels, int(max_length), meta), encoding="utf-8")
    return out_dir



def save_thresholds(model_dir: str | Path, thresholds: dict[str, float]) -> None:
    """Multi-label: replace the per-label thresholds of an exported model (config.json and astapp.json)."""
    for name in ("config.json", ASTAPP_JSON):
        path = Path(model_dir) / name
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            data["thresholds"] = {str(k): float(v) for k, v in thresholds.items()}
            atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False))

SNIPPET = '''import warnings

import numpy as np
import soundfile as sf
from transformers import pipeline

# AST's own 128-bin filterbank leaves its lowest mel filters empty; transformers warns about it on every load.
warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")

clf = pipeline("audio-classification", model="{folder}")


def load_16k(path):
    """Decode with soundfile, mix to mono, resample to 16 kHz: no ffmpeg or torchaudio needed."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != 16000:
        n = round(len(audio) * 16000 / rate)
        audio = (np.fft.irfft(np.fft.rfft(audio), n) * (n / len(audio))).astype(np.float32)
    return audio


print(clf({{"raw": load_16k("{clip}"), "sampling_rate": 16000}}, top_k=3))
'''


def usage_snippet(folder: str = "PATH/TO/THIS/FOLDER", clip: str = "my_clip.wav") -> str:
    """Python that classifies a clip with the exported folder on a machine with only
    `pip install transformers torch soundfile` (the pipeline reads file names through ffmpeg and
    resamples through torchaudio; this does both itself)."""
    return SNIPPET.format(folder=folder, clip=clip)


def model_card(labels: list[str], max_length: int, meta: dict[str, Any]) -> str:
    """A short Hub-style model card with the snippet that loads the folder without astapp."""
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    lines = ["---", "library_name: transformers", "pipeline_tag: audio-classification",
             "tags: [audio-spectrogram-transformer, astapp]", "---", "",
             "# Audio classifier fine-tuned with astapp", "",
             f"Audio Spectrogram Transformer classifying {len(labels)} sounds: "
             + ", ".join(f"`{label}`" for label in labels) + ".",
             f"Input: 16 kHz mono audio; the model sees {max_length / 100:.2f} s at a time "
             "(longer clips are truncated by the pipeline; astapp splits them into windows).", ""]
    shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if shown:
        lines += ["## Validation metrics", ""] + [f"- {k}: {v:.4g}" for k, v in shown.items()] + [""]
    lines += ["## Use", "", "With `pip install transformers torch soundfile`:", "", "```python",
              usage_snippet().rstrip(), "```", "",
              "With ffmpeg installed, the pipeline also reads files itself: `clf(\"my_clip.wav\", top_k=3)`.",
              "With astapp: `python3 -m astapp predict --model PATH/TO/THIS/FOLDER my_clip.wav`.", ""]
    return "\n".join(lines)


def zip_dir(src_dir: str | Path, out_zip: str | Path, top: str | None = None) -> Path:
    """Zip the folder's files into `out_zip`, atomically; under one folder `top` when given (so the zip
    unpacks into that folder, not into the current directory)."""
    src_dir, out_zip = Path(src_dir), Path(out_zip)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"{src_dir} is not a folder")
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_zip.name}.", suffix=".partial", dir=out_zip.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(src_dir.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    rel = path.relative_to(src_dir).as_posix()
                    zf.write(path, f"{top}/{rel}" if top else rel)
        os.replace(tmp, out_zip)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_zip
