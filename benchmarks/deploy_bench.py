"""Deployment speed: every artifact of one compile in its runtime, in one interleaved run.

    .venv/bin/python benchmarks/deploy_bench.py [FILE] [--frames 4] [--size 64 64]
        [--data DIR] [--calibrate-clips 16] [--rounds 15] [--reuse OUT] [--threads N]

Compiles FILE (default examples/assemblenet50.asn at 4 frames of 64x64, -O1) with
``--quantize int8 --calibrate DIR --format savedmodel,onnx,tflite`` (DIR: moving-shapes
videos generated into a temporary folder unless given; ``--reuse OUT`` skips the compile
and reads an earlier output), then prints one table at batch 1:

* fp32 and int8 ONNX in ONNX Runtime and in OpenVINO (compiled for the clip's static shape,
  as OpenVINO runs fastest, and, rows marked "dynamic", with the file's dynamic batch), fp32
  and int8 TFLite in LiteRT, the SavedModel in TensorFlow: median latency over
  ``--rounds`` rounds, each round running every contender once in turn (interleaved, so
  load from other processes falls on all of them alike), and the speed ratio to fp32
  ONNX Runtime: the median over rounds of each round's ratio, with a 95% bootstrap
  interval of that median (`paired_ratio`);
* the FLOP limit: the network's FLOPs (`asnc stats`) at the rate of one large 3x3
  convolution (64 -> 64 channels, 56x56, 2 x MACs FLOPs) run in ONNX Runtime in the same
  rounds, and each contender's latency as a multiple of it;
* the int8 models' agreement with fp32 (from the compile's report: held-out clips);
* ONNX Runtime's node profile of the fp32 model: the Representation Flow layer's node
  count and share of node time; its share of OpenVINO's node time in both models.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from asn.backends.tensorflow.runtimes import (interleaved_medians,  # noqa: E402
                                              interleaved_times, litert_runner, paired_ratio,
                                              onnxruntime_runner, openvino_config,
                                              openvino_runner, savedmodel_runner)

CONV = (1, 64, 56, 56, 64, 3)  # batch, c_in, h, w, c_out, k


def _conv_probe(threads):
    """A one-Conv ONNX model in ONNX Runtime, and its FLOPs (2 x MACs)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n, c, h, w, k, r = CONV
    weight = np.random.default_rng(0).standard_normal((k, c, r, r)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, k, h, w])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((n, c, h, w), dtype=np.float32)
    onnx.checker.check_model(model)
    return (lambda feeds: sess.run(None, {"x": x})[0]), 2 * n * k * h * w * c * r * r


def _flow_profile(onnx_path, feeds, threads, runs=5):
    """Node count and share of ONNX Runtime node time of the flow layer (scope repflow);
    the flow layer's and all nodes' time, ms a run."""
    import onnx
    import onnxruntime as ort

    nodes = [n.name for n in onnx.load(onnx_path).graph.node]
    flow_nodes = sum(1 for n in nodes if n.startswith("repflow"))
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    if threads:
        options.intra_op_num_threads = threads
    sess = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        sess.run(None, feeds)
    with open(sess.end_profiling()) as fh:
        events = json.load(fh)
    total = flow = 0.0
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            dur = float(e.get("dur", 0))
            total += dur
            if e["name"].startswith("repflow"):
                flow += dur
    return {"onnx_nodes": len(nodes), "flow_nodes": flow_nodes,
            "flow_share_of_node_time": flow / total if total else float("nan"),
            "flow_ms": flow / runs / 1e3, "node_ms": total / runs / 1e3}


def _openvino_flow_profile(onnx_path, feeds, threads, runs=10):
    """The flow layer's share of OpenVINO's node time (its per-node performance counters),
    the model compiled for the clip's static shape as `openvino_runner` compiles it. A
    fused node keeps the name of one of its ops; checked on AssembleNet-50 (the runtime
    model's `originalLayersNames`): no node named outside scope repflow holds a flow op,
    and those named inside hold flow ops, OpenVINO's decompositions of them and, in int8,
    the input's DequantizeLinear."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(onnx_path)
    model.reshape({name: list(np.shape(v)) for name, v in feeds.items()})
    config = {**openvino_config(threads), "PERF_COUNT": True}
    request = core.compile_model(model, "CPU", config).create_infer_request()
    request.infer(feeds)
    total = flow = 0.0
    for _ in range(runs):
        request.infer(feeds)
        for node in request.profiling_info:
            seconds = node.real_time.total_seconds()
            total += seconds
            if node.node_name.startswith("repflow"):
                flow += seconds
    return {"flow_share_of_node_time": flow / total if total else float("nan"),
            "flow_ms": 1e3 * flow / runs, "node_ms": 1e3 * total / runs}


def _flow_alone(onnx_path, feeds, threads, rounds):
    """The flow layer cut out of the model (every node from the video to its output, the
    last node of scope repflow) and the whole model, timed interleaved
    in ONNX Runtime: the flow layer's latency as a share of the model's. Unlike the
    profile's node time, no per-node profiling cost, which weighs most on its tiny nodes;
    alone, its tensors meet caches the convolutions have not filled."""
    import onnx
    from onnx import helper

    model = onnx.load(onnx_path)
    g = model.graph
    last = [n for n in g.node if n.name.startswith("repflow")][-1]
    producer = {o: n for n in g.node for o in n.output}
    needed, stack = set(), [last.output[0]]
    while stack:  # every node the flow output depends on
        node = producer.get(stack.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            stack.extend(node.input)
    nodes = [n for n in g.node if id(n) in needed]
    used = {t for n in nodes for t in n.input}
    graph = helper.make_graph(
        nodes, "flow", [v for v in g.input if v.name in used],
        [helper.make_tensor_value_info(last.output[0], onnx.TensorProto.FLOAT, [None] * 4)],
        [t for t in g.initializer if t.name in used])
    flow = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    del model, g
    onnx.checker.check_model(flow)
    path = os.path.join(tempfile.mkdtemp(), "flow.onnx")
    onnx.save(flow, path)
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    runners = {"whole": onnxruntime_runner(onnx_path, threads),
               "flow": lambda feeds: sess.run(None, feeds)}
    times = interleaved_medians(runners, {"video": feeds["video"]}, rounds)
    return {"flow_ms": 1e3 * times["flow"], "model_ms": 1e3 * times["whole"],
            "flow_share_of_latency": times["flow"] / times["whole"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file", nargs="?", default=str(ROOT / "examples" / "assemblenet50.asn"))
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--size", type=int, nargs=2, default=(64, 64))
    p.add_argument("--data", help="calibration videos (default: generated moving shapes)")
    p.add_argument("--calibrate-clips", type=int, default=16)
    p.add_argument("--held-out-clips", type=int, default=64)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--reuse", help="an earlier compile output with every artifact")
    p.add_argument("--out", help="where to compile (default: a temporary folder)")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads of every runtime (TensorFlow's too, with --reuse)")
    a = p.parse_args(argv)

    if a.threads and a.reuse:  # TF's pools are fixed at its first use: set them now
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(a.threads)
        tf.config.threading.set_inter_op_parallelism_threads(a.threads)
    from asn.cli.main import main as asnc

    out = a.reuse or a.out or os.path.join(tempfile.mkdtemp(prefix="deploy-bench-"), "out")
    if not a.reuse:
        data = a.data
        if data is None:
            spec = importlib.util.spec_from_file_location("moving_shapes",
                                                          ROOT / "examples" / "moving_shapes.py")
            ms = importlib.util.module_from_spec(spec)
            assert spec.loader is not None
            spec.loader.exec_module(ms)
            data = os.path.join(os.path.dirname(out), "data")
            ms.generate_dataset(data, classes=4, per_class=20, frames=16, size=64, seed=0)
        t = time.perf_counter()
        rc = asnc(["compile", a.file, "-o", out, "--frames", str(a.frames), "--size",
                   *map(str, a.size), "--quantize", "int8", "--calibrate", data,
                   "--calibrate-clips", str(a.calibrate_clips), "--held-out-clips",
                   str(a.held_out_clips), "--format", "savedmodel,onnx,tflite",
                   "--verify-with", "openvino"])
        if rc:
            return rc
        print(f"compile: {time.perf_counter() - t:.0f} s")
    report = json.loads(Path(out, "report.json").read_text())
    flops = report["stats"]["flops"]
    shape = report["signature"]["inputs"]["video"]
    feeds = {"video": np.random.default_rng(0).random([1, *shape[1:]], dtype=np.float32)}

    th = a.threads
    contenders = {
        "fp32 ONNX, ONNX Runtime": onnxruntime_runner(f"{out}/model.onnx", th),
        "int8 ONNX, ONNX Runtime": onnxruntime_runner(f"{out}/model.int8.onnx", th),
        "fp32 ONNX, OpenVINO": openvino_runner(f"{out}/model.onnx", th),
        "int8 ONNX, OpenVINO": openvino_runner(f"{out}/model.int8.onnx", th),
        "fp32 ONNX, OpenVINO dynamic": openvino_runner(f"{out}/model.onnx", th, static=False),
        "int8 ONNX, OpenVINO dynamic": openvino_runner(f"{out}/model.int8.onnx", th,
                                                       static=False),
        "fp32 TFLite, LiteRT": litert_runner(f"{out}/model.tflite", th),
        "int8 TFLite, LiteRT": litert_runner(f"{out}/model.int8.tflite", th),
        "SavedModel, TensorFlow": savedmodel_runner(f"{out}/saved_model"),
    }
    conv, conv_flops = _conv_probe(th)
    every = {**contenders, "conv probe": conv}
    times = interleaved_times(every, feeds, a.rounds)
    med = {name: float(np.median(t)) for name, t in times.items()}
    rate = conv_flops / med["conv probe"]
    limit = flops / rate
    print(f"\n{report['network']} -O{report['passes']['level']}, batch 1, "
          f"{shape[1]} frames {shape[2]}x{shape[3]}: {flops / 1e9:.2f} GFLOPs; "
          f"{a.rounds} interleaved rounds, threads {th or 'default'}; "
          f"{os.cpu_count()} CPUs (shared machine: absolute times are noisy, compare ratios)")
    print(f"conv rate {rate / 1e9:.0f} GFLOP/s (one 3x3 Conv 64->64 at 56x56 in ONNX Runtime) "
          f"-> FLOP limit {1000 * limit:.1f} ms\n")
    print(f"{'contender':28s} {'median ms':>10s} {'x FLOP limit':>13s}   "
          f"vs fp32 ORT [95% interval]")
    for name in contenders:
        ratio = paired_ratio(times["fp32 ONNX, ONNX Runtime"], times[name])
        print(f"{name:28s} {1000 * med[name]:10.1f} {med[name] / limit:12.2f}x   {ratio}")
    print("(vs fp32 ORT: the median over rounds of each round's ratio, and a bootstrap "
          "interval of that median)")
    q = report.get("int8", {})
    print("\nint8 vs fp32 on held-out clips (compile report):")
    for runtime, ag in q.get("agreement", {}).items():
        print(f"  {runtime:18s} top-1 agreement {100 * ag['top1_agreement']:.1f}% of "
              f"{ag['clips']}, max |logit diff| {ag['max_abs_logit_diff']:.3g} (largest "
              f"logit {ag['max_abs_logit']:.3g}), mean {ag['mean_abs_logit_diff']:.3g}")
    tfl = report.get("tflite", {})
    if tfl:
        print(f"  TFLite fp32 parity with TF: {tfl['parity']['max_abs_diff']:.2e}")
        if "int8" in tfl:
            ag = tfl["int8"]["agreement"]
            print(f"  {'int8 TFLite':18s} top-1 agreement {100 * ag['top1_agreement']:.1f}% "
                  f"of {ag['clips']}, max |logit diff| {ag['max_abs_logit_diff']:.3g}")
    prof = _flow_profile(f"{out}/model.onnx", feeds, th)
    print(f"\nONNX Runtime profile of model.onnx: {prof['onnx_nodes']} nodes, flow layer "
          f"{prof['flow_nodes']} nodes, {100 * prof['flow_share_of_node_time']:.1f}% of node "
          f"time")
    for name in ("model.onnx", "model.int8.onnx"):
        ovp = _openvino_flow_profile(f"{out}/{name}", feeds, th)
        print(f"OpenVINO profile of {name} (static shape): flow layer "
              f"{ovp['flow_ms']:.1f} ms of {ovp['node_ms']:.1f} ms node time, "
              f"{100 * ovp['flow_share_of_node_time']:.1f}%")
    alone = _flow_alone(f"{out}/model.onnx", feeds, th, a.rounds)
    print(f"the flow layer alone (cut out of model.onnx, {a.rounds} interleaved rounds): "
          f"{alone['flow_ms']:.1f} ms of the model's {alone['model_ms']:.1f} ms, "
          f"{100 * alone['flow_share_of_latency']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
