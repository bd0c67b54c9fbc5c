"""The layering rules of docs/ARCHITECTURE.md, checked on the source: who may import whom, one writer per
run file, small modules, no private names across modules, and an app that starts without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "astapp"
MAX_LINES = 400

# Lowest first: a module may import its own layer and the layers below it, never one above.
LAYERS: list[tuple[str, set[str]]] = [
    ("Base", {"config", "errors", "fsutil", "rundir"}),
    ("Data", {"audio", "ingest", "report", "dataset", "examples", "folds", "recordings"}),
    ("Signal", {"features", "featcache", "figures", "augment", "augment_spec", "preview", "synth", "embedmap",
                "noise"}),
    ("Model", {"model", "checkpoints", "infer", "export", "hub"}),
    ("Train", {"train", "trainer_setup", "trainer_utils", "fastmodes", "lora", "devices", "events", "metrics",
                "multilabel", "cv", "cv_frozen", "cv_folds", "label_issues"}),
    ("App", {"jobs", "jobstate", "runner", "slicing", "runs", "publish", "sessions", "paths"}),
    ("Service", {"service"}),
    ("UI", {"ui"}),
    ("Face", {"cli", "__main__", "__init__"}),
]
# issue 14 (ONNX export): numpy features, ONNX export/inference, the model zip with ONNX
dict(LAYERS)["Signal"].add("npfeatures")
dict(LAYERS)["Model"].update({"onnx_export", "onnx_infer"})
dict(LAYERS)["App"].add("bundle")
RANK = {name: i for i, (_, names) in enumerate(LAYERS) for name in names}
UI_MAY_IMPORT = {"service", "config", "errors"}
RUN_FILES = {"STATUS", "CONFIG", "META", "LOG"}
WRITERS = {"atomic_write_text", "atomic_write_bytes", "write_text", "write_bytes", "save", "open"}


def modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def top(path: Path) -> str:
    """The layer key of a source file: its first component under astapp/ (a package or a module)."""
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def astapp_imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    """(imported astapp module's first component, names) for every import, lazy ones included."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "astapp":
            parts = node.module.split(".")
            if len(parts) == 1:  # from astapp import runs, rundir
                out += [(a.name, []) for a in node.names]
            else:
                out.append((parts[1], [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name.split(".")[1], []) for a in node.names if a.name.startswith("astapp.")]
    return out


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layers(path: Path) -> None:
    me = top(path)
    assert me in RANK, f"{path} has no layer in LAYERS: add it to the table here and in docs/ARCHITECTURE.md"
    for target, names in astapp_imports(ast.parse(path.read_text(encoding="utf-8"))):
        assert target in RANK, f"{path} imports astapp.{target}, which has no layer"
        if me == "ui":
            assert target in UI_MAY_IMPORT | {"ui"}, f"{path}: the UI must reach astapp.{target} through the service"
        assert RANK[target] <= RANK[me], (f"{path} ({LAYERS[RANK[me]][0]}) imports astapp.{target} "
                                          f"({LAYERS[RANK[target]][0]}), a layer above it")
        if target != me:
            private = [n for n in names if n.startswith("_")]
            assert not private, f"{path} imports private names {private} from astapp.{target}"


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these by concern: {long}"


def _mentions_run_file(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name | ast.Attribute) and (getattr(sub, "id", None) or getattr(sub, "attr", None)) \
                in RUN_FILES:
            return True
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and \
                sub.value in ("status.json", "config.json", "meta.json", "log.txt"):
            return True
    return False


def test_status_config_meta_and_log_have_one_writer() -> None:
    """Only astapp/runner.py (RunRecord) writes status.json, config.json, meta.json and log.txt of a run;
    the names of the run's own files are spelled out only in astapp/rundir.py."""
    writers, spelled = set(), set()
    for path in modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in ("status.json", "meta.json", "log.txt"):
                spelled.add(path.name)  # ("config.json" is also a model folder's file: its writes are checked)
            if not isinstance(node, ast.Call):
                continue
            fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if fn in WRITERS and any(_mentions_run_file(a) for a in [*node.args, *(k.value for k in node.keywords)]):
                writers.add(str(path.relative_to(ROOT)))
    assert writers == {"astapp/runner.py"}, writers
    assert spelled <= {"rundir.py"}, f"run file names spelled outside astapp/rundir.py: {spelled}"


def test_the_app_is_built_without_loading_torch(tmp_path) -> None:
    code = ("import os, sys; os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'\n"
            "from astapp.jobs import JobManager\nfrom astapp.ui.app import build_app\n"
            f"jm = JobManager({str(tmp_path)!r}, start=False)\nbuild_app(jm, hub_online=False)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'audiomentations') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
