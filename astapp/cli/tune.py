"""`tune`: search the settings of a run (Optuna trials: frozen / last-N on one cached pass, full / LoRA as real
trainings, child runs under DIR/trials/); writes DIR/tune.json."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from astapp import service
from astapp.cli.common import EXIT_STOPPED, add_settings, quiet_libraries, with_printer
from astapp.cli.progress import ProgressPrinter
from astapp.cli.training import config_from_args


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    t = sub.add_parser("tune", help="search good settings (frozen / last-N: each trial reuses one cached pass; full / LoRA: "
                       "each trial is a training); "
                       "writes OUTPUT/tune.json and OUTPUT/trials/", argument_default=argparse.SUPPRESS)
    add_settings(t)
    t.add_argument("--trials", dest="tune_trials", type=float, metavar="N", help="trials to run (1 to 1000)")
    t.add_argument("--minutes", dest="tune_minutes", type=float, metavar="M", help="time budget (0: none)")
    t.add_argument("--test-share", dest="tune_test_share", type=float, metavar="SHARE",
                   help="clips held back for one test at the end (default 0.2)")
    t.add_argument("--json", action="store_true", help="print tune.json on stdout")
    t.add_argument("--quiet", action="store_true", help="only print the result")
    return {"tune": tune}


def tune(ns: argparse.Namespace) -> int:
    given = vars(ns)
    cfg = config_from_args(argparse.Namespace(**{k: v for k, v in given.items() if not k.startswith("tune_")}))
    if "output" not in given:
        cfg.output = "runs/tune"
    for key in ("tune_trials", "tune_minutes", "tune_test_share"):
        if key in given:
            value = given[key]
            setattr(cfg, key, int(value) if key == "tune_trials" and float(value).is_integer() else value)
    quiet_libraries()
    result = with_printer(service.tune_run, cfg, ProgressPrinter(quiet=getattr(ns, "quiet", False)))
    if result.state == "stopped" and not (result.output / "tune.json").is_file():
        print("Stopped before the first trial; nothing was saved.", file=sys.stderr)
        return EXIT_STOPPED
    out = service.tune_summary(result.output)
    if getattr(ns, "json", False):
        print(json.dumps(out, indent=1, ensure_ascii=False))
    else:
        done = [t for t in out["trials"] if t["state"] == "complete"]
        print(f"{len(out['trials'])} trials ({len(done)} complete); default macro F1 {out['default']['value']:.3f} "
              f"on the search's validation clips.")
        if out.get("best"):
            print(f"best: trial {out['best']['number']}, macro F1 {out['best']['value']:.3f}, {out['best']['params']}")
        test = out["test"]
        print(f"held-back test ({test['clips']} clips): default macro F1 {test['default']['f1_macro']:.3f}"
              + (f", best {test['best']['f1_macro']:.3f}" if "best" in test else ""))
        print(out["message"] + f"\nResult: {result.output / 'tune.json'}")
    return EXIT_STOPPED if result.state == "stopped" else 0
