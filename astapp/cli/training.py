"""`inspect`, `train`, `cv`, `label-issues`: check a dataset, fine-tune, cross-validate."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from astapp import service
from astapp.cli.common import (
    EXIT_STOPPED,
    EXIT_TIME_LIMIT,
    EXIT_USER_ERROR,
    add_settings,
    quiet_libraries,
    seconds,
    with_printer,
)
from astapp.cli.progress import ProgressPrinter
from astapp.core.config import SETTINGS, TrainConfig, defaults_for, launch_rank, set_setting
from astapp.core.errors import TrainingError
from astapp.core.events import describe_outcome


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    ins = sub.add_parser("inspect", help="check a dataset and print its validation report")
    ins.add_argument("--data", required=True)
    ins.add_argument("--json", action="store_true", help="print the report as JSON")
    ins.add_argument("--long-clips", choices=("crop", "split"), default="crop")

    tr = sub.add_parser("train", help="fine-tune a model; writes the run folder",
                        argument_default=argparse.SUPPRESS)
    tr.add_argument("--config", type=Path, help="a config.json to start from (flags override it)")
    add_settings(tr)
    tr.add_argument("--quiet", action="store_true", help="only print the final summary")
    # CLI-only, not in SETTINGS: a limit belongs to this process's host, not to the run's recipe (saved
    # in config.json, it would follow the run into the app's "Continue" and into every resume).
    tr.add_argument("--time-limit", type=seconds, metavar="SECONDS",
                    help="stop (resumable) before this many seconds have passed, print the command that "
                         f"continues, exit {EXIT_TIME_LIMIT} (batch hosts such as SLURM)")

    for name, text in (("cv", "cross-validate: scores per fold, mean and std; also finds label issues"),
                       ("label-issues", "rank the clips whose label looks wrong (out-of-fold, cleanlab)")):
        cv = sub.add_parser(name, help=text, argument_default=argparse.SUPPRESS)
        cv.add_argument("--config", type=Path, help="a config.json to start from (flags override it)")
        add_settings(cv)
        cv.add_argument("--folds", dest="cv_folds", help="auto (the dataset's folds, else 5) or a number")
        cv.add_argument("--final", dest="cv_final", action="store_true", help="also train the final model")
        cv.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
        cv.add_argument("--quiet", action="store_true", help="only print the result")
    return {"inspect": _inspect, "train": _train, "cv": _cv, "label-issues": _cv}


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


# --- commands -------------------------------------------------------------------------------------
def _inspect(ns: argparse.Namespace) -> int:
    quiet_libraries()
    report = service.inspect_data(ns.data, ns.long_clips)
    if ns.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        print(report.to_text())
    return 0 if report.trainable else EXIT_USER_ERROR


def _train(ns: argparse.Namespace) -> int:
    cfg = config_from_args(ns)
    cfg.require_valid()
    quiet_libraries()
    main_rank = launch_rank() == 0
    printer = ProgressPrinter(quiet=getattr(ns, "quiet", False)) if main_rank else None
    limit = getattr(ns, "time_limit", None)
    result = with_printer(service.train_run, cfg, printer, time_limit=limit, started=ns.started)
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
    quiet_libraries()
    result = with_printer(service.cv_run, cfg, ProgressPrinter(quiet=getattr(ns, "quiet", False)))
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
