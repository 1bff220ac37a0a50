"""Progress of one training epoch: ``Epoch k/N`` as it starts, a live rich bar on a terminal
(steps, clips/s, ETA, running loss and accuracy), and one summary line as it ends (loss,
accuracy, validation, clips/s, seconds), flushed at once so CI logs show it as it happens.

``verbose``: 0 silent, 1 the live bar and the summary line, 2 the summary line only (what
a pipe or a log gets).

`PassProgress`: a pass over videos (`asnc eval`, the final evaluation of a run): a live bar
with videos/s and ETA on a terminal, elsewhere a line every 10% or 30 s.
"""

from __future__ import annotations

import sys
import time

__all__ = ["EpochProgress", "PassProgress", "summary_line", "duration"]


def summary_line(epoch: int, epochs: int, logs: dict, clips_per_s: float, seconds: float
                 ) -> str:
    parts = [f"{k} {logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy")
             if k in logs]
    return (f"Epoch {epoch}/{epochs}: " + " - ".join(parts) +
            f" - {clips_per_s:.1f} clips/s - {seconds:.1f} s")


class EpochProgress:
    def __init__(self, epoch: int, epochs: int, steps: int, batch: int, verbose: int):
        self.epoch, self.epochs, self.steps, self.batch = epoch, epochs, steps, batch
        self.verbose = verbose
        self._bar = None
        self._t0 = time.time()

    def __enter__(self) -> "EpochProgress":
        if self.verbose:
            print(f"Epoch {self.epoch}/{self.epochs}", flush=True)
        if self.verbose == 1 and sys.stdout.isatty():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            self._bar = Progress(BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TextColumn("ETA"),
                                 TimeRemainingColumn(), TextColumn("{task.fields[logs]}"),
                                 console=Console(highlight=False, markup=False, emoji=False),
                                 transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task("train", total=self.steps, rate="", logs="")
        self._t0 = time.time()
        return self

    def update(self, step: int, logs: dict) -> None:
        """After ``step`` (1-based) training steps."""
        if self._bar is None:
            return
        seconds = max(time.time() - self._t0, 1e-9)
        self._bar.update(self._task, completed=step,
                         rate=f"{step * self.batch / seconds:.1f} clips/s",
                         logs=f"loss {logs['loss']:.4f} - accuracy {logs['accuracy']:.4f}")

    def train_done(self) -> float:
        """Seconds the training steps took (the rate's denominator); closes the bar."""
        seconds = time.time() - self._t0
        self.close()
        return seconds

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def __exit__(self, *exc) -> None:
        self.close()

    def end(self, logs: dict, train_seconds: float, seconds: float) -> None:
        if self.verbose:
            rate = self.steps * self.batch / max(train_seconds, 1e-9)
            print(summary_line(self.epoch, self.epochs, logs, rate, seconds), flush=True)


def duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class PassProgress:
    """Use as a context manager; call it as an `evaluate.Progress` callback. ``console``: a
    rich Console (default: one on stdout); its file decides whether the bar is live."""

    def __init__(self, label: str, total: int, enabled: bool = True, console=None):
        from rich.console import Console

        self.label, self.total, self.enabled = label, total, enabled
        self.console = console or Console(highlight=False, markup=False, emoji=False)
        self._bar = None
        self._last_line = 0.0
        self._last_done = 0

    def __enter__(self) -> "PassProgress":
        if self.enabled and self.console.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                 TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self.console, transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total, rate="")
        elif self.enabled:
            self.console.print(f"{self.label}: {self.total} videos ...")
            self.console.file.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def __call__(self, done: int, total: int, skipped: int, seconds: float) -> None:
        if not self.enabled:
            return
        rate = done / seconds if seconds > 0 else 0.0
        extra = f", {skipped} skipped" if skipped else ""
        if self._bar is not None:
            self._bar.update(self._task, completed=done, rate=f"{rate:.1f} videos/s{extra}")
            return
        now = time.monotonic()
        step = max(1, total // 10)
        if done == total or done - self._last_done >= step or now - self._last_line >= 30:
            eta = (total - done) / rate if rate > 0 else 0.0
            self.console.print(f"{self.label}: {done}/{total} videos ({rate:.1f} videos/s, "
                               f"ETA {duration(eta)}{extra})")
            self.console.file.flush()
            self._last_line, self._last_done = now, done
