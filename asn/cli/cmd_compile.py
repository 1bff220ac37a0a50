"""`asnc compile`: lower a network to TensorFlow, write a SavedModel and an ONNX model, and
check that both compute the same logits.

Output directory (written atomically: built next to OUT, then renamed into place):

    OUT/saved_model/   TF SavedModel, signature `serving_default`: video[, object] -> logits
    OUT/model.onnx     the same function as ONNX (tf2onnx, opset 17 by default)
    OUT/report.json    stats, passes, parameter counts, parity, artifact sizes, timings
    OUT/serving/<name>/<version>/   with --serving-layout: the SavedModel for TF Serving
"""

from __future__ import annotations

import os
import time
from typing import List, Optional, Tuple

import typer

from ..backends.tensorflow.outdir import FORMATS  # TF-free: the artifact names, one place
from .common import EXIT_BAD_INPUT, allow_user_modules, err_console, load_checked, out
from .app import app
from .options import (ClassesOpt, DisablePassOpt, FramesOpt, ImportModulesOpt, PassesOpt,
                      PruneThresholdOpt, SizeOpt, TopKOpt)

__all__ = ["compile_cmd"]

PHASES = {"build": "lower to Keras", "weights": "load weights",
          "passes": "apply and prove the passes", "savedmodel": "SavedModel",
          "onnx": "ONNX (tf2onnx)", "verify": "verify TF vs ONNX Runtime"}


def _artifact_formats(value: str) -> str:
    """`--format`'s comma-separated list, each name one of FORMATS (else a usage error)."""
    items = [f.strip().lower() for f in value.split(",") if f.strip()]
    bad = [f for f in items if f not in FORMATS]
    if bad or not items:
        got = f"`{bad[0]}` is no artifact format" if bad else "no format given"
        raise typer.BadParameter(f"{got}; choose from {', '.join(FORMATS)} (comma-separated)")
    return ",".join(dict.fromkeys(items))


@app.command("compile")
def compile_cmd(
    file: str = typer.Argument(..., help="A network file (.asn, JSON form or list format)."),
    output: str = typer.Option(..., "-o", "--output", metavar="DIR", help="Output directory "
                               "(replaced atomically; an existing one must be an earlier asnc "
                               "output)."),
    level: int = typer.Option(1, "-O", min=0, max=2, help="0: as written (the reference "
                              "form); 1: exact passes (dead-node elimination, repflow-slices, "
                              "fold-batchnorm, fold-edge-weights), each proved on random "
                              "inputs; 2: also edge pruning (its deviation is reported)."),
    passes_opt: Optional[List[str]] = PassesOpt,
    disable: Optional[List[str]] = DisablePassOpt,
    prune_threshold: Optional[float] = PruneThresholdOpt,
    prune_top_k: Optional[int] = TopKOpt,
    frames: Optional[int] = FramesOpt,
    size: Optional[Tuple[int, int]] = SizeOpt,
    classes: Optional[int] = ClassesOpt,
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help="Fixed batch size of "
                                        "the exported models (default: dynamic)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the weight initialisers (and "
                             "of the parity check's random input)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Trained weights: a Keras "
                                          "`.weights.h5` file (model.save_weights) or a "
                                          "`.keras` file of the same network and size."),
    formats: str = typer.Option(",".join(FORMATS), "--format", metavar="FORMAT[,FORMAT]",
                                callback=_artifact_formats, help="The artifacts to write, "
                                f"comma-separated: {', '.join(FORMATS)}."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (17 or newer)."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the TF vs ONNX Runtime "
                                   "parity check."),
    serving_layout: bool = typer.Option(False, "--serving-layout", help="Also write TF "
                                        "Serving's layout OUT/serving/<name>/<version>/ "
                                        "(hard links to OUT/saved_model's files)."),
    serving_version: int = typer.Option(1, "--serving-version", min=1, metavar="N",
                                        help="Version directory of --serving-layout (also "
                                        "the ONNX model_version)."),
    labels: Optional[str] = typer.Option(None, "--labels", metavar="FILE", help="Class names, "
                                         "one per line, copied to OUT/labels.txt (default: "
                                         "the labels.txt beside --weights, as a training run "
                                         "writes it)."),
    import_modules: bool = ImportModulesOpt,
) -> None:
    """Lower to TensorFlow; emit a SavedModel and ONNX; verify they agree."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads
    from ..compiler.passes import UnknownPassError, optimise

    allow_user_modules(import_modules)
    net, _ = load_checked(file, frames, size, classes)
    try:
        optimised = optimise(net, level=level, passes=passes_opt, disabled=disable or (),
                             prune_threshold=prune_threshold, prune_top_k=prune_top_k)
    except UnknownPassError as exc:
        raise typer.BadParameter(str(exc)) from None

    from ..backends.tensorflow.compile import CompileError, CompileOptions, compile_network
    from ..compiler.usermodule import UserModuleError

    try:
        options = CompileOptions(seed=seed, batch=batch, formats=tuple(formats.split(",")),
                                 opset=opset, verify=not no_verify, weights=weights,
                                 source=file, serving_layout=serving_layout,
                                 serving_version=serving_version,
                                 labels=_labels(labels, weights, optimised.network))
    except CompileError as exc:
        _fail(file, str(exc))
    _quiet_converters()
    progress = _Progress()
    try:
        with progress:
            result = compile_network(net, output, options, optimised, on_phase=progress.phase)
    except CompileError as exc:
        _fail(file, str(exc))
    except UserModuleError as exc:
        _fail(file, f"block `{exc.node}`: {exc.message}")
    _summary(result, optimised.stats())


def _labels(given: Optional[str], weights: Optional[str], net) -> tuple[str, ...] | None:
    """The class names to write into OUT: `--labels`, else those of the run the weights
    come from (its labels.txt, when the class count fits)."""
    from .labels import LabelsError, labels_beside, read_labels

    path = given or (labels_beside(weights) if weights else None)
    if path is None:
        return None
    try:
        return tuple(read_labels(path, net.header.classes))
    except LabelsError as exc:
        if given is None:  # found, not asked for: a note, and no labels
            err_console.print(f"note: not copying {exc.path}: {exc.message}")
            return None
        err_console.print(str(exc))
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _quiet_converters() -> None:
    import logging

    for name in ("tf2onnx", "tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import tf2onnx

        tf2onnx.logging.set_level(logging.ERROR)
    except Exception:  # pragma: no cover - logging only
        pass


class _Progress:
    """A live spinner per phase on a terminal; otherwise (piped, a CI log) a plain line as
    each phase starts and one as it ends, flushed at once: no silent minute."""

    def __init__(self, console=None):
        self.console = console or err_console
        self.live = self.console.is_terminal
        self.tasks: dict[str, int] = {}
        self.t0: dict[str, float] = {}
        if self.live:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.bar = Progress(SpinnerColumn(finished_text="[green]✓[/]"),
                                TextColumn("{task.description}", markup=False),
                                TimeElapsedColumn(),
                                console=self.console, transient=False)

    def __enter__(self):
        if self.live:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.bar.__exit__(*exc)
        return False

    def phase(self, name: str, event: str) -> None:
        label = PHASES.get(name, name)
        if event == "start":
            self.t0[name] = time.perf_counter()
            if self.live:
                self.tasks[name] = self.bar.add_task(label, total=1)
            else:
                self._line(f"{label} ...")
            return
        took = time.perf_counter() - self.t0.get(name, time.perf_counter())
        if self.live:
            self.bar.update(self.tasks[name], completed=1)
        else:
            self._line(f"{label}: done ({took:.1f} s)")

    def _line(self, text: str) -> None:
        self.console.print(text)
        self.console.file.flush()  # a pipe is block-buffered: show the line now


def _fail(file: str, message: str):
    err_console.print(f"{file}: error: {message}")
    raise typer.Exit(EXIT_BAD_INPUT)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _summary(result, stats) -> None:
    from rich.table import Table

    r = result.report
    p = r["params"]
    t = Table(title=f"{r['network']}: {stats.frames} frames at {stats.size[0]}x"
              f"{stats.size[1]}, {stats.classes} classes -> {result.out}",
              title_justify="left", show_header=False, box=None, padding=(0, 2))
    t.add_column(justify="left")
    t.add_column(justify="left")
    level = r["passes"]["level"]
    which = f"-O{level}" if level is not None else "--passes"
    counted = f"asnc stats {which}" if level is not None else "the static count"
    same = (f"= {counted}" if p["count_params"] == stats.total else
            f"!= {counted} {stats.total:,}")
    if p["as_written"] != p["count_params"]:
        same += f"; {p['as_written']:,} as written"
    t.add_row("parameters", f"{p['count_params']:,} ({p['non_trainable']:,} non-trainable) "
              f"{same}")
    t.add_row("FLOPs", f"{stats.flops / 1e9:.2f} GFLOPs per clip")
    passes = r["passes"]
    ran = [x["name"] for x in passes["passes"] if not x["backend"]]
    ran += passes["backend_passes"]
    t.add_row("passes", f"{which}: " + (", ".join(ran) or "none"))
    for name, why in passes["backend_passes_skipped"].items():
        t.add_row("", f"{name}: does not apply ({why})")
    for proof in r.get("proofs", []):
        if proof["exact"]:
            t.add_row("", f"{proof['pass']}: proved, max |logit change| "
                      f"{proof['max_abs_diff']:.1e} <= {proof['tolerance']:g}")
        else:
            t.add_row("", f"{proof['pass']}: approximate, max |logit change| "
                      f"{proof['max_abs_diff']:.3g} ({100 * proof['relative_deviation']:.2f}% "
                      f"of the largest logit)")
    for name, info in r["artifacts"].items():
        t.add_row(name, _size(info["bytes"]))
    if r.get("serving"):
        t.add_row(r["serving"]["path"], "TF Serving layout (hard links to saved_model)")
    if r["parity"]:
        par = r["parity"]
        t.add_row("parity", f"max |TF - ONNX| = {par['max_abs_diff']:.2e} "
                  f"(<= {par['tolerance']:g}, batch {par['batch']})")
    else:
        t.add_row("parity", "not checked (--no-verify)")
    t.add_row("time", ", ".join(f"{k} {v:.1f} s" for k, v in r["timings_s"].items()))
    out.print(t)
