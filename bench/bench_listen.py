#!/usr/bin/env python3
"""Issue 14, live mode: the model time each Listen-live prediction costs (one window through `Predictor`,
as `Service.listener` runs it), for a small and the base AST side by side, with a 1 s window, fed the
way the browser streams (0.5 s chunks at 48 kHz, int16). The delay from a sound to its label is
bounded by: the chunk interval (stream_every 0.5 s) + waiting for the next hop (<= hop) + this model
time (+ the smoothing's lag of about one hop at the default 0.5). Randomly initialised checkpoints (no
Hub): the labels are meaningless, the cost is that of a trained model.

    python bench/bench_listen.py --sizes small base --out bench/out/listen.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from common import make_checkpoint, write_json


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["small", "base"])
    ap.add_argument("--window-seconds", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=6.0, help="audio streamed per model")
    ap.add_argument("--hop", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/out/listen.json"))
    args = ap.parse_args()

    import numpy as np
    import torch

    from astapp.data.synth import make_signal
    from astapp.features.fbank import choose_max_length
    from astapp.model.folder import export_model
    from astapp.model.loading import load_model
    from astapp.predict.predictor import Predictor
    from astapp.service.listening import Listener, ListenSettings

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="astapp_bench_listen_"))
    frames = choose_max_length([args.window_seconds])
    labels = ["background", "a", "b"]
    audio = (0.5 * make_signal("chirp", args.seconds, sr=48_000) * 32767).astype(np.int16)
    result: dict = {"benchmark": "listen", "window_frames": frames, "hop_s": args.hop, "stream_every_s": 0.5,
                    "threads": args.threads, "torch": torch.__version__, "precision": "fp32", "models": {}}
    for size in args.sizes:
        ckpt = make_checkpoint(work / f"ckpt_{size}", size)
        export_model(load_model(str(ckpt), labels, frames), labels, frames, -4.27, 4.57, work / size)
        predictor = Predictor(work / size)
        listener = Listener(lambda w, p=predictor: p.predict(w, top_k=3).probs, labels,
                            predictor.window_samples, ListenSettings(hop=args.hop))
        step = 24_000  # 0.5 s at 48 kHz
        for start in range(0, len(audio), step):
            listener.feed((48_000, audio[start:start + step]))
        ms = [s * 1000 for s in listener.compute_seconds[1:]]  # the first call warms up
        median = statistics.median(ms)
        result["models"][size] = {"predictions": len(ms), "model_ms_median": round(median, 1),
                                  "model_ms_max": round(max(ms), 1),
                                  "worst_delay_s": round(0.5 + args.hop + median / 1000, 2),
                                  "keeps_up": bool(median / 1000 < args.hop)}
    write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
