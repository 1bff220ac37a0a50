"""Parity: the reloaded SavedModel and ONNX Runtime on the same seeded random input."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .errors import CompileError
from .memory import return_freed_memory
from .lower import input_specs
from .runtimes import onnxruntime_logits

__all__ = ["PARITY_TOLERANCE", "Parity", "check_onnx_file", "graph_as_stored", "random_inputs",
           "verify"]

PARITY_TOLERANCE = 1e-4


@dataclass
class Parity:
    max_abs_diff: float
    max_abs_logit: float
    batch: int
    seed: int
    tolerance: float = PARITY_TOLERANCE
    tf_seconds: float = 0.0
    onnx_seconds: float = 0.0
    # the reloaded SavedModel's logits on the check's input (`random_inputs(net, batch,
    # seed)`): the deployment checks compare with them instead of running it again
    tf_logits: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_abs_diff)) and self.max_abs_diff <= self.tolerance

    def to_json(self) -> dict:
        return {"max_abs_diff": self.max_abs_diff, "max_abs_logit": self.max_abs_logit,
                "tolerance": self.tolerance, "ok": self.ok, "batch": self.batch,
                "seed": self.seed, "inputs": "uniform [0, 1)",
                "tf_seconds": round(self.tf_seconds, 3),
                "onnx_seconds": round(self.onnx_seconds, 3)}


def random_inputs(net, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded uniform [0, 1) inputs for every model input, by name."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in input_specs(net, batch).items():
        out[name] = rng.random(shape, dtype=np.float32)
    return out


def check_onnx_file(onnx_path: str) -> None:
    """ONNX's own checker on the written file (it reads the file itself: one copy of the
    weights in memory). Run after the Keras model is freed."""
    import onnx

    onnx.checker.check_model(onnx_path)


@contextlib.contextmanager
def graph_as_stored() -> Iterator[None]:
    """TensorFlow runs functions instantiated inside without its graph optimiser (grappler):
    the SavedModel's graph as it is stored. Grappler's rewrites are TensorFlow's own, not
    the artifact's, and on the quickstart model they cost 0.7 s at the first call and 0.3 s
    in the load, for one batch (the logits came out bit-identical)."""
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer",
                                                                False)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})


def verify(savedmodel_dir: str, onnx_path: str, net, batch: int | None = None,
           seed: int = 0, tolerance: float = PARITY_TOLERANCE) -> Parity:
    """ONNX's checker on the file, then ONNX Runtime and the reloaded SavedModel (its graph
    as stored: `graph_as_stored`) on the same input; compare the logits.

    A dynamic-batch model is checked with a batch of 2 (so the batch really is dynamic).
    """
    import onnxruntime as ort
    import tensorflow as tf

    check_onnx_file(onnx_path)
    n = batch or 2
    feeds = random_inputs(net, n, seed)
    t0 = time.perf_counter()
    # ONNX Runtime first: TensorFlow keeps part of what it frees, and that part sat under
    # ONNX Runtime's session peak (-O0 quickstart compile peak 1.19 -> 1.14 GB measured)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = onnxruntime_logits(session, feeds)  # not a view that keeps the session's memory
    del session  # one runtime's copy of the weights at a time, not both
    gc.collect()
    return_freed_memory()
    t1 = time.perf_counter()
    with graph_as_stored():
        loaded = tf.saved_model.load(savedmodel_dir)
        ref = loaded.signatures["serving_default"](
            **{k: tf.constant(v) for k, v in feeds.items()})["logits"].numpy()
    del loaded
    t2 = time.perf_counter()
    if got.shape != ref.shape:
        raise CompileError(f"ONNX logits have shape {got.shape}, the SavedModel's "
                           f"{ref.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64))))
    if not np.all(np.isfinite(ref)) or not np.all(np.isfinite(got)):
        diff = float("inf")
    return Parity(diff, float(np.max(np.abs(ref))), n, seed, tolerance, tf_seconds=t2 - t1,
                  onnx_seconds=t1 - t0, tf_logits=ref)
