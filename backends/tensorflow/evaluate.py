"""`asnc eval` and the final evaluation of `asnc train`/`search`: a model over every video
of a split under the multi-clip x multi-crop protocol (`evaluation.protocol`).

A model is anything with ``frames``, ``size``, ``classes`` and ``logits_batch(clips)``
(`predict.KerasModel`, `OnnxModel`, `SavedModelModel`, or `KerasLogits` around a model in
memory). Each video is decoded once (PyAV, every frame: the container's count is not
trusted), its ``K`` clips are converted and resized in one swscale pass per clip as the
training pipeline does (`data._to_rgb`), cropped ``C`` times, and the distinct views of the
``K x C`` run as one batch (a repeated view, e.g. the three crops of a square video, runs once
and counts as often as it occurs). Decoding runs in a few threads ahead of the model. A video
that cannot be decoded is skipped and counted (`data.DecodeStats`), as in training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..evaluation.metrics import EvalSummary, summarise, top_classes
from ..evaluation.protocol import Protocol, average_softmax, clip_starts, crop_offsets
from . import data as D

__all__ = ["video_views", "evaluate", "EvalRun", "KerasLogits", "Progress"]

# (videos done, videos in all, skipped so far, seconds since the start)
Progress = Callable[[int, int, int, float], None]


def video_views(path: str, frames: int, size: tuple[int, int], protocol: Protocol
                ) -> np.ndarray:
    """float32 ``[clips * crops, T, H, W, 3]`` views of one video (clip-major); raises
    `data.DecodeError`. With 1 clip and 1 crop this is `data.load_clip` in evaluation."""
    views, weights = distinct_views(path, frames, size, protocol)
    counts = np.rint(weights * protocol.views).astype(int)
    return np.repeat(views, counts, axis=0)


def distinct_views(path: str, frames: int, size: tuple[int, int], protocol: Protocol
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The distinct views of one video and the share of the ``clips x crops`` views each
    stands for: ``(float32 [V, T, H, W, 3], float64 [V])``, clip-major order.

    A video shorter than ``clips`` distinct starts, or whose resized frame is the crop size
    (a square video: its three crops are one), has repeated views; each is scored once and
    weighted by how often it occurs, so the average is exactly the protocol's over all
    ``clips x crops`` views. Raises `data.DecodeError`."""
    decoded = D._decode_frames(str(path))
    n = len(decoded)
    views: list[np.ndarray] = []
    index: dict[tuple[int, int, int], int] = {}
    counts: list[int] = []
    for start in clip_starts(n, frames, protocol.clips, protocol.stride):
        idx = D.clip_indices(n, frames, protocol.stride, offset=start)
        rgb = None
        for y, x in crop_offsets(*D.cover_size(decoded[0].height, decoded[0].width, size),
                                 size, protocol.crops):
            key = (start, y, x)
            if key in index:
                counts[index[key]] += 1
                continue
            if rgb is None:
                rgb = D._to_rgb([decoded[i] for i in idx], size)
            index[key] = len(views)
            counts.append(1)
            views.append(D.normalize(rgb[:, y:y + size[0], x:x + size[1]]))
    return np.stack(views), np.asarray(counts, np.float64) / protocol.views


class KerasLogits:
    """A model of `lower.build_model` (outputs ``{"logits", ...}``) as an evaluation model."""

    def __init__(self, model, frames: int, size: tuple[int, int], classes: int,
                 batch: int = 32):
        import tensorflow as tf

        self.frames, self.size, self.classes, self.batch = frames, tuple(size), classes, batch

        @tf.function(reduce_retracing=True)
        def run(video):
            return tf.cast(model(video, training=False)["logits"], tf.float32)

        self._run = run

    def logits_batch(self, clips: np.ndarray) -> np.ndarray:
        outs = [self._run(clips[i:i + self.batch]).numpy()
                for i in range(0, len(clips), self.batch)]
        return np.concatenate(outs).astype(np.float32)


@dataclass
class EvalRun:
    """What one evaluation measured: the figures and every video's averaged scores."""

    protocol: Protocol
    classes: list[str]
    summary: EvalSummary
    paths: list[str]
    labels: np.ndarray  # [N] true labels of the evaluated videos
    scores: np.ndarray  # [N, C] averaged softmax scores
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it was skipped
    seconds: float = 0.0

    def predictions(self, k: int = 5) -> list[dict]:
        out = []
        for path, label, s in zip(self.paths, self.labels, self.scores):
            top = top_classes(s, min(k, len(self.classes)))
            out.append({"video": path, "label": int(label), "class": self.classes[int(label)],
                        "predicted": top[0], "predicted_class": self.classes[top[0]],
                        "correct": top[0] == int(label),
                        "top5": [{"index": i, "label": self.classes[i], "score": float(s[i])}
                                 for i in top]})
        return out

    def as_dict(self, predictions: bool = True) -> dict:
        d = {"protocol": self.protocol.as_dict(), "classes": self.classes,
             **self.summary.as_dict(), "skipped_videos": len(self.skipped),
             "skipped": [{"video": p, "error": e} for p, e in sorted(self.skipped.items())],
             "seconds": round(self.seconds, 3),
             "videos_per_second": round(self.summary.videos / self.seconds, 3)
             if self.seconds > 0 else None}
        if predictions:
            d["predictions"] = self.predictions()
        return d


def evaluate(model, samples: Sequence[tuple[str, int]], classes: list[str],
             protocol: Protocol, progress: Progress | None = None, workers: int = 2,
             stats: D.DecodeStats | None = None) -> EvalRun:
    """Score every video of ``samples`` (``(path, label)``) with ``model``; raises ValueError
    when no video could be read."""
    size = (int(model.size[0]), int(model.size[1]))
    stats = stats if stats is not None else D.DecodeStats()
    total = len(samples)
    t0 = time.time()

    def load(sample):
        path = sample[0]
        try:
            return distinct_views(path, model.frames, size, protocol)
        except D.DecodeError as exc:
            stats.record(path, exc)
            return None

    paths, labels, scores = [], [], []
    done = 0
    with ThreadPoolExecutor(max(1, workers)) as pool:
        lookahead = max(2, 2 * workers)
        pending: list[Future | None] = [pool.submit(load, s) for s in samples[:lookahead]]
        nxt = len(pending)
        for i, sample in enumerate(samples):
            future = pending[i]
            assert future is not None
            loaded = future.result()
            pending[i] = None  # free the decoded video
            if nxt < total:
                pending.append(pool.submit(load, samples[nxt]))
                nxt += 1
            if loaded is not None:
                views, weights = loaded
                scores.append(average_softmax(model.logits_batch(views), weights))
                paths.append(sample[0])
                labels.append(int(sample[1]))
            done += 1
            if progress is not None:
                progress(done, total, stats.skipped, time.time() - t0)
    if not scores:
        raise ValueError(f"none of the {total} videos could be decoded")
    score_arr, label_arr = np.stack(scores), np.array(labels, np.int64)
    summary = summarise(score_arr, label_arr, classes)
    return EvalRun(protocol, list(classes), summary, paths, label_arr, score_arr,
                   dict(stats.errors), time.time() - t0)
