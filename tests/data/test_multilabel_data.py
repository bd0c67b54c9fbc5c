"""Multi-label manifests: detection, the report (counts, co-occurrence, clips without labels), warnings."""

from __future__ import annotations

import json
from pathlib import Path

from astapp.data.dataset import inspect_source
from astapp.data.ingest import scan
from tests.hostile import wav_bytes

KINDS = ["tone", "noise", "chirp"]


def _clips(root: Path, n: int) -> list[str]:
    names = []
    for i in range(n):
        name = f"audio/{i:03d}.wav"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(wav_bytes(0.3, kind=KINDS[i % 3], seed=i))
        names.append(name)
    return names


def test_separated_cells_make_a_multi_label_report(tmp_path):
    root = tmp_path / "ml"
    names = _clips(root, 8)
    cells = ['"dog,rain"', "dog", '"rain,wind"', '"dog,rain,wind"', "wind", '"dog,rain"', "rain", '"wind,dog"']
    (root / "labels.csv").write_text("fname,labels\n" + "".join(f"{n},{c}\n" for n, c in zip(names, cells,
                                                                                             strict=True)))
    listing = scan(root)
    assert listing.label_mode == "multi"
    assert listing.items[0].labels == ("dog", "rain") and listing.items[1].labels == ("dog",)
    assert any("treated as multi-label" in w for w in listing.warnings)  # mixed single and multi rows
    report = inspect_source(root, tmp_path / "ws")
    assert report.label_mode == "multi" and report.trainable, report.errors
    assert {c.name: c.clips for c in report.classes} == {"dog": 5, "rain": 5, "wind": 4}
    assert report.multilabel["co_occurrence"][0] == ["dog", "rain", 3]
    assert report.multilabel["without_labels"] == 0
    text = report.to_text()
    assert "Label mode: multi-label" in text and "dog + rain (3)" in text


def test_json_lists_multi_hot_columns_and_odd_labels_warn_without_losing_clips(tmp_path):
    root = tmp_path / "js"
    names = _clips(root, 6)
    tags = [["a", "b"], ["a"], [], ["b", "a/b"], ["a", "b"], ["a", "b"]]
    (root / "m.jsonl").write_text("".join(json.dumps({"file": n, "labels": t}) + "\n"
                                          for n, t in zip(names, tags, strict=True)))
    listing = scan(root)
    assert listing.label_mode == "multi" and len(listing.items) == 6  # the empty set is kept
    assert sorted(len(it.labels) for it in listing.items) == [0, 1, 2, 2, 2, 2]
    text = " ".join(listing.warnings)
    assert "no labels" in text and "only one clip" in text and "'a/b'" in text

    hot = tmp_path / "hot"
    names = _clips(hot, 4)
    (hot / "meta.csv").write_text("file,dog,rain,fold\n" + "".join(
        f"{n},{d},{r},{1 + i % 2}\n" for i, (n, d, r) in enumerate(zip(names, "1101", "0111", strict=True))))
    listing = scan(hot)
    assert listing.label_mode == "multi"
    assert [it.labels for it in listing.items] == [("dog",), ("dog", "rain"), ("rain",), ("dog", "rain")]
    assert [it.fold for it in listing.items] == ["1", "2", "1", "2"]


def test_single_label_manifest_stays_single(tmp_path):
    root = tmp_path / "one"
    names = _clips(root, 4)
    (root / "m.csv").write_text("file,label\n" + "".join(f"{n},{'xy'[i % 2]}\n" for i, n in enumerate(names)))
    listing = scan(root)
    assert listing.label_mode == "single" and all(it.labels == () for it in listing.items)
    assert "Label mode: single-label" in inspect_source(root, tmp_path / "ws").to_text()
