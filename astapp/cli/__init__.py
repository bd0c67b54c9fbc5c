"""`python -m astapp inspect | train | cv | label-issues | tune | runs | predict | detect | distill | ...`: the headless
interface (benchmarks rely on it), thin glue over the service layer like the UI.

One module per group of commands; each has `register(subparsers)` that adds its commands and returns their
handlers, so a new capability adds a module and one line in `GROUPS`.

Every user-facing problem prints one plain sentence on stderr and exits with status 2; a run stopped with Ctrl+C
(graceful: the current step finishes, a checkpoint and the best model so far are saved) exits with 130; a second
Ctrl+C aborts. `train --time-limit SECONDS` (batch hosts such as SLURM) stops the same way at the limit less a
safety margin (15 %, at most 30 s), keeps the checkpoint, prints on stderr the command that continues the run
(the same one with `--resume latest`) and exits with 75 (EX_TEMPFAIL: run it again). With `ASTAPP_SLICE_SECONDS`
set (or on ZeroGPU), `train` runs in slices one after another in this process, each resuming the last exactly,
as the app's queue does. Works under `torchrun` and `accelerate launch` (only rank 0 prints and writes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence

from astapp.cli import detection, distill, models, pool, runs, training, tune, unknown, versions
from astapp.cli.common import EXIT_STOPPED, EXIT_TIME_LIMIT, EXIT_USER_ERROR, Parser, process_start
from astapp.cli.progress import ProgressPrinter
from astapp.cli.training import config_from_args, continue_command
from astapp.core.errors import AstappError, ResourceError, explain, user_error

GROUPS = [training, models, unknown, detection, pool, distill, runs, tune, versions]

__all__ = ["EXIT_STOPPED", "EXIT_TIME_LIMIT", "EXIT_USER_ERROR", "ProgressPrinter", "build_parser",
           "config_from_args", "continue_command", "main"]


def build_parser() -> argparse.ArgumentParser:
    return _parser_and_handlers()[0]


def _parser_and_handlers() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    p = Parser(prog="python -m astapp", description="Fine-tune the Audio Spectrogram Transformer on your sounds.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {}
    for group in GROUPS:
        handlers.update(group.register(sub))
    return p, handlers


def main(argv: Sequence[str] | None = None) -> int:
    started = process_start() if argv is None else time.time()  # where a --time-limit counts from
    warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
    args = list(sys.argv[1:] if argv is None else argv)
    parser, handlers = _parser_and_handlers()
    ns = parser.parse_args(args)
    ns.argv, ns.started = args, started
    try:
        return handlers[ns.command](ns)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_STOPPED
    except Exception as e:  # noqa: BLE001 - never show a traceback to a user; ASTAPP_DEBUG=1 shows it
        known = user_error(e)
        if os.environ.get("ASTAPP_DEBUG") and known is None:
            raise
        hint = "" if known is not None else " Set ASTAPP_DEBUG=1 to see the traceback."
        print(f"Error: {explain(e, getattr(ns, 'output', None))}{hint}", file=sys.stderr)
        return EXIT_USER_ERROR if isinstance(known, AstappError) and not isinstance(known, ResourceError) else 1
