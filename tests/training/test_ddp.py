"""Multi-process training: `torchrun --nproc_per_node=2 -m astapp train` on CPU (gloo), tiny model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # two torchrun workers per test: the fast lane (-m "not slow") leaves them out


@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                    reason="torchrun is not installed")
@pytest.mark.parametrize("mode", ["full", "lora"])
def test_torchrun_two_cpu_processes(tiny_ast, small_dataset, tmp_path, mode):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "ASTAPP_CACHE_DIR": str(tmp_path / "c"),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "astapp", "train", "--data", str(small_dataset), "--model", str(tiny_ast), "--output", str(run),
           "--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--max-length", "64", "--threads", "1", "--mode", mode]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
        out, err = proc.communicate()
        pytest.fail("torchrun did not finish in 150 s:\n" + out[-2000:] + err[-2000:])
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert out.count("Finished: accuracy") == 1  # only rank 0 prints

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
