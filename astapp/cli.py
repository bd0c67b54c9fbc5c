"""`python -m astapp inspect | train | predict | export`: the headless interface (benchmarks rely on it).

Every user-facing problem prints one plain sentence on stderr and exits with status 2; a run stopped
with Ctrl+C (graceful: the current step finishes, a checkpoint and the best model so far are saved)
exits with 130; a second Ctrl+C aborts. Works under `torchrun` and `accelerate launch` (only rank 0
prints and writes).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from astapp.config import AUGMENT_PRESETS, TrainConfig
from astapp.errors import AstappError, ModelLoadError, TrainingError

EXIT_USER_ERROR = 2
EXIT_STOPPED = 130


def _max_length(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of frames or 'auto'") from None


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


# Flags of `train`: (flag, TrainConfig path, argparse kwargs). Defaults are suppressed so we know what
# the user set and can layer flags over --config FILE.json.
TRAIN_FLAGS: list[tuple[str, str, dict[str, Any]]] = [
    ("--data", "data", {"help": "dataset folder, zip or manifest"}),
    ("--model", "model", {"help": "Hub id, local checkpoint folder, or scratch:tiny|small|base"}),
    ("--output", "output", {"help": "run folder to write"}),
    ("--epochs", "epochs", {"type": float}),
    ("--batch-size", "batch_size", {"type": int}),
    ("--lr", "lr", {"type": float, "help": "learning rate"}),
    ("--weight-decay", "weight_decay", {"type": float}),
    ("--warmup-ratio", "warmup_ratio", {"type": float}),
    ("--max-length", "max_length", {"type": _max_length, "metavar": "FRAMES|auto"}),
    ("--mode", "mode", {"help": "full, frozen or last-N (e.g. last-2)"}),
    ("--augment", "augment.preset", {"choices": AUGMENT_PRESETS}),
    ("--transforms", "augment.transforms", {"type": _json_object, "metavar": "JSON",
                                            "help": 'per-transform overrides, e.g. {"Gain": {"p": 0.3}}'}),
    ("--freq-mask", "augment.freq_mask", {"type": int, "help": "SpecAugment max frequency mask (bins)"}),
    ("--time-mask", "augment.time_mask", {"type": int, "help": "SpecAugment max time mask (frames)"}),
    ("--mixup", "augment.mixup", {"type": float, "help": "mixup probability"}),
    ("--val-split", "val_split", {"type": float}),
    ("--seed", "seed", {"type": int}),
    ("--early-stopping", "early_stopping", {"type": int, "metavar": "PATIENCE"}),
    ("--class-weighted", "class_weighted", {"action": "store_true"}),
    ("--metric", "metric", {"choices": ("accuracy", "f1_macro", "precision_macro", "recall_macro", "loss")}),
    ("--long-clips", "audio.long_clips", {"choices": ("crop", "split")}),
    ("--max-seconds", "audio.max_seconds", {"type": float}),
    ("--min-seconds", "audio.min_seconds", {"type": float}),
    ("--resume", "resume", {"metavar": "CHECKPOINT|latest"}),
    ("--device", "device", {"choices": ("auto", "cpu", "cuda")}),
    ("--precision", "precision", {"choices": ("auto", "fp32", "bf16", "fp16")}),
    ("--threads", "threads", {"type": int}),
]


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
    for flag, dest, kw in TRAIN_FLAGS:
        tr.add_argument(flag, dest=dest.replace(".", "__"), **kw)
    tr.add_argument("--quiet", action="store_true", help="only print the final summary")

    pr = sub.add_parser("predict", help="classify audio files with a trained model (JSON lines)")
    pr.add_argument("--model", required=True, help="exported model folder, its zip, or a run folder")
    pr.add_argument("--top-k", type=int, default=5)
    pr.add_argument("files", nargs="+", metavar="FILE", help="audio files, a folder or a zip")

    ex = sub.add_parser("export", help="zip a run's trained model")
    ex.add_argument("--run", required=True, help="run folder (or an exported model folder)")
    ex.add_argument("--output", required=True, help="the .zip to write")
    return p


def config_from_args(ns: argparse.Namespace) -> TrainConfig:
    """TrainConfig from --config (if any) with every given flag applied on top."""
    given = vars(ns)
    if "config" in given:
        try:
            cfg = TrainConfig.load(given["config"])
        except (OSError, ValueError, TypeError) as e:
            raise TrainingError(f"Could not read the config file {given['config']}: {e}.") from e
    else:
        cfg = TrainConfig()
    for _flag, dest, _kw in TRAIN_FLAGS:
        key = dest.replace(".", "__")
        if key in given:
            obj, attr = cfg, dest
            if "." in dest:
                group, attr = dest.split(".")
                obj = getattr(cfg, group)
            setattr(obj, attr, given[key])
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
    ns = build_parser().parse_args(argv)
    try:
        return {"inspect": _inspect, "train": _train, "predict": _predict, "export": _export}[ns.command](ns)
    except AstappError as e:
        print(f"Error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_STOPPED
    except Exception as e:  # noqa: BLE001 - never show a traceback to a user; ASTAPP_DEBUG=1 shows it
        if os.environ.get("ASTAPP_DEBUG"):
            raise
        print(f"Unexpected error: {type(e).__name__}: {e} (set ASTAPP_DEBUG=1 for details)", file=sys.stderr)
        return 1


# --- commands -------------------------------------------------------------------------------------
def _inspect(ns: argparse.Namespace) -> int:
    from astapp.config import AudioConfig
    from astapp.dataset import inspect_source

    _quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="astapp-inspect-") as ws:
        report = inspect_source(ns.data, Path(ws), AudioConfig(long_clips=ns.long_clips))
    if ns.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        print(report.to_text())
    return 0 if report.trainable else EXIT_USER_ERROR


def _train(ns: argparse.Namespace) -> int:
    from astapp.train import train

    cfg = config_from_args(ns)
    problems = cfg.validate()
    if problems:
        raise TrainingError("The training settings need fixing: " + " ".join(problems))
    _quiet_libraries()
    main_rank = int(os.environ.get("RANK", "0")) == 0
    printer = ProgressPrinter(quiet=getattr(ns, "quiet", False)) if main_rank else None
    stop = threading.Event()
    restore = _graceful_sigint(stop, printer)
    try:
        result = train(cfg, events=printer, stop=stop)
    finally:
        restore()
        if printer:
            printer.close()
    if main_rank:
        m = result.metrics
        if result.state == "stopped" and not m:
            print("Stopped before training began; nothing was saved.")
            return EXIT_STOPPED
        print(f"{'Stopped' if result.state == 'stopped' else 'Finished'}: accuracy {m['accuracy']:.4f}, "
              f"macro F1 {m['f1_macro']:.4f} (best epoch {m.get('best_epoch')}), "
              f"{m['train_samples_per_second']:.2f} train samples/s over {m['train_seconds']:.1f} s.")
        print(f"Model: {result.model_dir}\nMetrics: {result.output / 'metrics.json'}")
    return EXIT_STOPPED if result.state == "stopped" else 0


def _predict(ns: argparse.Namespace) -> int:
    from astapp.infer import Predictor

    _quiet_libraries()
    if ns.top_k < 1:
        raise ModelLoadError("--top-k must be at least 1.")
    predictor = Predictor(ns.model)
    source: Any = ns.files[0] if len(ns.files) == 1 and not Path(ns.files[0]).is_file() else list(ns.files)
    if isinstance(source, str) and not Path(source).exists():
        source = [source]  # a missing file: predict_many reports it as a row with an error
    rows = predictor.predict_many(source, top_k=ns.top_k)
    for row in rows:
        print(json.dumps(row, ensure_ascii=False, default=float), flush=True)
    return 1 if any(r.get("error") for r in rows) else 0


def _export(ns: argparse.Namespace) -> int:
    from astapp.export import zip_dir

    run = Path(ns.run)
    folder = run / "model" if (run / "model" / "config.json").is_file() else run
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{ns.run} has no trained model (no model/ folder with config.json); "
                             "finish or stop a training run first.")
    out = zip_dir(folder, ns.output)
    print(out)
    return 0


# --- helpers --------------------------------------------------------------------------------------
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
        if kind == "stage":
            if "fraction" not in ev or ev.get("fraction") == 1.0:
                self.line(f"[{ev.get('stage')}] {ev.get('message')}")
        elif kind == "warning":
            self.line(f"Warning: {ev.get('message')}")
        elif kind == "log":
            self._log(ev)
        elif kind == "eval":
            shown = ", ".join(f"{k} {ev[k]:.4f}" for k in ("accuracy", "f1_macro", "loss")
                              if isinstance(ev.get(k), (int, float)))
            self.line(f"epoch {float(ev.get('epoch') or 0):.2f}: {shown}")

    def _log(self, ev: dict) -> None:
        step, total = int(ev.get("step") or 0), int(ev.get("max_steps") or 0)
        loss, lr = ev.get("loss"), ev.get("lr")
        if self.tty:
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, initial=0, unit="step", file=self.stream, dynamic_ncols=True)
            self.bar.update(step - self.bar.n)
            if isinstance(loss, (int, float)):
                self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}" if isinstance(lr, (int, float)) else "-")
            return
        parts = [f"step {step}/{total}", f"epoch {float(ev.get('epoch') or 0):.2f}"]
        if isinstance(loss, (int, float)):
            parts.append(f"loss {loss:.4f}")
        if isinstance(lr, (int, float)):
            parts.append(f"lr {lr:.2e}")
        if isinstance(ev.get("eta"), (int, float)):
            parts.append(f"eta {ev['eta']:.0f}s")
        self.line(", ".join(parts))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
