"""Progress on the terminal: a tqdm bar on a TTY, plain log lines otherwise (a batch job's log)."""

from __future__ import annotations

import sys

from astapp.core.events import describe


class ProgressPrinter:
    """Event sink for the terminal: a tqdm bar on a TTY, plain log lines otherwise."""

    def __init__(self, quiet: bool = False, stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = None

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def __call__(self, ev: dict) -> None:
        kind = ev.get("type")
        if self.quiet and kind != "warning":
            return
        if kind == "log" and self.tty:
            self._bar(ev)
            return
        if kind == "stage" and ev.get("fraction") not in (None, 1.0):
            return  # preparation progress: the stage's first and last line are enough on a terminal
        line = describe(ev)
        if line is not None and kind != "error":  # an error is printed once, by main()
            self.line(line)

    def _bar(self, ev: dict) -> None:
        from tqdm.auto import tqdm

        if self.bar is None:
            self.bar = tqdm(total=int(ev.get("max_steps") or 0), initial=0, unit="step", file=self.stream,
                            dynamic_ncols=True)
        self.bar.update(int(ev.get("step") or 0) - self.bar.n)
        loss, lr = ev.get("loss"), ev.get("lr")
        if isinstance(loss, (int, float)):
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}" if isinstance(lr, (int, float)) else "-")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
