"""`python -m astapp inspect | train | cv | label-issues | predict | export | push`: the headless interface
(benchmarks rely on it).

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
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from astapp import service
from astapp.core.config import SETTINGS, TrainConfig, defaults_for, launch_rank, set_setting
from astapp.core.errors import AstappError, ResourceError, TrainingError, explain, user_error
from astapp.core.events import describe, describe_outcome

EXIT_USER_ERROR = 2
EXIT_STOPPED = 130
EXIT_TIME_LIMIT = 75  # EX_TEMPFAIL: stopped at --time-limit, resumable; run the printed command to continue


def _frames(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of frames or 'auto'") from None


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0 (e.g. 3300 for a one-hour job), "
                                         f"not {value!r}")
    return seconds


def _json_object(value: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return data


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit status 2 (its default), without usage spam."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, f"{self.prog}: {message} (see --help)\n")


_TYPES: dict[str, Any] = {"int": int, "float": float, "frames": _frames, "json": _json_object}


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """One flag per entry of the settings table (defaults suppressed: we must know what was typed)."""
    for s in SETTINGS:
        kw: dict[str, Any] = {"dest": s.path.replace(".", "__"), "help": s.help}
        if s.kind == "bool":
            kw["action"] = argparse.BooleanOptionalAction  # --flag / --no-flag: some default to on
        else:
            if s.kind in _TYPES:
                kw["type"] = _TYPES[s.kind]
            if s.choices:
                kw["choices"] = s.choices
            if s.kind == "frames":
                kw["metavar"] = "FRAMES|auto"
            elif s.kind == "json":
                kw["metavar"] = "JSON"
        parser.add_argument(s.flag, **kw)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m astapp", description="Fine-tune the Audio Spectrogram Transformer on your sounds.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ins = sub.add_parser("inspect", help="check a dataset and print its validation report")
    ins.add_argument("--data", required=True)
    ins.add_argument("--json", action="store_true", help="print the report as JSON")
    ins.add_argument("--long-clips", choices=("crop", "split"), default="crop")

    tr = sub.add_parser("train", help="fine-tune a model; writes the run folder",
                        argument_default=argparse.SUPPRESS)
    tr.add_argument("--config", type=Path, help="a config.json to start from (flags override it)")
    _add_settings(tr)
    tr.add_argument("--quiet", action="store_true", help="only print the final summary")
    # CLI-only, not in SETTINGS: a limit belongs to this process's host, not to the run's recipe (saved
    # in config.json, it would follow the run into the app's "Continue" and into every resume).
    tr.add_argument("--time-limit", type=_seconds, metavar="SECONDS",
                    help="stop (resumable) before this many seconds have passed, print the command that "
                         f"continues, exit {EXIT_TIME_LIMIT} (batch hosts such as SLURM)")

    for name, text in (("cv", "cross-validate: scores per fold, mean and std; also finds label issues"),
                       ("label-issues", "rank the clips whose label looks wrong (out-of-fold, cleanlab)")):
        cv = sub.add_parser(name, help=text, argument_default=argparse.SUPPRESS)
        cv.add_argument("--config", type=Path, help="a config.json to start from (flags override it)")
        _add_settings(cv)
        cv.add_argument("--folds", dest="cv_folds", help="auto (the dataset's folds, else 5) or a number")
        cv.add_argument("--final", dest="cv_final", action="store_true", help="also train the final model")
        cv.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
        cv.add_argument("--quiet", action="store_true", help="only print the result")

    pr = sub.add_parser("predict", help="classify audio files with a trained model (JSON lines)")
    pr.add_argument("--model", required=True, help="exported model folder, its zip, or a run folder")
    pr.add_argument("--top-k", type=int, default=5)
    pr.add_argument("files", nargs="+", metavar="FILE", help="audio files, a folder or a zip")
    pr.add_argument("--onnx", action="store_true", help="run the export's onnx/model.onnx in onnxruntime (no torch)")
    pr.add_argument("--int8", action="store_true", help="with --onnx: the int8 onnx/model_quantized.onnx")
    pr.add_argument("--unknown-threshold", type=float, help="label clips scoring above this 'unknown' (default: the model's)")

    ex = sub.add_parser("export", help="zip a run's trained model")
    ex.add_argument("--run", required=True, help="run folder (or an exported model folder)")
    ex.add_argument("--output", required=True, help="the .zip to write")
    ex.add_argument("--adapter", action="store_true", help="the LoRA adapter alone (runs trained in mode lora)")
    ex.add_argument("--no-onnx", action="store_true", help="without the ONNX files and the browser demo")
    ex.add_argument("--browser", action="store_true",
                    help="with the browser runtime (~7 MB): the folder's demo.html then works from any static server")

    pu = sub.add_parser("push", help="publish a run's model with a model card to the Hugging Face Hub")
    pu.add_argument("--run", required=True, help="run folder")
    pu.add_argument("--repo", required=True, metavar="OWNER/NAME", help="the model repository")
    pu.add_argument("--public", action="store_true", help="a public repo (without it: private)")
    pu.add_argument("--license", default="other", help="license id for the card (default: other)")
    pu.add_argument("--dry-run", metavar="OUTDIR", help="write the folder that would be uploaded, upload nothing")
    return p


def config_from_args(ns: argparse.Namespace) -> TrainConfig:
    """TrainConfig from --config (if any) with every given flag applied on top. Without --config, the
    settings that depend on the model and were not typed take that model's defaults (`defaults_for`),
    exactly as the app's form does."""
    given = {k: v for k, v in vars(ns).items() if k not in ("command", "quiet", "config", "json")}
    if "config" in vars(ns):
        try:
            cfg = TrainConfig.load(ns.config)
        except (OSError, ValueError, TypeError) as e:
            raise TrainingError(f"Could not read the config file {ns.config}: {e}.") from e
    else:
        cfg = TrainConfig()
        if "model" in given:
            cfg.model = given["model"]
        for path, value in defaults_for(cfg.model).items():
            set_setting(cfg, path, value)
    for s in SETTINGS:
        key = s.path.replace(".", "__")
        if key in given:
            set_setting(cfg, s.path, given[key])
    for key in ("cv_folds", "cv_final"):
        if key in given:
            setattr(cfg, key, given[key])
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    started = _process_start() if argv is None else time.time()  # where a --time-limit counts from
    warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
    args = list(sys.argv[1:] if argv is None else argv)
    ns = build_parser().parse_args(args)
    ns.argv, ns.started = args, started
    try:
        return {"inspect": _inspect, "train": _train, "predict": _predict, "export": _export,
                "push": _push, "cv": _cv, "label-issues": _cv}[ns.command](ns)
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


# --- commands -------------------------------------------------------------------------------------
def _inspect(ns: argparse.Namespace) -> int:
    _quiet_libraries()
    report = service.inspect_data(ns.data, ns.long_clips)
    if ns.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        print(report.to_text())
    return 0 if report.trainable else EXIT_USER_ERROR


def _train(ns: argparse.Namespace) -> int:
    cfg = config_from_args(ns)
    cfg.require_valid()
    _quiet_libraries()
    main_rank = launch_rank() == 0
    printer = ProgressPrinter(quiet=getattr(ns, "quiet", False)) if main_rank else None
    limit = getattr(ns, "time_limit", None)
    result = _with_printer(service.train_run, cfg, printer, time_limit=limit, started=ns.started)
    code = EXIT_TIME_LIMIT if result.time_limit_reached else EXIT_STOPPED if result.state == "stopped" else 0
    if main_rank:
        m = result.metrics
        if result.state == "stopped" and not m:
            print("Stopped before training began; nothing was saved.")
            return EXIT_STOPPED
        how = "Stopped at the time limit" if result.time_limit_reached else result.state.capitalize()
        print(f"{how}: {describe_outcome(m)}, "
              f"{m['train_samples_per_second']:.2f} train samples/s over {m['train_seconds']:.1f} s.")
        print(f"Model: {result.model_dir}\nMetrics: {result.output / 'metrics.json'}")
        if result.time_limit_reached:
            print(f"The --time-limit of {limit:g} s was reached; the checkpoint is kept. Continue with:\n"
                  f"{continue_command(ns.argv)}", file=sys.stderr)
    return code


def continue_command(args: Sequence[str]) -> str:
    """The same `train` command with `--resume latest` (any --resume given is replaced)."""
    kept: list[str] = []
    skip = False
    for a in args:
        if skip or a.startswith("--resume="):
            skip = False
            continue
        if a == "--resume":
            skip = True
            continue
        kept.append(a)
    return shlex.join([sys.executable, "-m", "astapp", *kept, "--resume", "latest"])


def _cv(ns: argparse.Namespace) -> int:
    """cv and label-issues: one cross-validation run; stdout gets the result (JSON with --json)."""
    cfg = config_from_args(ns)
    if "output" not in vars(ns):
        cfg.output = "runs/cv"
    cfg.task = "cv"
    cfg.require_valid()
    _quiet_libraries()
    result = _with_printer(service.cv_run, cfg, ProgressPrinter(quiet=getattr(ns, "quiet", False)))
    if result.state == "stopped":
        print("Stopped; nothing was scored.", file=sys.stderr)
        return EXIT_STOPPED
    out: Any = service.cv_summary(result.output) if ns.command == "cv" else service.label_issues_of(result.output)
    if getattr(ns, "json", False):
        print(json.dumps(out, indent=1, ensure_ascii=False))
    elif ns.command == "cv":
        for f in out["folds"]:
            print(f"fold {f['fold']}: accuracy {f['accuracy']:.3f}, macro F1 {f['f1_macro']:.3f}, {f['clips']} clips")
        m, s = out["mean"], out["std"]
        print(f"mean: accuracy {m['accuracy']:.3f} ± {s['accuracy']:.3f}, macro F1 {m['f1_macro']:.3f} ± "
              f"{s['f1_macro']:.3f} ({out['grouping']})\nRun: {result.output}")
    else:
        for d in out:
            print(f"{d['score']:.3f}  {d['path']}: labelled {d['given']!r}, looks like {d['suggested']!r} ({d['kind']})")
        print(f"{len(out)} suspect clip(s). Run: {result.output}")
    return 0


def _predict(ns: argparse.Namespace) -> int:
    if ns.onnx:  # onnxruntime and numpy only: torch is never imported
        rows = service.headless.predict_files_onnx(ns.model, ns.files, ns.top_k, ns.int8, ns.unknown_threshold)
        if ns.int8 and (caution := service.headless.int8_caution(ns.model)):
            print(f"Note: {caution} (leave out --int8).", file=sys.stderr)
    else:
        _quiet_libraries()
        rows = service.predict_files(ns.model, ns.files, ns.top_k, ns.unknown_threshold)
    for row in rows:
        print(json.dumps(row, ensure_ascii=False, default=float), flush=True)
    return 1 if any(r.get("error") for r in rows) else 0


def _export(ns: argparse.Namespace) -> int:
    print(service.export_run(ns.run, ns.output, adapter=ns.adapter, onnx=not ns.no_onnx, browser=ns.browser))
    return 0


def _push(ns: argparse.Namespace) -> int:
    print(service.push_run(ns.run, ns.repo, public=ns.public, license=ns.license, dry_run=ns.dry_run,
                           progress=lambda msg: print(msg, file=sys.stderr, flush=True)))
    return 0


# --- helpers --------------------------------------------------------------------------------------
def _process_start() -> float:
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


def _quiet_libraries() -> None:
    """No library progress bars or info chatter in our output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import datasets
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        datasets.disable_progress_bars()
    except ImportError:
        pass


def _with_printer(run: Any, cfg: TrainConfig, printer: ProgressPrinter | None, **kw: Any) -> Any:
    """`run(cfg, events, stop, **kw)` printing progress, with Ctrl+C as a graceful stop."""
    stop = threading.Event()
    restore = _graceful_sigint(stop, printer)
    try:
        return run(cfg, events=printer, stop=stop, **kw)
    finally:
        restore()
        if printer:
            printer.close()


def _graceful_sigint(stop: threading.Event, printer: ProgressPrinter | None):
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


class ProgressPrinter:
    """Event sink for the terminal: a tqdm bar on a TTY, plain log lines otherwise."""

    def __init__(self, quiet: bool = False, stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = None

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def __call__(self, ev: dict) -> None:
        kind = ev.get("type")
        if self.quiet and kind != "warning":
            return
        if kind == "log" and self.tty:
            self._bar(ev)
            return
        if kind == "stage" and ev.get("fraction") not in (None, 1.0):
            return  # preparation progress: the stage's first and last line are enough on a terminal
        line = describe(ev)
        if line is not None and kind != "error":  # an error is printed once, by main()
            self.line(line)

    def _bar(self, ev: dict) -> None:
        from tqdm.auto import tqdm

        if self.bar is None:
            self.bar = tqdm(total=int(ev.get("max_steps") or 0), initial=0, unit="step", file=self.stream,
                            dynamic_ncols=True)
        self.bar.update(int(ev.get("step") or 0) - self.bar.n)
        loss, lr = ev.get("loss"), ev.get("lr")
        if isinstance(loss, (int, float)):
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}" if isinstance(lr, (int, float)) else "-")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
