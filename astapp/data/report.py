"""The validation report: what was found in a dataset, what is wrong with it, and how to fix it.

The UI's data tab, `python -m astapp inspect` and each run's `report.json` show exactly this object.
`errors` block training (each says what to do); `warnings` do not.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from astapp.core.config import AudioConfig
from astapp.core.errors import DatasetError

SILENT_PEAK = 1e-4  # below -80 dBFS everywhere counts as silent
IMBALANCE_RATIO = 5.0


class UntrainableDatasetError(DatasetError):
    """The dataset has blocking problems: the message is the report's errors and `report` the whole
    validation report, for a caller that shows more than the sentence."""

    def __init__(self, report: ValidationReport):
        super().__init__(" ".join(report.errors))
        self.report = report


@dataclass
class ClassStats:
    name: str
    clips: int
    seconds: float


@dataclass
class ClipStat:
    """Facts about one decoded file, gathered while decoding (input to `build_report`)."""

    path: str
    label: str
    seconds: float
    sample_rate: int
    peak: float
    digest: str


@dataclass
class ValidationReport:
    classes: list[ClassStats] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    sample_rates: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    layout: str = "folders"
    root: str = ""
    padded: int = 0  # clips shorter than AudioConfig.min_seconds (zero-padded)
    long: int = 0  # clips longer than AudioConfig.max_seconds (cropped or split)
    silent: int = 0
    folds: dict[str, int] = field(default_factory=dict)  # manifest fold/split value -> clips
    folds_from: str = ""  # "the manifest", "the split folders", or the file-name convention that gave them
    grouping: str = ""  # how clips are kept together in splits: "by file" or a source-recording convention
    # the top-level background-noise folder: {"folder", "files", "seconds", "skipped": [{path, reason}]}
    noise: dict[str, Any] = field(default_factory=dict)
    suggestions: list[str] = field(default_factory=list)  # advice that neither blocks nor warns
    label_mode: str = "single"  # "multi": a clip may carry several labels (classes count clips per label)
    multilabel: dict[str, Any] = field(default_factory=dict)  # label counts, co-occurrence, clips without labels

    @property
    def trainable(self) -> bool:
        return not self.errors

    @property
    def labels(self) -> list[str]:
        return sorted(c.name for c in self.classes)

    @property
    def total_clips(self) -> int:
        return sum(c.clips for c in self.classes)

    @property
    def total_seconds(self) -> float:
        return float(sum(c.seconds for c in self.classes))

    def duration_histogram(self, bins: int = 20) -> dict[str, list[float]]:
        """Histogram of clip durations for the UI chart: bin edges (seconds) and counts."""
        if not self.durations:
            return {"edges": [], "counts": []}
        counts, edges = np.histogram(np.asarray(self.durations), bins=bins)
        return {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(trainable=self.trainable, total_clips=self.total_clips,
                 total_seconds=round(self.total_seconds, 3), duration_histogram=self.duration_histogram())
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValidationReport:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["classes"] = [c if isinstance(c, ClassStats) else ClassStats(**c) for c in kw.get("classes", [])]
        return cls(**kw)

    def to_text(self) -> str:
        """The human summary the CLI prints."""
        lines = [f"Dataset: {len(self.classes)} classes, {self.total_clips} clips, "
                 f"{_fmt_seconds(self.total_seconds)} of audio (layout: {self.layout})"]
        if self.root:
            lines.append(f"Root: {self.root}")
        if self.classes:
            width = max(5, *(len(c.name) for c in self.classes))
            lines.append(f"  {'class'.ljust(width)}  {'clips':>6}  {'seconds':>9}")
            for c in sorted(self.classes, key=lambda c: c.name):
                lines.append(f"  {c.name.ljust(width)}  {c.clips:>6}  {c.seconds:>9.1f}")
        if self.durations:
            d = np.asarray(self.durations)
            lines.append(f"Durations: min {d.min():.2f} s, median {np.median(d):.2f} s, max {d.max():.2f} s")
        if self.sample_rates:
            rates = ", ".join(f"{k} Hz x{v}" for k, v in sorted(self.sample_rates.items(), key=lambda kv: -kv[1]))
            lines.append(f"Sample rates: {rates}")
        if self.folds:
            lines.append("Folds" + (f" (from {self.folds_from})" if self.folds_from else "") + ": "
                         + ", ".join(f"{k} ({v})" for k, v in self.folds.items()))
        if self.grouping and self.grouping != "by file":
            lines.append(f"Grouping: {self.grouping}; takes of one recording stay on one side of every split")
        if self.noise:
            n = self.noise
            lines.append(f"Background noise ({n.get('folder', '')}/, not a class): {n.get('files', 0)} file(s), "
                         f"{_fmt_seconds(float(n.get('seconds', 0.0)))}; AddBackgroundNoise and AddShortNoises "
                         "mix these into training clips")
            lines += [f"  - skipped {s['path']}: {s['reason']}" for s in n.get("skipped", [])[:20]]
        lines += [f"Tip: {t}" for t in self.suggestions]
        lines.append(f"Label mode: {self.label_mode}-label" + (
            f" ({self.multilabel.get('mean_labels', 0)} labels per clip on average, "
            f"{self.multilabel.get('without_labels', 0)} clip(s) without labels)" if self.label_mode == "multi" else ""))
        if self.multilabel.get("co_occurrence"):
            lines.append("Labels seen together: " + ", ".join(f"{a} + {b} ({n})"
                                                                for a, b, n in self.multilabel["co_occurrence"][:5]))
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} file(s):")
            lines += [f"  - {s['path']}: {s['reason']}" for s in self.skipped[:20]]
            if len(self.skipped) > 20:
                lines.append(f"  ... and {len(self.skipped) - 20} more")
        if self.warnings:
            lines.append("Warnings:")
            lines += [f"  - {w}" for w in self.warnings]
        if self.errors:
            lines.append("Errors (fix these before training):")
            lines += [f"  - {e}" for e in self.errors]
            lines.append("Not trainable yet.")
        else:
            lines.append("Ready to train.")
        return "\n".join(lines)


def _fmt_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _examples(paths: list[str], n: int = 3) -> str:
    shown = ", ".join(paths[:n])
    return shown + (" ..." if len(paths) > n else "")


def build_report(stats: list[ClipStat], listed_labels: list[str], skipped: list[dict[str, str]],
                 warnings: list[str], audio_cfg: AudioConfig, layout: str = "folders", root: str = "",
                 folds: dict[str, int] | None = None, n_listed: int | None = None,
                 label_sets: dict[str, tuple[str, ...]] | None = None,
                 multilabel: dict[str, Any] | None = None) -> ValidationReport:
    """Summarise decoded clips into counts, distributions, warnings and blocking errors.

    With `label_sets` (clip path -> its labels: a multi-label dataset) each class counts the clips
    carrying it, and a label seen once is a warning (from ingestion), not an error.
    """
    per_class: dict[str, list[ClipStat]] = defaultdict(list)
    for s in stats:
        for lab in (label_sets.get(s.path, ()) if label_sets is not None else (s.label,)):
            per_class[lab].append(s)
    names = sorted(set(listed_labels) | set(per_class))
    report = ValidationReport(
        classes=[ClassStats(n, len(per_class[n]), round(sum(s.seconds for s in per_class[n]), 3)) for n in names],
        durations=[round(s.seconds, 4) for s in stats],
        sample_rates={str(k): v for k, v in sorted(Counter(s.sample_rate for s in stats).items())},
        skipped=list(skipped), warnings=list(warnings), layout=layout, root=root, folds=dict(folds or {}),
        label_mode="multi" if label_sets is not None else "single", multilabel=dict(multilabel or {}),
    )
    n_listed = len(stats) + len(skipped) if n_listed is None else n_listed
    errors = report.errors
    if not stats:
        if n_listed:
            errors.append(f"None of the {n_listed} audio file(s) could be decoded (see the skipped files); "
                          "re-export them as WAV, FLAC or MP3.")
        else:
            errors.append("No labelled audio files were found. Put each class's clips in its own folder "
                          "(e.g. dog/1.wav, cat/1.wav) and zip the folders, or add a CSV manifest with "
                          "'filename' and 'label' columns.")
        return report
    usable = [c for c in report.classes if c.clips > 0]
    if len(usable) < 2:
        which = f" ({usable[0].name!r})" if usable else ""
        errors.append(f"Only {len(usable)} class{which} has usable clips; a classifier needs at least 2. Add a "
                      "folder of clips for each other sound you want to recognise.")
    for c in report.classes if label_sets is None else []:
        if c.clips < 2:
            errors.append(f"Class {c.name!r} has {c.clips} usable clip{'s' if c.clips != 1 else ''}; add at least "
                          "2 (10 or more recommended) or remove that class.")

    w = report.warnings
    by_lower: dict[str, list[str]] = defaultdict(list)
    for n in names:
        by_lower[n.casefold()].append(n)
    for group in by_lower.values():
        if len(group) > 1:
            w.append(f"Classes {', '.join(repr(g) for g in group)} differ only in upper/lower case; if they "
                     "are the same sound, merge the folders.")
    by_digest: dict[str, list[ClipStat]] = defaultdict(list)
    for s in stats:
        by_digest[s.digest].append(s)
    cross = [g for g in by_digest.values() if len({s.label for s in g}) > 1]
    if cross:
        ex = cross[0]
        w.append(f"{len(cross)} clip(s) have identical audio under different labels (e.g. "
                 f"{' and '.join(f'{s.path!r} in {s.label!r}' for s in ex[:2])}); remove the mislabelled copies.")
    same = sum(len(g) - 1 for g in by_digest.values() if len({s.label for s in g}) == 1 and len(g) > 1)
    if same:
        w.append(f"{same} clip(s) are exact duplicates of another clip in the same class; duplicates can land in "
                 "both training and validation and inflate the score.")
    silent = [s.path for s in stats if s.peak < SILENT_PEAK]
    report.silent = len(silent)
    if silent:
        w.append(f"{len(silent)} clip(s) are completely silent ({_examples(silent)}); check the recordings.")
    counts = [c.clips for c in usable]
    if len(counts) >= 2 and min(counts) > 0 and max(counts) / min(counts) > IMBALANCE_RATIO:
        big = max(usable, key=lambda c: c.clips)
        small = min(usable, key=lambda c: c.clips)
        w.append(f"Classes are imbalanced: {big.name!r} has {big.clips} clips but {small.name!r} only {small.clips} "
                 f"({big.clips / small.clips:.0f}x); add clips to small classes or turn on class weighting.")
    short = [s.path for s in stats if s.seconds < audio_cfg.min_seconds]
    report.padded = len(short)
    if short:
        w.append(f"{len(short)} clip(s) are shorter than {audio_cfg.min_seconds:g} s and will be padded with "
                 f"silence ({_examples(short)}).")
    long = [s.path for s in stats if s.seconds > audio_cfg.max_seconds + 1e-6]
    report.long = len(long)
    if long:
        how = ("split into windows of" if audio_cfg.long_clips == "split" else "cropped to the first")
        w.append(f"{len(long)} clip(s) are longer than {audio_cfg.max_seconds:g} s and will be {how} "
                 f"{audio_cfg.max_seconds:g} s ({_examples(long)}).")
    low = sum(1 for s in stats if s.sample_rate < audio_cfg.sample_rate)
    if low:
        w.append(f"{low} clip(s) are recorded below {audio_cfg.sample_rate} Hz; they are upsampled, but high "
                 "frequencies are missing.")
    if skipped:
        w.append(f"{len(skipped)} file(s) were skipped (see the list with reasons).")
    if not any(c.name.casefold() in BACKGROUND_NAMES for c in report.classes):
        report.suggestions.append(
            "Add a background class (e.g. 'background' with room sound and silence): listening live, a classifier "
            "must be able to say 'none of these', otherwise every sound becomes one of your classes.")
    return report


# class names that already mean "none of these"
BACKGROUND_NAMES = {"background", "_background_", "noise", "silence", "_silence_", "nothing", "none", "other",
                    "unknown", "_unknown_", "ambient", "ambience", "room"}
