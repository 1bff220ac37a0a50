"""Clips for int8 calibration and for judging the int8 models, drawn from a video folder
through the project's own pipeline (`data.discover`, `data.load_clip`: the evaluation crop
and temporal sampling that training's validation uses, values in [0, 1]).

The videos are shuffled once with the seed; the first ``calibration`` that decode are the
calibration clips, the next ones (up to ``held_out``) the held-out clips on which the int8
models are compared with fp32. Labels come from the class folders: they are reported as
accuracies only when the folder has as many classes as the network (a folder of other
classes still calibrates, but the labels would mean nothing).
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
    """Decode ``calibration`` + up to ``held_out`` clips from ``root/<class>/<video>``.

    Raises CompileError when the folder cannot give the calibration clips and at least one
    held-out clip.
    """
    from .data import DatasetError, DecodeError, discover, load_clip, shown_name

    if not os.path.isdir(root):
        raise CompileError(f"--calibrate: `{shown_name(root)}` is not a directory")
    skipped: list[str] = []
    try:
        names, samples = discover(root, skipped)
    except (DatasetError, OSError) as exc:
        raise CompileError(f"--calibrate: {exc}") from None
    order = list(samples)
    random.Random(seed).shuffle(order)
    clips: list[np.ndarray] = []
    labels: list[int] = []
    for path, label in order:
        if len(clips) >= calibration + held_out:
            break
        try:
            clips.append(load_clip(path, frames, tuple(size)))
        except (DecodeError, OSError, ValueError):
            skipped.append(shown_name(path))
            continue
        labels.append(label)
    if len(clips) < calibration + 1:
        raise CompileError(f"--calibrate: `{shown_name(root)}` gave {len(clips)} decodable "
                           f"videos (of {len(samples)} in <class>/<video> layout); "
                           f"{calibration} calibration clips and at least one held-out clip "
                           f"need {calibration + 1} (lower --calibrate-clips)")
    stacked = np.stack(clips).astype(np.float32)
    return ClipSet(stacked[:calibration], stacked[calibration:],
                   np.asarray(labels[calibration:], np.int64), names,
                   labelled=len(names) == classes, skipped=skipped)
