"""Generate a tiny real-video dataset whose class is the motion direction.

Each video shows one filled shape (square, circle or triangle) of random
colour and size gliding in a straight line over a random, noisy background.
The label is the direction of motion, so shape, colour and background carry
no class information and a single frame is (nearly) uninformative: a model has
to use time. Files are written in the UCF101 layout ``OUT/<class>/<video>``.

    python examples/moving_shapes.py OUT_DIR [--classes 4] [--per-class 20]
        [--frames 16] [--size 64] [--seed 0] [--format mp4|webm]
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Image coordinates: x grows to the right, y grows downwards.
_S = 1 / np.sqrt(2)
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (1.0, 0.0),
    "left": (-1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "up_right": (_S, -_S),
    "up_left": (-_S, -_S),
    "down_right": (_S, _S),
    "down_left": (-_S, _S),
}
SHAPES = ("square", "circle", "triangle")
FPS = 25


def class_names(classes: int) -> list[str]:
    if not 2 <= classes <= len(DIRECTIONS):
        raise ValueError(f"classes must be in [2, {len(DIRECTIONS)}], got {classes}")
    return list(DIRECTIONS)[:classes]


def _shape_mask(shape: str, cx: float, cy: float, half: float, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if shape == "square":
        return (np.abs(x - cx) <= half) & (np.abs(y - cy) <= half)
    if shape == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= half**2
    # Upward-pointing isosceles triangle inscribed in the square of side 2*half.
    top = cy - half
    return (y >= top) & (y <= cy + half) & (np.abs(x - cx) <= (y - top) / 2)


def _contrasting_colour(rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
    # Keep the shape clearly visible against the background (L1 distance).
    while True:
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - bg).sum() >= 180:
            return colour


def render_video(direction: str, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Render one clip as uint8 ``[frames, size, size, 3]``."""
    ux, uy = DIRECTIONS[direction]
    bg = rng.integers(0, 256, 3)
    # Static texture (fixed per video) plus a little per-frame sensor noise.
    texture = rng.normal(0, 18, (size, size, 3))
    colour = _contrasting_colour(rng, bg)
    shape = SHAPES[rng.integers(len(SHAPES))]
    half = rng.uniform(0.06, 0.10) * size
    # Travel at least ~2 shape widths so motion dominates the clip.
    travel = rng.uniform(0.45, 0.6) * size
    dx, dy = travel * ux, travel * uy
    lo, hi = half + 1, size - half - 1
    # Random start such that the whole trajectory stays inside the frame.
    x0 = rng.uniform(lo - min(0.0, dx), hi - max(0.0, dx))
    y0 = rng.uniform(lo - min(0.0, dy), hi - max(0.0, dy))

    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        a = t / max(1, frames - 1)
        img = bg + texture + rng.normal(0, 4, (size, size, 3))
        img[_shape_mask(shape, x0 + a * dx, y0 + a * dy, half, size)] = colour
        out[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def write_video(path: Path, video: np.ndarray, fmt: str = "mp4") -> None:
    """Encode uint8 ``[T, H, W, 3]`` (H, W even) as yuv420p mp4 or webm."""
    if fmt == "webm":
        codec = "libvpx"
    else:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height = video.shape[2], video.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, FPS)
        stream.codec_context.thread_count = 1  # single thread: byte-identical output
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "fast"}
        elif codec == "libvpx":
            stream.options = {"crf": "10", "b": "1M"}
        for img in video:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode())  # flush delayed frames


def generate_dataset(
    out_dir: str | Path,
    classes: int = 4,
    per_class: int = 20,
    frames: int = 16,
    size: int = 64,
    seed: int = 0,
    fmt: str = "mp4",
) -> list[Path]:
    """Write ``out_dir/<direction>/v_<direction>_<i>.<fmt>``; return the paths."""
    if fmt not in ("mp4", "webm"):
        raise ValueError(f"format must be mp4 or webm, got {fmt!r}")
    if size % 2 or size < 16:
        raise ValueError("size must be even and >= 16 (yuv420p needs even sizes)")
    if frames < 2:
        raise ValueError("need at least 2 frames to show motion")
    out_dir = Path(out_dir)
    paths = []
    for c, name in enumerate(class_names(classes)):
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            # Seed per (class, index): video i is the same whatever per_class is.
            rng = np.random.default_rng([seed, c, i])
            path = out_dir / name / f"v_{name}_{i:03d}.{fmt}"
            write_video(path, render_video(name, frames, size, rng), fmt)
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("mp4", "webm"), default="mp4")
    a = p.parse_args(argv)
    paths = generate_dataset(a.out_dir, a.classes, a.per_class, a.frames, a.size, a.seed, a.format)
    print(f"wrote {len(paths)} videos ({a.classes} classes) to {a.out_dir}")


if __name__ == "__main__":
    main()
