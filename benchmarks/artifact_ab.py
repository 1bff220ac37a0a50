"""Two or more compile outputs' artifacts side by side, in one interleaved run.

    .venv/bin/python benchmarks/artifact_ab.py OUT_A OUT_B [...] [--rounds 25] [--threads 1]

For each output directory of `asnc compile`: the SavedModel in TensorFlow and, where
present, ``model.tflite`` / ``model.int8.tflite`` in LiteRT and ``model.onnx`` in ONNX
Runtime, at batch 1 on one random clip of the compiled input shape. Each round runs every
contender once in turn (load from other processes falls on all alike); it prints the
median per contender and each output's time over the first output's same artifact (the
median of the rounds' ratios, with a 95% bootstrap interval: `runtimes.paired_ratio`). Used
for changes that alter what the artifacts hold but not the network (e.g. the flow
layer's loop in traced graphs): are they as fast as before?
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

ARTIFACTS = {  # label -> (file in the output, runner name)
    "SavedModel, TensorFlow": ("saved_model", "savedmodel_runner"),
    "fp32 TFLite, LiteRT": ("model.tflite", "litert_runner"),
    "int8 TFLite, LiteRT": ("model.int8.tflite", "litert_runner"),
    "fp32 ONNX, ONNX Runtime": ("model.onnx", "onnxruntime_runner"),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outputs", nargs="+", help="compile output directories (first: the base)")
    p.add_argument("--rounds", type=int, default=25)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of every runtime")
    a = p.parse_args(argv)
    if len(a.outputs) < 2:
        p.error("give at least two compile outputs")

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(a.threads)
    from asn.backends.tensorflow import runtimes

    shapes = {json.dumps(json.loads(Path(o, "report.json").read_text())["signature"]
                         ["inputs"]["video"][1:]) for o in a.outputs}
    if len(shapes) != 1:
        p.error(f"the outputs have different input shapes: {sorted(shapes)}")
    shape = json.loads(shapes.pop())
    feeds = {"video": np.random.default_rng(0).random([1, *shape], dtype=np.float32)}
    contenders = {}
    for out in a.outputs:
        for label, (name, runner) in ARTIFACTS.items():
            if Path(out, name).exists():
                make = getattr(runtimes, runner)
                run = make(str(Path(out, name))) if runner == "savedmodel_runner" else \
                    make(str(Path(out, name)), a.threads)
                contenders[(label, out)] = run
    times = runtimes.interleaved_times(contenders, feeds, a.rounds)
    med = {key: float(np.median(t)) for key, t in times.items()}
    print(f"batch 1, {shape[0]} frames {shape[1]}x{shape[2]}; {a.rounds} interleaved rounds, "
          f"threads {a.threads}; {os.cpu_count()} CPUs (shared machine: compare ratios)")
    for i, out in enumerate(a.outputs):
        print(f"  [{i}] {out}")
    print(f"\n{'artifact':26s} {'output':>6s} {'median ms':>10s}   time vs [0] [95% interval]")
    for label in ARTIFACTS:
        base = times.get((label, a.outputs[0]))
        for i, out in enumerate(a.outputs):
            if (label, out) in med:
                # this output's time over [0]'s, round by round (`paired_ratio`)
                ratio = runtimes.paired_ratio(times[(label, out)], base) if base else "-"
                print(f"{label:26s} {i:6d} {1000 * med[(label, out)]:10.1f}   {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
