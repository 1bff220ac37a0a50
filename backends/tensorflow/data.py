"""Video input pipeline: folder discovery, splits, PyAV decoding, tf.data.

Layout is UCF101-style ``root/<class name>/<video file>``; labels are indices
into the sorted class names.

Design choices
--------------
* Values: clips are float32 in ``[0, 1]`` (``uint8 / 255``). Any dataset-level
  mean/std normalisation belongs in the model, so exported models and the
  pipeline agree on one simple contract.
* Resizing: the short side is scaled to cover the target ``(H, W)`` (aspect
  kept, bilinear via FFmpeg's swscale), then cropped: random crop in
  training, centre crop in evaluation.
* Temporal sampling: ``T`` frames at ``stride``; random start in training,
  centred in evaluation; videos shorter than the span repeat their last frame
  (or loop, ``short="loop"``).
* Corrupt videos: decoding happens inside ``tf.data`` through
  ``tf.numpy_function``, which returns a success flag next to the clip; a
  ``filter`` drops failed examples. Failures are warned about once per file
  and counted in a :class:`DecodeStats` (attached to the dataset as
  ``ds.decode_stats``). This catches files that only fail mid-stream
  (truncation) and costs nothing up front. ``probe=True`` additionally drops
  files whose first frame cannot be decoded before the dataset is built, so
  the number of examples per epoch is known in advance. A file that is cut
  short but still yields frames without an FFmpeg error (e.g. some truncated
  webm) is used as a short video, not skipped.
* Determinism: per-example randomness comes from ``Dataset.random(seed)``
  zipped with the samples (re-randomised each epoch), not from execution
  order, so parallel decoding gives identical results for a given seed.
"""

from __future__ import annotations

import random
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import tensorflow as tf

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".webm", ".mkv", ".mov"})

Sample = tuple[str, int]


class DecodeError(RuntimeError):
    """A video could not be opened or decoded (corrupt, truncated, empty)."""


@dataclass
class DecodeStats:
    """Thread-safe record of videos skipped because they failed to decode.

    Each file counts once even if it fails in several epochs.
    """

    errors: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, path: str, error: BaseException | str) -> None:
        with self._lock:
            if path in self.errors:
                return
            self.errors[path] = str(error)
        warnings.warn(f"skipping unreadable video {path}: {error}", RuntimeWarning, stacklevel=2)

    @property
    def skipped(self) -> int:
        return len(self.errors)

    @property
    def skipped_paths(self) -> list[str]:
        with self._lock:
            return sorted(self.errors)


# --------------------------------------------------------------------------- files


class DatasetError(ValueError):
    """The data folder cannot be used as given (a user error, reported as a diagnostic)."""


def _is_text(name: str) -> bool:
    # A file name that is not valid UTF-8 reaches Python with surrogate escapes; it cannot be
    # a class name (JSON, labels) nor a tf.string path, so it is never used silently.
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def shown_name(path: str | Path) -> str:
    """A path as printable text: undecodable bytes as \\xNN escapes."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def discover(root: str | Path, skipped: list[str] | None = None
             ) -> tuple[list[str], list[Sample]]:
    """Return ``(sorted class names, [(path, label), ...])`` for ``root/<class>/<video>``.

    A video whose name is not UTF-8 is skipped (its printable name appended to `skipped`);
    a class folder whose name is not UTF-8 raises DatasetError.
    """
    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    bad = [c for c in classes if not _is_text(c)]
    if bad:
        raise DatasetError(f"class folder `{shown_name(root / bad[0])}` has a name that is not "
                           "UTF-8 text; rename it (class names are labels)")
    samples = []
    for label, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            if not f.is_file() or f.name.startswith(".") or \
                    f.suffix.lower() not in VIDEO_EXTENSIONS:
                continue
            if _is_text(f.name):
                samples.append((str(f), label))
            elif skipped is not None:
                skipped.append(shown_name(f))
    return classes, samples


def _rel_key(path: str) -> str:
    """``class/file`` key used to match UCF101-style list files."""
    parts = Path(path.replace("\\", "/")).parts
    return "/".join(parts[-2:])


def split(
    samples: Sequence[Sample],
    val_ratio: float = 0.2,
    seed: int = 0,
    val_list: str | Path | None = None,
) -> tuple[list[Sample], list[Sample]]:
    """Split into ``(train, val)``, each in the input order.

    With ``val_list``: a UCF101 ``testlist``-style file, one ``class/file`` per
    line (a trailing label number is ignored); listed videos go to val.
    Otherwise: per class, ``round(n * val_ratio)`` videos chosen with ``seed``
    go to val, clamped to ``[1, n - 1]`` when ``n >= 2`` and ``val_ratio > 0``
    so every class appears on both sides.
    """
    if val_list is not None:
        from ...dsl.textio import read_bounded  # bounded: a FIFO or /dev/zero never hangs

        lines = read_bounded(str(val_list)).decode("utf-8", "replace").splitlines()
        keys = {_rel_key(ln.split()[0]) for ln in lines if ln.strip()}
        is_val = [_rel_key(str(p)) in keys for p, _ in samples]
    else:
        if not 0.0 <= val_ratio < 1.0:
            raise ValueError(f"val_ratio must be in [0, 1), got {val_ratio}")
        rng = random.Random(seed)
        chosen: set[int] = set()
        for label in sorted({lab for _, lab in samples}):
            idx = sorted((i for i, (_, lab) in enumerate(samples) if lab == label),
                         key=lambda i: str(samples[i][0]))
            n_val = round(len(idx) * val_ratio)
            if val_ratio > 0 and len(idx) >= 2:
                n_val = min(max(n_val, 1), len(idx) - 1)
            chosen.update(rng.sample(idx, n_val))
        is_val = [i in chosen for i in range(len(samples))]
    train = [s for s, v in zip(samples, is_val) if not v]
    val = [s for s, v in zip(samples, is_val) if v]
    return train, val


# ------------------------------------------------------------------------ decoding


def _decode_frames(path: str) -> list[av.VideoFrame]:
    """Decode every frame (the container's frame count is not trusted)."""
    try:
        with av.open(path) as container:
            frames = list(container.decode(video=0))
    except Exception as e:  # PyAV raises many types (FFmpegError, IndexError, ...)
        raise DecodeError(f"{type(e).__name__}: {e}") from e
    if not frames:
        raise DecodeError("no decodable video frames")
    return frames


def decode_video(path: str | Path) -> np.ndarray:
    """Decode a whole video to uint8 ``[N, H, W, 3]`` RGB; raises :class:`DecodeError`."""
    return np.stack([f.to_ndarray(format="rgb24") for f in _decode_frames(str(path))])


def probe_video(path: str | Path) -> bool:
    """Fast check: can the first frame be decoded?"""
    try:
        with av.open(str(path)) as container:
            next(container.decode(video=0))
        return True
    except Exception:
        return False


# ------------------------------------------------------------------ clip sampling


def clip_indices(
    n: int,
    frames: int,
    stride: int = 1,
    training: bool = False,
    rng: np.random.Generator | None = None,
    offset: int | None = None,
    short: str = "pad",
) -> np.ndarray:
    """Frame indices of a ``frames``-long clip at ``stride`` from ``n`` frames.

    ``offset`` fixes the start (clamped to the valid range). When the video is
    shorter than the span, ``short="pad"`` repeats the last frame and
    ``short="loop"`` wraps around to the start.
    """
    if n < 1 or frames < 1 or stride < 1:
        raise ValueError(f"need n, frames, stride >= 1, got {n}, {frames}, {stride}")
    span = (frames - 1) * stride + 1
    slack = max(0, n - span)
    if offset is not None:
        start = min(max(0, int(offset)), slack)
    elif training:
        start = int((rng or np.random.default_rng()).integers(0, slack + 1))
    else:
        start = slack // 2
    idx = start + np.arange(frames) * stride
    if short == "loop":
        return idx % n
    if short == "pad":
        return np.minimum(idx, n - 1)
    raise ValueError(f"short must be 'pad' or 'loop', got {short!r}")


def sample_clip(
    frames,
    T: int,
    stride: int = 1,
    training: bool = False,
    rng: np.random.Generator | None = None,
    offset: int | None = None,
    short: str = "pad",
):
    """Pick ``T`` frames (array ``[N, ...]`` or list) per :func:`clip_indices`."""
    idx = clip_indices(len(frames), T, stride, training, rng, offset, short)
    if isinstance(frames, np.ndarray):
        return frames[idx]
    return [frames[i] for i in idx]


# ------------------------------------------------------------------ resize / crop


def cover_size(h: int, w: int, size: tuple[int, int]) -> tuple[int, int]:
    """Aspect-preserving ``(h', w')`` with ``h' >= H`` and ``w' >= W``, one side equal."""
    H, W = size
    scale = max(H / h, W / w)
    return max(H, round(h * scale)), max(W, round(w * scale))


def crop(clip: np.ndarray, size: tuple[int, int], training: bool = False, rng=None) -> np.ndarray:
    """Same spatial crop for every frame: random in training, centred otherwise."""
    H, W = size
    h, w = clip.shape[1:3]
    if training:
        rng = rng or np.random.default_rng()
        y, x = int(rng.integers(0, h - H + 1)), int(rng.integers(0, w - W + 1))
    else:
        y, x = (h - H) // 2, (w - W) // 2
    return clip[:, y : y + H, x : x + W]


def _to_rgb(frames: Sequence[av.VideoFrame], size: tuple[int, int]) -> np.ndarray:
    """Convert + resize in one swscale pass: uint8 ``[T, h', w', 3]`` covering ``size``."""
    h, w = cover_size(frames[0].height, frames[0].width, size)
    return np.stack([f.to_ndarray(format="rgb24", width=w, height=h, interpolation="BILINEAR")
                     for f in frames])


def resize_and_crop(clip: np.ndarray, size: tuple[int, int], training: bool = False,
                    rng=None) -> np.ndarray:
    """uint8 ``[T, h, w, 3]`` -> uint8 ``[T, H, W, 3]`` (short-side resize, then crop)."""
    frames = [av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24") for f in clip]
    return crop(_to_rgb(frames, size), size, training, rng)


def normalize(clip: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in ``[0, 1]``."""
    return clip.astype(np.float32) * np.float32(1 / 255)


def load_clip(
    path: str | Path,
    frames: int,
    size: tuple[int, int],
    training: bool = False,
    stride: int = 1,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Decode, sample, resize, crop, normalise: float32 ``[T, H, W, 3]``.

    Only the sampled frames are converted to RGB. Raises :class:`DecodeError`.
    """
    picked = sample_clip(_decode_frames(str(path)), frames, stride, training, rng)
    return normalize(crop(_to_rgb(picked, size), size, training, rng))


# ------------------------------------------------------------------------ tf.data


def make_dataset(
    samples: Sequence[Sample],
    frames: int,
    size: tuple[int, int] = (64, 64),
    batch: int = 8,
    training: bool = False,
    stride: int = 1,
    seed: int = 0,
    cache: bool | str = False,
    num_parallel: int = tf.data.AUTOTUNE,
    drop_remainder: bool = False,
    stats: DecodeStats | None = None,
    probe: bool = False,
) -> tf.data.Dataset:
    """Batched ``(video float32 [B, T, H, W, 3], label int32 [B])`` dataset.

    ``cache``: ``True`` caches in memory, a string caches to that file. In
    training the cache holds whole decoded videos (resized, uint8) so temporal
    sampling and cropping stay random every epoch; meant for small datasets.
    In evaluation the (deterministic) final clips are cached.
    Unreadable videos are skipped and counted in ``stats`` (created if not
    given), also available as ``dataset.decode_stats``.
    """
    stats = stats if stats is not None else DecodeStats()
    size = (int(size[0]), int(size[1]))
    samples = [(str(p), int(lab)) for p, lab in samples]
    if probe:
        for p, _ in samples:
            if not probe_video(p):
                stats.record(p, "probe failed: first frame not decodable")
        samples = [s for s in samples if s[0] not in stats.errors]
    if not samples:
        raise ValueError("no samples to build a dataset from")

    H, W = size
    clip_shape = (frames, H, W, 3)

    def _seeded(key):
        return np.random.default_rng(int(key) & 0xFFFFFFFFFFFFFFFF)  # keys may be negative

    def _clip_fn(path, key):
        path = path.decode()
        try:
            return load_clip(path, frames, size, training, stride, _seeded(key)), True
        except DecodeError as e:
            stats.record(path, e)
            return np.zeros(clip_shape, np.float32), False

    def _video_fn(path):  # cache mode, training: whole video, resized, uint8
        path = path.decode()
        try:
            return _to_rgb(_decode_frames(path), size), True
        except DecodeError as e:
            stats.record(path, e)
            return np.zeros((0, H, W, 3), np.uint8), False

    def _crop_fn(video, key):
        rng = _seeded(key)
        return normalize(crop(sample_clip(video, frames, stride, True, rng), size, True, rng))

    paths = tf.constant([p for p, _ in samples])
    labels = tf.constant([lab for _, lab in samples], tf.int32)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    n = len(samples)
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ok_only = lambda x, y, ok: ok  # noqa: E731
    drop_ok = lambda x, y, ok: (x, y)  # noqa: E731

    if cache and training:
        def load(path, label):
            video, ok = tf.numpy_function(_video_fn, [path], (tf.uint8, tf.bool))
            video.set_shape((None, None, None, 3))
            return video, label, ok

        def augment(item, key):
            (video, label) = item
            clip = tf.numpy_function(_crop_fn, [video, key], tf.float32)
            clip.set_shape(clip_shape)
            return clip, label

        ds = ds.map(load, num_parallel_calls=num_parallel).filter(ok_only).map(drop_ok)
        ds = ds.cache(cache if isinstance(cache, str) else "")
        # The cache freezes the first epoch's order, so shuffle after it.
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, keys)).map(augment, num_parallel_calls=num_parallel)
    else:
        if training:  # shuffling paths is cheap: use a full buffer
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)

        def load(item, key):
            (path, label) = item
            clip, ok = tf.numpy_function(_clip_fn, [path, key], (tf.float32, tf.bool))
            clip.set_shape(clip_shape)
            return clip, label, ok

        ds = tf.data.Dataset.zip((ds, keys)).map(load, num_parallel_calls=num_parallel)
        ds = ds.filter(ok_only).map(drop_ok)
        if cache:
            ds = ds.cache(cache if isinstance(cache, str) else "")

    ds = ds.batch(batch, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    ds.decode_stats = stats
    return ds
