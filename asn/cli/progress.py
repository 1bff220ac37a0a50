"""Progress of a long pass over videos on stderr: a live rich bar (count, videos/s, ETA) on a
terminal; elsewhere (CI logs, pipes) a plain line every 10% or 30 s, flushed at once."""

from __future__ import annotations

import sys
import time

from .common import err_console

__all__ = ["VideoProgress", "duration"]


def duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class VideoProgress:
    """Use as a context manager; call it as an `evaluate.Progress` callback."""

    def __init__(self, label: str, total: int, enabled: bool = True):
        self.label, self.total, self.enabled = label, total, enabled
        self._bar = None
        self._last_line = 0.0
        self._last_done = 0

    def __enter__(self) -> "VideoProgress":
        if self.enabled and sys.stderr.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                 TextColumn("ETA"), TimeRemainingColumn(),
                                 console=err_console, transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total, rate="")
        elif self.enabled:
            err_console.print(f"{self.label}: {self.total} videos ...")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def __call__(self, done: int, total: int, skipped: int, seconds: float) -> None:
        if not self.enabled:
            return
        rate = done / seconds if seconds > 0 else 0.0
        if self._bar is not None:
            extra = f", {skipped} skipped" if skipped else ""
            self._bar.update(self._task, completed=done, rate=f"{rate:.1f} videos/s{extra}")
            return
        now = time.monotonic()
        step = max(1, total // 10)
        if done == total or done - self._last_done >= step or now - self._last_line >= 30:
            eta = (total - done) / rate if rate > 0 else 0.0
            extra = f", {skipped} skipped" if skipped else ""
            err_console.print(f"{self.label}: {done}/{total} videos ({rate:.1f} videos/s, "
                              f"ETA {duration(eta)}{extra})")
            sys.stderr.flush()
            self._last_line, self._last_done = now, done
