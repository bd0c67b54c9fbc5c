"""Helpers for tests that drive the real app over HTTP with `gradio_client` (every call has a timeout)."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gradio_client import Client

CALL_TIMEOUT = 60.0  # no single call may wait longer than this
CLASSES = ["beeps", "knocks", "noise", "speech", "whistle"]  # the example dataset's classes
TRACEBACK = re.compile(r"Traceback|File \"[^\"]+\", line \d+|\bat 0x[0-9a-f]+")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def launched(manager: Any, service: Any = None, **launch: Any) -> Iterator[str]:
    """Build and launch the app in this process on a free port (over `service` when given); yields its URL."""
    from astapp.ui.app import build_app

    demo = build_app(manager, hub_online=False, service=service)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True, **launch)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def client(url: str, **kw: Any) -> Client:
    return Client(url, verbose=False, download_files=True, **kw)


def call(c: Client, *args: Any, api_name: str, timeout: float = CALL_TIMEOUT, **kwargs: Any) -> Any:
    """`client.predict` with a deadline: a call that hangs fails the test instead of hanging it."""
    return c.submit(*args, api_name=api_name, **kwargs).result(timeout=timeout)


def points(plot: dict[str, Any] | None) -> list[Any]:
    """A plot output's rows: its value, or an update's value (the metric plot comes with its epoch range)."""
    plot = plot or {}
    return ((plot.get("value") or {}) if plot.get("__type__") == "update" else plot).get("data") or []


def poll(c: Client, timeout: float = CALL_TIMEOUT) -> dict[str, Any]:
    status, progress, loss, lr, metric, log, _timer = call(c, api_name="/poll_training", timeout=timeout)
    return {"status": status or "", "progress": progress, "loss": points(loss), "metric": points(metric), "log": log}


BADGE = re.compile(r"astapp-badge (\w+)")


def state_of(status: str) -> str | None:
    """The run state the Train tab's status badge shows ("running", "finished", ...)."""
    m = BADGE.search(status)
    return m.group(1) if m else None


def wait_state(c: Client, states: tuple[str, ...], timeout: float) -> dict[str, Any]:
    """Poll the Train tab until its badge shows one of `states`."""
    deadline = time.monotonic() + timeout
    while True:
        snap = poll(c)
        if state_of(snap["status"]) in states:
            return snap
        assert time.monotonic() < deadline, f"timed out waiting for {states}: {snap['status']}\n{snap['log']}"
        time.sleep(0.3)


def train_args(epochs: float, model: str | None = None, **over: Any) -> dict[str, Any]:
    args = {"mode": "full", "epochs": epochs, "lr": 1e-3, "batch_size": 16, "max_length": "auto",
            "val_split": 0.25, "seed": 0, "early_stopping": 0, "class_weighted": False, **over}
    if model is not None:
        args["model"] = model
    return args


def readable(message: str) -> str:
    """Assert an error message is a plain sentence (no traceback, no stack frames); return it."""
    assert message.strip(), "empty error message"
    assert not TRACEBACK.search(message), f"a traceback reached the user: {message}"
    return message


def tree(root: Path) -> set[str]:
    """Every path under `root` (relative, as strings), links included."""
    return {str(p.relative_to(root)) for p in Path(root).rglob("*")}


def exported_run(root: Path, owner: str, name: str = "exported run", labels: list[str] | None = None) -> str:
    """A finished run of `owner` under the app's data `root` with a real exported (untrained, tiny) model over
    `labels` (the example's classes): what a test needs when it only uses "a finished run" and not its
    training, at the cost of saving a model (milliseconds) instead of a training through the app. Its id."""
    import torch
    from transformers import ASTConfig, ASTForAudioClassification

    from astapp.core.config import TrainConfig
    from astapp.jobs import registry
    from astapp.jobs.record import RunRecord
    from astapp.model.folder import export_model

    labels = labels or CLASSES
    torch.manual_seed(0)
    cfg = ASTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                    max_length=128, num_labels=len(labels))
    rd = Path(root) / "runs" / owner / registry.new_run_id()
    record = RunRecord(rd)
    record.create(TrainConfig(data="d", output=str(rd)), name=name, owner=owner)
    export_model(ASTForAudioClassification(cfg), labels, 128, -4.27, 4.57, rd / "model")
    record.status("finished")
    return rd.name
