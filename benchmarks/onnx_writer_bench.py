"""The two ONNX writers' files side by side (issue 12): does the direct writer's model
(`onnx_direct`) run as fast as tf2onnx's?

    .venv/bin/python benchmarks/onnx_writer_bench.py [FILE] [--frames 4] [--size 64 64]
        [--levels 1 0] [--rounds 30] [--threads 1] [--openvino] [--keep DIR]

For each level: the network (default examples/assemblenet50.asn) is lowered, its graph
and backend passes applied as `asnc compile -O<level>` does, and the one model written by
both writers (``writer="direct"`` and ``writer="tf2onnx"``); each writer's CPU seconds in
this process are printed. Then a fresh process times both files in ONNX Runtime (and
OpenVINO with ``--openvino``) at batch 1 with ``--threads`` intra-op threads: median
latency over ``--rounds`` rounds, each round running both files once in turn
(interleaved, the order alternating, so a shared machine's load falls on both alike), the
ratio tf2onnx / direct, and the two files' largest logit difference. Node counts per op
type are printed too. (Compile time and peak memory of whole compiles: compile_bench.py.)
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def write_both(args, level: int, tmp: str) -> dict:
    from asn.backends.tensorflow.lower import lower
    from asn.backends.tensorflow.onnx_export import export_onnx
    from asn.backends.tensorflow.parity import random_inputs
    from asn.backends.tensorflow.proofs import apply_backend_passes, prove_graph_passes
    from asn.cli.common import load_checked
    from asn.compiler.passes import LoweringForm, optimise

    net, _ = load_checked(args.file, args.frames, tuple(args.size), None, warnings=False)
    opt = optimise(net, level=level)
    lowered = lower(net, form=LoweringForm.reference(), seed=0)
    feeds = random_inputs(net, 2, 0)
    lowered, _, _ = prove_graph_passes(lowered, opt.stages, feeds, seed=0)
    lowered, _ = apply_backend_passes(opt.network, lowered, opt.form, feeds, seed=0)
    out = {}
    for writer in ("direct", "tf2onnx"):
        path = os.path.join(tmp, f"o{level}_{writer}.onnx")
        c = _cpu()
        result = export_onnx(lowered.model, opt.network, path, writer=writer)
        out[writer] = {"path": path, "cpu_s": round(_cpu() - c, 2), "writer": result.writer,
                       "bytes": len(result.data)}
    return out


def time_files(paths: dict[str, str], rounds: int, threads: int, openvino: bool) -> dict:
    """Child process: interleaved batch-1 latency of each file (ms, medians)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    runners = {}
    feeds = None
    for name, path in paths.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        if feeds is None:
            rng = np.random.default_rng(0)
            feeds = {i.name: rng.random([1, *i.shape[1:]], dtype=np.float32)
                     for i in sess.get_inputs()}
        runners[f"ort {name}"] = (lambda s=sess, f=feeds: s.run(["logits"], f)[0])
        if openvino:
            import openvino as ov

            core = ov.Core()
            compiled = core.compile_model(core.read_model(path), "CPU", {
                "INFERENCE_NUM_THREADS": threads})
            runners[f"openvino {name}"] = (
                lambda c=compiled, f=feeds: c(f)[c.output("logits")])
    outs = {k: run() for k, run in runners.items()}  # warm-up, and the logits
    ref = outs[f"ort {next(iter(paths))}"]
    times: dict[str, list[float]] = collections.defaultdict(list)
    order = list(runners)
    for r in range(rounds):
        for k in (order if r % 2 == 0 else order[::-1]):
            t = time.perf_counter()
            runners[k]()
            times[k].append(time.perf_counter() - t)
    nodes = {name: dict(collections.Counter(n.op_type for n in onnx.load(
        path, load_external_data=False).graph.node).most_common()) for name, path in
        paths.items()}
    return {"ms": {k: statistics.median(v) * 1e3 for k, v in times.items()},
            "max_logit_diff": {k: float(np.abs(v - ref).max()) for k, v in outs.items()},
            "nodes": nodes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", nargs="?", default=str(ROOT / "examples" / "assemblenet50.asn"))
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--size", type=int, nargs=2, default=(64, 64))
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--openvino", action="store_true")
    ap.add_argument("--keep", metavar="DIR", help="write the ONNX files into DIR (kept)")
    ap.add_argument("--time", metavar="JSON", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.time:
        print("TIMES " + json.dumps(time_files(json.loads(args.time), args.rounds,
                                                args.threads, args.openvino)))
        return 0
    print(f"onnx_writer_bench: {os.path.relpath(args.file, ROOT)} at {args.frames}x"
          f"{args.size[0]}x{args.size[1]}, batch 1, {args.threads} thread(s), "
          f"{args.rounds} interleaved rounds; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="asnc-writers-") as tmp:
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            tmp = args.keep
        for level in args.levels:
            files = write_both(args, level, tmp)
            cmd = [sys.executable, __file__, "--time",
                   json.dumps({w: f["path"] for w, f in files.items()}),
                   "--rounds", str(args.rounds), "--threads", str(args.threads)]
            if args.openvino:
                cmd.append("--openvino")
            r = subprocess.run(cmd, capture_output=True, text=True, check=True)
            res = json.loads(next(line for line in r.stdout.splitlines()
                                  if line.startswith("TIMES "))[6:])
            print(f"\n-O{level}")
            for w, f in files.items():
                n = sum(res["nodes"][w].values())
                print(f"  {w:<8} writer {f['writer']}: {f['cpu_s']:.1f} CPU s to write, "
                      f"{f['bytes'] / 2**20:.1f} MiB, {n} nodes")
            for rt in ("ort", "openvino"):
                if f"{rt} direct" in res["ms"]:
                    d, t = res["ms"][f"{rt} direct"], res["ms"][f"{rt} tf2onnx"]
                    print(f"  {rt:<8} latency: direct {d:.1f} ms, tf2onnx {t:.1f} ms, "
                          f"tf2onnx / direct {t / d:.2f}x")
            print(f"  logits vs ORT direct: {res['max_logit_diff']}")
            for w in files:
                top = list(res["nodes"][w].items())[:10]
                print(f"  {w} ops: {', '.join(f'{k} {v}' for k, v in top)}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
