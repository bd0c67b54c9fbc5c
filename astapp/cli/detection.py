"""`detect` and `detect-score`: events with start and end in long recordings, and their scores against
reference annotations (a separate command: scoring reads a finished output folder, any time later).

`detect` prints progress on stderr (files done, hours of audio, x real time) and the job's summary as one
JSON object on stdout; a rerun with the same --output skips finished files; Ctrl+C stops after the current
block (finished files are kept). Exit status 1 when a file could not be analysed (it is listed), 130 when stopped.
`--ray [ADDRESS]` runs the files on Ray workers with the same records and outputs (docs/SCALING.md); there
Ctrl+C lets the files in flight finish.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable

from astapp import service
from astapp.cli.common import EXIT_STOPPED, graceful_sigint, quiet_libraries, seconds
from astapp.cli.progress import ProgressPrinter
from astapp.cli.scaling import add_ray_arguments, detect_on_cluster

FORMATS = ("csv", "audacity", "raven", "jsonl")


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    d = sub.add_parser("detect", help="find events (label, start, end) in recordings of any length")
    d.add_argument("--model", required=True, help="exported model folder, its zip, or a run folder")
    d.add_argument("files", nargs="+", metavar="FILE_OR_FOLDER", help="recordings, folders or zips of them")
    d.add_argument("--output", required=True, help="output folder (records per file, events.csv, summary.json)")
    d.add_argument("--format", choices=FORMATS, default="csv",
                   help="also write this format (audacity, raven: one file per recording); events.csv always")
    d.add_argument("--hop", type=seconds, help="seconds between windows (default: half the model's window)")
    d.add_argument("--threshold", type=float, help="the on threshold of every class (default: the model's, else 0.5)")
    d.add_argument("--off-ratio", type=float, help="off threshold = on x this (hysteresis; default 0.75, 1: none)")
    d.add_argument("--smoothing", choices=("median", "mean", "none"), help="over --smooth windows (default median)")
    d.add_argument("--smooth", type=int, dest="smooth_windows", help="windows the smoothing spans (default 3)")
    d.add_argument("--min-length", type=float, help="drop events shorter than this (seconds, default 0)")
    d.add_argument("--merge-gap", type=float, help="join events of a class this close (seconds, default 0)")
    d.add_argument("--fill", type=float, help="share of a window a sound must fill to fire (0-0.5, default 0.1): "
                                              "where event bounds go inside the windows that fired")
    d.add_argument("--ignore", nargs="*", metavar="LABEL",
                   help="labels that make no events (default: background, none, silence, ...)")
    d.add_argument("--onnx", action="store_true", help="run the export's onnx/model.onnx in onnxruntime")
    d.add_argument("--int8", action="store_true", help="with --onnx: the int8 onnx/model_quantized.onnx")
    d.add_argument("--threads", type=int, default=0,
                   help="onnxruntime threads (0: its default); with --ray: each worker's CPUs (0: 1)")
    d.add_argument("--shard", metavar="I/N", help="only every N-th file from the I-th (0 <= I < N), for job arrays")
    d.add_argument("--quiet", action="store_true", help="no progress lines")
    add_ray_arguments(d)  # --ray [ADDRESS], --workers N (docs/SCALING.md)

    s = sub.add_parser("detect-score", help="score a detect output against reference annotations (event F1)")
    s.add_argument("--events", required=True, metavar="OUT", help="the --output folder of detect")
    s.add_argument("--reference", required=True, metavar="FILE_OR_FOLDER",
                   help="a CSV/JSONL with a file column, or Audacity/Raven files named after the recordings")
    s.add_argument("--collar", type=float, default=0.5, help="onset/offset collar in seconds (default 0.5)")
    s.add_argument("--target-fa-per-hour", type=float,
                   help="also pick per-class thresholds keeping false alarms per hour at or under this")
    return {"detect": detect, "detect-score": detect_score}


def detect(ns: argparse.Namespace) -> int:
    if ns.int8 and not ns.onnx:
        ns.onnx = True  # --int8 means the int8 ONNX model
    settings = service.detect_settings(hop=ns.hop, threshold=ns.threshold, off_ratio=ns.off_ratio,
                                       smoothing=ns.smoothing, smooth_windows=ns.smooth_windows,
                                       min_length=ns.min_length, merge_gap=ns.merge_gap, ignore=ns.ignore,
                                       fill=ns.fill)
    if not ns.onnx:
        quiet_libraries()
    printer = ProgressPrinter(quiet=ns.quiet)
    stop = threading.Event()
    restore = graceful_sigint(stop, printer)
    try:
        run = detect_on_cluster(ns) or service.detect_files  # --ray: the same call on Ray workers
        summary = run(ns.model, ns.files, ns.output, settings, backend="onnx" if ns.onnx else "torch",
                      int8=ns.int8, events=printer, stop=stop, shard=ns.shard, fmt=ns.format, threads=ns.threads)
    finally:
        restore()
        printer.close()
    for note in summary.notes:
        printer.line(f"Note: {note}")
    for name, why in summary.failed:
        printer.line(f"Failed: {name}: {why}")
    print(json.dumps(summary.to_dict(), ensure_ascii=False), flush=True)
    if summary.stopped:
        return EXIT_STOPPED
    return 1 if summary.failed else 0


def detect_score(ns: argparse.Namespace) -> int:
    result = service.detect_score(ns.events, ns.reference, ns.collar, ns.target_fa_per_hour)
    print(json.dumps(result, ensure_ascii=False, indent=1), flush=True)
    return 0
