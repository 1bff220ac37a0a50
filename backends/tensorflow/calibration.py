"""Clips for int8 calibration and for judging the int8 models, drawn from a dataset through
the project's own pipeline (`datasets.read_dataset`: any layout `asnc train` reads, detected;
`data.load_clip`: the evaluation crop and temporal sampling that training's validation uses,
values in [0, 1]).

With an official split (UCF101, HMDB51, Kinetics) the calibration clips come from the
split's training videos and the held-out clips from its test videos, so the int8 model is
judged on videos it was not calibrated on. A plain ``<class>/<video>`` folder has no split:
its videos are shuffled once with the seed, the first ``calibration`` that decode calibrate
and the next ones (up to ``held_out``) are held out. Accuracies are reported only when the
dataset has as many classes as the network (other classes still calibrate, but their labels
would mean nothing).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np

from .errors import CompileError

__all__ = ["ClipSet", "draw_clips", "DEFAULT_CALIBRATION_CLIPS", "DEFAULT_HELD_OUT_CLIPS"]

DEFAULT_CALIBRATION_CLIPS = 32
DEFAULT_HELD_OUT_CLIPS = 64


@dataclass
class ClipSet:
    """Calibration and held-out clips ``[n, T, H, W, 3]`` float32, with held-out labels."""

    calibration: np.ndarray
    held_out: np.ndarray
    held_out_labels: np.ndarray
    classes: list[str]
    labelled: bool  # the folder's classes are the network's (accuracy is meaningful)
    skipped: list[str]

    def to_json(self, root: str) -> dict:
        return {"folder": root, "calibration_clips": len(self.calibration),
                "held_out_clips": len(self.held_out), "classes": len(self.classes),
                "labelled": self.labelled, "undecodable_videos": len(self.skipped)}


def draw_clips(root: str, frames: int, size: tuple[int, int], classes: int,
               calibration: int = DEFAULT_CALIBRATION_CLIPS,
               held_out: int = DEFAULT_HELD_OUT_CLIPS, seed: int = 0) -> ClipSet:
    """Decode ``calibration`` + up to ``held_out`` clips from the dataset at ``root``.

    Raises CompileError when the folder cannot give the calibration clips and at least one
    held-out clip.
    """
    from ..datasets import DatasetLayoutError, read_dataset
    from .data import DecodeError, load_clip, shown_name

    if not os.path.isdir(root):
        raise CompileError(f"--calibrate: `{shown_name(root)}` is not a directory")
    try:
        ds = read_dataset(root)
    except DatasetLayoutError as exc:
        raise CompileError(f"--calibrate: {exc}") from None
    skipped: list[str] = []
    rng = random.Random(seed)
    if ds.official_split and ds.test:
        pools = [list(ds.train), list(ds.test)]
    else:
        pools = [list(ds.all_samples)]
    for pool in pools:
        rng.shuffle(pool)
    # one stream of candidates: calibration draws from the first pool, held-out clips from
    # the last (the same pool, continued, when there is no split)
    queue = iter(pools[0])
    clips: list[np.ndarray] = []
    labels: list[int] = []

    def take(count: int) -> None:
        while len(clips) < count:
            item = next(queue, None)
            if item is None:
                return
            path, label = item
            try:
                clips.append(load_clip(path, frames, tuple(size)))
            except (DecodeError, OSError, ValueError):
                skipped.append(shown_name(path))
                continue
            labels.append(label)

    take(calibration)
    if len(clips) == calibration and len(pools) > 1:
        queue = iter(pools[1])
    take(calibration + held_out)
    names = ds.classes
    if len(clips) < calibration + 1:
        where = f"{ds.layout} layout, {len(ds.all_samples)} videos"
        raise CompileError(f"--calibrate: `{shown_name(root)}` gave {len(clips)} decodable "
                           f"videos ({where}); {calibration} calibration clips and at least "
                           f"one held-out clip need {calibration + 1} (lower "
                           f"--calibrate-clips)")
    stacked = np.stack(clips).astype(np.float32)
    return ClipSet(stacked[:calibration], stacked[calibration:],
                   np.asarray(labels[calibration:], np.int64), names,
                   labelled=len(names) == classes, skipped=skipped)
