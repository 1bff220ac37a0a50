"""`asnc train` and `asnc search`: a tiny network on a tiny generated dataset
(`asnc connect`, TF-free, is tested in test_connectivity.py).

Every training run costs a graph trace (seconds on 2 cores), so the file runs four: train,
resume, search, and the mirrored run, which starts in a subprocess at the first training test
(two logical CPUs must be configured before TensorFlow initialises its devices) and is
collected by the last test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asn.cli.common import apply_overrides
from asn.cli.main import main
from asn.compiler.validation import check
from asn.dsl.loader import load, load_text
from asn.dsl.printer import format_network
from test_connectivity import TINY

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.tf  # the module imports TensorFlow (below), so every test is `tf`

CLASSES, PER_CLASS = 3, 4
# One view per held-out video in the final evaluation: the multi-view protocol is
# test_eval.py's subject, and 30 views a video would triple these runs.
TRAIN = ["--batch", "4", "--steps", "3", "--val-ratio", "0.25", "--lr", "0.01", "--clips", "1",
         "--crops", "1"]


# ------------------------------------------------------------------------ training

tf = pytest.importorskip("tensorflow")
pytest.importorskip("av")

from asn.backends.tensorflow import data as D  # noqa: E402
from asn.backends.tensorflow.lower import build_model, lower  # noqa: E402
from asn.compiler.passes import LoweringForm  # noqa: E402
from asn.backends.tensorflow.train import connection_weights, fixed_batch_loss  # noqa: E402


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("moving_shapes",
                                                  ROOT / "examples" / "moving_shapes.py")
    ms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ms)
    root = tmp_path_factory.mktemp("shapes")
    ms.generate_dataset(root, classes=CLASSES, per_class=PER_CLASS, frames=8, size=32, seed=0)
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("net") / "tiny.asn"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("run") / "tiny"


_MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from asn.cli.common import apply_overrides
from asn.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def mirrored(data_dir, tiny, tmp_path_factory):
    """A `--strategy mirrored` run over two logical CPUs, in a subprocess started now."""
    out = tmp_path_factory.mktemp("mirrored") / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _MIRRORED, "train", str(tiny), "--data", str(data_dir),
         "--epochs", "1", "--out", str(out), "--strategy", "mirrored", *TRAIN],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_train_lowers_loss_and_writes_run(tiny, data_dir, run_dir, mirrored):
    # `mirrored` is requested here only to start its subprocess early.
    assert main(["train", str(tiny), "--data", str(data_dir), "--epochs", "2",
                 "--out", str(run_dir), *TRAIN]) == 0
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["classes"] == ["left", "right", "up"]
    assert (m["train_videos"], m["val_videos"]) == (9, 3)
    assert [e["epoch"] for e in m["history"]] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(m["history"][0])
    assert 0.0 <= m["final"]["val_accuracy"] <= 1.0 and m["final"]["val_loss"] > 0
    assert set(m["connections"]) == {"low", "mid", "top"}
    assert (run_dir / "labels.txt").read_text().split() == m["classes"]
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")).endswith("ckpt-2")

    # The run's network has the data's classes; with it, final.weights.h5 loads into
    # build_model (the `asnc compile --weights` contract). Same seed, same initial weights:
    # the loss on a fixed training batch went down.
    net = load(str(run_dir / "net.asn"))
    assert net.header.classes == CLASSES
    train_s, _ = D.split(D.discover(data_dir)[1], 0.25, 0)
    video, labels = next(iter(D.make_dataset(train_s[::2], 4, (32, 32), batch=5)))
    model = build_model(net, seed=0)
    before = fixed_batch_loss(model, video, labels)
    model.load_weights(run_dir / "final.weights.h5")
    after = fixed_batch_loss(model, video, labels)
    assert after < before - 0.01, (before, after)


def test_resume_continues_with_optimizer_state(tiny, data_dir, run_dir):
    # Without --resume a run directory with checkpoints is left alone.
    assert main(["train", str(tiny), "--data", str(data_dir), "--epochs", "3",
                 "--out", str(run_dir), *TRAIN]) == 1
    first = json.loads((run_dir / "metrics.json").read_text())["history"]
    assert main(["train", str(tiny), "--data", str(data_dir), "--epochs", "3", "--resume",
                 "--out", str(run_dir), *TRAIN]) == 0
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["config"]["resumed_from_epoch"] == 2
    assert [e["epoch"] for e in m["history"]] == [1, 2, 3]
    assert m["history"][:2] == first
    ckpt = run_dir / "checkpoints"
    assert sorted(p.name for p in ckpt.glob("ckpt-*.index")) == ["ckpt-2.index", "ckpt-3.index"]
    saved = tf.train.load_checkpoint(str(ckpt / "ckpt-3"))
    assert int(saved.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE")) == 3
    iterations = int(saved.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"))
    assert iterations == m["config"]["iterations"] == 3 * 3  # went on from epoch 2's 6 steps
    # The CSV holds exactly the checkpoint's epochs, also after the resume.
    assert [r.split(",")[0] for r in (run_dir / "metrics.csv").read_text().split()[1:]] == \
        ["1", "2", "3"]


def test_old_checkpoint_format_is_a_clear_message(tiny, data_dir, tmp_path, capsys):
    old = tmp_path / "old" / "checkpoints"
    old.mkdir(parents=True)
    (old / "last.json").write_text('{"epoch": 1, "weights": "epoch-001.weights.h5", '
                                   '"optimizer": "epoch-001.optimizer.npz"}')
    (old / "epoch-001.optimizer.npz").write_bytes(b"")
    assert main(["train", str(tiny), "--data", str(data_dir), "--epochs", "2", "--resume",
                 "--out", str(tmp_path / "old"), *TRAIN]) == 1
    err = capsys.readouterr().err
    assert "checkpoints of an earlier asnc" in err and "--overwrite" in err
    assert "Traceback" not in err


def test_search_writes_learned_weights(tiny, data_dir, tmp_path):
    out = tmp_path / "learned.asn"
    assert main(["search", str(tiny), "-o", str(out), "--data", str(data_dir), "--epochs", "1",
                 "--out", str(tmp_path / "run"), *TRAIN]) == 0
    text = out.read_text()
    learned = load(str(out))
    assert not check(learned)
    assert format_network(learned) == text  # canonical
    assert "# A tiny network for the training tests." in text  # comments kept
    assert "stem motion = flow  # computed in-network from the frames" in text
    assert learned.header.classes == CLASSES  # the run's header, not the source's
    blocks = learned.node_map()
    assert [i.weight for i in blocks["mid"].inputs] == [0.7, 0.3]  # given: kept exactly
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    net = apply_overrides(load_text(TINY), classes=CLASSES)
    initial = connection_weights(lower(net, seed=0, form=LoweringForm.training()), net)
    for name in ("low", "top"):
        ws = [i.weight for i in blocks[name].inputs]
        full = metrics["connections"][name]
        assert ws == [float(f"{w:.6g}") for w in full]  # 6 significant digits
        assert all(0.0 < w < 1.0 and abs(w - f) <= 5e-7 for w, f in zip(ws, full))
        # Adam moves each logit by about lr per step, but signs may alternate over 3 steps:
        # require a real move (float32 resolution near 0.5 is 6e-8), not a large one.
        assert all(abs(w - w0) > 1e-4 for w, w0 in zip(ws, initial[name])), (ws, initial[name])
    assert all(len(b.inputs) == 1 or all(i.weight is not None for i in b.inputs)
               for b in learned.blocks)
    assert (tmp_path / "run" / "learned.asn").read_text() == text  # beside the weights


def test_mirrored_over_two_logical_cpus(mirrored):
    proc, out = mirrored
    log, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, log[-4000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["replicas"] == 2 and m["config"]["strategy"] == "mirrored"
    assert len(m["history"]) == 1 and (out / "final.weights.h5").exists()


@pytest.mark.slow
def test_multiworker_two_local_workers(tiny, data_dir, tmp_path):
    """Two MultiWorkerMirroredStrategy workers on localhost (TF_CONFIG); the chief writes."""
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            ports.append(s.getsockname()[1])
    out = tmp_path / "run"
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(tf_config)}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "asn.cli.main", "train", str(tiny), "--data", str(data_dir),
             "--epochs", "1", "--out", str(out), "--strategy", "multiworker", *TRAIN],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env))
    logs = [p.communicate(timeout=500)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["strategy"] == "multiworker" and len(m["history"]) == 1
