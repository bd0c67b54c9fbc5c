"""Gradio web app: thin glue over the engine (see `astapp.ui.app.build_app`)."""

from astapp.ui.gradio_import import skip_gradio_stubs

skip_gradio_stubs()  # before anything below imports gradio: its stub regeneration is 40 % of the import

from astapp.ui.app import build_app  # noqa: E402

__all__ = ["build_app"]
