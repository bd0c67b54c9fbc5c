"""LoRA fine-tuning (peft): low-rank adapters on AST's attention projections, the head trained fully.

The Trainer trains `LoraModule`, a plain `nn.Module` around the peft model, so checkpoints, the best
weights and resume go through the same strict state-dict path as the fast modes (never Trainer's
PeftModel special cases). The export merges the adapters into the weights (`merged`), so the model
folder stays a plain `ASTForAudioClassification` that `transformers.pipeline` loads; `save_adapter`
writes the adapter alone (a few MB) in peft's own format.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from astapp.core.errors import TrainingError

PEFT_INSTALL = "python3 -m pip install peft==0.21.2"
ADAPTER_DIR = "adapter"  # in the run folder: adapter_config.json + adapter_model.safetensors


def _peft() -> Any:
    try:
        import peft
    except ImportError:
        raise TrainingError(f"Mode lora needs the peft package, which is not installed; install it with "
                            f"`{PEFT_INSTALL}` (or pick the full, last-N or frozen mode).") from None
    return peft


def targets(text: str) -> list[str]:
    """The comma-separated target-module setting as a list ("q_proj, v_proj" -> ["q_proj", "v_proj"])."""
    return [t.strip() for t in str(text).split(",") if t.strip()]


def linear_names(model: nn.Module) -> list[str]:
    """The names LoRA can target inside AST's encoder layers, e.g. "attention.q_proj", "mlp.fc1"."""
    out: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and ".layers." in name:
            short = name.split(".layers.", 1)[1].split(".", 1)[1]  # drop the layer index
            if short not in out:
                out.append(short)
    return out


def check(model: nn.Module, rank: int, wanted: list[str]) -> None:
    """Refuse a rank the model cannot use, and target modules that match nothing (naming those that do)."""
    hidden = int(model.config.hidden_size)
    if not 1 <= rank <= hidden:
        raise TrainingError(f"The LoRA rank must be between 1 and the model's hidden size ({hidden}), not {rank}; "
                            "typical: 4 to 16.")
    available = linear_names(model)
    if not wanted:
        raise TrainingError(f"Name the modules LoRA adapts, e.g. q_proj,v_proj; available: {', '.join(available)}.")
    missing = [t for t in wanted if not any(a == t or a.endswith("." + t) for a in available)]
    if missing:
        raise TrainingError(f"The LoRA target module(s) {', '.join(missing)} match nothing in this model; "
                            f"available: {', '.join(available)}.")


class LoraModule(nn.Module):
    """What the Trainer trains in mode lora: AST with adapters on the target projections, head fully."""

    def __init__(self, model: nn.Module, rank: int, alpha: float, dropout: float, wanted: list[str]):
        super().__init__()
        peft = _peft()
        check(model, rank, wanted)
        config = peft.LoraConfig(r=int(rank), lora_alpha=float(alpha), lora_dropout=float(dropout),
                                 target_modules=wanted, modules_to_save=["classifier"], bias="none")
        with warnings.catch_warnings():  # peft asks transformers a deprecated question; not the user's concern
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            self.peft = peft.get_peft_model(model, config)

    def forward(self, input_values: torch.Tensor, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        return SequenceClassifierOutput(logits=self.peft(input_values=input_values).logits)

    def trainable(self) -> tuple[int, int]:
        """(trainable parameters, parameters of the model itself: without the adapters and peft's copy of
        the head)."""
        named = list(self.named_parameters())
        trained = sum(p.numel() for _, p in named if p.requires_grad)
        own = sum(p.numel() for n, p in named if ".lora_" not in n and ".modules_to_save." not in n)
        return trained, own

    def save_adapter(self, folder: Path) -> Path:
        """The adapter alone (and the trained head), loadable with peft's `PeftModel.from_pretrained`."""
        self.peft.save_pretrained(str(folder))
        return folder

    def merged(self) -> nn.Module:
        """The plain AST with the adapters merged into its weights (this module is spent afterwards)."""
        return self.peft.merge_and_unload()


def checkpoint_is_lora(checkpoint: Path) -> bool:
    """Whether a training checkpoint holds LoRA adapters (its weights have lora_ names)."""
    from safetensors import safe_open

    weights = Path(checkpoint) / "model.safetensors"
    if not weights.is_file():
        return False
    with safe_open(str(weights), framework="pt") as f:
        return any(".lora_" in k for k in f.keys())  # noqa: SIM118 - safe_open has keys(), not iteration


def check_resume(checkpoint: Path, mode: str) -> None:
    """A LoRA checkpoint resumes only as lora, and a full/last-N one never as lora."""
    lora = checkpoint_is_lora(checkpoint)
    if lora and mode != "lora":
        raise TrainingError(f"{checkpoint.name} was trained with LoRA adapters: resume it in mode lora (with the "
                            f"same rank and target modules), not as {mode}.")
    if not lora and mode == "lora":
        raise TrainingError(f"{checkpoint.name} was not trained with LoRA: resume it in the mode it was trained "
                            "with, or start a new LoRA run.")
