"""`asnc compile`: lower a network to TensorFlow, write a SavedModel and an ONNX model, and
check that both compute the same logits.

Output directory (written atomically: built next to OUT, then renamed into place):

    OUT/saved_model/   TF SavedModel, signature `serving_default`: video[, object] -> logits
    OUT/model.onnx     the same function as ONNX (opset 17 by default; written directly,
                       by tf2onnx for networks with user modules or --onnx-writer tf2onnx)
    OUT/report.json    stats, passes, parameter counts, parity, artifact sizes, timings
    OUT/model.int8.onnx        with --quantize int8 --calibrate DIR: QDQ int8 (ONNX Runtime)
    OUT/model.tflite           with --format ...,tflite: TFLite, checked in LiteRT
    OUT/model.int8.tflite      with both: int8 TFLite from the same calibration clips
    OUT/serving/<name>/<version>/   with --serving-layout: the SavedModel for TF Serving
"""

from __future__ import annotations

import enum
import os
import time
from typing import List, Optional, Tuple

import typer

from ..backends.tensorflow.outdir import DEFAULT_FORMATS, FORMATS  # TF-free: one place
from .common import EXIT_BAD_INPUT, allow_user_modules, err_console, load_checked, out
from .app import app
from .options import (ClassesOpt, DisablePassOpt, FramesOpt, ImportModulesOpt, PassesOpt,
                      PruneThresholdOpt, SizeOpt, TopKOpt)

__all__ = ["compile_cmd"]

PHASES = {"build": "lower to Keras", "weights": "load weights",
          "passes": "apply and prove the passes", "savedmodel": "SavedModel",
          "onnx": "ONNX", "verify": "verify TF vs ONNX Runtime",
          "openvino": "verify TF vs OpenVINO", "calibrate": "draw calibration clips",
          "quantize": "int8 (quantize, compare, time)", "tflite": "TFLite (LiteRT)"}


class Quantize(str, enum.Enum):
    int8 = "int8"


class CalibrateMethod(str, enum.Enum):
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


class Runtime(str, enum.Enum):
    openvino = "openvino"


class OnnxWriter(str, enum.Enum):
    auto = "auto"
    direct = "direct"
    tf2onnx = "tf2onnx"


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
                              "fold-batchnorm, fold-edge-weights, drop-padding-taps), each "
                              "proved on random "
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
    formats: str = typer.Option(",".join(DEFAULT_FORMATS), "--format",
                                metavar="FORMAT[,FORMAT]", callback=_artifact_formats,
                                help="The artifacts to write, comma-separated: "
                                f"{', '.join(FORMATS)} (default {','.join(DEFAULT_FORMATS)})."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (17 or newer)."),
    onnx_writer: OnnxWriter = typer.Option(
        OnnxWriter.auto, "--onnx-writer", metavar="WRITER", case_sensitive=False,
        help="auto (the direct writer; tf2onnx for layers it does not cover) | direct "
        "(fail where it cannot) | tf2onnx (tf2onnx's conversion of the serving function)."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the TF vs ONNX Runtime "
                                   "parity check."),
    verify_with: Optional[List[Runtime]] = typer.Option(
        None, "--verify-with", metavar="RUNTIME", case_sensitive=False,
        help="Also run the ONNX model in this runtime (openvino) and check its parity "
        "with TF (repeatable)."),
    quantize: Optional[Quantize] = typer.Option(
        None, "--quantize", metavar="int8", case_sensitive=False,
        help="Also write OUT/model.int8.onnx (static QDQ, per-channel int8 weights; with "
        "--format ...,tflite also OUT/model.int8.tflite), compared with fp32 on held-out "
        "clips and timed in ONNX Runtime and OpenVINO. Needs --calibrate."),
    calibrate: Optional[str] = typer.Option(
        None, "--calibrate", metavar="DIR", help="Videos in <class>/<video> layout: "
        "calibration clips, then held-out clips, through the training pipeline's "
        "evaluation crop."),
    calibrate_clips: int = typer.Option(32, "--calibrate-clips", metavar="N", min=1,
                                        help="Calibration clips drawn from --calibrate."),
    calibrate_method: CalibrateMethod = typer.Option(
        CalibrateMethod.minmax, "--calibrate-method", metavar="METHOD",
        case_sensitive=False, help="minmax | entropy | percentile (99.999)."),
    held_out_clips: int = typer.Option(64, "--held-out-clips", metavar="N", min=1,
                                       help="At most N further clips of --calibrate on "
                                       "which the int8 models are judged."),
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
    full_size_proofs: bool = typer.Option(
        False, "--full-size-proofs", help="Prove the passes at the compile's own input size "
        "even where a smaller one meets the same border cases of every window op (the "
        "report's proof_input says which size proved them)."),
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
                                 opset=opset, onnx_writer=onnx_writer.value,
                                 verify=not no_verify, weights=weights,
                                 source=file, serving_layout=serving_layout,
                                 serving_version=serving_version,
                                 labels=_labels(labels, weights, optimised.network),
                                 quantize=quantize.value if quantize else None,
                                 calibrate=calibrate, calibrate_clips=calibrate_clips,
                                 calibrate_method=calibrate_method.value,
                                 held_out_clips=held_out_clips,
                                 verify_with=tuple(v.value for v in verify_with or ()),
                                 full_size_proofs=full_size_proofs)
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
    pin = r.get("proof_input")
    if pin and r.get("proofs"):
        t.add_row("", f"proved on {pin['batch']} random clips of {pin['frames']}x"
                  f"{pin['size'][0]}x{pin['size'][1]}" + (
                      " (as strong as the compile size: the same border cases in every "
                      "window op)" if pin["reduced"] else ""))
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
    if r.get("onnx_writer"):  # layer names inside: plain text, never markup
        from rich.text import Text

        t.add_row("onnx writer", Text(r["onnx_writer"]))
    if r.get("serving"):
        t.add_row(r["serving"]["path"], "TF Serving layout (hard links to saved_model)")
    if r["parity"]:
        par = r["parity"]
        t.add_row("parity", f"max |TF - ONNX| = {par['max_abs_diff']:.2e} "
                  f"(<= {par['tolerance']:g}, batch {par['batch']})")
    else:
        t.add_row("parity", "not checked (--no-verify)")
    _deploy_rows(t, r)
    t.add_row("time", ", ".join(f"{k} {v:.1f} s" for k, v in r["timings_s"].items()))
    out.print(t)


def _deploy_rows(t, r: dict) -> None:
    """The summary's lines for --verify-with, --quantize and the tflite format."""
    if r.get("openvino"):
        t.add_row("openvino", f"max |TF - OpenVINO| = {r['openvino']['max_abs_diff']:.2e} "
                  f"(<= {r['openvino']['tolerance']:g})")
    q = r.get("int8")
    if q:
        g, cal = q["graph"], q["calibration"]
        t.add_row("int8", f"{q['file']}: {g['quantize_linear']} QuantizeLinear, "
                  f"{g['int8_initializers']} int8 weight tensors; {q['method']} on "
                  f"{cal['calibration_clips']} clips")
        for runtime, a in q["agreement"].items():
            acc = (f", accuracy {100 * a['accuracy']:.1f}% (fp32 "
                   f"{100 * a['fp32_accuracy']:.1f}%)" if a["accuracy"] is not None else "")
            t.add_row("", f"{runtime}: top-1 agreement {100 * a['top1_agreement']:.1f}% on "
                      f"{a['clips']} held-out clips, max |logit diff| "
                      f"{a['max_abs_logit_diff']:.3g}, mean {a['mean_abs_logit_diff']:.3g}{acc}")
        t.add_row("", "latency (batch {}): ".format(q["latency_batch"]) + ", ".join(
            f"{k} {v:.1f} ms ({q['speed_vs_fp32_onnxruntime'][k]:.2f}x)"
            for k, v in q["latency_ms"].items()))
    tfl = r.get("tflite")
    if tfl:
        t.add_row("tflite", f"max |TF - LiteRT| = {tfl['parity']['max_abs_diff']:.2e} "
                  f"(<= {tfl['parity']['tolerance']:g})")
        if tfl.get("int8"):
            a = tfl["int8"]["agreement"]
            t.add_row("", f"{tfl['int8']['file']}: top-1 agreement "
                      f"{100 * a['top1_agreement']:.1f}% on {a['clips']} held-out clips, "
                      f"max |logit diff| {a['max_abs_logit_diff']:.3g}")
