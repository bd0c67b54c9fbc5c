"""`distill`: a finished run teaches a small fast student, written as a normal run folder (issue 28)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from astapp import service
from astapp.cli.common import EXIT_STOPPED, EXIT_TIME_LIMIT, quiet_libraries, seconds, with_printer
from astapp.cli.progress import ProgressPrinter
from astapp.cli.training import continue_command
from astapp.core.config import DISTILL_EPOCHS, STUDENT_INITS


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    d = sub.add_parser("distill", help="make a small fast student of a finished run (a normal run folder)")
    d.add_argument("--run", required=True, help="the finished run folder that teaches")
    d.add_argument("--student", default="tiny",
                   help="tiny (hidden 192, 4 layers), small (384, 6) or HIDDENxLAYERS such as 128x2")
    d.add_argument("--output", required=True, help="the student's run folder")
    d.add_argument("--pool", help="unlabeled audio (a folder or zip of recordings) the teacher labels for the student")
    d.add_argument("--epochs", type=float, help=f"training epochs of the student (default {DISTILL_EPOCHS:g})")
    d.add_argument("--init", choices=STUDENT_INITS, default="teacher",
                   help="the student's first weights: a slice of the teacher's (default) or random")
    d.add_argument("--time-limit", type=seconds, metavar="SECONDS",
                   help="stop at this many seconds (less a margin), resumable with --resume latest")
    d.add_argument("--resume", default="", help="continue a stopped distillation: 'latest' or a checkpoint folder")
    d.add_argument("--quiet", action="store_true", help="no progress output")
    return {"distill": distill}


def distill(ns: argparse.Namespace) -> int:
    quiet_libraries()

    limit = getattr(ns, "time_limit", None)

    def run(cfg: None, events=None, stop=None):
        return service.distill_run(ns.run, ns.student, ns.output, ns.pool, ns.epochs, events, stop,
                                   time_limit=limit, started=getattr(ns, "started", None), resume=ns.resume,
                                   init=ns.init)

    result = with_printer(run, None, ProgressPrinter(quiet=ns.quiet))
    if result.state == "stopped" and not result.metrics:
        print("Stopped before the student trained; nothing was saved.", file=sys.stderr)
        return EXIT_STOPPED
    if result.time_limit_reached:
        print(f"The --time-limit of {limit:g} s was reached; the checkpoint is kept. Continue with:\n"
              f"{continue_command(getattr(ns, 'argv', None) or sys.argv[1:])}", file=sys.stderr)
        return EXIT_TIME_LIMIT
    print(summary(result.state, result.metrics))
    print(f"Model: {result.model_dir}\nComparison: {result.output / 'distill.json'}")
    if result.metrics.get("pool"):
        print(json.dumps({"pool": result.metrics["pool"]}, ensure_ascii=False), file=sys.stderr)
    return EXIT_STOPPED if result.state == "stopped" else 0


def summary(state: str, m: dict) -> str:
    """The finished line: the student's accuracy against the teacher's, agreement (also where the teacher is
    right: a student can be right where its teacher is wrong), speed and size."""
    d = m.get("distill", {})
    right = d.get("agreement_where_teacher_right")
    return (f"{state.capitalize()}: student accuracy {m['accuracy']:.3f} (teacher {m.get('teacher_accuracy') or 0:.3f}), "
            f"agreement with the teacher {d.get('agreement', 0):.3f}"
            + (f" ({right:.3f} where the teacher is right)" if right is not None else "")
            + f", {d.get('speedup') or 0:.1f}x faster, {100 * (d.get('size_ratio') or 0):.0f} % of its size.")
