"""The layering rules of docs/ARCHITECTURE.md, checked on the source.

The package order below IS the layer rule: a module may import its own package and the packages listed
before it, never one after it. docs/ARCHITECTURE.md's layer table mirrors `PACKAGES` (checked here), and so
does the package tree: nothing else holds a copy. Also checked: no import cycle between modules (lazy
imports count), one writer per run file, small modules and functions, no private name imported across
modules, and an app that starts without torch.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "astapp"
MAX_LINES = 400
MAX_FUNCTION_LINES = 100

# Lowest first. The face (__main__.py, __init__.py) stands above them all.
PACKAGES = ["core", "data", "features", "model", "evaluation", "training", "crossval", "predict", "detection",
            "pool", "distill", "tuning", "scale", "export", "jobs", "service", "ui", "cli"]
FACE = ["__init__", "__main__"]
RANK = {**{p: i for i, p in enumerate(PACKAGES)}, **{m: len(PACKAGES) for m in FACE}}
UI_MAY_IMPORT = {"astapp.service", "astapp.core.config", "astapp.core.errors"}
CLI_MAY_IMPORT = {"astapp.service", "astapp.core"}  # the CLI is glue over the service too, never the UI
RUN_FILES = {"STATUS", "CONFIG", "META", "LOG"}
WRITERS = {"atomic_write_text", "atomic_write_bytes", "write_text", "write_bytes", "save", "open"}
RUN_FILE_WRITER = "astapp/jobs/record.py"
RUN_FILE_NAMES = "astapp/core/runfolder.py"


def modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def dotted(path: Path) -> str:
    """astapp/data/ingest/__init__.py -> astapp.data.ingest; astapp/cli/__init__.py -> astapp.cli"""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(name: str) -> str:
    """The layer key of a dotted module name: its first component under astapp."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(imported astapp module, names taken from it) for every import, lazy ones included. `from a.b import c`
    names module a.b.c when c is a module, else a.b with the name c."""
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "astapp":
            plain = []
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if _is_module(sub):
                    out.append((sub, []))
                else:
                    plain.append(alias.name)
            if plain:
                out.append((node.module, plain))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("astapp.")]
    return out


GRAPH = {dotted(p): {name for name, _ in imports_of(p)} for p in modules()}


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_package_order(path: Path) -> None:
    me = package_of(dotted(path))
    assert me in RANK, f"{path} is in no layer: add its package to PACKAGES here and to docs/ARCHITECTURE.md"
    for target, names in imports_of(path):
        assert _is_module(target), f"{path} imports {target}, which does not exist"
        there = package_of(target)
        if me == "ui" and there != "ui":
            assert any(target == t or target.startswith(t + ".") for t in UI_MAY_IMPORT), \
                f"{path}: the UI must reach {target} through the service"
        if me == "cli" and there != "cli":
            assert any(target == t or target.startswith(t + ".") for t in CLI_MAY_IMPORT), \
                f"{path}: the CLI must reach {target} through the service"
        assert RANK[there] <= RANK[me], f"{path} ({me}) imports {target} ({there}), a package above it"
        if target != dotted(path):
            private = [n for n in names if n.startswith("_")]
            assert not private, f"{path} imports private names {private} from {target}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. the import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_modules_or_packages() -> None:
    assert _cycles(GRAPH) == [], "import circles (lazy imports count)"
    packages: dict[str, set[str]] = {}
    for src, targets in GRAPH.items():
        packages.setdefault(package_of(src), set()).update(package_of(t) for t in targets if
                                                           package_of(t) != package_of(src))
    assert _cycles(packages) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_each_package_says_its_job_and_few_modules_stand_loose() -> None:
    for p in PACKAGES:
        init = PKG / p / "__init__.py"
        assert init.is_file(), f"astapp/{p}/ is not a package"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 40, f"astapp/{p}/__init__.py needs a docstring that says the package's job"
    loose = {p.stem for p in PKG.glob("*.py")} - set(FACE)
    assert len(loose) <= 2, f"engine modules directly under astapp/: {sorted(loose)}"
    subpackages = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(PACKAGES), f"packages not in the layer order: {subpackages ^ set(PACKAGES)}"


def test_the_architecture_doc_mirrors_the_package_order() -> None:
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table = re.search(r"^## Layers\n(.*?)^## ", doc, re.S | re.M)
    assert table, "docs/ARCHITECTURE.md has no '## Layers' table"
    rows = re.findall(r"^\| `astapp/(\w+)/` \|", table.group(1), re.M)
    assert rows == PACKAGES[::-1], f"the doc's layer table (highest first) {rows} != {PACKAGES[::-1]}"
    tree = doc.split("## The tree", 1)[-1]
    missing = [dotted(p) for p in modules()
               if p.stem != "__init__" and not re.search(rf"[\s/]{p.stem}\.py\b", tree)]
    assert not missing, f"modules the tree in docs/ARCHITECTURE.md does not describe: {missing}"


def test_no_module_is_over_400_lines_and_no_function_over_100() -> None:
    long, functions = {}, {}
    for p in modules():
        text = p.read_text(encoding="utf-8")
        if (n := len(text.splitlines())) > MAX_LINES:
            long[str(p.relative_to(ROOT))] = n
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    functions[f"{p.relative_to(ROOT)}:{node.name}"] = size
    assert not long, f"split these by concern: {long}"
    assert not functions, f"split these functions: {functions}"


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
    """Only the run record (RunRecord) writes status.json, config.json, meta.json and log.txt of a run; the
    names of the run's own files are spelled out only in the run folder's module."""
    writers, spelled = set(), set()
    for path in modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in ("status.json", "meta.json", "log.txt"):
                spelled.add(str(path.relative_to(ROOT)))  # ("config.json" is also a model folder's file)
            if not isinstance(node, ast.Call):
                continue
            fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if fn in WRITERS and any(_mentions_run_file(a) for a in [*node.args, *(k.value for k in node.keywords)]):
                writers.add(str(path.relative_to(ROOT)))
    assert writers == {RUN_FILE_WRITER}, writers
    assert spelled <= {RUN_FILE_NAMES}, f"run file names spelled outside {RUN_FILE_NAMES}: {spelled}"


@pytest.mark.slow
def test_the_app_is_built_without_loading_torch(tmp_path) -> None:
    code = ("import os, sys; os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'\n"
            "from astapp.jobs.manager import JobManager\nfrom astapp.ui.app import build_app\n"
            f"jm = JobManager({str(tmp_path)!r}, start=False)\nbuild_app(jm, hub_online=False)\n"
            "print(sys.modules['gradio.component_meta'].create_or_modify_pyi.__name__)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'audiomentations') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)  # not a speed check: a loaded 2-core machine took over 120 s
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert done.stdout.strip().splitlines()[-2] == "skip_stub"  # nor Gradio's stub regeneration (ui/gradio_import.py)
