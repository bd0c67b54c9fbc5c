"""Events to and from the files people use: CSV, Audacity label tracks, Raven selection tables, JSON lines.

Writers and parsers live side by side so every format is proven by reading back what it wrote, and so
reference annotations made in Audacity or Raven score detections directly (`scoring`). CSV columns are
exactly `file,label,start,end,score`; an Audacity label track is `start<TAB>end<TAB>label` (its optional
`\\<TAB>low<TAB>high` frequency lines are skipped); a Raven selection table is tab-separated with Raven's
standard header, one table per recording. A file that does not parse is one sentence naming the line and why.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path

from astapp.core.errors import AstappError
from astapp.core.fsutil import atomic_write_text
from astapp.detection.events import Event

FORMATS = ("csv", "audacity", "raven", "jsonl")
CSV_COLUMNS = ("file", "label", "start", "end", "score")
RAVEN_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                 "High Freq (Hz)", "Annotation")
RAVEN_SUFFIX = ".Table.1.selections.txt"
EXTENSIONS = {"csv": ".csv", "audacity": ".txt", "raven": RAVEN_SUFFIX, "jsonl": ".jsonl"}


class AnnotationError(AstappError):
    """An annotation or events file does not parse; the message names the file, the line and why."""


def _num(x: float) -> str:
    return f"{x:.4f}".rstrip("0").rstrip(".") if x != int(x) else f"{int(x)}"


def to_csv(events: Iterable[Event]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for e in events:
        w.writerow([e.file, e.label, _num(e.start), _num(e.end), f"{e.score:.4f}"])
    return buf.getvalue()


def to_audacity(events: Iterable[Event]) -> str:
    return "".join(f"{e.start:.6f}\t{e.end:.6f}\t{e.label}\n" for e in events)


def to_raven(events: Iterable[Event], high_hz: float = 8000.0) -> str:
    """A Raven selection table (one recording): every selection over the full band the model hears."""
    lines = ["\t".join(RAVEN_COLUMNS)]
    for i, e in enumerate(events, 1):
        lines.append("\t".join([str(i), "Spectrogram 1", "1", f"{e.start:.6f}", f"{e.end:.6f}", "0",
                                _num(high_hz), e.label]))
    return "\n".join(lines) + "\n"


def to_jsonl(events: Iterable[Event]) -> str:
    return "".join(json.dumps({"file": e.file, "label": e.label, "start": e.start, "end": e.end,
                               "score": e.score}, ensure_ascii=False) + "\n" for e in events)


WRITERS = {"csv": to_csv, "audacity": to_audacity, "raven": to_raven, "jsonl": to_jsonl}


def write_events(events: list[Event], path: str | Path, fmt: str) -> Path:
    """Write events atomically in one of FORMATS."""
    if fmt not in WRITERS:
        raise AnnotationError(f"Unknown events format {fmt!r}; use one of {', '.join(FORMATS)}.")
    path = Path(path)
    atomic_write_text(path, WRITERS[fmt](events))
    return path


def _bad(path: Path, line: int, why: str) -> AnnotationError:
    return AnnotationError(f"{path.name} line {line} does not parse: {why}; fix that line (or remove it) and "
                           "try again.")


def _span(path: Path, line: int, start: str, end: str) -> tuple[float, float]:
    try:
        a, b = float(start), float(end)
    except ValueError:
        raise _bad(path, line, f"start {start!r} and end {end!r} must be numbers of seconds") from None
    if not (a >= 0 and b >= a) or a != a or b != b:
        raise _bad(path, line, f"the span {start}-{end} must have 0 <= start <= end")
    return a, b


def detect_format(path: Path, head: str) -> str:
    """The format of an events file from its first line (and its name)."""
    first = head.splitlines()[0] if head.strip() else ""
    if first.startswith("Selection\t"):
        return "raven"
    if first.lstrip().startswith("{"):
        return "jsonl"
    if first.replace(" ", "").lower().startswith("file,label,start,end") or path.suffix.lower() == ".csv":
        return "csv"
    return "audacity"


def parse_events(path: str | Path, default_file: str | None = None) -> list[Event]:
    """Events of a CSV, Audacity, Raven or JSONL file (format detected); Audacity and Raven files name no
    recording, so their events get `default_file` (else the annotation's name without its suffixes)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path.name} cannot be read as UTF-8 text ({e}); save it as UTF-8.") from None
    fmt = detect_format(path, text)
    default = default_file if default_file is not None else recording_stem(path)
    return {"csv": _parse_csv, "audacity": _parse_audacity, "raven": _parse_raven,
            "jsonl": _parse_jsonl}[fmt](path, text, default)


def recording_stem(path: Path) -> str:
    """`night1.Table.1.selections.txt` -> `night1`; `night1.txt` -> `night1`."""
    name = path.name
    return name[:-len(RAVEN_SUFFIX)] if name.endswith(RAVEN_SUFFIX) else path.stem


def _parse_csv(path: Path, text: str, default: str) -> list[Event]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("label", "start", "end") if c not in header]
    if missing:
        raise _bad(path, 1, f"the header must name the columns file,label,start,end,score (missing {', '.join(missing)})")
    col = {name: header.index(name) for name in CSV_COLUMNS if name in header}
    out = []
    for n, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise _bad(path, n, f"it has {len(row)} cells, the header {len(header)}")
        start, end = _span(path, n, row[col["start"]], row[col["end"]])
        score = _score(path, n, row[col["score"]]) if "score" in col else 1.0
        out.append(Event(row[col["label"]].strip(), start, end, score,
                         row[col["file"]].strip() if "file" in col else default))
    return out


def _score(path: Path, line: int, cell: str) -> float:
    try:
        return float(cell) if cell.strip() else 1.0
    except ValueError:
        raise _bad(path, line, f"score {cell!r} is not a number") from None


def _parse_audacity(path: Path, text: str, default: str) -> list[Event]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("\\"):
            continue  # blank, or the frequency line of a spectral label
        cells = line.split("\t")
        if len(cells) < 2:
            raise _bad(path, n, "an Audacity label line is start<TAB>end<TAB>label")
        start, end = _span(path, n, cells[0], cells[1])
        out.append(Event(cells[2].strip() if len(cells) > 2 else "", start, end, 1.0, default))
    return out


def _parse_raven(path: Path, text: str, default: str) -> list[Event]:
    lines = text.splitlines()
    header = lines[0].split("\t")
    need = ("Begin Time (s)", "End Time (s)")
    if any(c not in header for c in need):
        raise _bad(path, 1, "a Raven selection table needs 'Begin Time (s)' and 'End Time (s)' columns")
    label_col = next((c for c in ("Annotation", "Species", "Label", "Class") if c in header), None)
    b, e = header.index(need[0]), header.index(need[1])
    out = []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) <= max(b, e):
            raise _bad(path, n, f"it has {len(cells)} cells, fewer than the header's {len(header)}")
        if len(cells) > 1 and cells[1].startswith("Waveform"):
            continue  # Raven writes each selection once per view; the spectrogram row is enough
        start, end = _span(path, n, cells[b], cells[e])
        label = cells[header.index(label_col)].strip() if label_col and header.index(label_col) < len(cells) else ""
        out.append(Event(label, start, end, 1.0, default))
    return out


def _parse_jsonl(path: Path, text: str, default: str) -> list[Event]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            start, end = _span(path, n, str(d["start"]), str(d["end"]))
            out.append(Event(str(d["label"]), start, end, float(d.get("score", 1.0)), str(d.get("file", default))))
        except AnnotationError:
            raise
        except (ValueError, KeyError, TypeError) as e:
            raise _bad(path, n, f"expected a JSON object with label, start and end ({type(e).__name__}: {e})") from None
    return out
