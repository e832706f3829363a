"""Progress with an ETA on stderr, for long work (profiling, solving, reproducing).

Only stderr is touched, so pipes stay clean; when stderr is not a terminal a line is printed at
most every few seconds instead of redrawing one line.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """``with Progress("profiling", total) as p: ... p.advance(weight)``.

    ``total`` and the advances may be weights (for example estimated seconds of work) rather
    than counts, so the ETA stays honest when steps differ in size.
    """

    def __init__(
        self,
        label: str,
        total: float,
        stream: TextIO | None = None,
        quiet: bool = False,
        min_interval_s: float = 0.2,
    ) -> None:
        self.label = label
        self.total = max(float(total), 1e-12)
        self.done = 0.0
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.started = time.monotonic()
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._interval = min_interval_s if self._tty else max(min_interval_s, 5.0)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def eta_seconds(self) -> float | None:
        elapsed = time.monotonic() - self.started
        if self.done <= 0:
            return None
        return elapsed * (self.total - self.done) / self.done

    def advance(self, amount: float = 1.0, detail: str = "") -> None:
        self.done = min(self.total, self.done + amount)
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._emit(detail)

    def _emit(self, detail: str, final: bool = False) -> None:
        if self.quiet:
            return
        share = 100.0 * self.done / self.total
        elapsed = time.monotonic() - self.started
        eta = self.eta_seconds()
        eta_text = "done" if final else ("ETA ?" if eta is None else f"ETA {format_seconds(eta)}")
        line = f"{self.label}: {share:5.1f}% {format_seconds(elapsed)} elapsed, {eta_text}"
        if detail:
            line += f"  {detail}"
        if self._tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self, detail: str = "") -> None:
        self.done = self.total
        self._emit(detail, final=True)
