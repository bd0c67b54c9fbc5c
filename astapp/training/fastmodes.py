"""Fast CPU modes: run the frozen part of AST once per clip, then train only what changes.

* frozen: the whole backbone is frozen, so its pooled embedding of a clip never changes; we compute
  it once and train the head (`HeadModel`) on cached embeddings: seconds instead of minutes.
* last-N: the lower layers are frozen, so the hidden states entering the top N layers never change;
  we cache them and train the top N layers + final layer norm + head (`TopLayersModel`).

Both wrappers hold *the same module objects* as the full `ASTForAudioClassification`, so training
them trains the full model in place: export and inference are identical to full mode. Caching is
only valid without augmentation (augmented inputs differ every epoch); then `freeze` just stops
gradients and the full model trains on live inputs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import ASTForAudioClassification
from transformers.modeling_outputs import SequenceClassifierOutput


class HeadModel(nn.Module):
    """The classifier head on cached pooled embeddings (input_values: (B, hidden))."""

    def __init__(self, model: ASTForAudioClassification):
        super().__init__()
        self.classifier = model.classifier

    def forward(self, input_values: torch.Tensor, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        return SequenceClassifierOutput(logits=self.classifier(input_values))


class TopLayersModel(nn.Module):
    """The top N encoder layers, the final layer norm and the head on cached hidden states (B, seq, hidden)."""

    def __init__(self, model: ASTForAudioClassification, n: int):
        super().__init__()
        base = model.audio_spectrogram_transformer
        self.layers = nn.ModuleList(list(base.layers)[len(base.layers) - n:])
        self.layernorm = base.layernorm
        self.classifier = model.classifier

    def forward(self, input_values: torch.Tensor, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        hidden = input_values
        for layer in self.layers:
            hidden = layer(hidden, None)
        seq = self.layernorm(hidden)
        pooled = (seq[:, 0] + seq[:, 1]) / 2  # as ASTModel pools: mean of the cls and distillation tokens
        return SequenceClassifierOutput(logits=self.classifier(pooled))


def trainable_n(model: ASTForAudioClassification, mode: str) -> int | None:
    """Layers that train: None for full (and lora, which adapts every layer), 0 for frozen, N (capped at the
    model's depth) for last-N."""
    if mode in ("full", "lora"):
        return None
    if mode == "frozen":
        return 0
    return min(int(mode.split("-", 1)[1]), len(model.audio_spectrogram_transformer.layers))


def freeze(model: ASTForAudioClassification, n: int) -> None:
    """Stop gradients everywhere except the top n layers, the final layer norm (n > 0) and the head."""
    base = model.audio_spectrogram_transformer
    for p in model.parameters():
        p.requires_grad_(False)
    train_parts: list[nn.Module] = [model.classifier]
    if n > 0:
        train_parts += list(base.layers)[len(base.layers) - n:] + [base.layernorm]
    for part in train_parts:
        for p in part.parameters():
            p.requires_grad_(True)


def frozen_part(model: ASTForAudioClassification, n: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function computing what the trainable part consumes: pooled embedding (n=0) or hidden states."""
    base = model.audio_spectrogram_transformer
    lower = list(base.layers)[: len(base.layers) - n]

    def run(features: torch.Tensor) -> torch.Tensor:
        if n == 0:
            return base(features).pooler_output
        hidden = base.embeddings(features)
        for layer in lower:
            hidden = layer(hidden, None)
        return hidden

    return run


def quantize_int8(model: nn.Module) -> nn.Module:
    """An int8 copy of `model` for a one-off pass: every Linear dynamically quantised (int8 weights per
    tensor, activations quantised per call), the original left untouched for training and export.

    Why: on CPUs without native bf16 the frozen pass is ~all of a frozen run, and int8 matmuls are the
    only faster kernels there. torch.ao's eager API is deprecated but is still the CPU int8 path shipped
    with torch (fbgemm/oneDNN); its warnings are silenced here, not the errors.
    """
    import copy
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # in place on our own copy: quantize_dynamic's default would copy it once more (+325 MB peak for base AST)
        return quantize_dynamic(copy.deepcopy(model).float().eval(), {nn.Linear}, dtype=torch.qint8, inplace=True)


INT8_MAX_REL_ERROR = 0.10  # int8 is kept only when its output is this close to fp32 on the run's first clips
INT8_PROBE_CLIPS = 4


def pass_functions(model: ASTForAudioClassification, n: int, int8: bool, device: torch.device,
                   cpu_bf16: bool) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """The frozen part for the training split and for validation. int8 (`quantize_int8`) only for the
    training split, only on a CPU and only where bf16 is not used (native bf16 is faster than int8);
    validation stays fp32 so evaluation sees exactly what the exported model computes."""
    fn = frozen_part(model, n)
    if int8 and device.type == "cpu" and not cpu_bf16:
        return frozen_part(quantize_int8(model), n), fn
    return fn, fn


def _batch(features: torch.utils.data.Dataset, start: int, stop: int) -> torch.Tensor:
    """Items start..stop (clipped to the dataset) stacked into one input batch."""
    return torch.stack([features[i]["input_values"] for i in range(start, min(stop, len(features)))])


def probe_int8(fn32: Callable[[torch.Tensor], torch.Tensor], fn8: Callable[[torch.Tensor], torch.Tensor],
               features: torch.utils.data.Dataset, device: torch.device,
               clips: int = INT8_PROBE_CLIPS) -> tuple[np.ndarray, float]:
    """fp32 outputs of the first `clips` items and the int8 pass's relative L2 error on them.

    Why: int8 activations are quantised per tensor, so a checkpoint whose activations have outlier
    channels (common in trained transformers) can lose far more than the random-weight benchmarks show;
    measuring on the user's own model and clips decides. The fp32 rows are kept as those clips' cache rows.
    """
    batch = _batch(features, 0, clips).to(device)
    with torch.inference_mode():
        ref, got = fn32(batch).float(), fn8(batch).float()
    return ref.cpu().numpy(), float((got - ref).norm() / ref.norm().clamp_min(1e-12))


def train_pass(model: ASTForAudioClassification, n: int, int8: bool, device: torch.device, cpu_bf16: bool,
               train_features: torch.utils.data.Dataset) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                                                  Callable[[torch.Tensor], torch.Tensor],
                                                                  np.ndarray | None, dict[str, Any]]:
    """(training-split pass, validation pass, cache rows already computed, what was chosen and why).

    int8 applies where `pass_functions` allows it and `probe_int8` finds it within INT8_MAX_REL_ERROR of fp32;
    otherwise the training split runs in fp32 too (bf16 where the CPU has it)."""
    fn_train, fn = pass_functions(model, n, int8, device, cpu_bf16)
    if fn_train is fn or len(train_features) == 0:
        return fn, fn, None, {"one_off_pass": "bf16" if cpu_bf16 else "fp32", "message": ""}
    first, rel = probe_int8(fn, fn_train, train_features, device)
    info: dict[str, Any] = {"int8_rel_error": round(rel, 4)}
    if rel <= INT8_MAX_REL_ERROR:
        info.update(one_off_pass="int8", message=f" Training clips pass in int8 (within {rel:.1%} of fp32 on the "
                    f"first {len(first)} clips; validation in fp32).")
        return fn_train, fn, first, info
    info.update(one_off_pass="fp32", message=f" int8 was {rel:.1%} off fp32 on the first {len(first)} clips "
                f"(limit {INT8_MAX_REL_ERROR:.0%}), so every clip passes in fp32.")
    return fn, fn, first, info


def cache_shape(model: ASTForAudioClassification, n: int, max_length: int) -> tuple[int, ...]:
    """Shape of one clip's cached tensor."""
    cfg = model.config
    if n == 0:
        return (cfg.hidden_size,)
    f = (cfg.num_mel_bins - cfg.patch_size) // cfg.frequency_stride + 1
    t = (max_length - cfg.patch_size) // cfg.time_stride + 1
    return (f * t + 2, cfg.hidden_size)


def fits_on_disk(folder: Path, nbytes: int, margin: float = 0.5) -> bool:
    """True when `nbytes` fits in `margin` of the free space where `folder` lives."""
    folder.mkdir(parents=True, exist_ok=True)
    return nbytes <= shutil.disk_usage(folder).free * margin


@torch.no_grad()
def compute_cache(fn: Callable[[torch.Tensor], torch.Tensor], features: torch.utils.data.Dataset,
                  shape: tuple[int, ...], out: Path, device: torch.device, batch_size: int = 16,
                  progress: Callable[[int, int], None] | None = None, cpu_bf16: bool = False,
                  done: np.ndarray | None = None) -> np.ndarray:
    """Run `fn` over every item's `input_values` once into a float32 .npy memmap written atomically.

    `cpu_bf16` runs the frozen layers under bf16 autocast (~2.4x faster for base AST on a bf16-capable
    CPU). Use it for the training split only: validation activations stay fp32, so evaluation sees
    exactly what the exported fp32 model computes. `done` holds rows already computed for the first items.
    """
    n = len(features)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, *shape))
        skip = 0 if done is None else len(done)
        if skip:
            arr[:skip] = done
        for start in range(skip, n, batch_size):
            batch = _batch(features, start, start + batch_size)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16):
                arr[start:start + len(batch)] = fn(batch.to(device)).float().cpu().numpy()
            if progress:
                progress(start + len(batch), n)
        arr.flush()
        del arr
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return np.load(out, mmap_mode="r")


def cache_splits(model: ASTForAudioClassification, n: int, train_ds: torch.utils.data.Dataset,
                 val_ds: torch.utils.data.Dataset, folder: Path, shape: tuple[int, ...], device: torch.device,
                 int8: bool, cpu_bf16: bool, report: Callable[[float, str], None]) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Both splits' cached frozen-part outputs (the training split as `train_pass` chooses, validation in
    fp32) and what was chosen, for the run's metrics and its training message."""
    fn_train, fn, first, info = train_pass(model, n, int8, device, cpu_bf16, train_ds)
    out = []
    for name, ds in (("train", train_ds), ("validation", val_ds)):
        def prog(done: int, total: int, name: str = name) -> None:
            report(done / total, f"Running the frozen layers once: {name} {done}/{total} clips")

        train = name == "train"
        out.append(compute_cache(fn_train if train else fn, ds, shape, folder / f"{name}.npy", device, progress=prog,
                                 cpu_bf16=cpu_bf16 and train, done=first if train else None))
    return out, info
