"""The CLI quiets the HF libraries without importing HF datasets only for that (1.8 s for the commands that
never use it), and datasets imported later still shows no progress bars."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from astapp.cli.common import quiet_libraries
quiet_libraries()
print("imported" if "datasets" in sys.modules else "not imported")
import datasets
from datasets.utils import is_progress_bar_enabled
print("bars" if is_progress_bar_enabled() else "no bars")
"""


@pytest.mark.slow
def test_quiet_libraries_leaves_datasets_unimported_and_its_bars_off():
    env = {k: v for k, v in os.environ.items() if k != "HF_DATASETS_DISABLE_PROGRESS_BARS"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    assert out == ["not", "imported", "no", "bars"], out
