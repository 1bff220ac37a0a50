"""`runtimes.interleaved_medians`, the benchmarks' timing loop (TF-free): every runner warms
up, then each round runs every runner once in turn, and the result is each runner's median."""

from __future__ import annotations

import itertools

from asn.backends.tensorflow.runtimes import interleaved_medians


def test_rounds_interleave_the_runners_and_medians_are_per_runner(monkeypatch):
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
    medians = interleaved_medians({"a": runner("a", 2), "b": runner("b", 5)}, {"video": 0},
                                  rounds=3, warmup=2)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3  # warm-up, then interleaved
    assert medians == {"a": 2.0, "b": 5.0}
