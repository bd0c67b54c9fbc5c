"""Importing the app leaves Gradio's type stubs alone (their regeneration was 40 % of `import gradio`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import sys
import astapp.ui
from astapp.ui.gradio_import import _StubSkipper, skip_stub
import gradio as gr
import gradio.blocks_events as be
import gradio.component_meta as cm
assert cm.create_or_modify_pyi is skip_stub and be.create_or_modify_pyi is skip_stub
assert not any(isinstance(f, _StubSkipper) for f in sys.meta_path)  # the finder stepped aside
class Custom(gr.Textbox):  # a component defined later still gets its events
    pass
with gr.Blocks() as demo:
    box = Custom(label="x")
    box.change(lambda v: v, box, box)
assert len(demo.fns) == 1
print("ok")
"""


@pytest.mark.slow  # a fresh process imports Gradio (seconds of CPU)
def test_a_fresh_app_process_skips_gradios_stub_regeneration():
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_nothing_changes_once_gradio_is_imported():
    import gradio.component_meta  # noqa: F401 - the test process has Gradio already

    from astapp.ui.gradio_import import _StubSkipper, skip_gradio_stubs

    assert skip_gradio_stubs() is False
    assert not any(isinstance(f, _StubSkipper) for f in sys.meta_path)
