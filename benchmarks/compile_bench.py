"""Back-end speed: `asnc compile` phases and inference latency of the emitted models.

    .venv/bin/python benchmarks/compile_bench.py [FILE] [--frames 4] [--size 64 64]
                                                 [--runs 20] [--warmup 3] [--threads N]

For examples/assemblenet50.asn at the quickstart size (4 frames at 64x64) by default, prints
in one run:
  * compile time per phase (build, SavedModel, ONNX, verify), wall and CPU seconds, as
    `asnc compile` runs them (one process; importing TensorFlow is reported apart);
  * inference latency at batch 1, the median of `--runs` timed runs after `--warmup`
    untimed ones, of the SavedModel (reloaded with tf.saved_model.load, its
    `serving_default` signature) in TensorFlow and of model.onnx in ONNX Runtime (CPU
    provider, default graph optimisations), and their ratio.
`--threads N` sets both runtimes' intra-op threads (default: theirs).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", nargs="?", default=str(ROOT / "examples" / "assemblenet50.asn"))
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--size", type=int, nargs=2, default=(64, 64))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    from asn.cli.common import load_checked

    net, _ = load_checked(args.file, args.frames, tuple(args.size), None, warnings=False)
    c0, t0 = cpu(), time.perf_counter()
    import tensorflow as tf
    import onnxruntime as ort

    from asn.backends.tensorflow.compile import compile_network
    from asn.backends.tensorflow.parity import random_inputs

    print(f"{net.header.name}: {args.frames} frames at {args.size[0]}x{args.size[1]}, "
          f"{net.header.classes} classes; {os.cpu_count()} CPUs; TF {tf.__version__}, "
          f"ONNX Runtime {ort.__version__}")
    print(f"  import TF/tf2onnx/ORT  wall {time.perf_counter() - t0:6.1f} s   "
          f"cpu {cpu() - c0:6.1f} s")
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    marks: dict[str, tuple[float, float]] = {}

    def on_phase(name, event):
        if event == "start":
            marks[name] = (time.perf_counter(), cpu())
        else:
            w, c = marks[name]
            marks[name] = (time.perf_counter() - w, cpu() - c)

    with tempfile.TemporaryDirectory(prefix="asnc-bench-") as tmp:
        out = os.path.join(tmp, "out")
        result = compile_network(net, out, on_phase=on_phase)
        print("compile phases:")
        total_w = total_c = 0.0
        for name in ("build", "savedmodel", "onnx", "verify"):
            w, c = marks[name]
            total_w, total_c = total_w + w, total_c + c
            print(f"  {name:<21}  wall {w:6.1f} s   cpu {c:6.1f} s")
        print(f"  {'total':<21}  wall {total_w:6.1f} s   cpu {total_c:6.1f} s")
        print(f"  params {result.params:,}; parity max |TF - ONNX| "
              f"{result.parity.max_abs_diff:.2e}; SavedModel "
              f"{result.sizes['saved_model'] / 2**20:.1f} MiB, ONNX "
              f"{result.sizes['model.onnx'] / 2**20:.1f} MiB")

        feeds = random_inputs(net, 1, seed=0)
        sig = tf.saved_model.load(os.path.join(out, "saved_model")).signatures[
            "serving_default"]
        tf_feeds = {k: tf.constant(v) for k, v in feeds.items()}
        opts = ort.SessionOptions()
        if args.threads:
            opts.intra_op_num_threads = args.threads
        session = ort.InferenceSession(os.path.join(out, "model.onnx"), opts,
                                       providers=["CPUExecutionProvider"])

        def run_tf():
            sig(**tf_feeds)["logits"].numpy()

        def run_ort():
            session.run(["logits"], feeds)

        print("inference latency:")
        lat = {}
        for name, fn in (("TensorFlow SavedModel", run_tf), ("ONNX Runtime", run_ort)):
            for _ in range(args.warmup):
                fn()
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            lat[name] = statistics.median(times)
            print(f"  {name:<21}  batch 1: median {lat[name] * 1e3:8.1f} ms "
                  f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}, "
                  f"{args.runs} runs)")
        ratio = lat["TensorFlow SavedModel"] / lat["ONNX Runtime"]
        print(f"  TF / ONNX Runtime latency ratio: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
