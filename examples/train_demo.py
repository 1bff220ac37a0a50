"""Demo: one-shot connectivity search on real (generated) video, end to end.

1. generate the moving-shapes dataset (the class is the direction of motion, so a single
   frame says nothing: the network has to use time) with UCF101-style split files
   (classInd.txt, trainlist01.txt, testlist01.txt: a quarter of each class held out);
2. write a tiny two-stream network (an rgb and a flow stem) and make its search space with
   `asnc connect --all` (every block reads every lower node, every weight learnable);
3. `asnc search` on split 1: train it, held-out evaluation (10 clips x 3 crops), learned
   weights written into `learned.asn`, pictures in the run directory;
4. print the held-out accuracy and the learned connection weights: does the flow stem earn
   its weight?
5. `asnc eval` of the run on the test split, as the papers evaluate, and its confusion
   matrix (printed, and drawn in RUN/eval/confusion.png).

    python examples/train_demo.py [--work DIR] [--classes 4] [--per-class 40] [--epochs 12]

Takes a few minutes on 2 CPU cores. Everything lands in --work (default: a temporary folder).
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

HERE = Path(__file__).resolve().parent

NETWORK = """\
# A tiny two-stream network; `asnc connect --all` turns it into the search space.
network demo {{
  depth [1, 1, 1, 1]
  frames {frames}
  size {size}x{size}
  classes {classes}
  flow_iterations 10  # Representation Flow iterations (the reference uses 40)
}}

stem rgb = rgb
stem motion = flow  # optical flow computed in-network from the frames

block r0 = bottleneck(level=0, filters=8) <- rgb
block f0 = bottleneck(level=0, filters=8) <- motion
block mid = bottleneck(level=1, filters=16, stride=2) <- r0, f0
block top = bottleneck(level=3, filters=16, stride=2) <- mid
"""


def _moving_shapes():
    spec = importlib.util.spec_from_file_location("moving_shapes", HERE / "moving_shapes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_splits(data: Path, held_out: float) -> None:
    """UCF101's split files for a `<class>/<video>` folder: classInd.txt, trainlist01.txt
    (``<class>/<file> <index>``) and testlist01.txt (``<class>/<file>``), CRLF as the official
    ones; the last `held_out` share of each class's videos is the test set."""
    classes = sorted(d.name for d in data.iterdir() if d.is_dir())
    train, test = [], []
    for i, name in enumerate(classes):
        files = sorted(f.name for f in (data / name).iterdir())
        n_test = max(1, round(len(files) * held_out))
        train += [f"{name}/{f} {i + 1}" for f in files[:-n_test]]
        test += [f"{name}/{f}" for f in files[-n_test:]]
    crlf = lambda lines: "".join(f"{x}\r\n" for x in lines)  # noqa: E731
    (data / "classInd.txt").write_text(crlf(f"{i + 1} {c}" for i, c in enumerate(classes)),
                                       newline="")
    (data / "trainlist01.txt").write_text(crlf(train), newline="")
    (data / "testlist01.txt").write_text(crlf(test), newline="")


def _asnc(*args: str) -> None:
    from asn.cli.main import main

    print(f"\n$ asnc {' '.join(args)}", flush=True)
    code = main(list(args))
    if code:
        sys.exit(f"asnc {args[0]} failed with exit code {code}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=None, help="working folder (default: temp)")
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--per-class", type=int, default=40)
    p.add_argument("--video-frames", type=int, default=16, help="frames per generated video")
    p.add_argument("--video-size", type=int, default=64, help="generated video size")
    p.add_argument("--frames", type=int, default=8, help="clip length the network sees")
    p.add_argument("--size", type=int, default=48, help="input size the network sees")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = a.work or Path(tempfile.mkdtemp(prefix="asnc-train-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    data = work / "data"
    if not data.exists():
        _moving_shapes().generate_dataset(data, a.classes, a.per_class, a.video_frames,
                                          a.video_size, a.seed)
        _write_splits(data, 0.25)
    print(f"dataset: {a.classes} classes x {a.per_class} videos of {a.video_frames} frames "
          f"{a.video_size}x{a.video_size} in {data}, UCF101 split files "
          f"({time.time() - t0:.0f} s)")

    sparse, dense, learned = work / "demo.asn", work / "dense.asn", work / "learned.asn"
    sparse.write_text(NETWORK.format(frames=a.frames, size=a.size, classes=a.classes))
    _asnc("connect", str(sparse), "--all", "-o", str(dense))
    run = work / "run"
    _asnc("search", str(dense), "-o", str(learned), "--data", str(data), "--epochs",
          str(a.epochs), "--batch", str(a.batch), "--lr", str(a.lr), "--seed", str(a.seed),
          "--split", "1", "--cache", "--out", str(run), "--overwrite")

    m = json.loads((run / "metrics.json").read_text())
    acc = m["final"]["val_accuracy"]
    print(f"\nheld-out accuracy: {acc:.1%} on {m['val_videos']} videos "
          f"(chance {1 / len(m['classes']):.1%}); trained on {m['train_videos']}")
    print("per epoch (train acc / held-out acc): " + ", ".join(
        f"{e['accuracy']:.2f}/{e['val_accuracy']:.2f}" for e in m["history"]))
    print(f"\nlearned connection weights (written to {learned}):")
    from asn.dsl.loader import load

    net = load(str(learned))
    stems = {s.name: s.type for s in net.stems}
    flow_w, rgb_w = [], []
    for b in net.blocks:
        if len(b.inputs) < 2:
            continue
        cells = []
        for i in b.inputs:
            cells.append(f"{i.source} {i.weight:.3f}")
            if stems.get(i.source) == "flow":
                flow_w.append(i.weight)
            elif stems.get(i.source) == "rgb":
                rgb_w.append(i.weight)
        print(f"  {b.name:<4} <- " + ", ".join(cells))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(f"\nstem edges: flow mean {mean(flow_w):.3f} ({len(flow_w)} edges), "
          f"rgb mean {mean(rgb_w):.3f} ({len(rgb_w)} edges)")

    # Evaluate the trained run as the papers do: every test video of split 1, 10 clips x 3
    # crops, softmax averaged (the same protocol as the search's final evaluation).
    _asnc("eval", str(run), "--data", str(data), "--split", "1")
    ev = json.loads((run / "eval" / "eval.json").read_text())
    print(f"\nasnc eval: top-1 {ev['top1']:.1%}, top-{ev['top5_k']} {ev['top5']:.1%}, mean "
          f"per-class {ev['mean_class_accuracy']:.1%} on {ev['videos']} test videos "
          f"({ev['protocol']['description']})")
    classes = ev["classes"]
    width = max(len(c) for c in classes)
    print("confusion matrix (rows: true class, columns: predicted):")
    print(" " * (width + 2) + " ".join(f"{c[:6]:>6}" for c in classes))
    for name, row in zip(classes, ev["confusion_matrix"]):
        print(f"  {name:<{width}}" + " ".join(f"{n:>6}" for n in row))
    print(f"\npictures: {run / 'eval' / 'confusion.png'} (this matrix, colour = share of the "
          f"true class), {run / 'curves.png'} (loss and accuracy per epoch), "
          f"{run / 'connections.png'} (each learned weight per epoch), "
          f"{run / 'connection_weights.png'} (the learned weights as a heat map), "
          f"{run / 'learned.svg'} (the learned network)")
    print(f"total time {time.time() - t0:.0f} s; files in {work}")


if __name__ == "__main__":
    main()
