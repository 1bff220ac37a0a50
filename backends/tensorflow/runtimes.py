"""The deployment runtimes behind one call shape: ``run(feeds) -> logits``.

ONNX Runtime (fp32 and QDQ int8 ONNX), OpenVINO (the same ONNX files; it executes QDQ
models in int8), LiteRT (TFLite files) and the SavedModel in TensorFlow. Each loader takes
a path and returns a callable; `median_seconds` times any of them the same way,
`interleaved_times` / `interleaved_medians` several side by side (the benchmarks), and
`paired_ratio` says how sure a speed ratio between two of them is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np

__all__ = ["Runner", "onnxruntime_logits", "onnxruntime_runner", "openvino_config",
           "openvino_runner", "litert_runner", "savedmodel_runner", "median_seconds",
           "interleaved_times", "interleaved_medians", "Ratio", "paired_ratio",
           "logits_on_clips"]

Runner = Callable[[dict], np.ndarray]
K = TypeVar("K")


def onnxruntime_logits(session, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    """The session's ``logits`` for ``feeds``, as an array of their own. The array ONNX
    Runtime returns is a view of memory its session's allocator owns, and it keeps that whole
    arena alive after the session is gone: measured on AssembleNet-50 at 8x224x224, batch
    2, 0.25 GB stayed resident under the parity check's TensorFlow half until the logits
    were freed (the compile's peak 1.66 GB)."""
    return np.array(session.run(["logits"], dict(feeds))[0], copy=True)


def onnxruntime_runner(path: str, threads: int | None = None) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda feeds: onnxruntime_logits(session, feeds)


def openvino_config(threads: int | None = None) -> dict:
    """The CPU plugin's settings for every OpenVINO run here: f32 (no bf16/f16 hint: the
    logits must be comparable with the other runtimes'), latency mode, ``threads``."""
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    return config


def openvino_runner(path: str, threads: int | None = None, static: bool = True) -> Runner:
    """The ONNX file compiled for OpenVINO's CPU plugin (`openvino_config`). ``static``: for the
    shape of the feeds it is given: it reshapes its own copy of the model to them and
    compiles again when they change (one compiled model kept). OpenVINO documents static
    shapes as its fast path: only with them does its CPU plugin fuse chains of elementwise
    ops into one kernel and settle layouts at compile time. Measured on AssembleNet-50 at
    batch 1, 4x64x64, one thread, 30 interleaved rounds: 1.17x faster than the same file
    compiled with its dynamic batch (``static=False``) in fp32, 1.23x in int8; ONNX
    Runtime gained nothing from a fixed batch (1.00x)."""
    import openvino as ov

    config = openvino_config(threads)
    core = ov.Core()
    model = core.read_model(path)
    compiled: dict[tuple, tuple] = {}  # shapes -> (request, logits output): one entry

    def run(feeds: dict) -> np.ndarray:
        shapes = (tuple(sorted((name, np.shape(value)) for name, value in feeds.items()))
                  if static else ())
        if shapes not in compiled:
            compiled.clear()  # free the last compiled model before building the next
            fixed = model.clone()
            if shapes:
                fixed.reshape({name: list(shape) for name, shape in shapes})
            built = core.compile_model(fixed, "CPU", config)
            compiled[shapes] = (built.create_infer_request(), built.output("logits"))
        request, logits = compiled[shapes]
        return np.asarray(request.infer(feeds)[logits])
    return run


def litert_runner(path: str, threads: int | None = None) -> Runner:
    """A TFLite file in the LiteRT interpreter (`ai-edge-litert`: `tf.lite.Interpreter` is
    deprecated in its favour), through the `serving_default` signature; the batch of the
    feeds sets the input shape."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)
    runner = interpreter.get_signature_runner("serving_default")
    return lambda feeds: np.asarray(runner(**feeds)["logits"])


def savedmodel_runner(path: str) -> Runner:
    import tensorflow as tf

    fn = tf.saved_model.load(path).signatures["serving_default"]
    return lambda feeds: fn(**{k: tf.constant(v) for k, v in feeds.items()})["logits"].numpy()


def median_seconds(run: Runner, feeds: dict, repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        run(feeds)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(feeds)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def interleaved_times(runners: Mapping[K, Runner], feeds: dict, rounds: int,
                      warmup: int = 2) -> dict[K, list[float]]:
    """Seconds of each runner in each of ``rounds`` rounds. Each round runs every runner
    once in turn, so load from other processes falls on all of them alike and their ratios
    hold on a shared machine where absolute times do not; each round starts one runner
    later than the one before, so no runner always runs first or after the same other."""
    for run in runners.values():
        for _ in range(warmup):
            run(feeds)
    keys = list(runners)
    times: dict[K, list[float]] = {key: [] for key in keys}
    for r in range(rounds):
        start = r % len(keys) if keys else 0
        for key in keys[start:] + keys[:start]:
            t = time.perf_counter()
            runners[key](feeds)
            times[key].append(time.perf_counter() - t)
    return times


def interleaved_medians(runners: Mapping[K, Runner], feeds: dict, rounds: int,
                        warmup: int = 2) -> dict[K, float]:
    """Median seconds of each runner over `interleaved_times`' rounds."""
    return {key: float(np.median(v))
            for key, v in interleaved_times(runners, feeds, rounds, warmup).items()}


@dataclass(frozen=True)
class Ratio:
    """A speed ratio: the median over rounds of each round's ratio, and a bootstrap
    interval for it at the stated confidence."""

    median: float
    low: float
    high: float
    rounds: int
    confidence: float

    def __str__(self) -> str:
        return f"{self.median:.2f}x [{self.low:.2f}, {self.high:.2f}]"


def paired_ratio(base: Sequence[float], other: Sequence[float], confidence: float = 0.95,
                 resamples: int = 4000, seed: int = 0) -> Ratio:
    """How many times faster ``other`` ran than ``base``, round by round (the two ran in the
    same round of `interleaved_times`: a busy moment slows both), with a percentile
    bootstrap interval of the median over rounds. Seeded: the same times give the same
    interval. Written with numpy: one statistic does not justify scipy as a dependency."""
    if len(base) != len(other) or not len(base):
        raise ValueError(f"paired_ratio needs two equal, non-empty series, got {len(base)} "
                         f"and {len(other)} rounds")
    ratios = np.asarray(base, np.float64) / np.asarray(other, np.float64)
    picks = np.random.default_rng(seed).integers(0, len(ratios), (resamples, len(ratios)))
    medians = np.median(ratios[picks], axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(medians, [tail, 1 - tail])
    return Ratio(float(np.median(ratios)), float(low), float(high), len(ratios), confidence)


def logits_on_clips(run: Runner, clips: np.ndarray, batch: int | None = None) -> np.ndarray:
    """Logits of every clip ``[n, T, H, W, 3]``, fed ``batch`` at a time (the model's fixed
    batch; None: one at a time), the last batch padded with its own last clip."""
    step = batch or 1
    out = []
    for i in range(0, len(clips), step):
        chunk = clips[i:i + step]
        if len(chunk) < step:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - len(chunk), 0)])
        out.append(run({"video": np.ascontiguousarray(chunk)})[:len(clips) - i])
    return np.concatenate(out).astype(np.float64)
