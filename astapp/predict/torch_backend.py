"""The PyTorch backend of `astapp.predict.predictor.Predictor`: astapp's batched torch filterbank
(`astapp.features.fbank.Fbank`) and the AST model, built once, turning windows into logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import ASTForAudioClassification

from astapp.core.errors import ModelLoadError
from astapp.features.fbank import Fbank
from astapp.model.sources import local_folder
from astapp.predict.settings import ModelSettings


def locate_model(path: Path, zip_name: str | None = None) -> Path:
    """The checkpoint folder: `path` itself or its model/ (a run); in an extracted zip, the first folder
    holding a config.json."""
    if zip_name is not None:
        found = sorted(p.parent for p in path.rglob("config.json") if "__MACOSX" not in p.parts)
        if not found:
            raise ModelLoadError(f"{zip_name} holds no model (no config.json); zip an exported model folder.")
        path = found[0]
    return local_folder(str(path))


class TorchBackend:
    """model.safetensors in PyTorch on `device`, fed by the torch filterbank with the model's settings."""

    mixes_clips = True  # fp32 rows are independent: windows of many short clips share a batch
    gives_embeddings = True  # the unknown score's distances need the pooled embedding (`embed_logits`)

    def __init__(self, folder: Path, settings: ModelSettings, device: str = "cpu"):
        try:
            model = ASTForAudioClassification.from_pretrained(
                folder, attn_implementation="sdpa", dtype=torch.float32, local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise ModelLoadError(f"Could not load the model in {folder}: {e}. Export it again.") from e
        if model.config.num_labels != len(settings.labels):
            raise ModelLoadError(f"The model in {folder} has {model.config.num_labels} outputs but its config "
                                 f"names {len(settings.labels)} labels; export it again.")
        try:
            self.model = model.eval().to(device)
        except (RuntimeError, AssertionError, ValueError) as e:
            raise ModelLoadError(f"Cannot run on device {device!r} ({e}); use 'cpu'.") from e
        self.normalize = settings.normalize
        self.fbank = Fbank(settings.max_length, settings.mean, settings.std, settings.num_mel_bins,
                           device=torch.device(device))

    def logits(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """(len(windows), labels) float32 logits of one batch of 16 kHz windows."""
        with torch.inference_mode():
            feats = self.fbank(list(windows), normalize=self.normalize)
            return self.model(input_values=feats).logits.float().cpu().numpy()

    def embed_logits(self, windows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(pooled embeddings, logits) of one batch: the unknown score's distance scores need the former."""
        with torch.inference_mode():
            feats = self.fbank(list(windows), normalize=self.normalize)
            pooled = self.model.audio_spectrogram_transformer(feats).pooler_output
            return pooled.float().cpu().numpy(), self.model.classifier(pooled).float().cpu().numpy()
