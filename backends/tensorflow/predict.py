"""`asnc predict`'s models: class scores of video files.

Two sources of logits, one interface (``frames``, ``size``, ``classes``, ``logits(clip)``):

* `KerasModel`: a network and trained weights, built as ``asnc compile`` builds it (the
  reference form; `compile.load_weights`, with its diagnostics);
* `OnnxModel`: the ``model.onnx`` of an ``asnc compile`` output, run in ONNX Runtime;
  frames and size from its ``report.json`` signature.

Clips are read by the training pipeline's evaluation path (`data.load_clip`: centred
frames, short side resized, centre crop, [0, 1]), so a video is seen as validation saw it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from ...compiler.passes import LoweringForm
from ...dsl.ir import Network
from . import data as D
from .errors import CompileError
from .outdir import ONNX_NAME, REPORT_NAME, SAVEDMODEL_DIR
from .runtimes import onnxruntime_logits

__all__ = ["KerasModel", "OnnxModel", "SavedModelModel", "PredictError", "read_clip", "top_k"]


class PredictError(ValueError):
    """The model cannot be loaded or a video cannot be read (the message says why)."""


def read_clip(path: str, frames: int, size: tuple[int, int]) -> np.ndarray:
    """float32 ``[T, H, W, 3]`` of the video at ``path``; PredictError when it cannot be
    decoded."""
    if not os.path.isfile(path):
        raise PredictError("no such video file")
    try:
        return D.load_clip(path, frames, size, training=False)
    except D.DecodeError as exc:
        raise PredictError(f"cannot decode the video ({exc})") from None


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def top_k(logits: np.ndarray, labels: list[str], k: int = 5) -> list[dict]:
    """The ``k`` most likely classes: ``{"index", "label", "score"}`` (softmax), best first;
    ties go to the lower index."""
    p = _softmax(logits)
    order = sorted(range(len(p)), key=lambda i: (-p[i], i))[:k]
    return [{"index": i, "label": labels[i], "score": float(p[i])} for i in order]


class KerasModel:
    """``net`` with the weights at ``weights``; raises PredictError (the mismatch)."""

    def __init__(self, net: Network, weights: str):
        from .compile import load_weights
        from .lower import lower

        h = net.header
        self.frames, self.size, self.classes = h.frames, tuple(h.size), h.classes
        self._model = lower(net, seed=0, form=LoweringForm.reference()).model
        try:
            load_weights(self._model, weights, net)
        except CompileError as exc:
            raise PredictError(str(exc)) from None
        import tensorflow as tf

        model = self._model

        # One traced graph (per batch size): run eagerly, the flow layer's many small ops
        # cost seconds a clip.
        @tf.function(reduce_retracing=True)
        def run(video):
            return model(video, training=False)["logits"]

        self._run = run

    def logits(self, clip: np.ndarray) -> np.ndarray:
        return self.logits_batch(clip[None])[0]

    def logits_batch(self, clips: np.ndarray) -> np.ndarray:
        """float32 ``[B, classes]`` logits of ``[B, T, H, W, 3]`` clips."""
        out = self._run(np.asarray(clips, np.float32))
        return np.asarray(out, np.float32)


@dataclass
class _Signature:
    frames: int
    size: tuple[int, int]
    classes: int
    batch: int | None


def _signature(out_dir: str) -> _Signature:
    try:
        with open(os.path.join(out_dir, REPORT_NAME)) as fh:
            report = json.load(fh)
        sig = report["signature"]
        b, t, h, w, _ = sig["inputs"]["video"]
        other = sorted(set(sig["inputs"]) - {"video"})
        classes = int(sig["outputs"]["logits"][1])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PredictError(f"cannot read its {REPORT_NAME} ({type(exc).__name__}: {exc})") \
            from None
    if other:
        raise PredictError(f"the model also takes `{other[0]}` (object stems); predict "
                           "reads only video")
    return _Signature(int(t), (int(h), int(w)), classes, b)


class OnnxModel:
    """The ``model.onnx`` of the ``asnc compile`` output ``out_dir``, in ONNX Runtime."""

    def __init__(self, out_dir: str):
        sig = _signature(out_dir)
        path = os.path.join(out_dir, ONNX_NAME)
        if not os.path.isfile(path):
            raise PredictError(f"no {ONNX_NAME} (compiled without the onnx format?)")
        import onnxruntime as ort

        self.frames, self.size, self.classes = sig.frames, sig.size, sig.classes
        self._batch = sig.batch
        self._session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def logits(self, clip: np.ndarray) -> np.ndarray:
        return self.logits_batch(clip[None])[0]

    def logits_batch(self, clips: np.ndarray) -> np.ndarray:
        """float32 ``[B, classes]`` logits of ``[B, T, H, W, 3]`` clips."""
        return _in_batches(clips, self._batch, lambda video: onnxruntime_logits(
            self._session, {"video": video}))


def _in_batches(clips: np.ndarray, fixed: int | None, run) -> np.ndarray:
    """``run`` over ``clips``; a fixed-batch export (`--batch N`) takes exactly N clips at a
    time: the last chunk is padded by repeating its last clip, the padding dropped after."""
    clips = np.asarray(clips, np.float32)
    if not fixed:
        return np.asarray(run(clips), np.float32)
    outs = []
    for i in range(0, len(clips), fixed):
        chunk = clips[i:i + fixed]
        pad = fixed - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
        outs.append(np.asarray(run(chunk), np.float32)[:fixed - pad])
    return np.concatenate(outs)


class SavedModelModel:
    """The ``saved_model/`` of the ``asnc compile`` output ``out_dir``, in TensorFlow (its
    ``serving_default`` signature)."""

    def __init__(self, out_dir: str):
        sig = _signature(out_dir)
        path = os.path.join(out_dir, SAVEDMODEL_DIR)
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise PredictError(f"no {SAVEDMODEL_DIR}/ (compiled without the savedmodel format?)")
        import tensorflow as tf

        self.frames, self.size, self.classes = sig.frames, sig.size, sig.classes
        self._batch = sig.batch
        self._loaded = tf.saved_model.load(path)  # kept alive: the signature needs it
        self._serve = self._loaded.signatures["serving_default"]
        self._tf = tf

    def logits(self, clip: np.ndarray) -> np.ndarray:
        return self.logits_batch(clip[None])[0]

    def logits_batch(self, clips: np.ndarray) -> np.ndarray:
        return _in_batches(clips, self._batch, lambda video: self._serve(
            video=self._tf.constant(video))["logits"].numpy())
