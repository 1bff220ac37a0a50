"""Multi-clip x multi-crop testing: the views of a video and how their scores combine.

* Clips: ``K`` starts evenly spaced over the frames a clip can start at, first and last
  included (``linspace(0, n - span, K)``, rounded), as the Model Garden's
  ``num_test_clips`` samples; ``K = 1`` is the centred clip that validation and
  ``asnc predict`` read. A video shorter than a clip repeats its last frame.
* Crops: the frames are resized so that the short side covers the input size (aspect
  kept), then ``C = 1`` takes the centre crop, ``C = 3`` three crops along the long side
  (start, centre, end), as the 3-crop test of the literature.
* Scores: every view's logits go through a softmax; the video's score is the mean of its
  views' softmax vectors (averaged probabilities, not logits). The prediction is the
  highest averaged score, ties to the lower class index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Protocol", "clip_starts", "crop_offsets", "average_softmax", "CROPS"]

CROPS = (1, 3)


@dataclass(frozen=True)
class Protocol:
    clips: int = 10
    crops: int = 3
    stride: int = 1  # frame stride within a clip

    def __post_init__(self) -> None:
        if self.clips < 1:
            raise ValueError(f"clips must be >= 1, got {self.clips}")
        if self.crops not in CROPS:
            raise ValueError(f"crops must be 1 (centre) or 3 (along the long side), got "
                             f"{self.crops}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")

    @property
    def views(self) -> int:
        return self.clips * self.crops

    def describe(self) -> str:
        clips = "1 centred clip" if self.clips == 1 else f"{self.clips} clips evenly spaced"
        crops = "1 centre crop" if self.crops == 1 else "3 crops along the long side"
        return f"{clips} x {crops} per video, softmax scores averaged"

    def as_dict(self) -> dict:
        return {"clips": self.clips, "crops": self.crops, "stride": self.stride,
                "views": self.views, "scores": "softmax averaged over the views",
                "description": self.describe()}


def clip_starts(n: int, frames: int, clips: int, stride: int = 1) -> list[int]:
    """First-frame indices of ``clips`` clips of ``frames`` frames at ``stride`` in a video of
    ``n`` frames: evenly spaced from 0 to the last valid start; one clip is centred."""
    if n < 1 or frames < 1 or clips < 1 or stride < 1:
        raise ValueError(f"need n, frames, clips, stride >= 1, got {n}, {frames}, {clips}, "
                         f"{stride}")
    slack = max(0, n - ((frames - 1) * stride + 1))
    if clips == 1:
        return [slack // 2]
    return [int(round(k * slack / (clips - 1))) for k in range(clips)]


def crop_offsets(h: int, w: int, size: tuple[int, int], crops: int) -> list[tuple[int, int]]:
    """``(y, x)`` top-left corners of the crops of an ``h x w`` frame (already resized to
    cover ``size``): the centre, or start, centre and end along the long side."""
    H, W = size
    if h < H or w < W:
        raise ValueError(f"frame {h}x{w} is smaller than the crop {H}x{W}")
    cy, cx = (h - H) // 2, (w - W) // 2
    if crops == 1:
        return [(cy, cx)]
    if crops != 3:
        raise ValueError(f"crops must be 1 or 3, got {crops}")
    if w - W >= h - H:  # the long side (relative to the crop) is the width
        return [(cy, 0), (cy, cx), (cy, w - W)]
    return [(0, cx), (cy, cx), (h - H, cx)]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable: the row maximum subtracted)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def average_softmax(view_logits: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``[V, C]`` logits of one video's views -> ``[C]`` averaged softmax scores; ``weights``
    (``[V]``, summing to 1): the share of the views each row stands for (a repeated view is
    scored once), else equal."""
    v = np.asarray(view_logits)
    if v.ndim != 2 or v.shape[0] < 1:
        raise ValueError(f"expected [views, classes] logits, got shape {v.shape}")
    p = softmax(v)
    if weights is None:
        return p.mean(axis=0)
    w = np.asarray(weights, np.float64)
    if w.shape != (v.shape[0],) or not np.isclose(w.sum(), 1.0):
        raise ValueError(f"weights must be [{v.shape[0]}] summing to 1, got {w}")
    return w @ p
