"""What every command shares: exit codes, the one-line-error parser, argument types, the settings flags,
quiet libraries, and Ctrl+C as a graceful stop."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from astapp.core.config import SETTINGS

EXIT_USER_ERROR = 2
EXIT_STOPPED = 130
EXIT_TIME_LIMIT = 75  # EX_TEMPFAIL: stopped at --time-limit, resumable; run the printed command to continue


def frames(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of frames or 'auto'") from None


def seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0 (e.g. 3300 for a one-hour job), "
                                         f"not {value!r}")
    return number


def json_object(value: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return data


class Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit status 2 (its default), without usage spam."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, f"{self.prog}: {message} (see --help)\n")


TYPES: dict[str, Any] = {"int": int, "float": float, "frames": frames, "json": json_object}


def add_settings(parser: argparse.ArgumentParser) -> None:
    """One flag per entry of the settings table (defaults suppressed: we must know what was typed)."""
    for s in SETTINGS:
        kw: dict[str, Any] = {"dest": s.path.replace(".", "__"), "help": s.help}
        if s.kind == "bool":
            kw["action"] = argparse.BooleanOptionalAction  # --flag / --no-flag: some default to on
        else:
            if s.kind in TYPES:
                kw["type"] = TYPES[s.kind]
            if s.choices:
                kw["choices"] = s.choices
            if s.kind == "frames":
                kw["metavar"] = "FRAMES|auto"
            elif s.kind == "json":
                kw["metavar"] = "JSON"
        parser.add_argument(s.flag, **kw)


def print_json_lines(rows: Any) -> None:
    """One JSON object per line, flushed (a pipe reader sees each result as it comes)."""
    for row in rows:
        print(json.dumps(row, ensure_ascii=False, default=float), flush=True)


def process_start() -> float:
    """When this process started (Linux; at most a minute ago), else now: a batch host's time limit
    counts the interpreter's and the imports' seconds too."""
    now = time.time()
    try:
        ticks = float(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        btime = next(float(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines()
                     if ln.startswith("btime "))
        return min(now, max(now - 60.0, btime + ticks / os.sysconf("SC_CLK_TCK")))
    except (OSError, ValueError, IndexError, StopIteration, AttributeError):
        return now


def quiet_libraries() -> None:
    """No library progress bars or info chatter in our output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # HF datasets reads this when it is imported: commands that never use it (detect, pool, tune, unknown)
    # no longer import it here only to quiet it (1.8 s).
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def with_printer(run: Any, cfg: Any, printer: Any, **kw: Any) -> Any:
    """`run(cfg, events, stop, **kw)` printing progress, with Ctrl+C as a graceful stop."""
    stop = threading.Event()
    restore = graceful_sigint(stop, printer)
    try:
        return run(cfg, events=printer, stop=stop, **kw)
    finally:
        restore()
        if printer:
            printer.close()


def graceful_sigint(stop: threading.Event, printer: Any):
    """First Ctrl+C requests a graceful stop; the second one aborts. Returns a function that undoes it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        if printer:
            printer.line("Stopping after the current step (press Ctrl+C again to abort)...")

    signal.signal(signal.SIGINT, handler)
    return lambda: signal.signal(signal.SIGINT, previous)
