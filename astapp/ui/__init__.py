"""Gradio web app: thin glue over the engine (see `astapp.ui.app.build_app`)."""

from astapp.ui.app import build_app

__all__ = ["build_app"]
