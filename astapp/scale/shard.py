"""A deterministic share of a file list, for clusters without Ray (a SLURM job array, `--shard I/N`).

Every array task lists the same input, so each must pick its share from that list alone, with no
coordination: the paths are sorted (as strings, so the order does not depend on the file system's listing
order) and dealt round-robin, which keeps the shares within one file of each other. Shard I of N (I from 0
to N-1, as `$SLURM_ARRAY_TASK_ID` with `--array=0-<N-1>`) gets files I, I+N, I+2N, ...; together the N
shards hold every file exactly once (duplicates in the input count once).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from astapp.core.errors import AstappError

P = TypeVar("P", str, Path)


class ShardError(AstappError):
    """A --shard value that names no share of the files."""


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N; anything else is one sentence saying the form."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise ShardError(f"--shard {text!r} is not of the form I/N (for example 0/4: the first of 4 shares; "
                         "on SLURM: --shard $SLURM_ARRAY_TASK_ID/N with --array=0-<N-1>).")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or i >= n:
        raise ShardError(f"--shard {text}: the share number must be from 0 to N-1 and N at least 1 "
                         f"(here 0 to {max(n - 1, 0)}); SLURM arrays for this start at --array=0.")
    return i, n


def shard(files: Iterable[P], index: int, count: int) -> list[P]:
    """Share `index` of `count` of `files`: sorted by path, dealt round-robin, duplicates dropped."""
    if count < 1 or not 0 <= index < count:
        raise ShardError(f"Shard {index} of {count} does not exist; use 0 to {count - 1}.")
    unique = {str(f): f for f in files}
    ordered = [unique[k] for k in sorted(unique)]
    return ordered[index::count]
