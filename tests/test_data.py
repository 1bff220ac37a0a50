"""Tests for the video data side: generator, discovery, split, sampling, tf.data."""

from __future__ import annotations

import importlib.util
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf
tf = pytest.importorskip("tensorflow")
pytest.importorskip("av")

from asn.backends.tensorflow import data as D  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "moving_shapes", Path(__file__).resolve().parents[1] / "examples" / "moving_shapes.py"
)
ms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ms)

CLASSES, PER_CLASS, FRAMES, SIZE = 3, 3, 8, 32


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    ms.generate_dataset(root, classes=CLASSES, per_class=PER_CLASS, frames=FRAMES, size=SIZE,
                        seed=0)
    return root


# ----------------------------------------------------------------- generation


def test_generated_videos_decode_with_right_count_and_size(tree):
    paths = sorted(tree.rglob("*.mp4"))
    assert len(paths) == CLASSES * PER_CLASS
    assert sorted(p.name for p in tree.iterdir()) == sorted(ms.class_names(CLASSES))
    for p in paths:
        v = D.decode_video(p)
        assert v.shape == (FRAMES, SIZE, SIZE, 3) and v.dtype == np.uint8


def test_generation_is_deterministic_and_webm_works(tmp_path):
    a = ms.generate_dataset(tmp_path / "a", classes=2, per_class=1, frames=6, size=16, seed=3)
    b = ms.generate_dataset(tmp_path / "b", classes=2, per_class=1, frames=6, size=16, seed=3)
    c = ms.generate_dataset(tmp_path / "c", classes=2, per_class=1, frames=6, size=16, seed=4)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert a[0].read_bytes() != c[0].read_bytes()
    # webm containers report 0 frames: decode_video must count by decoding.
    w = ms.generate_dataset(tmp_path / "w", classes=2, per_class=1, frames=6, size=16, fmt="webm")
    assert D.decode_video(w[0]).shape == (6, 16, 16, 3)


def _centre_of_mass(video: np.ndarray) -> np.ndarray:
    """(x, y) of the moving shape per frame: pixels far from the temporal median."""
    v = video.astype(np.float32)
    mask = np.abs(v - np.median(v, axis=0)).sum(-1) > 90
    ys, xs = np.mgrid[0 : v.shape[1], 0 : v.shape[2]]
    return np.stack([[(xs * m).sum() / m.sum(), (ys * m).sum() / m.sum()] for m in mask])


def test_shape_moves_in_labelled_direction(tmp_path):
    names = ms.class_names(8)  # all 8 directions, one video each
    ms.generate_dataset(tmp_path, classes=8, per_class=1, frames=FRAMES, size=SIZE, seed=1)
    classes, samples = D.discover(tmp_path)
    for path, label in samples:
        com = _centre_of_mass(D.decode_video(path))
        move = com[-1] - com[0]
        expected = np.array(ms.DIRECTIONS[classes[label]])
        assert classes[label] in names
        assert np.linalg.norm(move) > 0.3 * SIZE, (path, move)
        cos = move @ expected / np.linalg.norm(move)
        assert cos > 0.95, (path, move, expected)


# ---------------------------------------------------------------- discovery


def test_discover_sorted_labels_and_ignores_junk(tmp_path):
    for name in ("zeta", "Alpha", "mid"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.mp4").write_bytes(b"")
        (tmp_path / name / "b.AVI").write_bytes(b"")
        (tmp_path / name / ".hidden.mp4").write_bytes(b"")
        (tmp_path / name / "notes.txt").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.mp4").write_bytes(b"")
    (tmp_path / "stray.mp4").write_bytes(b"")
    classes, samples = D.discover(tmp_path)
    assert classes == ["Alpha", "mid", "zeta"]
    assert len(samples) == 6
    for path, label in samples:
        assert Path(path).parent.name == classes[label]
        assert Path(path).name in ("a.mp4", "b.AVI")


# -------------------------------------------------------------------- split


def _fake_samples(per_class=(10, 5, 3)):
    return [(f"/data/c{c}/v{i}.avi", c) for c, n in enumerate(per_class) for i in range(n)]


def test_ratio_split_is_deterministic_and_stratified():
    samples = _fake_samples()
    train, val = D.split(samples, val_ratio=0.2, seed=7)
    assert (train, val) == D.split(samples, val_ratio=0.2, seed=7)
    assert sorted(train + val) == sorted(samples) and not set(train) & set(val)
    per_class = [sum(lab == c for _, lab in val) for c in range(3)]
    assert per_class == [2, 1, 1]  # round(n*0.2), at least 1 per class
    assert all(any(lab == c for _, lab in train) for c in range(3))
    others = {tuple(D.split(samples, 0.2, seed=s)[1]) for s in range(5)}
    assert len(others) > 1  # the seed matters


def test_list_file_split(tmp_path):
    samples = _fake_samples()
    lst = tmp_path / "testlist01.txt"
    lst.write_text("c0/v1.avi\nc1/v0.avi 2\n\nc2/v2.avi\r\n")
    train, val = D.split(samples, val_list=lst)
    assert [p for p, _ in val] == ["/data/c0/v1.avi", "/data/c1/v0.avi", "/data/c2/v2.avi"]
    assert len(train) == len(samples) - 3


# ----------------------------------------------------------- clip sampling


def _numbered(n):
    """Frames whose pixel value is the frame index."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 4, 6, 3))


def _ids(clip):
    return clip[:, 0, 0, 0].tolist()


def test_eval_clip_is_centred_with_stride():
    assert _ids(D.sample_clip(_numbered(20), 4, stride=2, training=False)) == [6, 8, 10, 12]
    assert _ids(D.sample_clip(_numbered(20), 4, stride=1, training=False, offset=3)) == [3, 4, 5, 6]
    assert _ids(D.sample_clip(_numbered(20), 4, stride=1, offset=99)) == [16, 17, 18, 19]  # clamped


def test_training_clip_start_is_random_and_in_range():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(50):
        ids = _ids(D.sample_clip(_numbered(20), 4, stride=3, training=True, rng=rng))
        assert np.all(np.diff(ids) == 3) and 0 <= ids[0] and ids[-1] <= 19
        starts.add(ids[0])
    assert starts == set(range(0, 11))  # every valid start, 20 - 9 - 1 = 10
    a = D.sample_clip(_numbered(20), 4, 1, True, np.random.default_rng(5))
    b = D.sample_clip(_numbered(20), 4, 1, True, np.random.default_rng(5))
    assert _ids(a) == _ids(b)


def test_short_video_pads_with_last_frame_or_loops():
    assert _ids(D.sample_clip(_numbered(3), 6, training=False)) == [0, 1, 2, 2, 2, 2]
    rng = np.random.default_rng(1)
    assert _ids(D.sample_clip(_numbered(3), 6, training=True, rng=rng)) == [0, 1, 2, 2, 2, 2]
    assert _ids(D.sample_clip(_numbered(5), 4, stride=2)) == [0, 2, 4, 4]
    assert _ids(D.sample_clip(_numbered(3), 5, short="loop")) == [0, 1, 2, 0, 1]


def test_resize_then_crop_keeps_aspect_and_crops():
    assert D.cover_size(240, 320, (112, 112)) == (112, 149)
    assert D.cover_size(100, 50, (64, 32)) == (64, 32)
    clip = np.zeros((2, 24, 40, 3), np.uint8)
    clip[:, :, 18:22] = 255  # vertical bar in the middle survives a centre crop
    out = D.resize_and_crop(clip, (12, 12), training=False)
    assert out.shape == (2, 12, 12, 3) and out.dtype == np.uint8
    assert out[:, :, 5:7].mean() > 200 and out[:, :, :2].max() < 30
    # Random crops: same window for every frame, position varies between calls.
    grid = np.arange(2 * 8 * 8 * 3, dtype=np.int32).reshape(2, 8, 8, 3)
    rng = np.random.default_rng(0)
    corners = set()
    for _ in range(20):
        c = D.crop(grid, (4, 4), training=True, rng=rng)
        assert c.shape == (2, 4, 4, 3) and c[1, 0, 0, 0] - c[0, 0, 0, 0] == 8 * 8 * 3
        corners.add(int(c[0, 0, 0, 0]))
    assert len(corners) > 3
    assert D.crop(grid, (4, 4))[0, 0, 0, 0] == grid[0, 2, 2, 0]  # centre


# ------------------------------------------------------------------ tf.data


def test_dataset_shapes_dtypes_range_and_labels(tree):
    classes, samples = D.discover(tree)
    ds = D.make_dataset(samples, frames=4, size=(24, 28), batch=4, training=True, stride=2, seed=1)
    assert ds.element_spec[0].shape.as_list() == [None, 4, 24, 28, 3]
    batches = list(ds)
    assert [x.shape[0] for x, _ in batches] == [4, 4, 1]
    x, y = batches[0]
    assert x.dtype == tf.float32 and y.dtype == tf.int32
    allx = np.concatenate([b[0].numpy() for b in batches])
    assert 0.0 <= allx.min() and allx.max() <= 1.0 and allx.max() > 0.5
    labels = sorted(np.concatenate([b[1].numpy() for b in batches]).tolist())
    assert labels == sorted(lab for _, lab in samples)
    assert ds.decode_stats.skipped == 0


def test_dataset_is_deterministic_for_a_seed(tree):
    _, samples = D.discover(tree)
    make = lambda **kw: D.make_dataset(samples, 4, (24, 24), batch=9, training=True, **kw)  # noqa: E731
    (x1, y1), = list(make(seed=3))
    (x2, y2), = list(make(seed=3))
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    ds = make(seed=3, cache=True, drop_remainder=True)
    epochs = [next(iter(ds)) for _ in range(2)]
    assert epochs[0][0].shape == (9, 4, 24, 24, 3)
    assert not np.array_equal(epochs[0][1], epochs[1][1])  # reshuffled after the cache


def test_eval_dataset_is_stable_and_cacheable(tree):
    _, samples = D.discover(tree)
    ds = D.make_dataset(samples, 8, (32, 32), batch=16, training=False, cache=True,
                        drop_remainder=True)
    assert list(ds) == []  # 9 examples, batch 16, remainder dropped
    ds = D.make_dataset(samples, 8, (32, 32), batch=16, training=False, cache=True)
    (a, ya), (b, yb) = next(iter(ds)), next(iter(ds))
    np.testing.assert_array_equal(a, b)
    assert ya.numpy().tolist() == yb.numpy().tolist() == [lab for _, lab in samples]  # in order
    # Full-size centre clip of an 8-frame video is the whole decoded video.
    np.testing.assert_allclose(a[0], D.decode_video(samples[0][0]) / 255.0, atol=1e-6)


@pytest.fixture()
def corrupt_tree(tree, tmp_path) -> Path:
    root = tmp_path / "corrupt"
    shutil.copytree(tree, root)
    cls = sorted(p for p in root.iterdir())[0]
    good = sorted(cls.glob("*.mp4"))[0].read_bytes()
    (cls / "truncated.mp4").write_bytes(good[: len(good) // 2])
    (cls / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (cls / "empty.mp4").write_bytes(b"")
    return root


@pytest.mark.parametrize("training,cache", [(True, False), (False, False), (True, True)])
def test_corrupt_videos_are_skipped_and_counted(corrupt_tree, training, cache):
    _, samples = D.discover(corrupt_tree)
    assert len(samples) == CLASSES * PER_CLASS + 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = D.make_dataset(samples, 4, (16, 16), batch=4, training=training, cache=cache)
        n = sum(x.shape[0] for x, _ in ds)
        n_again = sum(x.shape[0] for x, _ in ds)  # second epoch: counted once only
    assert n == n_again == CLASSES * PER_CLASS
    stats = ds.decode_stats
    assert stats.skipped == 3
    assert sorted(Path(p).name for p in stats.skipped_paths) == [
        "empty.mp4", "random.mp4", "truncated.mp4"]
    assert sum("skipping unreadable video" in str(w.message) for w in caught) == 3


def test_probe_drops_bad_files_up_front(corrupt_tree):
    _, samples = D.discover(corrupt_tree)
    stats = D.DecodeStats()
    with pytest.warns(RuntimeWarning):
        ds = D.make_dataset(samples, 4, (16, 16), batch=32, stats=stats, probe=True)
    assert stats.skipped == 3 and ds.decode_stats is stats
    assert sum(x.shape[0] for x, _ in ds) == CLASSES * PER_CLASS
    with pytest.raises(D.DecodeError):
        D.decode_video(stats.skipped_paths[0])
