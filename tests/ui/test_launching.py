"""The app's localhost check waits for a slow first answer instead of refusing to start (a busy machine)."""

from __future__ import annotations

import http.server
import threading
import time

from astapp.ui.launching import patient_launch, patient_url_ok


class _SlowOnce(http.server.BaseHTTPRequestHandler):
    """Answers HEAD with 200, the first one only after `delay` seconds (a page busy on its first render)."""

    delay = 0.6
    calls: list[float] = []

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
        type(self).calls.append(time.monotonic())
        if len(type(self).calls) == 1:
            time.sleep(self.delay)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve():
    _SlowOnce.calls = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowOnce)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def test_a_first_answer_slower_than_the_timeout_is_waited_for():
    from gradio import networking

    server, url = _serve()
    try:
        with patient_launch():
            assert networking.url_ok is patient_url_ok  # what gradio's launch() calls inside the block
            assert networking.url_ok(url, wait_s=10, timeout=0.2)
        assert len(_SlowOnce.calls) >= 2  # the first HEAD timed out and was asked again
    finally:
        server.shutdown()
    assert networking.url_ok is not patient_url_ok  # gradio's own check is back after launch


def test_a_localhost_that_never_answers_is_still_an_error_after_the_wait():
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: every connection is refused
        t0 = time.monotonic()
        assert not patient_url_ok(f"http://127.0.0.1:{port}/", wait_s=1.0, timeout=0.2)
    assert 1.0 <= time.monotonic() - t0 < 5
