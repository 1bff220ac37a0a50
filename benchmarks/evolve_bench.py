"""Evolution vs random search (`asnc evolve --selection aging|random`), same trial budget,
same training per trial, several seeds, on moving shapes whose class is the motion direction
(so the flow stem and the connectivity matter).

    .venv/bin/python benchmarks/evolve_bench.py [--trials 8] [--population 4] [--sample 2]
        [--seeds 0 1 2] [--epochs 2] [--steps 8] [--batch 8] [--lr 5e-3] [--per-class 12]
        [--frames 8] [--size 32]
        [--out build/evolve_bench] [--save benchmarks/results/DATE-evolve_bench.txt]

For each seed, the two searches run one after the other (alternating which goes first), each
as its own `asnc evolve` process with a local Ray sized to the machine. Reported per run: the
held-out top-1 of the best individual found (the split every trial is scored on, so it is the
search's own estimate, optimistic by selection), its GFLOPs, the mean fitness of all trials,
and the wall time. Absolute times are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A small AssembleNet search space: RGB and flow stems, two blocks on level 0, one each on
# levels 1..3, every lower-level node connected (as `asnc connect --all` makes it).
SEED = """\
network shapes_space {
  depth [1, 1, 1, 1]
  flow_iterations 4
}
stem rgb = rgb
stem motion = flow
block a0 = bottleneck(level=0, filters=8) <- rgb, motion
block b0 = bottleneck(level=0, filters=8) <- rgb, motion
block a1 = bottleneck(level=1, filters=8, stride=2) <- rgb, motion, a0, b0
block a2 = bottleneck(level=2, filters=16, stride=2) <- rgb, motion, a0, b0, a1
block a3 = bottleneck(level=3, filters=16, stride=2) <- rgb, motion, a0, b0, a1, a2
"""


def _generate(out: Path, per_class: int, frames: int, size: int) -> None:
    spec = importlib.util.spec_from_file_location("moving_shapes",
                                                  ROOT / "examples" / "moving_shapes.py")
    assert spec is not None and spec.loader is not None
    ms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ms)
    ms.generate_dataset(out, classes=4, per_class=per_class, frames=frames, size=size, seed=7)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--population", type=int, default=4)
    p.add_argument("--sample", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--per-class", type=int, default=12)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--out", type=Path, default=ROOT / "build" / "evolve_bench")
    p.add_argument("--save", type=Path, default=None)
    a = p.parse_args(argv)

    data = a.out / "data"
    if not data.exists():
        _generate(data, a.per_class, a.frames, a.size)
    seed_file = a.out / "seed.asn"
    seed_file.write_text(SEED)
    rows = []
    for k, seed in enumerate(a.seeds):
        methods = ("aging", "random") if k % 2 == 0 else ("random", "aging")
        for method in methods:
            run = a.out / f"{method}-seed{seed}"
            cmd = [sys.executable, "-m", "asn", "evolve", str(seed_file), "--data", str(data),
                   "--population", str(a.population), "--sample", str(a.sample),
                   "--trials", str(a.trials), "--epochs", str(a.epochs), "--steps",
                   str(a.steps), "--batch", str(a.batch), "--lr", str(a.lr),
                   "--frames", str(a.frames),
                   "--size", str(a.size), str(a.size), "--seed", str(seed),
                   "--selection", method, "--out", str(run), "--json"]
            if (run / "journal.jsonl").exists():
                cmd.append("--resume")
            t0 = time.time()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.time() - t0
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-3000:])
                raise SystemExit(f"{method} seed {seed} failed ({proc.returncode})")
            summary = json.loads(proc.stdout)
            records = [json.loads(line) for line in (run / "journal.jsonl").open()]
            fits = [r["fitness"] for r in records if r["status"] == "done"]
            best = summary["best"]
            rows.append({"method": method, "seed": seed, "best": best["fitness"],
                         "gflops": best["gflops"], "mean": statistics.mean(fits),
                         "done": summary["done"], "wall_s": wall})
            print(f"{method:<6} seed {seed}: best {best['fitness']:.3f} at "
                  f"{best['gflops']:.4f} GFLOPs, mean trial {statistics.mean(fits):.3f}, "
                  f"{summary['done']}/{summary['trials']} done, {wall:.0f} s", flush=True)

    lines = [f"evolve_bench: {a.trials} trials (population {a.population}, sample "
             f"{a.sample}), {a.epochs} epoch(s) x {a.steps} steps of batch {a.batch} (lr {a.lr:g}) "
             "per trial, "
             f"moving shapes 4 classes x {a.per_class} videos, {a.frames} frames {a.size}x"
             f"{a.size}, seeds {a.seeds}", "",
             "| method | seed | best held-out top-1 | its GFLOPs | mean trial top-1 | wall s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['seed']} | {r['best']:.3f} | {r['gflops']:.4f} | "
                     f"{r['mean']:.3f} | {r['wall_s']:.0f} |")
    for method in ("aging", "random"):
        mine = [r for r in rows if r["method"] == method]
        best = [r["best"] for r in mine]
        lines.append(f"| {method} mean | | {statistics.mean(best):.3f} "
                     f"(sd {statistics.pstdev(best):.3f}) | "
                     f"{statistics.mean(r['gflops'] for r in mine):.4f} | "
                     f"{statistics.mean(r['mean'] for r in mine):.3f} | "
                     f"{statistics.mean(r['wall_s'] for r in mine):.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.save:
        a.save.parent.mkdir(parents=True, exist_ok=True)
        a.save.write_text(text)


if __name__ == "__main__":
    main()
