"""Optimisation levels compared: what -O0, -O1 and -O2 export, and how fast it runs.

    .venv/bin/python benchmarks/opt_bench.py [FILE ...] [--frames 4] [--size 64 64]
        [--iterations N] [--runs 20] [--warmup 3] [--tf-threads N] [--levels 0 1 2]

For every example network by default (examples/*.asn), compiles it at each level exactly as
`asnc compile -O<level>` does (passes applied and proved; the TF vs ONNX Runtime check is
skipped: the benchmark only times), then prints per level, in one run:
  * ONNX node count, parameters and FLOPs (FLOPs of the network as `asnc stats -O` counts
    them: convolutions and dense layers);
  * ONNX Runtime latency: batch 1, median of `--runs` timed runs after `--warmup`, CPU
    provider with its default graph optimisations, default threads and one thread; the
    levels take turns run by run, so a slow spell of the machine falls on all of them;
  * TF SavedModel latency: the same input, its `serving_default` signature;
and each as a ratio to -O0 (speed-up: -O0 latency / this level's latency).
ONNX Runtime is timed twice: with its default threading (one thread per core) and with one
thread; `--tf-threads` sets TensorFlow's intra-op threads (default: its own). The goal of
issue 6: -O1 at least 1.3x faster than -O0 in ONNX Runtime, -O2 faster still.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent


def build(net, level: int, out: Path) -> dict:
    """Compile at ``level`` as `asnc compile -O<level>` does; static figures and timing."""
    import onnx

    from asn.backends.tensorflow.compile import CompileOptions, compile_network
    from asn.backends.tensorflow.parity import random_inputs
    from asn.compiler.passes import optimise

    o = optimise(net, level=level)
    t0 = time.perf_counter()
    compile_network(net, str(out), CompileOptions(verify=False), o)
    compile_s = time.perf_counter() - t0
    stats = o.stats()
    nodes = len(onnx.load(str(out / "model.onnx")).graph.node)
    feeds = random_inputs(o.network if o else net, 1, 0)
    return {"nodes": nodes, "params": stats.total, "flops": stats.flops,
            "compile_s": compile_s, "out": out, "feeds": feeds}


def interleaved(runners: dict, runs: int, warmup: int) -> dict:
    """Median ms of each runner, the levels taking turns run by run, so that a slow spell of
    the machine lands on every level alike."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in runners}
    for _ in range(runs):
        for k, fn in runners.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def latencies(rows: dict, args) -> None:
    """ORT (default threads, one thread) and TF SavedModel latency of every level, in place."""
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    for key, threads in (("ort_ms", 0), ("ort1_ms", 1)):
        sessions = {}
        for level, r in rows.items():
            so = ort.SessionOptions()
            if threads:
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
            sessions[level] = ort.InferenceSession(str(r["out"] / "model.onnx"), so,
                                                   providers=["CPUExecutionProvider"])
        runners = {lv: (lambda s=s, f=rows[lv]["feeds"]: s.run(["logits"], f))
                   for lv, s in sessions.items()}
        for lv, ms in interleaved(runners, args.runs, args.warmup).items():
            rows[lv][key] = ms
        del sessions, runners
        gc.collect()
    sigs, keep = {}, []
    for level, r in rows.items():
        loaded = tf.saved_model.load(str(r["out"] / "saved_model"))
        keep.append(loaded)
        sig = loaded.signatures["serving_default"]
        feeds = {k: tf.constant(v) for k, v in r["feeds"].items()}
        sigs[level] = (lambda sig=sig, feeds=feeds: np.asarray(sig(**feeds)["logits"]))
    for lv, ms in interleaved(sigs, args.runs, args.warmup).items():
        rows[lv]["tf_ms"] = ms
    del sigs, keep
    gc.collect()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--size", type=int, nargs=2, default=(64, 64))
    ap.add_argument("--iterations", type=int, default=None,
                    help="Representation Flow iterations (default: each network's own)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--tf-threads", type=int, default=0,
                    help="TensorFlow intra-op threads (0: its default)")
    ap.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    files = args.files or sorted(str(p) for p in (ROOT / "examples").glob("*.asn"))
    if 0 not in args.levels:
        args.levels = [0] + args.levels  # ratios are to -O0

    import tensorflow as tf

    if args.tf_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.tf_threads)
    from asn.cli.common import load_checked

    print(f"# opt_bench: {args.frames} frames at {args.size[0]}x{args.size[1]}, batch 1, "
          f"median of {args.runs} runs, {os.cpu_count()} CPUs; ORT: default threads, "
          f"ORT1: one thread; TF: {args.tf_threads or 'default'} threads")
    header = (f"{'network':<24}{'-O':>3}{'ONNX nodes':>11}{'params':>12}{'GFLOPs':>8}"
              f"{'ORT ms':>9}{'ORT x':>7}{'ORT1 ms':>9}{'ORT1 x':>7}{'TF ms':>9}{'TF x':>7}"
              f"{'nodes x':>9}{'params x':>9}{'compile s':>10}")
    print(header)
    summary = []
    with tempfile.TemporaryDirectory(prefix="asnc-optbench-") as tmp:
        for f in files:
            net, _ = load_checked(f, args.frames, tuple(args.size), None, warnings=False)
            if args.iterations is not None:
                hdr = type(net.header).model_validate(
                    {**net.header.model_dump(), "flow_iterations": args.iterations})
                net = net.model_copy(update={"header": hdr})
            rows = {level: build(net, level, Path(tmp) / f"{Path(f).stem}-O{level}")
                    for level in sorted(set(args.levels))}
            latencies(rows, args)
            base = rows[0]
            for level, r in rows.items():
                print(f"{net.header.name:<24}{level:>3}{r['nodes']:>11,}{r['params']:>12,}"
                      f"{r['flops'] / 1e9:>8.2f}{r['ort_ms']:>9.1f}"
                      f"{base['ort_ms'] / r['ort_ms']:>7.2f}{r['ort1_ms']:>9.1f}"
                      f"{base['ort1_ms'] / r['ort1_ms']:>7.2f}{r['tf_ms']:>9.1f}"
                      f"{base['tf_ms'] / r['tf_ms']:>7.2f}{r['nodes'] / base['nodes']:>9.2f}"
                      f"{r['params'] / base['params']:>9.3f}{r['compile_s']:>10.1f}",
                      flush=True)
                shutil.rmtree(r["out"], ignore_errors=True)
            summary.append((net.header.name, rows))
    print()
    print("ONNX Runtime speed-up over -O0, default threads / one thread "
          "(goal: -O1 >= 1.3x, -O2 >= -O1):")
    for name, rows in summary:
        parts = [f"-O{lv} {rows[0]['ort_ms'] / rows[lv]['ort_ms']:.2f}x / "
                 f"{rows[0]['ort1_ms'] / rows[lv]['ort1_ms']:.2f}x" for lv in sorted(rows) if lv]
        ok = 1 in rows and rows[0]["ort_ms"] / rows[1]["ort_ms"] >= 1.3
        ok1 = 1 in rows and rows[0]["ort1_ms"] / rows[1]["ort1_ms"] >= 1.3
        print(f"  {name:<24}{'  '.join(parts)}  -O1 goal: {'met' if ok else 'MISSED'} / "
              f"{'met' if ok1 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
