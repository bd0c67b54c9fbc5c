"""Install astapp's requirements with the right PyTorch wheel, in seconds also where PyTorch's index is unreachable.

`python3 install.py` = `python3 -m pip install -r requirements.txt`, plus PyTorch's CPU index on a Linux machine
without an NVIDIA GPU (its CPU wheel is a 190 MB download; PyPI's Linux wheel brings several GB of CUDA).

Why a script and not a plain `--extra-index-url` on pip's command line: when that index cannot be reached (a proxy,
an offline mirror, a firewall), pip retries it five times with back-off for every one of the ~60 packages before
falling back to PyPI — 968 s measured for this project's install, ~17 s per package. This script asks the index
once (3 s at most) and leaves it out when it does not answer, so the unreachable case costs seconds.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_SECONDS = 3.0


def reachable(url: str, timeout: float = PROBE_SECONDS) -> bool:
    """Whether `url` answers at all within `timeout` (any HTTP status counts: the server is there)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is installed: PyPI's CUDA wheel is the right one there."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def choose_index(index: str, system: str, gpu: bool, probe=reachable) -> tuple[str | None, str]:
    """(the extra index to use or None, the reason in one sentence)."""
    if system != "Linux":
        return None, f"{system}: PyPI's PyTorch wheels are the CPU ones already."
    if gpu:
        return None, "an NVIDIA GPU was found: PyPI's PyTorch wheel (with CUDA) is the right one."
    if not probe(index):
        return None, (f"PyTorch's CPU index {index} did not answer within {PROBE_SECONDS:g} s: installing from "
                      "PyPI alone (PyTorch then comes with CUDA libraries, a larger download).")
    return index, f"no GPU: PyTorch's CPU wheel from {index} (a 190 MB download instead of several GB)."


def pip_command(requirements: str, index: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "install", "-r", requirements]
    return cmd + (["--extra-index-url", index] if index else [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("-r", "--requirements", default="requirements.txt", help="the requirements file")
    ap.add_argument("--index", default=CPU_INDEX, help="PyTorch's CPU index (or a mirror of it)")
    ap.add_argument("--dry-run", action="store_true", help="print the pip command instead of running it")
    ns = ap.parse_args(argv)
    index, why = choose_index(ns.index, platform.system(), has_nvidia_gpu())
    cmd = pip_command(ns.requirements, index)
    print(f"install.py: {why}", flush=True)
    print("install.py: " + " ".join(cmd[1:] if cmd[0] == sys.executable else cmd), flush=True)
    return 0 if ns.dry_run else subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
