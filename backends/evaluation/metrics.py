"""Accuracy figures of averaged per-video scores: top-1, top-5, mean per-class accuracy,
the confusion matrix and the worst-confused pairs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EvalSummary", "summarise", "top_classes", "WORST_PAIRS"]

WORST_PAIRS = 10


def top_classes(scores: np.ndarray, k: int) -> list[int]:
    """The ``k`` best class indices of one score vector, best first, ties to the lower index."""
    s = np.asarray(scores)
    order = np.lexsort((np.arange(len(s)), -s))  # by score descending, then index
    return [int(i) for i in order[:k]]


@dataclass
class EvalSummary:
    videos: int
    top1: float
    top5: float
    mean_class_accuracy: float
    per_class: list[dict]  # {"class", "videos", "accuracy"} in label order
    confusion: list[list[int]]  # [true][predicted] video counts
    worst_pairs: list[dict]  # {"true", "predicted", "count", "rate"}, most confused first
    k5: int  # the k of "top-5" (fewer classes than 5: every class)

    def as_dict(self) -> dict:
        return {"videos": self.videos, "top1": self.top1, "top5": self.top5,
                "top5_k": self.k5, "mean_class_accuracy": self.mean_class_accuracy,
                "per_class": self.per_class, "worst_confused_pairs": self.worst_pairs,
                "confusion_matrix": self.confusion}


def summarise(scores: np.ndarray, labels: np.ndarray, classes: list[str],
              worst: int = WORST_PAIRS) -> EvalSummary:
    """Figures of ``scores`` ``[N, C]`` (one averaged score vector per video) against
    ``labels`` ``[N]``. Mean per-class accuracy averages the recall of the classes that have
    videos (UCF101's and HMDB51's "mean class accuracy")."""
    scores = np.asarray(scores)
    labels = np.asarray(labels, np.int64)
    n, c = len(labels), len(classes)
    if n == 0:
        raise ValueError("no videos were evaluated")
    if scores.shape != (n, c):
        raise ValueError(f"scores have shape {scores.shape}, expected {(n, c)}")
    k5 = min(5, c)
    tops = [top_classes(s, k5) for s in scores]
    pred = np.array([t[0] for t in tops], np.int64)
    hit5 = np.array([lab in t for lab, t in zip(labels, tops)])
    confusion = np.zeros((c, c), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    per_class = []
    recalls = []
    for i, name in enumerate(classes):
        count = int(confusion[i].sum())
        acc = float(confusion[i, i] / count) if count else None
        if acc is not None:
            recalls.append(acc)
        per_class.append({"class": name, "videos": count, "accuracy": acc})
    pairs = [(int(confusion[t, p]), t, p) for t in range(c) for p in range(c)
             if t != p and confusion[t, p] > 0]
    pairs.sort(key=lambda x: (-x[0], -x[0] / confusion[x[1]].sum(), x[1], x[2]))
    worst_pairs = [{"true": classes[t], "predicted": classes[p], "count": cnt,
                    "rate": cnt / int(confusion[t].sum())} for cnt, t, p in pairs[:worst]]
    return EvalSummary(n, float((pred == labels).mean()), float(hit5.mean()),
                       float(np.mean(recalls)), per_class, confusion.tolist(), worst_pairs, k5)
