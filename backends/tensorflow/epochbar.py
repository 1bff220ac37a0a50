"""Progress of one training epoch: ``Epoch k/N`` as it starts, a live rich bar on a terminal
(steps, clips/s, ETA, running loss and accuracy), and one summary line as it ends (loss,
accuracy, validation, clips/s, seconds), flushed at once so CI logs show it as it happens.

``verbose``: 0 silent, 1 the live bar and the summary line, 2 the summary line only (what
a pipe or a log gets).
"""

from __future__ import annotations

import sys
import time

__all__ = ["EpochProgress", "summary_line"]


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
