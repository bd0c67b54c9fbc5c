"""Which clips may be separated: source-recording groups, the grouped hold-out split and k-fold plans.

Takes of one recording sound alike, so a split that puts one take in training and another in
validation measures memory, not generalisation (ESC-50's clips of one Freesound recording, one
UrbanSound8K recording's slices, one Speech Commands speaker). File names that follow a known
convention give the group; names that follow none leave every file its own group, and then every
split here is exactly the by-file split it always was.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from astapp.core.errors import DatasetError
from astapp.data.ingest import VALIDATION_NAMES
from astapp.data.ingest.layout import ESC50_NAME

# (name, pattern on the file stem, group number): the first convention most names follow wins
CONVENTIONS: tuple[tuple[str, re.Pattern[str], int], ...] = (
    ("ESC-50 source recording", ESC50_NAME, 2),
    ("UrbanSound8K recording", re.compile(r"^(\d+)-\d+-\d+-\d+$"), 1),
    ("Speech Commands speaker", re.compile(r"^([0-9a-f]{8})_nohash_\d+$"), 1),
    ("recording (…_take/part/seg/chunk/clip N)",
     re.compile(r"^(.+?)[_\- ](?:take|part|seg|segment|chunk|clip|slice)[_\- ]?\d+$", re.I), 1),
)
TRAIN_FOLDS = ("train", "training")  # without a validation fold, clips of these folds always train (added clips)
SPLIT_FOLDS = {*VALIDATION_NAMES, *TRAIN_FOLDS}
CV_PREFIX = "cv:"  # val_fold "cv:I/K": fold I (1-based) of the seeded, grouped, stratified K-fold plan


@dataclass
class Groups:
    ids: list[str]  # one per file: the files sharing an id are kept on one side of every split
    how: str  # "by file", or the convention and how many groups it found

    @property
    def grouped(self) -> bool:
        return self.how != "by file"


def source_groups(paths: list[str]) -> Groups:
    """Group files by source recording when at least half the names follow one known convention."""
    stems = [PurePosixPath(p).stem for p in paths]
    for name, pattern, g in CONVENTIONS:
        hits = [pattern.match(s) for s in stems]
        if sum(h is not None for h in hits) * 2 < max(len(stems), 1):
            continue
        ids = [f"{h.group(g)}" if h else f"file:{p}" for h, p in zip(hits, paths, strict=True)]
        n = len(set(ids))
        if n < len(ids):
            return Groups(ids, f"by {name} ({n} groups for {len(ids)} files)")
    return Groups([f"file:{p}" for p in paths], "by file")


def _targets(labels: list[str], val_split: float) -> dict[str, int]:
    counts = Counter(labels)
    return {lab: 0 if n < 2 else min(n - 1, max(1, int(round(n * val_split)))) for lab, n in counts.items()}


def grouped_holdout(labels: list[str], groups: list[str], val_split: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) file indices with whole groups on one side: groups in a seeded order go to
    validation while every class they hold is under its share and keeps a training file."""
    rng = np.random.default_rng(seed)
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    order = sorted(members)
    rng.shuffle(order)
    want, total = _targets(labels, val_split), Counter(labels)
    taken: Counter = Counter()
    val: list[int] = []
    for g in order:
        need = Counter(labels[i] for i in members[g])
        if all(taken[lab] + n <= want[lab] and total[lab] - taken[lab] - n >= 1 for lab, n in need.items()):
            taken.update(need)
            val += members[g]
    in_val = set(val)
    return [i for i in range(len(labels)) if i not in in_val], sorted(val)


def kfold_assign(labels: list[str], groups: list[str], k: int, seed: int) -> list[int]:
    """Fold number (0..k-1) of every file: stratified by class, whole groups per fold, seeded."""
    from sklearn.model_selection import StratifiedGroupKFold

    check_k(labels, groups, k)
    fold = [0] * len(labels)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed % (2**32))
    for f, (_, val) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        for i in val:
            fold[int(i)] = f
    return fold


def check_k(labels: list[str], groups: list[str], k: int) -> None:
    """DatasetError when k-fold cannot give every fold a clip of every class."""
    if k < 2:
        raise DatasetError(f"Cross-validation needs at least 2 folds (got {k}); use --folds auto or 5.")
    per_class: dict[str, set[str]] = defaultdict(set)
    for lab, g in zip(labels, groups, strict=True):
        per_class[lab].add(g)
    lab, n = min(per_class.items(), key=lambda kv: (len(kv[1]), kv[0]))
    if len(n) < k:
        unit = "source recordings" if any(not g.startswith("file:") for g in groups) else "clips"
        raise DatasetError(f"Class {lab!r} has only {len(n)} {unit}, too few for {k}-fold cross-validation "
                           f"(each fold needs one): use {max(2, len(n))} folds or fewer, or add clips of {lab!r}.")


def parse_cv_fold(val_fold: str) -> tuple[int, int] | None:
    """(I, K) from "cv:I/K", None for anything else; DatasetError for a malformed one."""
    if not val_fold.startswith(CV_PREFIX):
        return None
    m = re.fullmatch(r"(\d+)/(\d+)", val_fold[len(CV_PREFIX):].strip())
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise DatasetError(f"{val_fold!r} is not a cross-validation fold; write cv:I/K with 1 ≤ I ≤ K, e.g. cv:1/5.")
    return int(m.group(1)), int(m.group(2))


@dataclass
class FoldPlan:
    names: list[str]  # one per fold, in order
    of_file: list[int]  # fold index of each file
    grouping: str  # how folds were made, in words (also the JSON's "grouping")

    def split(self, f: int) -> tuple[list[int], list[int]]:
        train = [i for i, x in enumerate(self.of_file) if x != f]
        return train, [i for i, x in enumerate(self.of_file) if x == f]


def plan_folds(labels: list[str], folds: list[str | None], paths: list[str], spec: str, seed: int) -> FoldPlan:
    """Leave-one-fold-out over the manifest's folds (spec "auto"), else seeded stratified k-fold
    (k = spec, 5 for "auto") grouped by source recording. Raises DatasetError saying what to change."""
    spec = str(spec or "auto").strip().lower()
    if spec != "auto" and not spec.isdigit():
        raise DatasetError(f"Folds must be 'auto' or a whole number such as 5 (got {spec!r}).")
    present = [f for f in folds if f is not None]
    names = fold_order(present)
    is_split = bool(names) and all(n.lower() in SPLIT_FOLDS for n in names)
    if spec == "auto" and names and not is_split:
        if len(names) < 2:
            raise DatasetError(f"The dataset's fold column has a single fold ({names[0]!r}): leave-one-fold-out "
                               "needs two or more. Use --folds 5 (stratified 5-fold) or fix the fold column.")
        if len(present) < len(folds):
            raise DatasetError(f"{len(folds) - len(present)} clip(s) have no fold in the manifest; give every clip a "
                               "fold, or use --folds 5 to ignore the column.")
        index = {n: i for i, n in enumerate(names)}
        plan = FoldPlan(names, [index[f] for f in present], f"leave-one-fold-out over the dataset's {len(names)} folds")
        _check_plan(labels, plan)
        return plan
    k = 5 if spec == "auto" else int(spec)
    groups = source_groups(paths)
    of_file = kfold_assign(labels, groups.ids, k, seed)
    why = " (its train/validation split is pooled)" if is_split else ""
    plan = FoldPlan([str(i + 1) for i in range(k)], of_file, f"stratified {k}-fold {groups.how}{why}")
    _check_plan(labels, plan)
    return plan


def _check_plan(labels: list[str], plan: FoldPlan) -> None:
    """Every class must train in every fold; a fold that lacks a class only warns (see `plan_warnings`)."""
    for f, name in enumerate(plan.names):
        train, _ = plan.split(f)
        missing = sorted(set(labels) - {labels[i] for i in train})
        if missing:
            raise DatasetError(f"All clips of {', '.join(map(repr, missing))} are in fold {name!r}, so that fold "
                               "would train without them; spread those clips over several folds, or use --folds 5.")


def plan_warnings(labels: list[str], plan: FoldPlan) -> list[str]:
    """Folds whose validation misses a class or holds one clip of it (their scores are less comparable)."""
    out = []
    classes = sorted(set(labels))
    for f, name in enumerate(plan.names):
        _, val = plan.split(f)
        counts = Counter(labels[i] for i in val)
        missing = [c for c in classes if counts[c] == 0]
        if missing:
            out.append(f"Fold {name} has no clips of {', '.join(map(repr, missing))}; its scores cover the other classes.")
        single = [c for c in classes if counts[c] == 1]
        if single:
            out.append(f"Fold {name} has a single clip of {', '.join(map(repr, single))}; its scores are noisy.")
    return out


# --- the single split (astapp.data.dataset builds with it) ------------------------------------------------


def _fold_key(value: str) -> tuple[int, float | str]:
    return (0, float(value)) if re.fullmatch(r"-?\d+(\.\d+)?", value) else (1, value)


def fold_order(folds: Iterable[str]) -> list[str]:
    """Fold names in their natural order (numbers by value, then names)."""
    return sorted(set(folds), key=_fold_key)


def check_fold(val_fold: str, folds: Iterable[str]) -> None:
    """DatasetError naming the folds there are, unless `val_fold` is one of them."""
    names = fold_order(folds)
    if val_fold not in names:
        raise DatasetError(f"There is no fold {val_fold!r} in this dataset; its folds are "
                           f"{', '.join(names) or 'none (it has no fold column)'}. Pick one of them or 'auto'.")


def validation_fold(folds: list[str]) -> str | None:
    """The fold used for validation: one named like val/valid/validation/dev/test, else the last one."""
    distinct = fold_order(folds)
    if len(distinct) < 2:
        return None
    lower = {f.lower(): f for f in distinct}
    for name in VALIDATION_NAMES:
        if name in lower:
            return lower[name]
    return distinct[-1]


def split_files(labels: list[str], folds: list[str | None], val_split: float, seed: int, val_fold: str = "",
                paths: list[str] | None = None) -> tuple[list[int], list[int], str]:
    """(train file indices, validation file indices, how) — by manifest fold when there is one (`val_fold`,
    else the one `validation_fold` picks); fold I of the cross-validation plan for `val_fold` "cv:I/K";
    else stratified per class with the seed, whole source recordings on one side when `paths` show them
    (`astapp.data.folds`); every class with 2+ files keeps 1+ in each split."""
    cv = parse_cv_fold(val_fold)
    if cv is not None:
        i, k = cv
        of_file = kfold_assign(labels, source_groups(paths or [str(n) for n in range(len(labels))]).ids, k, seed)
        train = [n for n, f in enumerate(of_file) if f != i - 1]
        return train, [n for n, f in enumerate(of_file) if f == i - 1], f"cv:{i}/{k}"
    present = [f for f in folds if f is not None]
    if val_fold:
        check_fold(val_fold, present)
    else:
        val_fold = validation_fold(present) if present else None
    if val_fold is not None:
        val = [i for i, f in enumerate(folds) if f == val_fold]
        train = [i for i, f in enumerate(folds) if f != val_fold]
        return train, val, f"fold:{val_fold}"
    forced = [i for i, f in enumerate(folds) if f is not None and f.lower() in TRAIN_FOLDS]
    if forced and len(forced) < len(folds):  # clips marked "train" always train; the others split as before
        rest = [i for i, f in enumerate(folds) if i not in set(forced)]
        train, val, how = split_files([labels[i] for i in rest], [None] * len(rest), val_split, seed, "",
                                      [paths[i] for i in rest] if paths else None)
        return sorted([rest[i] for i in train] + forced), [rest[i] for i in val], f"{how}, {len(forced)} marked train"
    groups = source_groups(paths) if paths else None
    if groups is not None and groups.grouped:
        train, val = grouped_holdout(labels, groups.ids, val_split, seed)
        return train, val, f"stratified {groups.how}"
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, lab in enumerate(labels):
        by_class[lab].append(i)
    train, val = [], []
    for lab in sorted(by_class):
        idx = list(by_class[lab])
        rng.shuffle(idx)
        n = len(idx)
        n_val = 0 if n < 2 else min(n - 1, max(1, int(round(n * val_split))))
        val += idx[:n_val]
        train += idx[n_val:]
    return sorted(train), sorted(val), "stratified"


def describe_split(how: str, folds: dict[str, int], n_train: int, n_val: int, share: float) -> str:
    """The split in words, logged when a run starts (folds decide it silently otherwise)."""
    if how.startswith("cv:"):
        return (f"Cross-validation fold {how[3:]}: validating on {n_val} examples, training on {n_train}.")
    grouped = how[len("stratified "):] if how.startswith("stratified by") else ""
    if how.startswith("fold:"):
        val = how[5:]
        rest = ", ".join(f for f in folds if f != val)
        return (f"Validating on fold {val} ({n_val} examples), training on fold{'s' if ',' in rest else ''} "
                f"{rest} ({n_train} examples).")
    kept = f", whole source recordings on one side ({grouped})" if grouped else ""
    return (f"Validating on a stratified {share:.0%} of the files per class{kept} ({n_val} examples), training "
            f"on the rest ({n_train} examples).")
