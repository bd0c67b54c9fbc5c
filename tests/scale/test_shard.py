"""--shard I/N: every file in exactly one share, the same shares whatever order the files were listed in."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from astapp.core.errors import explain
from astapp.scale.shard import ShardError, parse_shard, shard


@pytest.mark.parametrize("count", [1, 2, 3, 7, 64])
def test_shares_cover_every_file_exactly_once_in_any_listing_order(count):
    files = [f"/data/site{i % 5}/night{i:03d}.flac" for i in range(101)]
    shares = [shard(files, i, count) for i in range(count)]
    flat = [f for s in shares for f in s]
    assert sorted(flat) == sorted(files) and len(flat) == len(set(flat))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced
    shuffled = random.Random(count).sample(files, len(files))
    assert [shard(shuffled + files[:3], i, count) for i in range(count)] == shares  # order, duplicates: same


def test_paths_keep_their_type_and_more_shares_than_files_leave_some_empty():
    files = [Path("b.wav"), Path("a.wav")]
    assert shard(files, 0, 3) == [Path("a.wav")] and shard(files, 2, 3) == []


@pytest.mark.parametrize(("text", "expected"), [("0/4", (0, 4)), (" 3 / 4 ", (3, 4)), ("0/1", (0, 1))])
def test_parse(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["4/4", "1/0", "-1/4", "2", "a/b", "1/2/3", ""])
def test_bad_shares_are_one_sentence(text):
    with pytest.raises(ShardError) as err:
        parse_shard(text)
    msg = explain(err.value)
    assert msg.startswith("--shard") and msg.endswith(".") and ("I/N" in msg or "0 to" in msg)
