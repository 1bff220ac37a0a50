"""Does the front end grow linearly with its input? check, stats and viz at growing sizes.

    .venv/bin/python benchmarks/frontend_scaling.py [--sizes 1000 2000 5000 10000 20000]
                                                    [--cases plain peer ...] [--runs 1] [--dot]

For each case and size N it times, in process (no TensorFlow):

- `check`: load (parse) + validate + render the diagnostics the CLI shows (the first 50)
  + the `check --json` list of all of them;
- `stats`: load + validate + `analyse` (valid networks only);
- `viz`: load + validate + the DOT text (`to_dot`; `--dot` also runs Graphviz `dot -Tsvg`
  when it is installed, which is not linear in our hands).

Cases: `plain` and `peer` (AssembleNet-like networks of N nodes, `frontend_bench.generate`),
`unknown` (N blocks each reading an undeclared name), `wide` (N blocks, then one block
reading all of them), `longline` (one block reading N undeclared names on one line). It prints
each time and t(N) / t(smallest) against N / smallest: linear growth gives the same number
(the per-node ratio column is then about 1). Not a test: tests/test_limits.py asserts the
behaviour.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from frontend_bench import generate  # noqa: E402

from asn.backends.graphviz import find_dot, render as render_dot, to_dot  # noqa: E402
from asn.compiler.analysis import analyse  # noqa: E402
from asn.compiler.validation import check  # noqa: E402
from asn.dsl.diagnostics import DiagnosticError, Source, render, to_json  # noqa: E402
from asn.dsl.loader import load_text  # noqa: E402

SHOWN = 50  # as `asnc check` (asn.cli.common.MAX_SHOWN_DIAGNOSTICS)
HDR = "network n {\n  frames 8\n  size 64x64\n  classes 10\n}\nstem r0 = rgb\n"


def unknown_inputs(n: int) -> str:
    return HDR + "".join(f"block b{i} = bottleneck(level=3, filters=8) <- r0, zz{i}\n"
                         for i in range(n))


def wide_block(n: int) -> str:
    return (HDR + "".join(f"block a{i} = bottleneck(level=0, filters=8) <- r0\n" for i in range(n))
            + "block b = bottleneck(level=3, filters=8) <- "
            + ", ".join(f"a{i} @0.5" for i in range(n)) + "\n")


def long_line(n: int) -> str:
    return (HDR + "block b = bottleneck(level=3, filters=8) <- "
            + ", ".join(f"x{i}" for i in range(n)) + "\n")


CASES: dict[str, tuple[Callable[[int], str], bool]] = {  # text, valid (stats and viz apply)
    "plain": (lambda n: generate(n), True),
    "peer": (lambda n: generate(n, "peer"), True),
    "wide": (wide_block, True),
    "unknown": (unknown_inputs, False),
    "longline": (long_line, False),
}


def run_check(text: str) -> None:
    source = Source("gen.asn", text)
    try:
        diags = check(load_text(text, "gen.asn"))
    except DiagnosticError as exc:
        diags = exc.diagnostics
    for d in diags[:SHOWN]:
        render(d, source)
    to_json(diags, "gen.asn")


def run_stats(text: str) -> None:
    net = load_text(text, "gen.asn")
    check(net)
    analyse(net)


def make_viz(with_dot: bool) -> Callable[[str], None]:
    dot = find_dot() if with_dot else None

    def run_viz(text: str) -> None:
        net = load_text(text, "gen.asn")
        check(net)
        dot_text = to_dot(net)
        if dot is not None:
            render_dot(dot_text, "svg")
    return run_viz


def timed(fn: Callable[[str], None], text: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 10000, 20000])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--dot", action="store_true", help="also render the viz with Graphviz")
    args = ap.parse_args(argv)
    commands = {"check": run_check, "stats": run_stats, "viz": make_viz(args.dot)}
    load_text(generate(100), "warm.asn")  # build the lark parser once, outside the timings
    lo = min(args.sizes)
    print(f"{'case':<9} {'command':<6} {'N':>7} {'time (s)':>9} {'t/t0':>7} {'N/N0':>6} "
          f"{'per-node':>8}")
    worst = 0.0
    for case in args.cases:
        make, valid = CASES[case]
        for name, fn in commands.items():
            if name != "check" and not valid:
                continue
            base = None
            for n in sorted(args.sizes):
                t = timed(fn, make(n), args.runs)
                base = base if base is not None else t
                ratio, size_ratio = t / base, n / lo
                worst = max(worst, ratio / size_ratio)
                print(f"{case:<9} {name:<6} {n:>7} {t:>9.3f} {ratio:>7.2f} {size_ratio:>6.1f} "
                      f"{ratio / size_ratio:>8.2f}", flush=True)
    print(f"largest per-node ratio: {worst:.2f} (linear: about 1; quadratic: N/N0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
