"""Student sizes: "tiny", "small" or an explicit "HxL" (hidden size x layers), checked against the teacher.

A student is the teacher's AST config (same input length, mel bins, patches and labels) with a smaller
transformer; the parameter count decides whether it is smaller, counted on the meta device (no memory).
"""

from __future__ import annotations

import re
from typing import Any

from astapp.core.errors import TrainingError

HEAD_DIM = 64  # hidden units per attention head, as in AST base (768 / 12)
STUDENT_SIZES: dict[str, tuple[int, int]] = {"tiny": (192, 4), "small": (384, 6)}
_EXPLICIT = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(size: str) -> tuple[int, int]:
    """(hidden size, layers) of a student size; TrainingError names the accepted forms."""
    text = str(size or "").strip().lower()
    if text in STUDENT_SIZES:
        return STUDENT_SIZES[text]
    found = _EXPLICIT.match(text)
    if found is None:
        raise TrainingError(f"Unknown student size {size!r}: use tiny (hidden 192, 4 layers), small (hidden 384, "
                            "6 layers) or HIDDENxLAYERS such as 128x2.")
    hidden, layers = int(found.group(1)), int(found.group(2))
    if not (16 <= hidden <= 1024 and hidden % 16 == 0 and 1 <= layers <= 24):
        raise TrainingError(f"Student size {size!r} is out of range: the hidden size must be a multiple of 16 "
                            "from 16 to 1024 and the layers 1 to 24, e.g. 192x4.")
    return hidden, layers


def student_config(teacher_config: Any, size: str) -> Any:
    """The student's ASTConfig: the teacher's input settings and labels with the smaller transformer."""
    from transformers import ASTConfig

    hidden, layers = parse_size(size)
    heads = max(1, hidden // HEAD_DIM)
    while hidden % heads:
        heads -= 1
    d = teacher_config.to_dict()
    d.update(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=4 * hidden)
    for key in ("architectures", "transformers_version", "_name_or_path", "thresholds"):
        d.pop(key, None)
    cfg = ASTConfig.from_dict(d)
    if getattr(teacher_config, "thresholds", None):
        cfg.thresholds = dict(teacher_config.thresholds)
    return cfg


def parameters(config: Any) -> int:
    """Parameters of an AST classifier with `config`, counted without allocating its weights."""
    import torch
    from transformers import ASTForAudioClassification

    with torch.device("meta"):
        model = ASTForAudioClassification(config)
    return sum(p.numel() for p in model.parameters())


def describe(config: Any) -> str:
    return (f"hidden {config.hidden_size}, {config.num_hidden_layers} layers, "
            f"{parameters(config) / 1e6:.2f} M parameters")


def check_smaller(student: Any, teacher: Any) -> None:
    """Refuse a student that is not smaller than its teacher, naming both sizes."""
    if parameters(student) >= parameters(teacher):
        raise TrainingError(f"The student ({describe(student)}) is not smaller than its teacher "
                            f"({describe(teacher)}): choose a smaller size, e.g. "
                            f"{max(16, teacher.hidden_size // 2 // 16 * 16)}x{max(1, teacher.num_hidden_layers // 2)}.")
