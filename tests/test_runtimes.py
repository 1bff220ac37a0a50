"""`runtimes.interleaved_times` / `interleaved_medians`, the benchmarks' timing loop
(TF-free): every runner warms up, then each round runs every runner once, each round
starting one runner later; and `paired_ratio`, the speed ratio with its interval."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from asn.backends.tensorflow.runtimes import interleaved_medians, paired_ratio


def test_rounds_interleave_and_rotate_the_runners_and_medians_are_per_runner(monkeypatch):
    calls: list[str] = []
    clock = itertools.count()  # each perf_counter() call advances one "second"

    def runner(name: str, cost: int):
        def run(feeds):
            assert feeds == {"video": 0}
            calls.append(name)
            for _ in range(cost - 1):  # a runner of cost c spans c clock ticks
                next(clock)
        return run

    import asn.backends.tensorflow.runtimes as runtimes

    monkeypatch.setattr(runtimes.time, "perf_counter", lambda: float(next(clock)))
    medians = interleaved_medians(
        {"a": runner("a", 2), "b": runner("b", 5), "c": runner("c", 3)}, {"video": 0},
        rounds=4, warmup=2)
    assert calls == ["a", "a", "b", "b", "c", "c",  # warm-up, then rounds a b c, b c a, ...
                     "a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert medians == {"a": 2.0, "b": 5.0, "c": 3.0}


def test_paired_ratio_of_rounds_that_slow_both_alike_is_exact():
    """Load that slows a whole round (x1 .. x3 here) leaves each round's ratio alone."""
    load = np.array([1.0, 3.0, 1.5, 2.0, 1.1, 2.7, 1.3])
    r = paired_ratio(2.0 * load, 1.0 * load)
    assert (r.median, r.low, r.high, r.rounds) == (2.0, 2.0, 2.0, 7)
    assert str(r) == "2.00x [2.00, 2.00]"


def test_paired_ratio_interval_holds_the_true_ratio_and_narrows_with_rounds():
    """Rounds of independent noise around a true ratio of 1.9 (the median of base/other's
    log-symmetric noise is 1.9): the 95% interval holds 1.9 in nearly all of 200 seeded
    experiments (a percentile bootstrap of the median runs a bit under its nominal
    coverage at these sizes), and is narrower with 4x the rounds."""
    rng = np.random.default_rng(1)

    def experiment(rounds):
        base = 1.9 * np.exp(rng.normal(0, 0.05, rounds))
        other = np.exp(rng.normal(0, 0.05, rounds))
        return paired_ratio(base, other, resamples=1000)

    small = [experiment(15) for _ in range(200)]
    held = sum(r.low <= 1.9 <= r.high for r in small) / len(small)
    assert 0.85 <= held <= 1.0, held
    assert all(r.low <= r.median <= r.high for r in small)
    large = [experiment(60) for _ in range(50)]
    width = np.median([r.high - r.low for r in small])
    assert np.median([r.high - r.low for r in large]) < 0.7 * width
    assert paired_ratio([1.0, 2.0], [1.0, 1.0], seed=3) == paired_ratio([1.0, 2.0],
                                                                         [1.0, 1.0], seed=3)


def test_paired_ratio_needs_paired_rounds():
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_ratio([], [])


def test_onnxruntime_logits_own_their_memory_not_the_sessions():
    """ONNX Runtime returns a view into its session's allocator (its base is a capsule that
    keeps that memory alive); the logits the parity check keeps must not hold it."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from asn.backends.tensorflow.runtimes import onnxruntime_logits

    weights = np.arange(12, dtype=np.float32).reshape(4, 3)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["video", "w"], ["logits"])], "g",
        [helper.make_tensor_value_info("video", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor("w", TensorProto.FLOAT, [4, 3], weights.ravel().tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    video = np.random.default_rng(0).random((2, 4), dtype=np.float32)
    logits = onnxruntime_logits(session, {"video": video})
    assert logits.flags["OWNDATA"] and logits.base is None
    del session
    np.testing.assert_allclose(logits, video @ weights, rtol=1e-6)
