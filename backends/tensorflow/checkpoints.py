"""Resumable checkpoints of a run: ``tf.train.Checkpoint`` (model, optimizer, epoch) kept by a
``tf.train.CheckpointManager`` in ``RUN/checkpoints/`` (``ckpt-<epoch>.index``/``.data-*``
and the manager's ``checkpoint`` file; the last `KEEP` epochs), plus ``history.json``.

Objects are matched by their place in the object graph (model layers, optimizer slots), not
by variable names or shapes, so the optimizer state restores exactly. Before the manager,
a run saved ``epoch-NNN.weights.h5`` + ``epoch-NNN.optimizer.npz`` and ``last.json``:
`old_format` recognises such a directory, which `--resume` cannot continue.

In a multi-worker run every worker saves (saving may run collectives), the others into a
temporary directory that is removed again (the tf.distribute guide's recipe).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from ...dsl.outputs import write_file

__all__ = ["CHECKPOINTS", "KEEP", "RunCheckpoint", "latest", "old_format", "remove_ours"]

CHECKPOINTS = "checkpoints"
KEEP = 2
_PREFIX = "ckpt"
_EPOCH_KEY = "epoch/.ATTRIBUTES/VARIABLE_VALUE"
# What a run writes into CHECKPOINTS (both formats, and temporaries): what --overwrite removes.
_OURS = re.compile(r"^(checkpoint|ckpt-\d+\.(index|data-\d+-of-\d+)|\.?history\.json.*"
                   r"|\.?epoch-\d+(\.tmp)?\.(weights\.h5|optimizer(\.tmp)?\.npz)|last\.json)$")


def latest(run: Path) -> dict | None:
    """``{"epoch", "path", "history"}`` of the newest checkpoint in ``run``, or None."""
    directory = run / CHECKPOINTS
    path = tf.train.latest_checkpoint(str(directory)) if directory.is_dir() else None
    if path is None:
        return None
    epoch = int(tf.train.load_checkpoint(path).get_tensor(_EPOCH_KEY))
    history_file = directory / "history.json"
    history = []
    if history_file.exists():
        from ...dsl.textio import read_text  # bounded: the run directory is the user's too

        history = json.loads(read_text(str(history_file)))
    return {"epoch": epoch, "path": path, "history": history[:epoch]}


def old_format(run: Path) -> bool:
    """Whether ``run`` holds checkpoints of the format before `tf.train.Checkpoint`."""
    directory = run / CHECKPOINTS
    return directory.is_dir() and ((directory / "last.json").exists()
                                   or any(directory.glob("epoch-*.optimizer.npz")))


def remove_ours(run: Path) -> None:
    """Remove the files a run wrote into its checkpoints (never a user's file or folder)."""
    directory = run / CHECKPOINTS
    if not directory.is_dir():
        return
    for p in directory.iterdir():
        if _OURS.match(p.name) and p.is_file() and not p.is_symlink():
            p.unlink()


class RunCheckpoint:
    """The checkpoint of one run: ``save(epoch, history)`` after each epoch, ``restore``."""

    def __init__(self, run: Path, model, optimizer, write: bool):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=self.epoch)
        self.write = write
        self.dir = run / CHECKPOINTS
        self._scratch = None if write else tempfile.mkdtemp(prefix="asnc-worker-ckpt-")
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.dir) if write else self._scratch, max_to_keep=KEEP,
            checkpoint_name=_PREFIX)

    def restore(self, path: str) -> int:
        """Restore model, optimizer and epoch from ``path``; the epoch it had reached."""
        self.checkpoint.restore(path).assert_existing_objects_matched()
        return int(self.epoch.numpy())

    def save(self, epoch: int, history: list[dict]) -> None:
        """Save after epoch ``epoch``; the history first, so a checkpoint never lacks it."""
        self.epoch.assign(epoch)
        if self.write:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_file(str(self.dir / "history.json"), json.dumps(history, indent=1) + "\n")
        self.manager.save(checkpoint_number=epoch)

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
