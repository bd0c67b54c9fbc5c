"""`calibrate`: refit or recalibrate the unknown score ("none of these") of a finished run."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from astapp import service
from astapp.cli.common import quiet_libraries


def _share(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 < number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a share above 0 and at most 1 (e.g. 0.95), not {value!r}")
    return number


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    ca = sub.add_parser("calibrate", help="refit/recalibrate a run's unknown score, optionally on your own "
                        "'other' sounds (those the model should reject)")
    ca.add_argument("--run", required=True, help="run folder (or an exported model folder beside its run files)")
    ca.add_argument("--other", nargs="+", default=[], metavar="FILE_OR_FOLDER",
                    help="recordings of sounds outside the classes (files, folders or zips): the threshold then "
                         "best separates them from the validation clips, and their AUROC is reported")
    ca.add_argument("--keep", type=_share, default=None,
                    help="put the threshold where this share of validation clips stays known (default: the "
                         "run's unknown_keep, or with --other the best separating threshold)")
    ca.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return {"calibrate": calibrate}


def calibrate(ns: argparse.Namespace) -> int:
    quiet_libraries()
    result = service.calibrate_run(ns.run, ns.other, ns.keep)
    if ns.json:
        print(json.dumps({k: v for k, v in result.items() if k != "calibration"}, default=float))
    else:
        print("\n".join(service.calibration_lines(result)))
    return 0
