"""A student's first weights chosen from its teacher's ("weight selection", Xu et al., ICLR 2024).

Why: a student from random weights must learn what a spectrogram patch is from the user's few hundred clips
and the teacher's answers on them; a student whose weights are a consistent slice of the teacher's starts
with the teacher's patch filters, position embeddings and attention heads, and distillation then only has
to close the gap the slicing opened. The paper measures it on ViTs trained on small datasets (a ViT-T from a
ViT-S: several points of accuracy, and faster convergence); docs/BENCHMARKS.md measures it here.

How, for every parameter of the student: the same layer index among the teacher's first layers ("first-N",
the paper's better layer choice), and in every dimension an evenly spaced subset of the teacher's indices,
the *same* subset wherever that dimension appears (the residual stream in embeddings, layer norms, every
projection's input and output, the classifier), so the selected network stays coherent. Attention keeps
whole heads (evenly spaced) when the head sizes match, so a head's query, key and value rows stay together;
the MLP keeps an evenly spaced subset of its hidden units. Shapes the teacher cannot cover (a student
dimension larger than the teacher's) keep their random initialisation, and the caller is told which.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_ATTENTION_OUT = ("q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias", "v_proj.weight", "v_proj.bias")


def evenly(n_teacher: int, n_student: int) -> np.ndarray:
    """`n_student` distinct indices spread evenly over range(n_teacher) (first and last included)."""
    if n_student >= n_teacher:
        return np.arange(n_teacher)
    return np.unique(np.linspace(0, n_teacher - 1, n_student).round().astype(int))


def head_indices(teacher: Any, student: Any) -> np.ndarray:
    """The attention dimensions the student keeps: whole heads when the head sizes match, else evenly spaced."""
    t_head = teacher.hidden_size // teacher.num_attention_heads
    s_head = student.hidden_size // student.num_attention_heads
    if t_head != s_head or student.num_attention_heads > teacher.num_attention_heads:
        return evenly(teacher.hidden_size, student.hidden_size)
    heads = evenly(teacher.num_attention_heads, student.num_attention_heads)
    return np.concatenate([np.arange(h * t_head, (h + 1) * t_head) for h in heads])


def _axes(name: str, shape: tuple[int, ...], index: dict[str, np.ndarray]) -> list[np.ndarray | None]:
    """For each axis of the student parameter `name`, the teacher indices to take (None: the whole axis)."""
    hidden, heads, mlp = index["hidden"], index["heads"], index["mlp"]
    if name.endswith(_ATTENTION_OUT):
        return [heads, hidden][: len(shape)]
    if name.endswith("o_proj.weight"):
        return [hidden, heads]
    if name.endswith("fc1.weight"):
        return [mlp, hidden]
    if name.endswith("fc1.bias"):
        return [mlp]
    if name.endswith("fc2.weight"):
        return [hidden, mlp]
    if name.endswith("classifier.dense.weight"):
        return [None, hidden]
    if name.endswith("classifier.dense.bias"):
        return [None]
    if name.endswith("patch_embeddings.projection.weight"):
        return [hidden, None, None, None]
    if name.endswith(("cls_token", "distillation_token", "position_embeddings")):
        return [None, None, hidden]
    return [hidden]  # biases and layer norms of the residual stream


def _select(tensor: torch.Tensor, axes: list[np.ndarray | None]) -> torch.Tensor:
    for dim, idx in enumerate(axes):
        if idx is not None:
            tensor = tensor.index_select(dim, torch.as_tensor(idx, dtype=torch.long))
    return tensor


def select_weights(student: torch.nn.Module, teacher: torch.nn.Module) -> list[str]:
    """Copy a consistent slice of `teacher`'s weights into `student` (same architecture, smaller sizes).

    Returns the names of the student parameters that kept their random weights (none for a student that is
    narrower and shallower than its teacher, the only kind `astapp.distill.sizes` allows to be smaller in both).
    """
    s_cfg, t_cfg = student.config, teacher.config
    index = {"hidden": evenly(t_cfg.hidden_size, s_cfg.hidden_size), "heads": head_indices(t_cfg, s_cfg),
             "mlp": evenly(t_cfg.intermediate_size, s_cfg.intermediate_size)}
    source = teacher.state_dict()
    state, kept_random = student.state_dict(), []
    with torch.no_grad():
        for name, value in state.items():  # layer i takes the teacher's layer i: a deeper one has none
            picked = _pick(source.get(name), name, tuple(value.shape), index)
            if picked is None:
                kept_random.append(name)
                continue
            value.copy_(picked)
    return kept_random


def _pick(tensor: torch.Tensor | None, name: str, shape: tuple[int, ...],
          index: dict[str, np.ndarray]) -> torch.Tensor | None:
    """The slice of the teacher's `tensor` for the student parameter `name` of `shape`, or None if none fits."""
    if tensor is None or tensor.dim() != len(shape):
        return None
    picked = _select(tensor, _axes(name, shape, index))
    return picked.to(torch.float32) if tuple(picked.shape) == shape else None
