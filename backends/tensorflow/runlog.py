"""Per-epoch logs of a run, beside ``metrics.json``, where Keras users look for them:

* ``RUN/metrics.csv``: one row per epoch, columns `CSV_COLUMNS` (Keras ``CSVLogger``'s
  layout: an ``epoch`` column, then the metrics; epochs here count from 1 as in
  ``metrics.json``). Rewritten whole from the history each epoch, so a resumed run's file
  holds exactly the epochs of its checkpoint;
* ``RUN/tensorboard/train`` and ``RUN/tensorboard/validation``: ``tf.summary`` scalars with
  the tags of Keras' ``TensorBoard`` callback (``epoch_loss``, ``epoch_accuracy``,
  ``epoch_learning_rate``), step = epoch; the train side also has
  ``connections/<block>/<input>`` for every learnable connection weight.

Scalars are written with ``tf.summary.write`` and the scalar plugin's metadata (what
``tf.summary.scalar`` writes), so logging needs no ``tensorboard`` package; TensorBoard reads
the files as it reads its own.

After every epoch the run's pictures are redrawn from the history (`plots.draw_run`):
``RUN/curves.png``/``.svg`` and, for a search, the connection-weight trajectories and heat
map, so a run can be looked at while it trains (unless ``pictures`` is off: `asnc evolve`'s
trials).
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import tensorflow as tf

from ...dsl.outputs import write_file

__all__ = ["RunLog", "CSV_FILE", "TENSORBOARD_DIR", "CSV_COLUMNS"]

CSV_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
CSV_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
               "time_s")


_SCALAR = tf.compat.v1.SummaryMetadata(
    plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"))


def _scalar(tag: str, value: float, step: int) -> None:
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=_SCALAR)


class RunLog:
    """Writes the CSV and the TensorBoard events of one run (only where ``write``)."""

    def __init__(self, run: Path, write: bool, inputs: dict[str, list[str]],
                 order: list[str] | None = None, title: str = "", pictures: bool = True):
        self.run, self.write, self.pictures = run, write, pictures
        self.inputs = inputs  # block -> its input names, for the connection tags
        self.order, self.title = order, title  # node order and name, for the pictures
        self._writers: dict[str, tf.summary.SummaryWriter] = {}

    def _writer(self, side: str) -> tf.summary.SummaryWriter:
        if side not in self._writers:
            self._writers[side] = tf.summary.create_file_writer(
                str(self.run / TENSORBOARD_DIR / side))
        return self._writers[side]

    def epoch(self, entry: dict, history: list[dict]) -> None:
        """Log the epoch ``entry`` (a `history` item) and rewrite the CSV from ``history``."""
        if not self.write:
            return
        n = entry["epoch"]
        with self._writer("train").as_default():
            for key in ("loss", "accuracy", "learning_rate"):
                if key in entry:
                    _scalar(f"epoch_{key}", entry[key], n)
            for block, ws in entry.get("connections", {}).items():
                for name, w in zip(self.inputs.get(block, []), ws):
                    _scalar(f"connections/{block}/{name}", w, n)
        if "val_loss" in entry:
            with self._writer("validation").as_default():
                for key in ("loss", "accuracy"):
                    _scalar(f"epoch_{key}", entry[f"val_{key}"], n)
        for w in self._writers.values():
            w.flush()
        buf = io.StringIO()
        rows = csv.DictWriter(buf, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        rows.writeheader()
        for e in history:
            rows.writerow({k: e.get(k, "") for k in CSV_COLUMNS})
        write_file(str(self.run / CSV_FILE), buf.getvalue())
        if self.pictures:
            self.draw(history)

    def draw(self, history: list[dict]) -> list[str]:
        """Redraw the run's pictures; a picture that cannot be written is a warning (the run
        goes on; `asnc plot RUN` redraws them later)."""
        from ...dsl.diagnostics import DiagnosticError
        from ..plots import draw_run

        try:
            return draw_run(self.run, history, self.inputs, self.order, self.title)
        except DiagnosticError as exc:
            message = exc.diagnostics[0].message if exc.diagnostics else "write failed"
            warnings.warn(f"could not draw the run's pictures: {message}", RuntimeWarning,
                          stacklevel=2)
            return []

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()
