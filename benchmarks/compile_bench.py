"""Back-end speed and memory: `asnc compile` of this tree against an earlier commit's code.

    .venv/bin/python benchmarks/compile_bench.py [FILE] [--base REV] [--sizes 4x64x64 8x224x224]
                                                 [--levels 0 1] [--repeat 1] [--no-base]
                                                 [--bound] [--saver-bound] [--json FILE]

For examples/assemblenet50.asn by default. ``--base REV`` (default: the commit before the
compile work, `DEFAULT_BASE`) is exported with ``git archive`` into a temporary directory;
each compile runs in its own fresh process (``--child``); each of ``--repeat`` rounds runs
every (level, tree) pair once, the order rotating from round to round, so that the load of a
shared machine falls on all alike. With levels 0 and 1, it also compares ``-O0`` with ``-O1``
in this tree round by round (the wall-time ratio with a 95% bootstrap interval). Per
compile it prints wall and CPU seconds and the peak RSS of every phase (the kernel's
high-water mark ``VmHWM``, reset at each phase's start through ``/proc/self/clear_refs``),
the process's peak RSS (``wait4``'s ``ru_maxrss``, as
``/usr/bin/time -v`` reports it), and the ratios base / this tree.

``--saver-bound`` adds, in this tree, the same compiles with TensorFlow's saver left out of
the SavedModel (``SaveOptions(experimental_skip_saver=True)``: a file TF Serving cannot
restore, measured only as the bound of what any faster saver could gain), interleaved with the
normal ones. Every compile also records the parity check's steps: the RSS before ONNX
Runtime's session and that session's peak, then the RSS before TensorFlow's reload of the
SavedModel and the reload's peak (``verify steps``).

It also measures the memory bound of the issue: the peak RSS of a process that only builds
the model once (`lower` in the reference form, one forward pass at the proof batch) against
that of the ``-O1`` compile with all its proofs.
Inference latency of the artifacts is `opt_bench.py`'s measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE = "20e643f"  # main before the compile-speed work (issue 12)
PHASES = ("build", "weights", "passes", "resize", "savedmodel", "onnx", "verify")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (``VmHWM``: the peak RSS, ``VmRSS``: now) in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _hwm_mib() -> float:
    return _status_mib("VmHWM")


def _reset_hwm() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass


# --- child: one compile (or one build) in a fresh process -----------------------------


class _VerifySteps:
    """The parity check's two loads, each measured alone: the building of ONNX Runtime's
    session and TensorFlow's reload of the SavedModel. The high-water mark is reset at each
    step; the marks seen before each reset are kept (`seen`) so the phase's peak stays whole.
    """

    def __init__(self):
        self.steps: dict = {}
        self.seen: list[float] = []

    def _measured(self, name, make):
        def wrapped(*args, **kwargs):
            self.seen.append(_hwm_mib())
            before = _status_mib("VmRSS")
            _reset_hwm()
            made = make(*args, **kwargs)
            self.steps[name] = {"rss_before_mib": before, "peak_mib": _hwm_mib()}
            return made
        return wrapped

    def install(self) -> None:
        import onnxruntime as ort
        import tensorflow as tf

        ort.InferenceSession = self._measured("onnxruntime session", ort.InferenceSession)
        tf.saved_model.load = self._measured("tensorflow reload", tf.saved_model.load)


def _without_saver() -> None:
    """`--saver-bound`'s contender: every SavedModel written without TensorFlow's saver."""
    import tensorflow as tf

    save = tf.saved_model.save

    def save_without_saver(obj, export_dir, signatures=None, options=None):
        return save(obj, export_dir, signatures=signatures,
                    options=tf.saved_model.SaveOptions(experimental_skip_saver=True))
    tf.saved_model.save = save_without_saver


def child(args) -> int:
    sys.path.insert(0, args.child)  # the contender's code, ahead of the installed asnc
    from asn.cli.common import load_checked
    from asn.compiler.passes import optimise

    frames, h, w = args.shape
    net, _ = load_checked(args.file, frames, (h, w), None, warnings=False)
    t0 = time.perf_counter()
    import tensorflow as tf  # noqa: F401

    import asn
    rec: dict = {"tree": os.path.dirname(os.path.abspath(asn.__file__)),
                 "import_s": round(time.perf_counter() - t0, 2)}
    phases: dict = {}
    if args.build_only:
        from asn.backends.tensorflow.lower import lower
        from asn.backends.tensorflow.parity import random_inputs
        from asn.compiler.passes import LoweringForm

        _reset_hwm()
        t, c = time.perf_counter(), _cpu()
        lowered = lower(net, seed=0, form=LoweringForm.reference())
        lowered.model(random_inputs(net, 2, 0)["video"], training=False)
        phases["build"] = {"wall": time.perf_counter() - t, "cpu": _cpu() - c,
                           "peak_mib": _hwm_mib()}
    else:
        from asn.backends.tensorflow.compile import compile_network

        marks: dict = {}
        steps = _VerifySteps()
        steps.install()
        if args.no_saver:
            _without_saver()

        def on_phase(name, event):
            if event == "start":
                _reset_hwm()
                steps.seen.clear()
                marks[name] = (time.perf_counter(), _cpu())
            else:
                t, c = marks[name]
                phases[name] = {"wall": time.perf_counter() - t, "cpu": _cpu() - c,
                                "peak_mib": max([_hwm_mib(), *steps.seen])}

        optimised = optimise(net, level=args.level)
        with tempfile.TemporaryDirectory(prefix="asnc-bench-") as tmp:
            result = compile_network(net, os.path.join(tmp, "out"), optimised=optimised,
                                     on_phase=on_phase)
            rec["parity"] = result.parity.max_abs_diff if result.parity else None
            rec["proofs"] = {p["pass"]: p["max_abs_diff"] for p in result.report["proofs"]}
            rec["onnx_sha256"] = result.report["onnx_sha256"]
            rec["onnx_writer"] = result.report.get("onnx_writer", "tf2onnx")
            rec["params"] = result.params
            rec["verify_steps"] = steps.steps
    rec["phases"] = phases
    print("BENCH " + json.dumps(rec), flush=True)
    _exit_like_the_command_line(0)
    return 0


def _exit_like_the_command_line(code: int) -> None:
    """End the child as the contender's own `asnc` ends after a compile, so that the process
    time is what a user waits for: a tree whose command line has `run` (which skips the
    interpreter's teardown of TensorFlow once everything is written) exits that way, an
    older one through the normal teardown."""
    import asn.cli.main as cli

    if hasattr(cli, "run"):
        sys.stderr.flush()
        os._exit(code)


# --- parent: interleaved contenders ------------------------------------------------------

def run_child_rss(tree, file, shape, level, build_only=False, no_saver=False) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), file, "--child", tree,
           "--shape", *map(str, shape), "--level", str(level)]
    if build_only:
        cmd.append("--build-only")
    if no_saver:
        cmd.append("--no-saver")
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True,
                                cwd=tempfile.gettempdir())
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("BENCH ")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"compile failed ({tree}, {shape}, -O{level}):\n"
                             f"{err.read()[-3000:]}")
    rec = json.loads(lines[-1][6:])
    rec["wall"] = wall
    rec["cpu"] = usage.ru_utime + usage.ru_stime
    # ru_maxrss is the same high-water mark that clear_refs resets: the process's peak is
    # the largest of it (the time after the last reset) and the phases' peaks
    rec["peak_mib"] = max([usage.ru_maxrss / 1024,  # KiB on Linux
                           *(p["peak_mib"] for p in rec["phases"].values())])
    return rec


def export_tree(rev: str, dest: str) -> str:
    """``git archive`` of ``rev`` into ``dest`` (symlinks kept); the tree's path."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return dest


def med(xs):
    """The median of the values that are there (the upper one of an even count); None if none."""
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def _width(name: str) -> int:
    """A column's width: its header (``<name> wall``) and a space."""
    return max(12, len(name) + 6)


def report(shape, level, runs: dict[str, list[dict]]) -> list[str]:
    names = list(runs)
    lines = [f"\n{'x'.join(map(str, shape))}  -O{level}  "
             f"({len(runs[names[-1]])} run(s) each; medians)"]
    head = f"  {'phase':<11}" + "".join(f"{n + ' wall':>{_width(n)}}{n + ' cpu':>{_width(n)}}"
                                        f"{n + ' peak':>{_width(n)}}" for n in names)
    if len(names) == 2:
        head += f"{'wall ratio':>11}{'cpu ratio':>11}{'peak ratio':>11}"
    lines.append(head)

    def cell(name, phase, key):
        return med([r["phases"].get(phase, {}).get(key) for r in runs[name]])

    rows = [p for p in PHASES if any(p in r["phases"] for rs in runs.values() for r in rs)]
    for phase in rows:
        line = f"  {phase:<11}"
        vals = []
        for n in names:
            w, c, m = (cell(n, phase, k) for k in ("wall", "cpu", "peak_mib"))
            vals.append((w, c, m))
            k = _width(n)
            line += (f"{w:>{k - 2}.1f} s{c:>{k - 2}.1f} s{m / 1024:>{k - 3}.2f} GB"
                     if w is not None else f"{'-':>{k}}{'-':>{k}}{'-':>{k}}")
        if len(names) == 2 and all(v[0] for v in vals):
            line += "".join(f"{vals[0][k] / vals[1][k]:>10.2f}x" for k in range(3))
        lines.append(line)
    totals = []
    line = f"  {'process':<11}"
    for n in names:
        w, c, m = (med([r[k] for r in runs[n]]) for k in ("wall", "cpu", "peak_mib"))
        totals.append((w, c, m))
        k = _width(n)
        line += f"{w:>{k - 2}.1f} s{c:>{k - 2}.1f} s{m / 1024:>{k - 3}.2f} GB"
    if len(names) == 2:
        line += "".join(f"{totals[0][k] / totals[1][k]:>10.2f}x" for k in range(3))
    lines.append(line + "   (whole process: Python and TF start-up included)")
    for n in names:
        r = runs[n][-1]
        lines.append(f"  {n}: parity {r.get('parity')}, proofs {r.get('proofs')}, "
                     f"onnx sha256 {str(r.get('onnx_sha256'))[:16]}, "
                     f"onnx writer {r.get('onnx_writer')}")
    return lines


def level_comparison(shape, o0: list[dict], o1: list[dict], name: str = "this tree") -> str:
    """``-O0`` against ``-O1`` in this tree, paired by round (both ran in each round):
    process wall time ``-O0`` / ``-O1`` as the median of the rounds' ratios with its 95%
    bootstrap interval, the median peaks, and the parity check's steps (`_VerifySteps`)."""
    sys.path.insert(0, str(ROOT))
    from asn.backends.tensorflow.runtimes import paired_ratio

    wall = paired_ratio([r["wall"] for r in o0], [r["wall"] for r in o1])
    peaks = [med([r["peak_mib"] for r in runs]) / 1024 for runs in (o0, o1)]
    lines = [f"\n{'x'.join(map(str, shape))}  {name}, -O0 against -O1 ({wall.rounds} paired "
             f"round(s)): process wall -O0/-O1 {wall}; peak {peaks[0]:.2f} vs "
             f"{peaks[1]:.2f} GB"]
    for step in ("onnxruntime session", "tensorflow reload"):
        cells = []
        for level, runs in (("-O0", o0), ("-O1", o1)):
            got = [r["verify_steps"][step] for r in runs if step in r.get("verify_steps", {})]
            if got:
                before = med([g["rss_before_mib"] for g in got]) / 1024
                peak = med([g["peak_mib"] for g in got]) / 1024
                cells.append(f"{level} {before:.2f} -> {peak:.2f} GB (+{peak - before:.2f})")
        if cells:
            lines.append(f"  verify step, {step}: " + "; ".join(cells))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", nargs="?", default=str(ROOT / "examples" / "assemblenet50.asn"))
    ap.add_argument("--base", default=DEFAULT_BASE)
    ap.add_argument("--no-base", action="store_true", help="only this tree")
    ap.add_argument("--sizes", nargs="+", default=["4x64x64", "8x224x224"])
    ap.add_argument("--levels", nargs="+", type=int, default=[1, 0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="append every run's raw record to FILE")
    ap.add_argument("--bound", action="store_true",
                    help="also measure build-once vs -O1 compile peak RSS (this tree)")
    ap.add_argument("--saver-bound", action="store_true",
                    help="also compile this tree without TensorFlow's saver (the bound of "
                         "any faster saver; not a servable SavedModel)")
    ap.add_argument("--child", metavar="TREE", help=argparse.SUPPRESS)
    ap.add_argument("--no-saver", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--shape", type=int, nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--level", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    file = os.path.abspath(args.file)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"compile_bench: {os.path.relpath(file, ROOT)}; {os.cpu_count()} CPUs; this tree "
          f"{ROOT} vs base {args.base}; {when}", flush=True)
    tmp = tempfile.mkdtemp(prefix="asnc-bench-base-")
    try:
        # contender: (tree, without TensorFlow's saver)
        trees = {"this": (str(ROOT), False)}
        if not args.no_base:
            trees = {"base": (export_tree(args.base, tmp), False), "this": (str(ROOT), False)}
        if args.saver_bound:
            trees["no-saver"] = (str(ROOT), True)
        for size in args.sizes:
            shape = tuple(int(x) for x in size.split("x"))
            pairs = [(level, n) for level in args.levels for n in trees]
            by_level: dict[int, dict[str, list[dict]]] = {
                level: {n: [] for n in trees} for level in args.levels}
            for k in range(args.repeat):  # every (level, tree) once a round, order rotating
                start = k % len(pairs)
                for level, n in pairs[start:] + pairs[:start]:
                    tree, no_saver = trees[n]
                    by_level[level][n].append(run_child_rss(tree, file, shape, level,
                                                            no_saver=no_saver))
            for level, runs in by_level.items():
                print("\n".join(report(shape, level, runs)), flush=True)
                if args.json:
                    with open(args.json, "a") as fh:
                        fh.write(json.dumps({"shape": shape, "level": level, "runs": runs})
                                 + "\n")
            if {0, 1} <= set(by_level):
                for n, name in (("this", "this tree"),
                                ("no-saver", "this tree without the saver")):
                    if n in trees:
                        print(level_comparison(shape, by_level[0][n], by_level[1][n], name),
                              flush=True)
            if args.bound:
                build = run_child_rss(str(ROOT), file, shape, 1, build_only=True)
                o1 = run_child_rss(str(ROOT), file, shape, 1)
                print(f"\n{size} memory bound (this tree): build once (reference form + "
                      f"one forward pass at batch 2) peak {build['peak_mib'] / 1024:.2f} GB; "
                      f"-O1 compile with proofs peak {o1['peak_mib'] / 1024:.2f} GB; ratio "
                      f"{o1['peak_mib'] / build['peak_mib']:.2f} (bound 1.5)", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
