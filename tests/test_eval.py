"""`asnc eval` and the final evaluation of `asnc search`: one tiny search on a generated
UCF101-layout dataset (split files in the official format), then the same weights evaluated
in Keras, in ONNX Runtime and as the SavedModel.

Facts checked: the deployed ONNX model and the Keras model give the same per-video scores
(within 1e-4) and so the same top-1/top-5; the run's final evaluation and `asnc eval RUN`
agree (one protocol); the clips sampled are the evenly spaced ones (a video whose frames
count up, read back through the real decoder).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from asn.cli.main import main
# rgb only (the flow layer's trace costs seconds); `top` learns its two connection weights
TINY = """\
network tiny {
  depth [1, 1, 1, 1]
  frames 4
  size 32x32
  classes 3
}
stem rgb = rgb
block low = bottleneck(level=0, filters=4) <- rgb
block top = bottleneck(level=3, filters=8, stride=2) <- low, rgb
"""

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.tf  # the module imports TensorFlow (below)
tf = pytest.importorskip("tensorflow")
pytest.importorskip("av")
pytest.importorskip("matplotlib")

from asn.backends.evaluation import Protocol, average_softmax  # noqa: E402
from asn.backends.tensorflow.evaluate import distinct_views, evaluate, video_views  # noqa: E402

_spec = importlib.util.spec_from_file_location("moving_shapes",
                                               ROOT / "examples" / "moving_shapes.py")
ms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ms)

CLASSES = ["right", "left", "up"]
CLIPS = ["--clips", "2", "--crops", "3"]


@pytest.fixture(scope="module")
def ucf(tmp_path_factory) -> Path:
    """UCF101 layout: ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt (CRLF) and
    UCF-101/<class>/v_<class>_gNN_c01.avi, 32x48 so the three crops differ."""
    root = tmp_path_factory.mktemp("ucf")
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    train, test = [], []
    for label, name in enumerate(CLASSES):
        (root / "UCF-101" / name).mkdir(parents=True)
        for g in range(1, 5):
            video = ms.render_video(name, 10, 32, np.random.default_rng([label, g]))
            video = np.concatenate([video, video[:, :, :16]], axis=2)  # 32x48
            rel = f"{name}/v_{name}_g{g:02d}_c01.avi"
            ms.write_video(root / "UCF-101" / rel, video)
            (test if g <= 2 else train).append(f"{rel} {label + 1}" if g > 2 else rel)
    crlf = lambda lines: "".join(f"{x}\r\n" for x in lines).encode()  # noqa: E731
    (lists / "classInd.txt").write_bytes(crlf(f"{i + 1} {c}" for i, c in enumerate(CLASSES)))
    (lists / "trainlist01.txt").write_bytes(crlf(train))
    (lists / "testlist01.txt").write_bytes(crlf(test))
    return root


@pytest.fixture(scope="module")
def run(ucf, tmp_path_factory) -> Path:
    """A one-epoch `asnc search` of the tiny network on split 1."""
    work = tmp_path_factory.mktemp("search")
    (work / "tiny.asn").write_text(TINY)
    run = work / "run"
    assert main(["search", str(work / "tiny.asn"), "-o", str(work / "learned.asn"), "--data",
                 str(ucf), "--layout", "ucf101", "--split", "1", "--epochs", "2", "--steps",
                 "1", "--batch", "3", "--lr", "0.01", "--out", str(run), *CLIPS]) == 0
    return run


def _eval(*args: str, capsys) -> dict:
    capsys.readouterr()
    assert main(["eval", *args, *CLIPS, "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def _scores(result: dict) -> np.ndarray:
    """[videos, classes] averaged scores from the per-video predictions (3 classes: the top-5
    lists every class)."""
    rows = []
    for p in result["predictions"]:
        row = np.zeros(len(result["classes"]))
        for entry in p["top5"]:
            row[entry["index"]] = entry["score"]
        rows.append(row)
    return np.array(rows)


def test_search_run_uses_the_split_and_the_protocol(run, ucf, capsys):
    m = json.loads((run / "metrics.json").read_text())
    assert m["classes"] == CLASSES  # classInd.txt's order, not sorted
    assert (m["train_videos"], m["val_videos"]) == (6, 6)  # trainlist01 / testlist01
    ev = m["evaluation"]
    assert ev["protocol"]["clips"] == 2 and ev["protocol"]["crops"] == 3
    assert ev["videos"] == 6 and len(ev["predictions"]) == 6
    assert {Path(p["video"]).name[:-8] for p in ev["predictions"]} == \
        {f"v_{c}_g0{g}" for c in CLASSES for g in (1, 2)}
    assert "1 centred clip" in m["protocols"]["history"]
    assert "2 clips evenly spaced x 3 crops" in m["protocols"]["evaluation"]
    for name in ("curves", "connections", "connection_weights", "confusion"):
        for ext in ("png", "svg"):
            assert (run / f"{name}.{ext}").stat().st_size > 1000, name
    assert (run / "learned.svg").read_text().lstrip().startswith(("<?xml", "<svg"))

    # `asnc plot RUN` redraws the pictures from the run's history
    (run / "curves.png").unlink()
    (run / "connections.svg").unlink()
    assert main(["plot", str(run)]) == 0
    assert (run / "curves.png").exists() and (run / "connections.svg").exists()

    # `asnc eval RUN` measures what the run's final evaluation measured
    result = _eval(str(run), "--data", str(ucf), capsys=capsys)
    assert result["top1"] == ev["top1"] and result["top5"] == ev["top5"]
    np.testing.assert_allclose(_scores(result), _scores(ev), atol=1e-5)
    assert (run / "eval" / "confusion.png").exists() and (run / "eval" / "eval.json").exists()


def test_onnx_and_savedmodel_eval_agree_with_keras(run, ucf, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(run / "learned.asn"), "--weights",
                 str(run / "final.weights.h5"), "-o", str(out)]) == 0
    keras_result = _eval(str(run / "learned.asn"), "--weights", str(run / "final.weights.h5"),
                         "--data", str(ucf), "--out", str(tmp_path / "k"), capsys=capsys)
    onnx_result = _eval(str(out), "--data", str(ucf), capsys=capsys)
    saved_result = _eval(str(out), "--data", str(ucf), "--artifact", "savedmodel",
                         capsys=capsys)
    assert onnx_result["model"].endswith("[onnx (ONNX Runtime)]")
    assert keras_result["videos"] == onnx_result["videos"] == 6
    for other in (onnx_result, saved_result):
        np.testing.assert_allclose(_scores(other), _scores(keras_result), atol=1e-4)
        assert (other["top1"], other["top5"]) == (keras_result["top1"], keras_result["top5"])
        assert [p["video"] for p in other["predictions"]] == \
            [p["video"] for p in keras_result["predictions"]]
    assert set(keras_result) >= {"top1", "top5", "videos", "mean_class_accuracy",
                                 "confusion_matrix", "worst_confused_pairs", "per_class"}


def test_eval_refuses_a_model_of_other_classes(run, tmp_path, capsys):
    data = tmp_path / "data"
    for name in ("a", "b", "c"):
        (data / name).mkdir(parents=True)
        ms.write_video(data / name / "x.mp4", ms.render_video("up", 4, 16,
                                                              np.random.default_rng(0)))
    capsys.readouterr()
    assert main(["eval", str(run), "--data", str(data)]) == 1
    assert "class 0 is `a` in the dataset but `right`" in capsys.readouterr().err


class _Recorder:
    """A fake model: logits = the mean grey level of each view's first frame (class 0) and
    of its left edge (class 1), recorded."""

    frames, size, classes = 2, (16, 16), 2

    def __init__(self):
        self.views: list[np.ndarray] = []

    def logits_batch(self, clips):
        self.views.append(clips)
        return np.stack([clips[:, 0].mean(axis=(1, 2, 3)), clips[:, 0, :, 0].mean(axis=(1, 2))],
                        axis=1)


def test_views_are_the_evenly_spaced_clips_and_corrupt_videos_are_counted(tmp_path):
    # 11 frames, frame i grey level 20 * i, 16x32: clips of 2 frames start at 0, 4.5 -> 4?
    # linspace(0, 9, 3) = 0, 4.5, 9 -> rounded half to even: 0, 4, 9.
    video = np.stack([np.full((16, 32, 3), 20 * i, np.uint8) for i in range(11)])
    video[:, :, :8] = 255 - video[:, :, :8]  # the left edge differs: crops see it or not
    path = tmp_path / "ramp.mp4"
    ms.write_video(path, video)
    views = video_views(str(path), 2, (16, 16), Protocol(3, 3))
    assert views.shape == (9, 2, 16, 16, 3)
    firsts = views[:, 0, :, 8:].mean(axis=(1, 2, 3)) * 255  # away from the left edge
    np.testing.assert_allclose(firsts[::3], [0, 80, 180], atol=4)
    lefts = views[:, 0, :, 0, :].mean(axis=(1, 2)) * 255
    assert lefts[0] > 200 and abs(lefts[1] - firsts[1]) < 20  # crop 0 at x=0, crop 1 at x=8

    # A square video: its three crops are one view, scored once and counted three times; the
    # weighted average is the plain average over all nine views.
    square = tmp_path / "square.mp4"
    ms.write_video(square, video[:, :, :16])
    distinct, weights = distinct_views(str(square), 2, (16, 16), Protocol(3, 3))
    assert distinct.shape[0] == 3 and list(weights) == [1 / 3] * 3
    every = video_views(str(square), 2, (16, 16), Protocol(3, 3))
    assert every.shape[0] == 9
    fake = _Recorder()
    np.testing.assert_allclose(average_softmax(fake.logits_batch(distinct), weights),
                               average_softmax(fake.logits_batch(every)), atol=1e-12)

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    model = _Recorder()
    with pytest.warns(RuntimeWarning, match="skipping unreadable video"):
        result = evaluate(model, [(str(path), 0), (str(bad), 1)], ["dark", "edge"],
                          Protocol(3, 1))
    assert result.summary.videos == 1 and list(result.skipped) == [str(bad)]
    assert len(model.views) == 1 and model.views[0].shape[0] == 3  # 3 clips, 1 crop


def test_train_json_is_the_only_stdout(ucf, tmp_path, capsys):
    """`--json` for scripts: stdout is one JSON document (no epoch lines), the layout was
    detected (no --layout), and the evaluation says its protocol."""
    (tmp_path / "tiny.asn").write_text(TINY.replace("<- low, rgb", "<- low @0.5, rgb @0.5"))
    capsys.readouterr()
    assert main(["train", str(tmp_path / "tiny.asn"), "--data", str(ucf), "--epochs", "1",
                 "--steps", "1", "--batch", "3", "--out", str(tmp_path / "run"), "--clips",
                 "1", "--crops", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["layout"] == "ucf101" and result["config"]["split"] == 1
    assert result["evaluation"]["protocol"]["views"] == 1
    assert result["evaluation"]["videos"] == 6 and "predictions" not in result["evaluation"]
    assert "1 centred clip x 1 centre crop" in result["protocols"]["evaluation"]


def test_eval_of_a_run_on_a_plain_folder_uses_the_runs_held_out_videos(tmp_path):
    """A plain folder has no test split: `asnc eval RUN` evaluates the videos the run held
    out (its --val-ratio split, as `data.split` made it from `data.discover`), any other
    model every video."""
    from asn.backends.datasets import read_dataset
    from asn.backends.tensorflow import data as D
    from asn.cli.cmd_eval import _videos

    folder = tmp_path / "videos"
    for name in ("b", "a"):
        (folder / name).mkdir(parents=True)
        for i in range(5):
            (folder / name / f"v{i}.mp4").write_bytes(b"")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(
        {"config": {"data": str(folder) + "/", "val_ratio": 0.4, "seed": 3, "val_list": None}}))
    dataset = read_dataset(folder)
    held_out, subset = _videos(dataset, str(run), str(folder), quiet=True)
    assert held_out == D.split(D.discover(folder)[1], 0.4, 3)[1] and len(held_out) == 4
    assert subset.startswith("held-out")
    everything, subset = _videos(dataset, str(tmp_path), str(folder), quiet=True)
    assert len(everything) == 10 and subset == "all"
