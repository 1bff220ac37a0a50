"""The evaluation protocol of the video-classification literature, without TensorFlow.

`protocol`: which views of a video are scored (K clips evenly spaced in time x C crops along
the long side) and how their scores combine (softmax, averaged per video). `metrics`: top-1,
top-5, mean per-class accuracy, the confusion matrix and the worst-confused pairs.
"""

from .metrics import EvalSummary, summarise, top_classes
from .protocol import Protocol, average_softmax, clip_starts, crop_offsets

__all__ = ["Protocol", "clip_starts", "crop_offsets", "average_softmax", "summarise",
           "EvalSummary", "top_classes"]
