"""Import Gradio without regenerating its type stubs: 40 % of `import gradio` on every start.

Gradio 6 calls `gradio.component_meta.create_or_modify_pyi` for each of its ~80 component classes as they
are defined, i.e. on every `import gradio`: it reads each component's source, parses it, renders a `.pyi`
interface and compares it with the stub file in site-packages (rewriting it when it differs). The stubs
are for IDEs; the running app never reads them. Measured on the shared 2-core EPYC (load 5-6): `import
gradio` took 6.3 s of CPU, 3.8 s with the stubs left alone. Every app start pays it (`python app.py`, a
Space waking up) and so does every test process that builds the app.

`skip_gradio_stubs` puts a finder on `sys.meta_path` that lets `gradio.component_meta` load as usual and
then replaces that one function with a no-op, before any component class is defined. It must run before
the first `import gradio` (`astapp/ui/__init__.py` calls it first). Where Gradio is already imported, or
names the function differently, nothing changes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

TARGET = "gradio.component_meta"


def skip_stub(*_args: Any, **_kwargs: Any) -> None:
    """Stands in for `create_or_modify_pyi`: the stub files stay as installed."""


class _StubSkipper(importlib.abc.MetaPathFinder):
    """Finds nothing itself; for `gradio.component_meta` it wraps the real loader (then steps aside)."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if name != TARGET:
            return None
        _remove()
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        loader = getattr(spec, "loader", None)
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return spec
        real_exec = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            real_exec(module)
            if callable(getattr(module, "create_or_modify_pyi", None)):
                module.create_or_modify_pyi = skip_stub

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _remove() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _StubSkipper)]


def skip_gradio_stubs() -> bool:
    """Arrange for Gradio's stub regeneration to be skipped; False when Gradio is already imported."""
    if TARGET in sys.modules:
        return False
    if not any(isinstance(f, _StubSkipper) for f in sys.meta_path):
        sys.meta_path.insert(0, _StubSkipper())
    return True
