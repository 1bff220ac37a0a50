"""Search to deployment without repeating a flag: `search` -> `compile --weights` ->
`predict`, the weights/network mismatch diagnostic, the run's CSV and TensorBoard logs, the
learning-rate schedule.

One search run (module fixture) serves every test: the source header says 8 frames of
64x64 and 7 classes, the run trains 4 frames of 32x32 on 2 classes (left / right, which a
tiny network separates in a few dozen steps; `bn_momentum 0.5` lets the inference batch-norm
statistics catch up in so few steps).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from asn.cli.main import main
from asn.dsl.loader import load
from test_connectivity import TINY
from test_datasets import UCF_TESTLIST01, UCF_TRAINLIST01, make_ucf

pytestmark = pytest.mark.tf
tf = pytest.importorskip("tensorflow")
pytest.importorskip("av")
ort = pytest.importorskip("onnxruntime")

from asn.backends.tensorflow.layers import SigmoidFusion  # noqa: E402
from asn.backends.tensorflow.lower import build_model  # noqa: E402
from asn.backends.tensorflow.predict import read_clip  # noqa: E402
from asn.backends.tensorflow.runlog import CSV_COLUMNS  # noqa: E402
from asn.backends.tensorflow.schedules import WarmupSchedule, schedule_value  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCE = (TINY.replace("frames 4", "frames 8").replace("size 32x32", "size 64x64")
          .replace("flow_iterations 2", "flow_iterations 2\n  bn_momentum 0.5"))
EPOCHS, STEPS = 8, 4
# --clips 1 --crops 1: one view per held-out video in the final evaluation (the multi-view
# protocol is test_eval.py's subject).
SEARCH = ["--frames", "4", "--size", "32", "32", "--epochs", str(EPOCHS), "--steps",
          str(STEPS), "--batch", "4", "--lr", "0.01", "--val-ratio", "0.2", "--cache",
          "--clips", "1", "--crops", "1"]


def _moving_shapes():
    spec = importlib.util.spec_from_file_location("moving_shapes",
                                                  ROOT / "examples" / "moving_shapes.py")
    ms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ms)
    return ms


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    data = root / "data"
    _moving_shapes().generate_dataset(data, classes=2, per_class=10, frames=8, size=32, seed=0)
    src = root / "src.asn"
    src.write_text(SOURCE)
    learned, run, out = root / "learned.asn", root / "run", root / "out"
    assert main(["search", str(src), "-o", str(learned), "--data", str(data),
                 "--out", str(run), *SEARCH]) == 0
    # The point of the file: no --frames/--size/--classes repeated here.
    assert main(["compile", str(learned), "--weights", str(run / "final.weights.h5"),
                 "-o", str(out)]) == 0
    return SimpleNamespace(root=root, data=data, src=src, learned=learned, run=run, out=out,
                           videos=sorted(data.rglob("*.mp4")))


def _trained_logits(run: Path, clip: np.ndarray) -> np.ndarray:
    model = build_model(load(str(run / "net.asn")), seed=0)
    model.load_weights(run / "final.weights.h5")
    return np.asarray(model(clip[None], training=False)["logits"])


def test_search_writes_the_header_as_trained_and_compile_reproduces_it(searched):
    learned = load(str(searched.learned))
    h = learned.header
    assert (h.frames, tuple(h.size), h.classes) == (4, (32, 32), 2)
    text = searched.learned.read_text()
    assert "# A tiny network for the training tests." in text  # comments kept
    assert (searched.run / "learned.asn").read_text() == text
    assert (searched.out / "labels.txt").read_text() == "left\nright\n"  # copied by compile

    clip = read_clip(str(searched.videos[0]), 4, (32, 32))
    trained = _trained_logits(searched.run, clip)
    session = ort.InferenceSession(str(searched.out / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(["logits"], {"video": clip[None]})
    assert np.abs(onnx_logits - trained).max() <= 1e-4

    # The printed weights (6 significant digits) themselves, used as the gates instead of
    # the file's float32 logits, still give the trained logits.
    model = build_model(learned, seed=0)
    model.load_weights(searched.run / "final.weights.h5")
    blocks = learned.node_map()
    for layer in model.layers:
        if isinstance(layer, SigmoidFusion) and layer.name in blocks:
            w = np.array([i.weight for i in blocks[layer.name].inputs], np.float64)
            layer.edge_logits.assign((-np.log(1 / w - 1)).astype(np.float32))
    printed = np.asarray(model(clip[None], training=False)["logits"])
    assert np.abs(printed - trained).max() <= 1e-4


def test_weights_of_another_network_name_what_differs(searched, tmp_path, capsys):
    weights = str(searched.run / "final.weights.h5")
    # The source header says 7 classes; the weights were trained with the data's 2.
    assert main(["compile", str(searched.src), "--weights", weights, "-o",
                 str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert f"{searched.src}: error: weights file `{weights}` does not fit: the weights were " \
        "trained with frames 4, size 32x32, classes 2, the network says frames 8, size " \
        "64x64, classes 7" in err
    assert "Traceback" not in err and "could not be loaded" not in err
    # Same header, another block width: the layer is named by its node.
    other = tmp_path / "wider.asn"
    other.write_text(searched.learned.read_text().replace("filters=8", "filters=16"))
    assert main(["compile", str(other), "--weights", weights, "-o", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "does not fit: layer `top`: variable" in err and "in the weights" in err
    assert "Traceback" not in err


def test_predict_names_the_right_classes(searched, tmp_path, capsys):
    videos = [str(v) for v in searched.videos]
    assert main(["predict", str(searched.out), *videos, "--json"]) == 0  # ONNX Runtime
    report = json.loads(capsys.readouterr().out)
    assert (report["frames"], report["size"]) == (4, [32, 32])
    right = [Path(v["video"]).parent.name == v["top"][0]["label"] for v in report["videos"]]
    assert sum(right) >= 0.8 * len(videos), right  # chance is 0.5
    assert all([c["label"] for c in v["top"]] in (["left", "right"], ["right", "left"])
               for v in report["videos"])

    # The network and its weights (Keras) give the same scores; a corrupt video is a
    # diagnostic and the others are still reported.
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    assert main(["predict", str(searched.learned), "--weights",
                 str(searched.run / "final.weights.h5"), videos[0], str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}: error: cannot decode the video" in captured.err
    assert "Traceback" not in captured.err
    top = report["videos"][0]["top"][0]
    assert f"1. {top['label']}" in captured.out
    shown = float(captured.out.split(f"1. {top['label']}")[1].split()[0])
    assert abs(shown - top["score"]) <= 1e-4


def test_run_writes_csv_and_tensorboard(searched):
    with open(searched.run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    assert all(math.isclose(float(r["learning_rate"]), 0.01, rel_tol=1e-6) for r in rows)
    history = json.loads((searched.run / "metrics.json").read_text())["history"]
    assert [float(r["val_loss"]) for r in rows] == [e["val_loss"] for e in history]

    def tags(side: str) -> set[str]:
        found = set()
        for path in (searched.run / "tensorboard" / side).glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                found.update(v.tag for v in event.summary.value)
        return found

    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate",
            "connections/low/rgb", "connections/top/mid"} <= tags("train")
    assert {"epoch_loss", "epoch_accuracy"} <= tags("validation")


def test_cosine_schedule_with_warmup_by_hand():
    # lr 0.1, 2 warm-up steps, 10 steps in all: 0.1 * s / 2, then
    # 0.1 * 0.5 * (1 + cos(pi * (s - 2) / 8)).
    cosine = WarmupSchedule(0.1, total=10, warmup=2, kind="cosine")
    by_hand = {0: 0.0, 1: 0.05, 2: 0.1, 4: 0.0853553390593, 6: 0.05, 8: 0.0146446609407,
               10: 0.0, 13: 0.0}
    for step, want in by_hand.items():
        assert float(cosine(step)) == pytest.approx(want, abs=1e-7), step
        assert schedule_value(step, 0.1, 10, 2, "cosine") == pytest.approx(want, abs=1e-12)
    constant = WarmupSchedule(0.1, total=10, warmup=4, kind="constant")
    assert [round(float(constant(s)), 7) for s in (0, 2, 4, 9)] == [0.0, 0.05, 0.1, 0.1]


def test_mixed_precision_trains_and_compiles_in_float32(searched, tmp_path):
    """`--mixed-precision`: the run trains (finite loss), the weights it writes are float32
    (what compile reads), and the compiled model gives float32 logits that match the
    trained Keras model run in float32 within a float16 model's error."""
    run, out = tmp_path / "run", tmp_path / "out"
    assert main(["train", str(searched.src), "--data", str(searched.data), "--out", str(run),
                 "--frames", "4", "--size", "32", "32", "--epochs", "1", "--steps", "2",
                 "--batch", "4", "--cache", "--mixed-precision", "--clips", "1",
                 "--crops", "1"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    losses = [e["loss"] for e in metrics["history"]] + [metrics["final"]["val_loss"]]
    assert all(math.isfinite(v) for v in losses), metrics
    assert metrics["config"]["mixed_precision"] is True
    # the loss-scale optimizer's state is in the checkpoint (it ran, scaled)
    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    assert any("loss_scale" in name.lower() or "dynamic_scale" in name.lower()
               for name, _ in tf.train.list_variables(latest)), tf.train.list_variables(latest)
    import h5py

    with h5py.File(run / "final.weights.h5") as fh:
        dtypes = set()
        fh.visititems(lambda _, obj: dtypes.add(obj.dtype) if hasattr(obj, "dtype") else None)
    assert dtypes == {np.dtype("float32")}, dtypes
    assert main(["compile", str(run / "net.asn"), "--weights", str(run / "final.weights.h5"),
                 "-o", str(out), "-O0"]) == 0
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    clip = read_clip(str(searched.videos[0]), 4, (32, 32))
    got = session.run(["logits"], {"video": clip[None]})[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _trained_logits(run, clip), atol=1e-4)


# --- deployment beyond fp32 (issue 14): int8 ONNX, TFLite, OpenVINO ---------------------
# One compile of the searched network (trained: its logits have a margin, so agreement
# means something) with every deployment option, calibrated on 4 of the 20 videos and
# judged on the other 16.
DEPLOY = ["--quantize", "int8", "--calibrate-clips", "4", "--format",
          "savedmodel,onnx,tflite", "--verify-with", "openvino"]


@pytest.fixture(scope="module")
def deployed(searched):
    out = searched.root / "deployed"
    assert main(["compile", str(searched.learned), "--weights",
                 str(searched.run / "final.weights.h5"), "-o", str(out), "--calibrate",
                 str(searched.data), *DEPLOY]) == 0
    report = json.loads((out / "report.json").read_text())
    return SimpleNamespace(out=out, report=report)


def _held_out(searched):
    from asn.backends.tensorflow.calibration import draw_clips

    return draw_clips(str(searched.data), 4, (32, 32), 2, calibration=4)


def test_calibration_of_an_official_split_calibrates_on_train_and_judges_on_test(
        tmp_path, monkeypatch):
    """UCF101 layout: the calibration clips are the split's training videos, the held-out
    clips its test videos (every one of them), labels in classInd.txt's order."""
    from asn.backends.tensorflow import calibration, data

    read: list[str] = []
    real = data.load_clip

    def spy(path, *args, **kwargs):
        read.append("/".join(Path(path).parts[-2:]))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(data, "load_clip", spy)
    clips = calibration.draw_clips(str(make_ucf(tmp_path)), 4, (16, 16), 10, calibration=3,
                                   held_out=64)
    train = {line.split()[0] for line in UCF_TRAINLIST01.splitlines()}
    test = [line.split()[0] for line in UCF_TESTLIST01.splitlines()]
    assert len(read) == 3 + len(test)
    assert set(read[:3]) <= train and sorted(read[3:]) == sorted(test)
    assert clips.calibration.shape == (3, 4, 16, 16, 3)
    assert clips.held_out.shape[0] == len(test) and clips.labelled
    expected = sorted(["ApplyEyeMakeup"] * 2 + ["ApplyLipstick", "Archery"])
    assert sorted(clips.classes[i] for i in clips.held_out_labels) == expected


def test_int8_onnx_holds_qdq_and_int8_per_channel_weights(deployed):
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(deployed.out / "model.int8.onnx"))
    inits = {t.name: t for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs and not any(n.name.startswith("repflow") for n in convs)  # flow: float
    head = [n for n in model.graph.node if n.name.startswith("head/")]
    assert head and not any(n.op_type in ("QuantizeLinear", "DequantizeLinear")
                            for n in head)  # and the classifier head
    for conv in convs:  # every convolution reads int8 weights, one scale per output channel
        dq = producers[conv.input[1]]
        assert dq.op_type == "DequantizeLinear"
        weight, scale = inits[dq.input[0]], numpy_helper.to_array(inits[dq.input[1]])
        assert weight.data_type == TensorProto.INT8
        assert scale.shape == (weight.dims[0],)
        # and its activation input is quantized (QuantizeLinear -> DequantizeLinear)
        act = producers[conv.input[0]]
        assert act.op_type == "DequantizeLinear"
        assert producers[act.input[0]].op_type == "QuantizeLinear"
    # between the convolutions too: every residual add, transpose and reshape of the
    # stems and blocks reads 8-bit values (a DequantizeLinear) and its output is quantized
    # again (not the input's fold, the flow layer or the head)
    between = [n for n in model.graph.node if n.op_type in ("Add", "Transpose", "Reshape")
               and not n.name.startswith(("repflow", "head/", "fold/", "object_fold/"))]
    assert {n.op_type for n in between} == {"Add", "Transpose", "Reshape"}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in between:
        assert all(producers[i].op_type == "DequantizeLinear" for i in n.input
                   if i in producers), n.name
        assert all(c.op_type == "QuantizeLinear" for c in consumers[n.output[0]]), n.name
    graph = deployed.report["int8"]["graph"]
    assert graph["quantize_linear"] == sum(n.op_type == "QuantizeLinear"
                                           for n in model.graph.node) > 0
    assert (deployed.out / "model.int8.onnx").stat().st_size < \
        0.5 * (deployed.out / "model.onnx").stat().st_size


def test_int8_agrees_with_fp32_on_held_out_clips(searched, deployed):
    clips = _held_out(searched)
    assert len(clips.held_out) == 16 and clips.labelled
    fp32 = ort.InferenceSession(str(deployed.out / "model.onnx"),
                                providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(deployed.out / "model.int8.onnx"),
                                providers=["CPUExecutionProvider"])
    a = np.concatenate([fp32.run(["logits"], {"video": c[None]})[0] for c in clips.held_out])
    b = np.concatenate([int8.run(["logits"], {"video": c[None]})[0] for c in clips.held_out])
    agree = float(np.mean(a.argmax(1) == b.argmax(1)))
    ort_report = deployed.report["int8"]["agreement"]["int8_onnxruntime"]
    assert ort_report["clips"] == 16
    assert ort_report["top1_agreement"] == pytest.approx(agree)
    assert ort_report["max_abs_logit_diff"] == pytest.approx(np.abs(a - b).max(), rel=1e-5)
    assert agree >= 0.99  # the goal, on held-out moving-shapes clips
    assert ort_report["mean_abs_logit_diff"] == pytest.approx(np.abs(a - b).mean(), rel=1e-5)
    accuracy = float(np.mean(b.argmax(1) == clips.held_out_labels))
    assert ort_report["accuracy"] == pytest.approx(accuracy)
    assert abs(ort_report["accuracy"] - ort_report["fp32_accuracy"]) <= 0.01
    ov = deployed.report["int8"]["agreement"]["int8_openvino"]
    assert ov["top1_agreement"] >= 0.99 and ov["clips"] == 16
    assert set(deployed.report["int8"]["latency_ms"]) == {
        "fp32_onnxruntime", "int8_onnxruntime", "fp32_openvino", "int8_openvino"}


def test_tflite_and_openvino_match_tf(searched, deployed):
    from asn.backends.tensorflow.runtimes import (litert_runner, openvino_runner,
                                                  savedmodel_runner)

    video = np.random.default_rng(5).random((3, 4, 32, 32, 3), dtype=np.float32)
    tf_model = savedmodel_runner(str(deployed.out / "saved_model"))
    ref = tf_model({"video": video})
    # not ref[1:2]: the flow layer normalises with the min and max of the whole batch
    one = tf_model({"video": video[1:2]})
    assert np.abs(ref).max() > 0.1
    for run in (litert_runner(str(deployed.out / "model.tflite")),
                openvino_runner(str(deployed.out / "model.onnx")),
                openvino_runner(str(deployed.out / "model.onnx"), static=False)):
        assert np.abs(run({"video": video}) - ref).max() <= 1e-4
        # a new batch: every runner takes the feeds' shape (OpenVINO compiles again for it,
        # or runs the dynamic batch), and the first shape again after it
        assert np.abs(run({"video": video[1:2]}) - one).max() <= 1e-4
        assert np.abs(run({"video": video}) - ref).max() <= 1e-4
    assert deployed.report["tflite"]["parity"]["max_abs_diff"] <= 1e-4
    assert deployed.report["openvino"]["max_abs_diff"] <= 1e-4

    # int8 TFLite: int8 tensors in the file; agreement on the held-out clips reported
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(deployed.out / "model.int8.tflite"))
    details = interpreter.get_tensor_details()
    assert sum(np.dtype(t["dtype"]) == np.int8 for t in details) > 10
    ops = interpreter._get_ops_details()
    assert any(op["op_name"] == "CONV_2D" and np.dtype(details[op["inputs"][1]]["dtype"])
               == np.int8 for op in ops)  # int8 convolution weights
    flow = [op for op in ops if "/repflow" in details[op["outputs"][0]]["name"]]
    assert flow and all(np.dtype(details[i]["dtype"]) != np.int8  # the flow layer: float,
                        for op in flow if op["op_name"] != "QUANTIZE"  # but its output's
                        for i in op["outputs"])  # quantize for the next convolution
    tfl8 = deployed.report["tflite"]["int8"]["agreement"]
    assert tfl8["clips"] == 16 and tfl8["top1_agreement"] >= 0.9


def test_deploy_checks_reuse_the_parity_checks_tf_logits(searched, deployed, tmp_path):
    """With the parity check's SavedModel logits handed over, the OpenVINO check compares
    with them rather than running the SavedModel again; without them it runs it (its graph
    as stored, as the parity check does)."""
    import contextlib

    from asn.backends.tensorflow.compile import CompileOptions
    from asn.backends.tensorflow.deploy import run_deploy_phases
    from asn.backends.tensorflow.errors import CompileError
    from asn.backends.tensorflow.parity import random_inputs
    from asn.backends.tensorflow.runtimes import savedmodel_runner

    net = load(str(searched.learned))
    o = CompileOptions(verify_with=("openvino",))
    phase = lambda name: contextlib.nullcontext()  # noqa: E731
    onnx_path, saved = str(deployed.out / "model.onnx"), str(deployed.out / "saved_model")
    feeds = random_inputs(net, o.batch or 2, o.seed)
    right = savedmodel_runner(saved)(feeds)
    report, _ = run_deploy_phases(saved, onnx_path, net, str(tmp_path), o, phase,
                                  tf_logits=right)
    assert report["openvino"]["max_abs_diff"] <= 1e-4
    with pytest.raises(CompileError, match="TF and OpenVINO disagree"):
        run_deploy_phases(saved, onnx_path, net, str(tmp_path), o, phase,
                          tf_logits=right + 1.0)  # used as given: no second SavedModel run
    report, _ = run_deploy_phases(saved, onnx_path, net, str(tmp_path), o, phase)
    assert report["openvino"]["max_abs_diff"] <= 1e-4


@pytest.mark.parametrize("args, message", [
    (["--quantize", "int8"], "--quantize int8 needs --calibrate DIR"),
    (["--calibrate", "."], "--calibrate needs --quantize int8"),
])
def test_deploy_option_errors(tmp_path, capsys, args, message):
    src = tmp_path / "t.asn"
    src.write_text(SOURCE)
    assert main(["compile", str(src), "-o", str(tmp_path / "o"), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_calibration_folder_without_videos_is_a_diagnostic(tmp_path, capsys):
    src = tmp_path / "t.asn"
    src.write_text(SOURCE.replace("frames 8", "frames 2").replace("size 64x64", "size 16x16"))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    assert main(["compile", str(src), "-o", str(tmp_path / "o"), "--quantize", "int8",
                 "--calibrate", str(tmp_path / "empty"), "--no-verify"]) == 1
    err = capsys.readouterr().err
    assert "gave 0 decodable videos" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
