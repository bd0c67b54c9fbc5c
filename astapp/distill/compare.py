"""Teacher vs student on the same validation clips: accuracy, macro F1, top-1 agreement, size and speed.

The table a user needs to choose between the two models: how much the student gave up (accuracy, F1, how
often it says what the teacher says) for how much it gained (megabytes, milliseconds per clip on this
machine, measured here with PyTorch fp32 at the current thread count; the int8 ONNX figures are in bench/).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astapp.core.scores import sigmoid, softmax
from astapp.evaluation.metrics import scalar_metrics
from astapp.evaluation.multilabel import scalar_metrics as multilabel_metrics

TIMED_CLIPS = 8  # clips timed one at a time (after one warm-up) for ms per clip


@torch.no_grad()
def logits_of(model: Any, features: Any, batch_size: int = 16) -> np.ndarray:
    """Logits of every row of `features` (a FeatureCache or array of fbank rows)."""
    model.eval()
    out = []
    for start in range(0, len(features), batch_size):
        x = torch.stack([torch.from_numpy(np.array(features[i], dtype=np.float32))
                         for i in range(start, min(len(features), start + batch_size))])
        out.append(model(input_values=x).logits.float().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), np.float32)


@torch.no_grad()
def ms_per_clip(model: Any, features: Any) -> float | None:
    """Median milliseconds of one clip's forward pass (batch 1) over up to TIMED_CLIPS clips."""
    n = min(len(features), TIMED_CLIPS)
    if n == 0:
        return None
    rows = [torch.from_numpy(np.array(features[i], dtype=np.float32))[None] for i in range(n)]
    model.eval()(input_values=rows[0])
    times = []
    for x in rows:
        t = time.perf_counter()
        model(input_values=x)
        times.append(1000.0 * (time.perf_counter() - t))
    return float(np.median(times))


def weights_mb(model_dir: Path) -> float:
    return sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors")) / 1e6


def _scores(y_true: Any, probs: np.ndarray, multi: bool, thresholds: list[float] | None) -> dict[str, float]:
    if multi:
        m = multilabel_metrics(np.asarray(y_true), probs, thresholds if thresholds else 0.5)
        return {"accuracy": m["accuracy"], "f1_macro": m["f1_macro"], "map": m["map"]}
    m = scalar_metrics(np.asarray(y_true), probs.argmax(-1), probs.shape[1])
    return {"accuracy": m["accuracy"], "f1_macro": m["f1_macro"]}


def compare(teacher: Any, student: Any, features: Any, y_true: Any, teacher_dir: Path, student_dir: Path,
            multi_label: bool = False, teacher_thresholds: list[float] | None = None,
            student_thresholds: list[float] | None = None) -> dict[str, Any]:
    """The teacher-vs-student table on the validation `features` with true labels `y_true`."""
    squash = sigmoid if multi_label else softmax
    t_probs, s_probs = squash(logits_of(teacher, features)), squash(logits_of(student, features))
    rows = {}
    for name, model, probs, folder, th in (("teacher", teacher, t_probs, teacher_dir, teacher_thresholds),
                                           ("student", student, s_probs, student_dir, student_thresholds)):
        rows[name] = {**_scores(y_true, probs, multi_label, th), "size_mb": round(weights_mb(folder), 3),
                      "ms_per_clip": ms_per_clip(model, features),
                      "parameters": sum(p.numel() for p in model.parameters())}
    agreement = float((t_probs.argmax(-1) == s_probs.argmax(-1)).mean()) if len(t_probs) else 0.0
    t_ms, s_ms = rows["teacher"]["ms_per_clip"], rows["student"]["ms_per_clip"]
    return {"clips": int(len(t_probs)), "agreement": agreement,
            **({} if multi_label else where_the_teacher_errs(y_true, t_probs.argmax(-1), s_probs.argmax(-1))), **rows,
            "speedup": t_ms / s_ms if t_ms and s_ms else None,
            "size_ratio": rows["student"]["size_mb"] / rows["teacher"]["size_mb"] if rows["teacher"]["size_mb"] else None,
            "threads": torch.get_num_threads(), "timing": "PyTorch fp32, batch 1, median, on this machine"}


def where_the_teacher_errs(y_true: Any, teacher: np.ndarray, student: np.ndarray) -> dict[str, Any]:
    """Agreement split by whether the teacher is right. A student that also learns from the labels can be
    right where its teacher is wrong; plain agreement counts that against it, so the table shows both: how
    faithfully it copies what the teacher knows, and how many of the teacher's mistakes it did not copy."""
    y = np.asarray(y_true).reshape(-1)
    right = teacher == y
    return {"agreement_where_teacher_right": float((student[right] == teacher[right]).mean()) if right.any() else None,
            "teacher_wrong": int((~right).sum()), "student_right_where_teacher_wrong": int((student[~right] == y[~right]).sum())}


def table(doc: dict[str, Any]) -> list[list[Any]]:
    """The comparison as rows for display: [what, teacher, student]."""
    t, s = doc.get("teacher", {}), doc.get("student", {})

    def fmt(v: Any, pct: bool = False) -> str:
        if v is None:
            return "—"
        return f"{100 * v:.1f} %" if pct else f"{v:.1f}"

    rows = [["accuracy", fmt(t.get("accuracy"), True), fmt(s.get("accuracy"), True)],
            ["macro F1", fmt(t.get("f1_macro"), True), fmt(s.get("f1_macro"), True)],
            ["agreement with the teacher", "100.0 %", fmt(doc.get("agreement"), True)],
            *([["… where the teacher is right", "100.0 %", fmt(doc["agreement_where_teacher_right"], True)],
               ["the teacher's mistakes it gets right", "—",
                f"{doc.get('student_right_where_teacher_wrong', 0)} of {doc.get('teacher_wrong', 0)}"]]
              if doc.get("agreement_where_teacher_right") is not None else []),
            ["size (MB)", fmt(t.get("size_mb")), fmt(s.get("size_mb"))],
            ["ms per clip", fmt(t.get("ms_per_clip")), fmt(s.get("ms_per_clip"))]]
    if "map" in t:
        rows.insert(2, ["mAP", fmt(t.get("map"), True), fmt(s.get("map"), True)])
    return rows
