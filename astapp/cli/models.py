"""`predict`, `export`, `push`: a trained model answers, leaves as a zip, or goes to the Hub."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from astapp import service
from astapp.cli.common import print_json_lines, quiet_libraries


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
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
    return {"predict": predict, "export": export, "push": push}


def predict(ns: argparse.Namespace) -> int:
    if ns.onnx:  # onnxruntime and numpy only: torch is never imported
        rows = service.headless.predict_files_onnx(ns.model, ns.files, ns.top_k, ns.int8, ns.unknown_threshold)
        if ns.int8 and (caution := service.headless.int8_caution(ns.model)):
            print(f"Note: {caution} (leave out --int8).", file=sys.stderr)
    else:
        quiet_libraries()
        rows = service.predict_files(ns.model, ns.files, ns.top_k, ns.unknown_threshold)
    print_json_lines(rows)
    return 1 if any(r.get("error") for r in rows) else 0


def export(ns: argparse.Namespace) -> int:
    print(service.export_run(ns.run, ns.output, adapter=ns.adapter, onnx=not ns.no_onnx, browser=ns.browser))
    return 0


def push(ns: argparse.Namespace) -> int:
    print(service.push_run(ns.run, ns.repo, public=ns.public, license=ns.license, dry_run=ns.dry_run,
                           progress=lambda msg: print(msg, file=sys.stderr, flush=True)))
    return 0
