"""Load an AST checkpoint (Hub id, local folder or from scratch) with a fresh head for the user's labels.

Why not just `from_pretrained(..., ignore_mismatched_sizes=True)`: that silently re-initialises the
position embeddings whenever the input length differs from the checkpoint's, throwing away what the
model learned about time. We load at the checkpoint's own length and adapt the embeddings the way
the original AST recipe does (`adapt_position_embeddings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import ASTConfig, ASTForAudioClassification
from transformers.models.audio_spectrogram_transformer.modeling_audio_spectrogram_transformer import (
    ASTMLPHead,
)

from astapp.core.config import DEFAULT_MODEL, NUM_MEL_BINS
from astapp.core.errors import ModelLoadError
from astapp.core.hub import hub_reachable, offline
from astapp.model.sources import (
    AST_MODEL_TYPE,
    SCRATCH_CONFIGS,
    check_labels,
    check_length,
    hub_error,
    local_folder,
    looks_like_path,
    scratch_size,
)


# --- loading --------------------------------------------------------------------------------------
def _new_head(model: ASTForAudioClassification, labels: list[str]) -> None:
    """Replace the classifier with a freshly initialised one sized for `labels`."""
    cfg = model.config
    cfg.id2label = dict(enumerate(labels))
    cfg.label2id = {label: i for i, label in enumerate(labels)}
    cfg.problem_type = "single_label_classification"  # softmax in the pipeline, cross-entropy in training
    ref = next(model.parameters())
    head = ASTMLPHead(cfg)
    nn.init.normal_(head.dense.weight, mean=0.0, std=cfg.initializer_range)
    nn.init.zeros_(head.dense.bias)
    model.classifier = head.to(device=ref.device, dtype=ref.dtype)
    model.num_labels = len(labels)


def _from_pretrained(where: str | Path, attn_implementation: str, **kw: Any) -> ASTForAudioClassification:
    return ASTForAudioClassification.from_pretrained(
        where, attn_implementation=attn_implementation, dtype=torch.float32, **kw)


def load_model(source: str, labels: list[str], max_length: int,
               attn_implementation: str = "sdpa") -> ASTForAudioClassification:
    """An AST classifier for `labels` taking `max_length` frames, initialised from `source`.

    `source`: a Hub id (used only when the Hub is reachable or the model is cached), a local
    checkpoint folder (or an astapp run folder with `model/`), or `scratch:tiny|small|base`.
    Every backbone tensor equals the checkpoint's; only `classifier.*` is new. Seed torch first for
    a reproducible head.
    """
    labels = check_labels(labels)
    max_length = check_length(max_length)
    source = str(source).strip()
    if not source:
        raise ModelLoadError(f"No model given: use a Hub id such as {DEFAULT_MODEL!r}, a local checkpoint "
                             f"folder, or 'scratch:small'.")
    if source.lower().startswith("scratch:"):
        size = scratch_size(source)
        cfg = ASTConfig(**SCRATCH_CONFIGS[size], max_length=max_length, num_mel_bins=NUM_MEL_BINS,
                        patch_size=16, frequency_stride=10, time_stride=10,
                        id2label=dict(enumerate(labels)), label2id={la: i for i, la in enumerate(labels)},
                        problem_type="single_label_classification")
        cfg._attn_implementation = attn_implementation
        return ASTForAudioClassification(cfg).float()

    if looks_like_path(source):
        model = _load_local(local_folder(source), source, attn_implementation)
    else:
        model = _load_hub(source, attn_implementation)
    _new_head(model, labels)
    adapt_position_embeddings(model, max_length)
    return model


def _load_local(folder: Path, source: str, attn: str) -> ASTForAudioClassification:
    try:
        return _from_pretrained(folder, attn, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise ModelLoadError(f"Could not load the checkpoint in {source!r}: {e}. Check that the folder is "
                             f"a complete AST checkpoint.") from e


def _load_hub(source: str, attn: str) -> ASTForAudioClassification:
    try:  # a model already in the local Hugging Face cache works offline
        return _from_pretrained(source, attn, local_files_only=True)
    except (OSError, ValueError):
        pass
    if not hub_reachable():
        why = "the Hugging Face Hub is switched off (offline mode)" if offline() else \
            "the Hugging Face Hub cannot be reached from this machine"
        raise hub_error(source, why + " and the model is not in the local cache")
    try:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise hub_error(source, f"it was not found on the Hugging Face Hub ({type(e).__name__})") from e
    if cfg.model_type != AST_MODEL_TYPE:
        raise ModelLoadError(f"{source!r} is not an AST checkpoint (its model type is {cfg.model_type!r}). "
                             f"Choose an Audio Spectrogram Transformer checkpoint, e.g. {DEFAULT_MODEL!r}.")
    try:
        return _from_pretrained(source, attn)
    except (OSError, ValueError, RuntimeError) as e:
        raise hub_error(source, f"the download failed ({e})") from e


# --- position embeddings ------------------------------------------------------------------------
def _grid(config: Any, max_length: int) -> tuple[int, int]:
    """(frequency, time) patch grid, the same formula as `ASTEmbeddings.get_shape`."""
    f = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    t = (max_length - config.patch_size) // config.time_stride + 1
    return f, t


def adapt_position_embeddings(model: nn.Module, max_length: int) -> None:
    """Resize the patch position embeddings to `max_length` frames, as the original AST recipe does.

    The (frequency x time) grid keeps its frequency rows; the time axis is cut around the middle for
    shorter inputs and bilinearly interpolated for longer ones. cls/distillation tokens are kept.
    Works on `ASTForAudioClassification` or `ASTModel`; updates `config.max_length`.
    """
    max_length = check_length(max_length)
    base = getattr(model, "audio_spectrogram_transformer", model)
    emb = base.embeddings
    config = model.config
    old = emb.position_embeddings
    hidden = old.shape[-1]
    f_dim, t_old = _grid(config, config.max_length)
    _, t_new = _grid(config, max_length)
    if old.shape[1] != f_dim * t_old + 2:
        raise ModelLoadError(f"The checkpoint's position embeddings ({old.shape[1]} positions) do not match "
                             f"its config (max_length {config.max_length}); the checkpoint is inconsistent.")
    if t_new != t_old:
        with torch.no_grad():
            grid = old[:, 2:].detach().float().reshape(1, f_dim, t_old, hidden).permute(0, 3, 1, 2)
            if t_new < t_old:
                start = t_old // 2 - t_new // 2
                grid = grid[:, :, :, start:start + t_new]
            else:
                grid = nn.functional.interpolate(grid, size=(f_dim, t_new), mode="bilinear")
            patches = grid.permute(0, 2, 3, 1).reshape(1, f_dim * t_new, hidden)
            new = torch.cat([old[:, :2].detach().float(), patches], dim=1).to(old.dtype)
        emb.position_embeddings = nn.Parameter(new.contiguous(), requires_grad=old.requires_grad)
    for cfg in {id(c): c for c in (config, base.config, emb.config)}.values():
        cfg.max_length = max_length


# --- cost ------------------------------------------------------------------------------------------
def flops_breakdown(config: Any, max_length: int | None = None) -> dict[str, float]:
    """Forward FLOPs of one clip by part (2 per multiply-add), counted from the model's shapes.

    The parts are what MFU needs to be honest about: a frozen pass skips the head, last-N trains only
    the top layers. Layer norms, softmax, GELU and the pooling are left out (a few percent).
    """
    max_length = int(max_length or config.max_length)
    f, t = _grid(config, max_length)
    n = f * t + 2  # patches + cls and distillation tokens
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return {
        "patch_embedding": 2.0 * f * t * h * config.patch_size * config.patch_size,
        "qkv": layers * 2.0 * n * h * 3 * h,
        "attention_scores": layers * 2.0 * n * n * h,  # Q K^T over all heads
        "attention_values": layers * 2.0 * n * n * h,  # softmax(.) V
        "attention_out": layers * 2.0 * n * h * h,
        "mlp": layers * 2.0 * n * 2 * h * inter,
        "head": 2.0 * h * max(int(config.num_labels or 1), 1),
    }


def pass_flops(config: Any, max_length: int | None = None, frozen_layers: int | None = None) -> float:
    """Forward FLOPs of the frozen one-off pass: embeddings and the lowest `frozen_layers` (all when None),
    without the head (fastmodes caches what enters the trainable part)."""
    parts = flops_breakdown(config, max_length)
    share = 1.0 if frozen_layers is None else frozen_layers / config.num_hidden_layers
    layer = sum(v for k, v in parts.items() if k not in ("patch_embedding", "head"))
    return parts["patch_embedding"] + share * layer


def model_flops_per_sample(config: Any, max_length: int | None = None, training: bool = True) -> float:
    """FLOPs for one clip through the whole model (`flops_breakdown`), x3 to train (forward + 2x backward).

    For MFU in benchmarks; ignores layer norms, softmax and activations (a few percent).
    """
    total = sum(flops_breakdown(config, max_length).values())
    return float(total * (3 if training else 1))


def set_head_dropout(model: ASTForAudioClassification, p: float) -> None:
    """Dropout on the input of the classifier's Linear layer, in training only (the settings search tunes it).

    Why a forward pre-hook rather than a Dropout module: the weights and their names stay exactly those of
    `ASTForAudioClassification`, so checkpoints, resume and the export are unchanged, and the cached-activation
    wrappers (`training.fastmodes`) and LoRA, which call the same `classifier.dense`, get the same dropout."""
    dense = model.classifier.dense
    old = getattr(dense, "_astapp_dropout", None)
    if old is not None:
        old.remove()
        dense._astapp_dropout = None
    if p > 0:
        dense._astapp_dropout = dense.register_forward_pre_hook(
            lambda module, args: (nn.functional.dropout(args[0], p, module.training), *args[1:]))
