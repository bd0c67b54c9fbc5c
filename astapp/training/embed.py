"""The pooled embeddings and logits of dataset rows with a trained model, and the unknown score fitted on them.

The embedding is the pooled output the classifier head sees; cross-validation's embedding map and the
end-of-training unknown statistics (`astapp.evaluation.unknown`) both come from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from astapp.core.config import TrainConfig
from astapp.evaluation import unknown

FIT_CLIPS = 256  # training clips embedded to fit the unknown score: one extra forward pass over at most these


@torch.no_grad()
def embed_rows(model: Any, rows: Any, max_length: int, mean: float, std: float, feat_dir: Any,
               batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(pooled embeddings, logits) of every row, float32, on the model's own device and dtype."""
    from astapp.features.cache import FeatureCache
    from astapp.features.fbank import Fbank

    feats = FeatureCache(feat_dir, Fbank(max_length, mean, std), rows)
    model = getattr(model, "module", model).eval()
    param = next(model.parameters())
    base = model.audio_spectrogram_transformer
    embs, logits = [], []
    for start in range(0, len(feats), batch_size):
        x = torch.stack([torch.from_numpy(np.array(feats[i], dtype=np.float32))
                         for i in range(start, min(len(feats), start + batch_size))])
        pooled = base(x.to(param.device, param.dtype)).pooler_output
        embs.append(pooled.float().cpu().numpy())
        logits.append(model.classifier(pooled).float().cpu().numpy())
    return (np.concatenate(embs) if embs else np.zeros((0, model.config.hidden_size), np.float32),
            np.concatenate(logits) if logits else np.zeros((0, model.config.num_labels), np.float32))


def class_ids(labels: Any) -> np.ndarray:
    """Class ids per clip; multi-label 0/1 rows count as their first label (the centroid they join)."""
    y = np.asarray(labels)
    return y.argmax(axis=1) if y.ndim == 2 else y.astype(int)


def cached_pass(prep: Any, cfg: TrainConfig) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(training, validation) pooled embeddings that mode frozen's one-off pass already computed, so the
    unknown score needs no second forward pass: the backbone never changed, so they are exactly what the
    exported model computes. The training rows only when that pass ran in fp32 (not int8, which is within
    10 % and would shift the distances); validation always ran in fp32. (None, None) in other modes."""
    from astapp.training.trainer_utils import ArrayDataset

    data = getattr(prep, "data", None)
    if cfg.mode != "frozen" or data is None or not data.cached or not isinstance(data.val, ArrayDataset):
        return None, None
    train = data.train.inputs if isinstance(data.train, ArrayDataset) \
        and data.one_off.get("one_off_pass") != "int8" else None
    return (None if train is None else np.asarray(train, dtype=np.float32)), np.asarray(data.val.inputs, np.float32)


@torch.no_grad()
def _head_logits(model: Any, emb: np.ndarray) -> np.ndarray:
    """The classifier head's logits of pooled embeddings (what the exported model gives for those clips)."""
    model = getattr(model, "module", model)
    param = next(model.classifier.parameters())
    out = model.classifier(torch.from_numpy(emb).to(param.device, param.dtype))
    return out.float().cpu().numpy()


def fit_unknown(model: Any, prep: Any, feat_dir: Path, cfg: TrainConfig, out_dir: Path) -> dict[str, Any]:
    """Fit the default unknown score on (at most FIT_CLIPS of) the training clips of `prep` (the pipeline's
    prepared split), calibrate its threshold at `cfg.unknown_keep` of the validation clips (none: no
    threshold, with the reason), save it into the export `out_dir`; returns its summary for metrics.json.
    Mode frozen reuses its cached pass (`cached_pass`) instead of running the backbone again."""
    y = class_ids(prep.train_labels)
    pick = np.sort(np.random.default_rng(cfg.seed).permutation(len(y))[:FIT_CLIPS])
    shape = (prep.max_length, prep.mean, prep.std, feat_dir)
    train_cache, val_cache = cached_pass(prep, cfg)
    if train_cache is not None:
        emb = train_cache[pick]
    else:
        rows = prep.train_split if len(pick) == len(y) else prep.train_split.select(pick.tolist())
        emb, _ = embed_rows(model, rows, *shape)
    stats = unknown.fit(emb, y[pick], seed=cfg.seed)
    if val_cache is not None:
        val_emb, val_logits = val_cache, _head_logits(model, val_cache)
    elif len(prep.val_split):
        val_emb, val_logits = embed_rows(model, prep.val_split, *shape)
    else:
        val_emb, val_logits = np.zeros((0, emb.shape[1])), np.zeros((0, len(getattr(prep, "labels", [0]))))
    unknown.set_threshold(stats, unknown.score(stats, val_logits, val_emb), cfg.unknown_keep)
    unknown.save(stats, out_dir)
    return stats.summary()
