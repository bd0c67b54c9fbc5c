"""Importing the app leaves Gradio's type stubs alone (their regeneration was 40 % of `import gradio`).

That a fresh process building the app skips them is checked beside its other imports, in one subprocess:
tests/test_architecture.py::test_the_app_is_built_without_loading_torch (slow)."""

from __future__ import annotations

import sys


def test_nothing_changes_once_gradio_is_imported():
    import gradio.component_meta  # noqa: F401 - the test process has Gradio already

    from astapp.ui.gradio_import import _StubSkipper, skip_gradio_stubs

    assert skip_gradio_stubs() is False
    assert not any(isinstance(f, _StubSkipper) for f in sys.meta_path)


def test_a_component_defined_with_the_stubs_skipped_still_gets_its_events(monkeypatch):
    import gradio as gr
    import gradio.component_meta as cm

    from astapp.ui.gradio_import import skip_stub

    monkeypatch.setattr(cm, "create_or_modify_pyi", skip_stub)  # what the finder does as Gradio loads

    class Custom(gr.Textbox):
        pass

    with gr.Blocks() as demo:
        box = Custom(label="x")
        box.change(lambda v: v, box, box)
    assert len(demo.fns) == 1 and [e.event_name for e in Custom.EVENTS] == [e.event_name for e in gr.Textbox.EVENTS]
