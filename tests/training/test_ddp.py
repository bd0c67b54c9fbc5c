"""Multi-process training on CPU (gloo), tiny model: `torchrun --nproc_per_node=2 -m astapp train`, and the
multi-node form, two `torchrun --nnodes=2 --node-rank 0|1` launchers meeting at a c10d rendezvous (here both
on localhost, writing one run folder: on a cluster, a folder on shared storage)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,  # two torchrun workers per test: the fast lane (-m "not slow") leaves them out
              pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                                 reason="torchrun is not installed")]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "ASTAPP_CACHE_DIR": str(tmp_path / "c"),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}


def _train_args(tiny_ast: Path, data: Path, run: Path, mode: str) -> list[str]:
    return ["-m", "astapp", "train", "--data", str(data), "--model", str(tiny_ast), "--output", str(run),
            "--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--max-length", "64", "--threads", "1", "--mode", mode]


def _finish(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str, str]]:
    """Each launcher's (exit status, stdout, stderr); all of them killed, and the test failed, past `timeout`."""
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs:
                os.killpg(p.pid, signal.SIGKILL)  # the launchers and their workers
            out, err = proc.communicate()
            pytest.fail(f"torchrun did not finish in {timeout:.0f} s:\n" + out[-2000:] + err[-2000:])
        results.append((proc.returncode, out, err))
    return results


def _assert_one_run_of_two_ranks(run: Path, mode: str) -> None:
    m = json.loads((run / "metrics.json").read_text())
    assert m["global_step"] == 6  # 18 clips / (4 per process x 2 processes) -> 3 steps per epoch, 2 epochs
    assert len(m["predictions"]) == m["num_validation"] == 6  # gathered from both ranks, no duplicates
    events = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [e["type"] for e in events].count("done") == 1  # one writer
    assert [e["step"] for e in events if e["type"] == "log"] == [1, 2, 3, 4, 5, 6]
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    assert (run / "model" / "model.safetensors").is_file()
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["checkpoint-6"]
    assert (run / "adapter" / "adapter_config.json").is_file() == (mode == "lora")


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_torchrun_two_cpu_processes(tiny_ast, small_dataset, tmp_path, mode):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           *_train_args(tiny_ast, small_dataset, run, mode)]
    proc = subprocess.Popen(cmd, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=True)
    [(code, out, err)] = _finish([proc], 150)
    assert code == 0, out[-3000:] + err[-3000:]
    assert out.count("Finished: accuracy") == 1  # only rank 0 prints
    _assert_one_run_of_two_ranks(run, mode)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_nodes_meet_at_a_c10d_rendezvous(tiny_ast, small_dataset, tmp_path):
    """What a 2-node job runs on each node (docs/SCALING.md), each node one CPU process; the run folder is shared."""
    _two_nodes(tmp_path, 240, lambda node, port: [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={node}", "--nproc-per-node=1",
        "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=astapp-test",
        *_train_args(tiny_ast, small_dataset, tmp_path / "shared" / "run", "full")])


def test_accelerate_launch_two_machines_meet_at_the_main_process(tiny_ast, small_dataset, tmp_path):
    """`accelerate launch` on each of 2 machines (docs/SCALING.md), one CPU process each, one shared run folder.

    `--multi_gpu` names accelerate's torch.distributed launcher (it needs no GPU: with no CUDA device the
    processes meet over gloo); accelerate's `--cpu` multi-machine launcher sets no RANK without mpirun."""
    _two_nodes(tmp_path, 300, lambda node, port: [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines=2",
        f"--machine_rank={node}", "--main_process_ip=127.0.0.1", f"--main_process_port={port}",
        "--num_processes=2", "--mixed_precision=no", "--dynamo_backend=no",
        *_train_args(tiny_ast, small_dataset, tmp_path / "shared" / "run", "full")])


def _two_nodes(tmp_path, timeout_s: int, command) -> None:
    """Start `command(node, port)` for nodes 0 and 1 (each its own environment), wait, and check that they made
    one run folder (`tmp_path/shared/run`) of two ranks, with one "Finished" line, from global rank 0."""
    port = _free_port()
    procs = [subprocess.Popen(command(node, port), env=_env(tmp_path / f"node{node}"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True)
             for node in (0, 1)]
    results = _finish(procs, timeout_s)
    for code, out, err in results:
        assert code == 0, out[-3000:] + err[-3000:]
    assert sum(out.count("Finished: accuracy") for _, out, _ in results) == 1  # global rank 0 alone prints
    _assert_one_run_of_two_ranks(tmp_path / "shared" / "run", "full")
