"""A fast stand-in for the engine (`astapp.training.pipeline.train`): writes the engine's run files, honours stop,
and answers with a `RunResult` like the engine (the run's status and config are the runner's job).

Used by the job tests (and by a subprocess that gets SIGKILLed mid-training), so queueing, stopping,
failures and restarts are tested in milliseconds instead of minutes of real training.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from astapp.core.config import TrainConfig
from astapp.core.fsutil import atomic_dir, atomic_write_text
from astapp.core.runfolder import RunResult


def write_checkpoint(run_dir: Path, step: int) -> Path:
    """A checkpoint folder shaped like the Trainer's (weights + trainer_state.json), written atomically."""
    ck = Path(run_dir) / "checkpoints" / f"checkpoint-{step}"
    with atomic_dir(ck) as tmp:
        (tmp / "model.safetensors").write_bytes(b"fake weights")
        (tmp / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return ck


def write_model(run_dir: Path) -> None:
    with atomic_dir(Path(run_dir) / "model") as tmp:
        (tmp / "config.json").write_text(json.dumps({"model_type": "audio-spectrogram-transformer"}))
        (tmp / "model.safetensors").write_bytes(b"fake weights")


def make_fake_train(steps: int = 4, step_s: float = 0.005, hold: threading.Event | None = None,
                    fail: Callable[[TrainConfig], BaseException | None] | None = None,
                    calls: list[TrainConfig] | None = None, checkpoint_every: int = 2,
                    on_checkpoint: Callable[[Path], None] | None = None):
    """Build a train function. `hold`: each step waits until it is set (or stop is); `fail(cfg)`
    returns an exception to raise after the first stage; `calls` records every cfg it ran."""

    def fake_train(cfg: TrainConfig, events: Callable[[dict[str, Any]], None] | None = None,
                   stop: threading.Event | None = None) -> RunResult:
        out = Path(cfg.output)
        out.mkdir(parents=True, exist_ok=True)
        if calls is not None:
            calls.append(cfg)
        t0 = time.time()

        def emit(ev: dict[str, Any]) -> None:
            ev = {"time": time.time(), **ev}
            with open(out / "history.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(ev) + "\n")
            if events is not None:
                events(ev)

        emit({"type": "stage", "stage": "data", "message": "Preparing data"})
        exc = fail(cfg) if fail else None
        if exc is not None:
            raise exc
        first = int(Path(cfg.resume).name.split("-")[1]) + 1 if cfg.resume else 1
        for step in range(first, steps + 1):
            while hold is not None and not hold.is_set() and not (stop and stop.is_set()):
                hold.wait(0.01)
            if stop is not None and stop.is_set():
                emit({"type": "done", "metrics": {}, "stopped": True})
                return RunResult(out, "stopped")
            time.sleep(step_s)
            elapsed = time.time() - t0
            emit({"type": "log", "step": step, "epoch": step / steps, "loss": 1.0 / step, "lr": 1e-4,
                  "progress": step / steps, "elapsed": elapsed, "eta": elapsed / step * (steps - step)})
            if step % checkpoint_every == 0:
                ck = write_checkpoint(out, step)
                if on_checkpoint:
                    on_checkpoint(ck)
        metrics = {"accuracy": 0.75, "f1_macro": 0.7}
        emit({"type": "eval", "epoch": 1.0, **metrics})
        atomic_write_text(out / "metrics.json", json.dumps(metrics))
        write_model(out)
        emit({"type": "done", "metrics": metrics})
        return RunResult(out, "finished", metrics, out / "model", config=cfg)

    return fake_train


def tiny_cfg(data: str = "/nowhere/data", **kw: Any) -> TrainConfig:
    return TrainConfig(**{"data": data, "model": "scratch:tiny", "epochs": 1, **kw})
