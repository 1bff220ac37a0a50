"""Dataset layouts as distributed (`backends/datasets`), read without TensorFlow, and the
evaluation protocol's arithmetic (`backends/evaluation`).

Every layout is built as a tiny dataset of real (generated, PyAV-encoded) videos with split
files written in the official format; class order, split membership and counts are checked
against what the files say. The UCF101 sample is the first lines of the official
classInd.txt, trainlist01.txt and testlist01.txt, typed in (CRLF line ends, as distributed).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from asn.backends.datasets import (DatasetLayoutError, SplitFileError, detect_layout,
                                   read_dataset)
from asn.backends.evaluation import Protocol, average_softmax, clip_starts, crop_offsets
from asn.backends.evaluation.metrics import summarise, top_classes

pytest.importorskip("av")
ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("moving_shapes",
                                               ROOT / "examples" / "moving_shapes.py")
ms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ms)

# The first lines of the official UCF101 split files (ucfTrainTestlist/), typed in.
UCF_CLASSIND = """\
1 ApplyEyeMakeup
2 ApplyLipstick
3 Archery
4 BabyCrawling
5 BalanceBeam
6 BandMarching
7 BaseballPitch
8 Basketball
9 BasketballDunk
10 BenchPress
"""
UCF_TRAINLIST01 = """\
ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1
ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c02.avi 1
ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c03.avi 1
ApplyLipstick/v_ApplyLipstick_g08_c01.avi 2
ApplyLipstick/v_ApplyLipstick_g08_c02.avi 2
Archery/v_Archery_g08_c01.avi 3
"""
UCF_TESTLIST01 = """\
ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi
ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi
ApplyLipstick/v_ApplyLipstick_g01_c01.avi
Archery/v_Archery_g01_c01.avi
"""

_VIDEO_CACHE: dict[str, bytes] = {}


def _video(path: Path, seed: int = 0) -> None:
    """A real 4-frame 16x16 video (the container from the extension); encoded once per
    extension, then copied (the readers do not decode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix
    if ext not in _VIDEO_CACHE:
        tmp = path.with_name(f".tmp{ext}")
        ms.write_video(tmp, ms.render_video("right", 4, 16, np.random.default_rng(seed)))
        _VIDEO_CACHE[ext] = tmp.read_bytes()
        tmp.unlink()
    path.write_bytes(_VIDEO_CACHE[ext])


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


@pytest.fixture
def ucf(tmp_path) -> Path:
    return make_ucf(tmp_path)


def make_ucf(tmp_path: Path) -> Path:
    """UCF101 as unpacked: UCF-101/<class>/<file>.avi and ucfTrainTestlist/*.txt (the typed-in
    first lines above; trainlist02/testlist02 swap the sides of split 1)."""
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_bytes(_crlf(UCF_CLASSIND))
    (lists / "trainlist01.txt").write_bytes(_crlf(UCF_TRAINLIST01))
    (lists / "testlist01.txt").write_bytes(_crlf(UCF_TESTLIST01))
    (lists / "trainlist02.txt").write_bytes(_crlf(UCF_TESTLIST01.replace(".avi", ".avi 1")
                                                  .replace("Lipstick_g01_c01.avi 1",
                                                           "Lipstick_g01_c01.avi 2")
                                                  .replace("Archery_g01_c01.avi 1",
                                                           "Archery_g01_c01.avi 3")))
    (lists / "testlist02.txt").write_bytes(_crlf(UCF_TRAINLIST01.replace(" 1\n", "\n")
                                                 .replace(" 2\n", "\n").replace(" 3\n", "\n")))
    for line in (UCF_TRAINLIST01 + UCF_TESTLIST01).splitlines():
        _video(tmp_path / "UCF-101" / line.split()[0])
    return tmp_path


def test_ucf101_real_sample_parses_to_the_official_classes(ucf):
    assert detect_layout(ucf) == "ucf101"
    ds = read_dataset(ucf)
    assert ds.layout == "ucf101" and ds.split == 1
    assert ds.classes[:3] == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]
    assert ds.classes[9] == "BenchPress" and len(ds.classes) == 10
    # membership and labels as the files say, in their order
    train = [(Path(p).name, lab) for p, lab in ds.train]
    assert train[0] == ("v_ApplyEyeMakeup_g08_c01.avi", 0)
    assert [lab for _, lab in train] == [0, 0, 0, 1, 1, 2]
    test = [(Path(p).parent.name, Path(p).name, lab) for p, lab in ds.test]
    assert test == [("ApplyEyeMakeup", "v_ApplyEyeMakeup_g01_c01.avi", 0),
                    ("ApplyEyeMakeup", "v_ApplyEyeMakeup_g01_c02.avi", 0),
                    ("ApplyLipstick", "v_ApplyLipstick_g01_c01.avi", 1),
                    ("Archery", "v_Archery_g01_c01.avi", 2)]
    assert not ds.missing
    two = read_dataset(ucf, split=2)  # the other split swaps the sides here
    assert len(two.train) == 4 and len(two.test) == 6


def test_ucf101_missing_video_counted_and_case_folded(ucf):
    (ucf / "UCF-101" / "Archery" / "v_Archery_g01_c01.avi").unlink()
    # UCF101's own quirk: the list says HandStandPushups, the folder HandstandPushups.
    lower = ucf / "UCF-101" / "applylipstick"
    (ucf / "UCF-101" / "ApplyLipstick").rename(lower)
    ds = read_dataset(ucf, "ucf101", 1)
    assert ds.missing == ["Archery/v_Archery_g01_c01.avi"]
    assert len(ds.test) == 3 and sum(lab == 1 for _, lab in ds.train) == 2


@pytest.mark.parametrize("file, text, where, words", [
    ("classInd.txt", "1 ApplyEyeMakeup\n3 Archery\n", ":2:1:", "out of order"),
    ("classInd.txt", "1 ApplyEyeMakeup\nx ApplyLipstick\n", ":2:1:", "not a number"),
    ("trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
     "ApplyLipstick/v_ApplyLipstick_g08_c01.avi 3\n", ":2:43:", "`Archery`, but"),
    ("trainlist01.txt", "Nope/v_Nope_g08_c01.avi 1\n", ":1:1:", "`Nope` is not in"),
    ("testlist01.txt", "\nv_ApplyEyeMakeup_g01_c01.avi\n", ":2:1:", "<ClassName>/<file>"),
])
def test_ucf101_malformed_file_names_file_and_line(ucf, file, text, where, words):
    path = ucf / "ucfTrainTestlist" / file
    path.write_bytes(_crlf(text))
    with pytest.raises(SplitFileError) as info:
        read_dataset(ucf)
    message = str(info.value)
    assert message.startswith(f"{path}{where} error: "), message
    assert words in message


def test_ucf101_split_out_of_range(ucf):
    with pytest.raises(SplitFileError, match="splits 1, 2 and 3, not 4"):
        read_dataset(ucf, split=4)


@pytest.fixture
def hmdb(tmp_path) -> Path:
    """HMDB51 as unpacked: <class>/<file>.avi and testTrainMulti_7030_splits/."""
    splits = tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    table = {"brush_hair": ["1", "2", "0", "1"], "cartwheel": ["2", "1", "1", "0"],
             "catch": ["1", "1", "2", "2"]}
    for cls, ids in table.items():
        for n in (1, 2):
            lines = "".join(f"{cls}_video_{i}.avi {k if n == 1 else '1'} \n"  # trailing space
                            for i, k in enumerate(ids))
            (splits / f"{cls}_test_split{n}.txt").write_text(lines)
        for i in range(len(ids)):
            _video(tmp_path / cls / f"{cls}_video_{i}.avi")
    return tmp_path


def test_hmdb51_split_ids(hmdb):
    assert detect_layout(hmdb) == "hmdb51"
    ds = read_dataset(hmdb)
    assert ds.classes == ["brush_hair", "cartwheel", "catch"]
    names = lambda s: [(Path(p).name, lab) for p, lab in s]  # noqa: E731
    assert names(ds.train) == [("brush_hair_video_0.avi", 0), ("brush_hair_video_3.avi", 0),
                               ("cartwheel_video_1.avi", 1), ("cartwheel_video_2.avi", 1),
                               ("catch_video_0.avi", 2), ("catch_video_1.avi", 2)]
    assert names(ds.test) == [("brush_hair_video_1.avi", 0), ("cartwheel_video_0.avi", 1),
                              ("catch_video_2.avi", 2), ("catch_video_3.avi", 2)]
    assert any("2 video(s) marked 0" in n for n in ds.notes)
    assert len(read_dataset(hmdb, split=2).test) == 0


def test_hmdb51_bad_id_names_file_line_col(hmdb):
    path = hmdb / "testTrainMulti_7030_splits" / "cartwheel_test_split1.txt"
    path.write_text("cartwheel_video_0.avi 1 \ncartwheel_video_1.avi 3 \n")
    with pytest.raises(SplitFileError) as info:
        read_dataset(hmdb)
    assert str(info.value).startswith(f"{path}:2:23: error: split id `3`")


KINETICS_HEADER = "label,youtube_id,time_start,time_end,split\n"


@pytest.mark.parametrize("per_class", [True, False])
def test_kinetics_csv_missing_clips_counted(tmp_path, per_class):
    rows = [("abseiling", "--GkrdYZ9Tc", 0, 10, "train"),
            ("air drumming", "-VtLx-mcPds", 14, 24, "train"),
            ("abseiling", "0347ZoDXyP0", 102, 112, "train"),
            ("air drumming", "_8uwqcKYxKI", 5, 15, "validate"),
            ("abseiling", "3caPS4FHFF8", 31, 41, "validate"),  # missing on disk
            ("zumba", "zzzzzzzzzzz", 1, 11, "test")]
    body = "".join(f'"{a}",{b},{c},{d},{e}\n' for a, b, c, d, e in rows)
    (tmp_path / "kinetics400").mkdir()
    (tmp_path / "kinetics400" / "train.csv").write_text(KINETICS_HEADER + body)
    for label, yid, start, end, _ in rows[:4]:
        folder = tmp_path / "videos" / (label.replace(" ", "_") if per_class else "")
        _video(folder / f"{yid}_{start:06d}_{end:06d}.mp4")
    assert detect_layout(tmp_path) == "kinetics"
    ds = read_dataset(tmp_path)
    assert ds.classes == ["abseiling", "air drumming"]  # test rows do not add classes
    assert [(Path(p).name, lab) for p, lab in ds.train] == [
        ("--GkrdYZ9Tc_000000_000010.mp4", 0), ("-VtLx-mcPds_000014_000024.mp4", 1),
        ("0347ZoDXyP0_000102_000112.mp4", 0)]
    assert [(Path(p).name, lab) for p, lab in ds.test] == [("_8uwqcKYxKI_000005_000015.mp4", 1)]
    assert ds.missing == ["3caPS4FHFF8_000031_000041"]
    assert any("1 `test` row" in n for n in ds.notes)


def test_kinetics_bad_row(tmp_path):
    path = tmp_path / "validate.csv"
    path.write_text(KINETICS_HEADER + "abseiling,abc,0,10,validate\nabseiling,def,x,10,train\n")
    with pytest.raises(SplitFileError) as info:
        read_dataset(tmp_path, "kinetics")
    assert str(info.value).startswith(f"{path}:3:1: error: time_start")


def test_folder_layout_and_layout_override(tmp_path):
    for cls in ("b", "a"):
        for i in range(2):
            _video(tmp_path / cls / f"{i}.mp4")
    (tmp_path / "a" / "notes.txt").write_text("x")
    assert detect_layout(tmp_path) == "folder"
    ds = read_dataset(tmp_path)
    assert ds.classes == ["a", "b"] and not ds.official_split and ds.test == []
    assert [(Path(p).parent.name, lab) for p, lab in ds.train] == [("a", 0), ("a", 0),
                                                                  ("b", 1), ("b", 1)]
    with pytest.raises(DatasetLayoutError, match="no official splits"):
        read_dataset(tmp_path, split=2)
    with pytest.raises(SplitFileError, match="no classInd.txt"):
        read_dataset(tmp_path, layout="ucf101")  # --layout wins over detection
    with pytest.raises(DatasetLayoutError, match="unknown layout"):
        read_dataset(tmp_path, layout="imagenet")


def test_cli_reports_the_malformed_line(ucf, tmp_path, capsys):
    from asn.cli.main import main

    path = ucf / "ucfTrainTestlist" / "classInd.txt"
    path.write_bytes(_crlf("1 ApplyEyeMakeup\n2\n"))
    (tmp_path / "n.asn").write_text("network n {\n classes 2\n}\nstem r = rgb\n"
                                    "block b = bottleneck(level=3, filters=8) <- r\n")
    assert main(["eval", str(tmp_path / "n.asn"), "--weights", str(path), "--data",
                 str(ucf)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2:1: error: expected `<index> <ClassName>`" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------ the protocol


def test_clip_starts_evenly_spaced_and_centred():
    assert clip_starts(100, 8, 1) == [46]  # centred, as validation and predict read
    assert clip_starts(100, 8, 3) == [0, 46, 92]  # first and last valid starts included
    # 17 frames, 8 per clip: starts 0..9, k * 9 / 9 for 10 clips: every start once
    assert clip_starts(17, 8, 10) == list(range(10))
    assert clip_starts(17, 8, 4) == [0, 3, 6, 9]
    assert clip_starts(5, 8, 4) == [0, 0, 0, 0]  # shorter than a clip: padded, one start
    assert clip_starts(20, 4, 2, stride=2) == [0, 13]


def test_crop_offsets_along_the_long_side():
    assert crop_offsets(64, 85, (64, 64), 1) == [(0, 10)]
    assert crop_offsets(64, 85, (64, 64), 3) == [(0, 0), (0, 10), (0, 21)]
    assert crop_offsets(90, 64, (64, 64), 3) == [(0, 0), (13, 0), (26, 0)]
    with pytest.raises(ValueError):
        Protocol(clips=2, crops=2)


def test_multi_clip_average_hand_computed():
    # Two clips of one video. Clip 1 is sure of class 2; clip 2 leans to class 0.
    views = np.array([[0.0, 0.0, 10.0], [5.0, 4.9, -10.0]])
    # By hand: softmax([0, 0, 10]) = [1, 1, e^10] / (2 + e^10)
    #        = [4.540e-5, 4.540e-5, 0.99990921];
    # softmax([5, 4.9, -10]) = [e^5, e^4.9, e^-10] / (e^5 + e^4.9 + e^-10)
    #        = [0.52497910, 0.47502074, 1.6e-7] (rounded);
    # mean = [0.26251225, 0.23753307, 0.49995468] -> class 2.
    scores = average_softmax(views)
    np.testing.assert_allclose(scores, [0.26251225, 0.23753307, 0.49995468], atol=1e-8)
    assert top_classes(scores, 3) == [2, 0, 1]
    # Averaging logits instead would say class 0 ([2.5, 2.45, 0]): the protocol averages
    # probabilities.
    assert int(np.argmax(views.mean(axis=0))) == 0
    assert math.isclose(scores.sum(), 1.0, rel_tol=1e-12)
    # A view that occurs twice (scored once, weight 2/3) counts as two equal views.
    np.testing.assert_allclose(average_softmax(views, np.array([2 / 3, 1 / 3])),
                               average_softmax(views[[0, 0, 1]]), atol=1e-15)


def test_summary_figures_hand_computed():
    classes = ["a", "b", "c", "d", "e", "f"]
    scores = np.array([
        [.50, .10, .10, .10, .10, .10],  # a -> a
        [.10, .50, .10, .10, .10, .10],  # a -> b (a top-5 hit)
        [.10, .50, .10, .10, .10, .10],  # b -> b
        [.30, .30, .10, .10, .10, .10],  # c -> a (tie with b: the lower index)
        [.10, .10, .10, .10, .10, .50],  # c -> f; c ties with a,b,d,e: ranked 4th, a hit
    ])
    labels = np.array([0, 0, 1, 2, 2])
    s = summarise(scores, labels, classes)
    assert s.top1 == pytest.approx(2 / 5)
    # video 4 (c): scores .3 .3 .1 .1 .1 .1: top-5 = a, b, c, d, e (ties by index) -> hit
    assert s.top5 == pytest.approx(5 / 5)
    assert s.mean_class_accuracy == pytest.approx((1 / 2 + 1 / 1 + 0 / 2) / 3)
    assert s.confusion[0] == [1, 1, 0, 0, 0, 0] and s.confusion[2] == [1, 0, 0, 0, 0, 1]
    # every confusion counts 1 of 2 videos here: ordered by (true, predicted) index
    assert [(p["true"], p["predicted"], p["count"], p["rate"]) for p in s.worst_pairs] == [
        ("a", "b", 1, 0.5), ("c", "a", 1, 0.5), ("c", "f", 1, 0.5)]
    assert [c["videos"] for c in s.per_class] == [2, 1, 2, 0, 0, 0]
    assert s.per_class[3]["accuracy"] is None  # no video: not in the mean


def test_confusion_picture_names_every_class_at_101(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from asn.backends.plots import draw_confusion

    classes = [f"Class{i:03d}Name" for i in range(101)]
    rng = np.random.default_rng(0)
    m = np.diag(rng.integers(5, 30, 101))
    m[3, 7] = 4
    png, svg = draw_confusion(m, classes, tmp_path / "confusion", "101 classes")
    height, width = imread(png).shape[:2]
    # at least 20 pixels a cell (0.14 inch at 150 dpi): each row and column can be told apart
    assert width >= 101 * 20 and height >= 101 * 20, (width, height)
    text = Path(svg).read_text()
    for name in classes:  # every name on both axes (SVG keeps them as text comments)
        assert text.count(name) >= 2, name
