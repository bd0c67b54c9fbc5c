"""Safe extraction of real hostile zips, and layout discovery on real folders and manifests."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from astapp.core.config import IngestLimits
from astapp.core.errors import UploadError
from astapp.data.ingest import extract_zip, resolve, resolve_source, scan
from tests.hostile import (
    bomb_zip,
    class_members,
    corrupt_zip,
    disk_usage,
    encrypted_zip,
    legacy_name_zip,
    make_zip,
    symlink_zip,
    truncated_zip,
    wav_bytes,
)

MB = 1 << 20


@pytest.fixture
def sandbox(tmp_path):
    """workspace inside a sentinel parent: nothing may appear in the parent or anywhere above it."""
    parent = tmp_path / "sentinel"
    ws = parent / "workspace"
    ws.mkdir(parents=True)
    yield ws
    assert sorted(p.name for p in parent.iterdir()) == ["workspace"]
    assert not (tmp_path / "x").exists() and not (tmp_path / "evil.wav").exists()


def _upload(tmp_path: Path, name: str = "up.zip") -> Path:
    return tmp_path / "uploads-in" / name


# --------------------------------------------------------------------------------------- hostile zips

@pytest.mark.parametrize("evil", ["../x", "dir/../../x", "/tmp/x", "a/../../../evil.wav", "C:/x.wav",
                                  "..\\..\\evil.wav"])
def test_traversal_and_absolute_names_are_rejected(tmp_path, sandbox, evil):
    z = make_zip(_upload(tmp_path), {**class_members(), evil: b"owned"})
    with pytest.raises(UploadError, match="absolute path|climbs out"):
        extract_zip(z, sandbox / "out", IngestLimits())
    assert not (sandbox / "out").exists()  # checked before anything was written


def test_symlink_entry_is_rejected(tmp_path, sandbox):
    z = symlink_zip(_upload(tmp_path), extra=class_members())
    with pytest.raises(UploadError, match="symbolic link"):
        resolve_source(z, sandbox, IngestLimits())
    assert not any(p.is_symlink() for p in sandbox.rglob("*"))


def test_honest_bomb_is_rejected_before_writing(tmp_path, sandbox):
    z = bomb_zip(_upload(tmp_path), 40 * MB, extra=class_members())
    assert z.stat().st_size < MB
    with pytest.raises(UploadError, match="zip bomb"):
        extract_zip(z, sandbox / "out", IngestLimits())
    assert not (sandbox / "out").exists()


def test_total_and_per_file_caps(tmp_path, sandbox):
    z = make_zip(_upload(tmp_path), class_members(per_class=4))
    with pytest.raises(UploadError, match="more than"):
        extract_zip(z, sandbox / "a", IngestLimits(max_total_bytes=50_000))
    with pytest.raises(UploadError, match="per-file limit"):
        extract_zip(z, sandbox / "b", IngestLimits(max_file_bytes=10_000))
    with pytest.raises(UploadError, match="entries, over the limit"):
        extract_zip(z, sandbox / "c", IngestLimits(max_members=3))
    with pytest.raises(UploadError, match="over the .* limit"):
        extract_zip(z, sandbox / "d", IngestLimits(max_upload_bytes=1000))


def test_size_limits_say_why_and_how_a_self_hoster_raises_them(tmp_path, sandbox):
    """Issue 11.2: no "shorten or compress" advice for an uncompressed-size limit; the reason and the knob."""
    z = make_zip(_upload(tmp_path), class_members(per_class=4))
    for limits, env in ((IngestLimits(max_file_bytes=10_000), "ASTAPP_MAX_FILE_MB"),
                        (IngestLimits(max_total_bytes=50_000), "ASTAPP_MAX_EXTRACT_MB"),
                        (IngestLimits(max_members=3), "ASTAPP_MAX_FILES"),
                        (IngestLimits(max_upload_bytes=1000), "ASTAPP_MAX_UPLOAD_MB")):
        with pytest.raises(UploadError) as err:
            extract_zip(z, sandbox / "x", limits)
        msg = str(err.value)
        assert env in msg and "Running astapp yourself?" in msg and "compress that file" not in msg, msg
    with pytest.raises(UploadError, match="protects the server: a zip bomb"):
        extract_zip(z, sandbox / "y", IngestLimits(max_file_bytes=10_000))


@pytest.mark.parametrize("declared", [1000, 3 * MB])
def test_bomb_with_lying_header_is_stopped_with_little_written(tmp_path, sandbox, declared):
    limits = IngestLimits(max_file_bytes=4 * MB, max_total_bytes=8 * MB)
    z = bomb_zip(_upload(tmp_path), 60 * MB, declared_size=declared, extra=class_members())
    with pytest.raises(UploadError):
        extract_zip(z, sandbox / "out", limits)
    # the partial output is removed and at no point could more than the caps have been written
    assert not (sandbox / "out").exists()
    assert disk_usage(sandbox) == 0


def test_bomb_lying_within_every_declared_cap_still_fails_cleanly(tmp_path, sandbox):
    """Header says 3 MB (under every cap, ratio check off): inflating 60 MB must still end in a clear
    error with nothing left on disk (zipfile stops at the declared size; our byte count is the backstop)."""
    limits = IngestLimits(max_file_bytes=4 * MB, max_total_bytes=8 * MB, max_ratio=1e9)
    z = bomb_zip(_upload(tmp_path), 60 * MB, declared_size=3 * MB)
    with pytest.raises(UploadError):
        extract_zip(z, sandbox / "out", limits)
    assert disk_usage(sandbox) == 0


@pytest.mark.parametrize("builder", [truncated_zip, corrupt_zip])
def test_broken_zips_get_a_clear_error(tmp_path, sandbox, builder):
    z = builder(_upload(tmp_path), class_members())
    with pytest.raises(UploadError, match="not a valid zip"):
        resolve_source(z, sandbox, IngestLimits())
    assert disk_usage(sandbox) == 0


def test_encrypted_and_non_zip(tmp_path, sandbox):
    z = encrypted_zip(_upload(tmp_path), class_members())
    with pytest.raises(UploadError, match="password"):
        resolve_source(z, sandbox, IngestLimits())
    fake = _upload(tmp_path, "data.zip")
    fake.write_text("this is not a zip at all\n")
    with pytest.raises(UploadError, match="not a valid zip"):
        resolve_source(fake, sandbox, IngestLimits())
    other = _upload(tmp_path, "data.tar.gz")
    other.write_bytes(b"\x1f\x8b\x08" + bytes(100))
    with pytest.raises(UploadError, match="not a dataset"):
        resolve_source(other, sandbox, IngestLimits())


def test_nul_in_name_is_rejected(tmp_path, sandbox):
    z = legacy_name_zip(_upload(tmp_path), [b"dog/a\x00.exe.wav"], wav_bytes())
    with pytest.raises(UploadError, match="NUL"):
        extract_zip(z, sandbox / "out", IngestLimits())


def test_legacy_encoded_names_do_not_crash(tmp_path, sandbox):
    cyr = "собака".encode("cp866") + b"/1.wav"  # DOS Cyrillic, no UTF-8 flag
    sjis = "猫".encode("shift_jis") + b"/1.wav"
    utf8_unflagged = "Hund 🐕".encode() + b"/1.wav"  # UTF-8 bytes but no flag (old tools)
    cp437 = "caf\u00e9".encode("cp437") + b"/1.wav"
    z = legacy_name_zip(_upload(tmp_path), [cyr, sjis, utf8_unflagged, cp437], wav_bytes())
    out = extract_zip(z, sandbox / "out", IngestLimits())
    names = sorted(p.parent.name for p in out.rglob("*.wav"))
    assert len(names) == 4
    assert "Hund 🐕" in names and "café" in names  # utf-8 tried first, cp437 as the fallback


def test_junk_is_skipped_and_dest_only(tmp_path, sandbox):
    members = {**class_members(), "__MACOSX/tone/._0.wav": b"\x00\x05\x16\x07", "tone/._1.wav": b"junk",
               ".DS_Store": b"x", "noise/Thumbs.db": b"x", "noise/desktop.ini": b"x", ".git/config": b"x",
               "tone/": b""}
    z = make_zip(_upload(tmp_path), members)
    root = resolve_source(z, sandbox, IngestLimits())
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files == sorted(k for k in class_members())
    assert root.is_relative_to(sandbox)


def test_same_zip_is_extracted_once(tmp_path, sandbox):
    z = make_zip(_upload(tmp_path), class_members())
    a = resolve_source(z, sandbox, IngestLimits())
    mtime = (a / "tone" / "0.wav").stat().st_mtime_ns
    b = resolve_source(z, sandbox, IngestLimits())
    assert a == b and (b / "tone" / "0.wav").stat().st_mtime_ns == mtime


# --------------------------------------------------------------------------------------- layouts

def _labels(listing) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in listing.items:
        out[it.label] = out.get(it.label, 0) + 1
    return out


def _write(root: Path, rel: str, data: bytes | None = None) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(wav_bytes(0.2) if data is None else data)
    return p


def test_class_folders_with_nesting_loose_files_and_empty_class(tmp_path):
    root = tmp_path / "ds"
    for rel in ["dog/a.wav", "dog/outdoor/b.wav", "cat/c.flac", "cat/d.wav", "loose.wav", "notes.txt"]:
        _write(root, rel)
    (root / "bird").mkdir()
    (root / "cat" / "readme.md").write_text("hi")
    listing = scan(root)
    assert listing.layout == "folders"
    assert _labels(listing) == {"dog": 2, "cat": 2}  # nested subfolder belongs to its class
    assert any("1 audio file(s) at the top level" in w for w in listing.warnings)
    assert any("bird" in w for w in listing.warnings)
    assert any(s.path == "cat/readme.md" for s in listing.skipped)


def test_single_child_chains_are_stripped_but_single_class_is_kept(tmp_path):
    root = tmp_path / "my_upload"
    for rel in ["data/sounds/dog/a.wav", "data/sounds/cat/b.wav"]:
        _write(root, rel)
    listing = scan(root)
    assert listing.root == root / "data" / "sounds" and _labels(listing) == {"dog": 1, "cat": 1}
    single = tmp_path / "one"
    _write(single, "wrapper/dog/a.wav")
    _write(single, "wrapper/dog/b.wav")
    assert _labels(scan(single)) == {"dog": 2}


def test_unicode_class_names_are_nfc(tmp_path):
    root = tmp_path / "ds"
    nfd = unicodedata.normalize("NFD", "café")
    _write(root, f"{nfd}/a.wav")
    _write(root, "Hund 🐕/b.wav")
    labels = set(_labels(scan(root)))
    assert labels == {"café", "Hund 🐕"}
    assert all(unicodedata.is_normalized("NFC", lab) for lab in labels)


def test_split_folders_become_folds(tmp_path):
    root = tmp_path / "ds"
    for rel in ["train/dog/a.wav", "train/cat/b.wav", "val/dog/c.wav", "val/cat/d.wav"]:
        _write(root, rel)
    listing = scan(root)
    assert listing.layout == "folders:splits"
    assert sorted((it.label, it.fold) for it in listing.items) == [
        ("cat", "train"), ("cat", "val"), ("dog", "train"), ("dog", "val")]


def test_esc50_layout(tmp_path):
    root = tmp_path / "ESC-50-master"
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for i in range(6):
        cat = ["dog", "rain"][i % 2]
        name = f"{i % 5 + 1}-1000{i}-A-{i % 2}.wav"
        _write(root, f"audio/{name}")
        rows.append(f"{name},{i % 3 + 1},{i % 2},{cat},False,1000{i},A")
    (root / "meta").mkdir()
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    (root / "README.md").write_text("ESC-50")
    listing = scan(tmp_path)  # the zip's top folder is a single-child chain
    assert listing.layout == "manifest:meta/esc50.csv"
    assert _labels(listing) == {"dog": 3, "rain": 3}
    assert {it.fold for it in listing.items} == {"1", "2", "3"}
    # pointing at the manifest itself resolves the audio next to its folder
    root2, manifest = resolve(root / "meta" / "esc50.csv", tmp_path / "ws", IngestLimits())
    assert root2 == root and manifest is not None and len(scan(root2, manifest).items) == 6


def test_manifest_detected_by_content_and_json(tmp_path):
    root = tmp_path / "ds"
    for i in range(4):
        _write(root, f"clips/{i}.wav")
    (root / "index.tsv").write_text("id\tthing\twhere\n" + "".join(
        f"{i}\t{['a', 'b'][i % 2]}\tclips/{i}.wav\n" for i in range(4)) + "9\ta\tclips/missing.wav\n")
    listing = scan(root)
    assert listing.layout == "manifest:index.tsv" and _labels(listing) == {"a": 2, "b": 2}
    assert any("not found" in s.reason for s in listing.skipped)
    root2 = tmp_path / "ds2"
    for i in range(4):
        _write(root2, f"w/{i}.wav")
    (root2 / "labels.json").write_text(json.dumps({f"w/{i}.wav": ["x", "y"][i % 2] for i in range(4)}))
    assert _labels(scan(root2)) == {"x": 2, "y": 2}


def test_manifest_cannot_reach_outside_the_root(tmp_path):
    secret = _write(tmp_path, "secret/private.wav")
    root = tmp_path / "ds"
    _write(root, "a.wav")
    _write(root, "b.wav")
    (root / "m.csv").write_text(f"file,label\na.wav,x\nb.wav,y\n../secret/private.wav,x\n{secret},y\n")
    listing = scan(root)
    assert sorted(it.path.name for it in listing.items) == ["a.wav", "b.wav"]
    assert all(it.path.is_relative_to(root) for it in listing.items)


def test_missing_source_gives_upload_error(tmp_path):
    with pytest.raises(UploadError, match="does not exist"):
        resolve_source(tmp_path / "nothing-here", tmp_path, IngestLimits())
    with pytest.raises(UploadError, match="No dataset"):
        resolve_source("", tmp_path, IngestLimits())
    with pytest.raises(UploadError, match="Hugging Face"):
        resolve_source("hf:someone/some-dataset-that-is-offline", tmp_path, IngestLimits())


def test_class_folders_beat_a_csv_whose_label_column_is_only_a_guess(tmp_path):
    root = tmp_path / "ds"
    for rel in ["dog/a.wav", "dog/b.wav", "cat/c.wav", "cat/d.wav"]:
        _write(root, rel)
    (root / "recorded.csv").write_text("file,device\ndog/a.wav,phone\ndog/b.wav,mic\ncat/c.wav,phone\n"
                                       "cat/d.wav,mic\n")
    listing = scan(root)
    assert listing.layout == "folders" and _labels(listing) == {"dog": 2, "cat": 2}


def test_saved_datasets_folder_is_materialised_with_its_splits(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"audio": [{"bytes": wav_bytes(seed=i), "path": f"c{i}.wav"} for i in range(4)],
                                     "label": [0, 1, 0, 1]})
    ds = ds.cast_column("audio", datasets.Audio(decode=False))
    ds = ds.cast_column("label", datasets.ClassLabel(names=["cat", "Hund 🐕"]))
    datasets.DatasetDict(train=ds, test=ds.select([0, 1])).save_to_disk(str(tmp_path / "saved"))
    ws = tmp_path / "ws"
    root = resolve_source(tmp_path / "saved", ws, IngestLimits())
    assert root.is_relative_to(ws)
    listing = scan(root)
    assert listing.layout == "manifest:manifest.csv"
    assert sorted((it.label, it.fold) for it in listing.items) == [
        ("Hund 🐕", "test"), ("Hund 🐕", "train"), ("Hund 🐕", "train"), ("cat", "test"), ("cat", "train"),
        ("cat", "train")]
    assert all(it.path.read_bytes()[:4] == b"RIFF" for it in listing.items)
    assert resolve_source(tmp_path / "saved", ws, IngestLimits()) == root  # materialised once


def test_failed_extraction_into_an_existing_folder_removes_what_it_wrote(tmp_path, sandbox):
    dest = sandbox / "existing"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    z = bomb_zip(_upload(tmp_path), 60 * MB, name="zz/bomb.wav", declared_size=3 * MB, extra=class_members())
    with pytest.raises(UploadError):
        extract_zip(z, dest, IngestLimits(max_ratio=1e9))
    assert [p.name for p in dest.rglob("*") if p.is_file()] == ["keep.txt"]
