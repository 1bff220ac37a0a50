"""`asnc compile`'s orchestration: lower, load weights, prove the passes, write and verify.

Artifacts (one directory, written atomically, `outdir.staged_output`):

* ``saved_model/`` (`savedmodel`), ``model.onnx`` (`onnx_export`: byte-identical for the
  same network, seed and options; written by the direct writer, `onnx_direct`, or by
  tf2onnx for the layers it does not cover: the report's ``onnx_writer``) and
  ``report.json``: static stats, passes, proofs, parity, artifact sizes, per-phase
  timings; both artifacts carry the same `metadata`;
* with ``serving_layout``, ``serving/<name>/<version>/`` (`serving`): the SavedModel in TF
  Serving's layout, hard links to ``saved_model/``'s files.

Phases: ``build``, ``weights`` (with weights), ``passes`` (with passes to apply),
``resize`` (proofs at a smaller input, `compiler.proof_input`: the proved model built again
at the compile size with the same weights, `proofs.rebuild_at`), ``savedmodel``, ``onnx``,
``verify`` (unless ``verify=False``; it needs both artifacts, so both are made and only the
asked formats kept), then as asked (`deploy`): ``openvino``, ``calibrate`` and ``quantize``
(``model.int8.onnx``), ``tflite`` (``model.tflite``, ``model.int8.tflite``).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ...compiler.analysis import analyse
from ...compiler.passes import LoweringForm, Optimised, optimise
from ...compiler.proof_input import ProofInput, proof_input, with_size
from ...dsl.ir import Network
from .errors import CompileError
from .lower import input_specs, lower
from .memory import return_freed_memory
from .metadata import artifact_metadata, file_sha256
from .onnx_export import DEFAULT_OPSET, MIN_OPSET, WRITERS, export_onnx, max_opset
from .outdir import (DEFAULT_FORMATS, FORMATS, MARKER, ONNX_NAME, REPORT_NAME,
                     SAVEDMODEL_DIR, dir_size, staged_output)
from .calibration import DEFAULT_CALIBRATION_CLIPS, DEFAULT_HELD_OUT_CLIPS
from .deploy import run_deploy_phases
from .parity import PARITY_TOLERANCE, Parity, check_onnx_file, random_inputs, verify
from . import repflow
from .proofs import (PROOF_TOLERANCE, Handover, PassProofError, apply_backend_passes,
                     prove_graph_passes, rebuild_at)
from .savedmodel import savedmodel_float_count, serving_function, write_savedmodel
from .serving import write_serving_layout

__all__ = ["FORMATS", "PROOF_BATCH", "CompileOptions", "CompileResult", "CompileError",
           "compile_network", "load_weights"]

LABELS_NAME = "labels.txt"  # OUT/labels.txt: the class names, one per line
PROOF_BATCH = 2  # clips per proof when the batch is dynamic (a real batch, not one clip)


QUANTIZE_MODES = ("int8",)
VERIFY_RUNTIMES = ("openvino",)


def _check_deploy_options(o: CompileOptions) -> None:
    from .quantize import METHODS

    if o.quantize is not None and o.quantize not in QUANTIZE_MODES:
        raise CompileError(f"--quantize takes {', '.join(QUANTIZE_MODES)}, got `{o.quantize}`")
    if o.quantize and not o.calibrate:
        raise CompileError("--quantize int8 needs --calibrate DIR (a folder of "
                           "<class>/<video> files whose clips calibrate the int8 ranges)")
    if o.calibrate and not o.quantize:
        raise CompileError("--calibrate needs --quantize int8")
    if o.calibrate and not os.path.isdir(o.calibrate):  # before minutes of compiling
        raise CompileError(f"--calibrate: `{o.calibrate}` is not a directory")
    if o.calibrate_method not in METHODS:
        raise CompileError(f"--calibrate-method takes {', '.join(METHODS)}, got "
                           f"`{o.calibrate_method}`")
    for name, value in (("--calibrate-clips", o.calibrate_clips),
                        ("--held-out-clips", o.held_out_clips)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CompileError(f"{name} must be an integer >= 1, got {value!r}")
    verify_with = tuple(dict.fromkeys(v.strip().lower() for v in o.verify_with if v.strip()))
    bad = [v for v in verify_with if v not in VERIFY_RUNTIMES]
    if bad:
        raise CompileError(f"--verify-with takes {', '.join(VERIFY_RUNTIMES)}, got `{bad[0]}`")
    object.__setattr__(o, "verify_with", verify_with)


@dataclass(frozen=True)
class CompileOptions:
    """Everything a compile can be asked, checked once here (the CLI only parses).

    Attributes:
        seed: weight initialisers, the proofs' and the parity check's random inputs.
        batch: fixed batch of the artifacts (None: dynamic).
        formats: artifacts to keep, a subset of `FORMATS` (order and case free).
        opset: ONNX opset, `MIN_OPSET` to `max_opset()`.
        onnx_writer: ``"auto"`` (the direct writer, tf2onnx for layers it does not cover),
            ``"direct"`` or ``"tf2onnx"`` (`onnx_export.export_onnx`).
        verify: run the TF vs ONNX Runtime parity check.
        weights: trained weights (`load_weights`), or None for seeded initial weights.
        parity_tolerance, proof_tolerance: the largest logit difference allowed.
        source: the network file (for the report).
        serving_layout: also write ``serving/<name>/<serving_version>/`` (TF Serving).
        serving_version: the version directory's number (>= 1; also the ONNX
            ``model_version``).
        labels: class names, one per class, written to ``labels.txt`` (`asnc predict`).
        quantize: ``"int8"``: also write ``model.int8.onnx`` (and ``model.int8.tflite``
            with the tflite format), calibrated on clips of ``calibrate`` (`deploy`).
        calibrate, calibrate_clips, calibrate_method, held_out_clips: the video folder
            (``<class>/<video>``), how many calibration clips, MinMax/Entropy/Percentile,
            and at most how many held-out clips judge the int8 models.
        verify_with: extra runtimes that must match TF (``"openvino"``).
        full_size_proofs: prove the passes at the compile's own input size even where a
            smaller one meets the same cases (`compiler.proof_input`).
    """

    seed: int = 0
    batch: int | None = None
    formats: tuple[str, ...] = DEFAULT_FORMATS
    opset: int = DEFAULT_OPSET
    onnx_writer: str = "auto"
    verify: bool = True
    weights: str | None = None
    parity_tolerance: float = PARITY_TOLERANCE
    proof_tolerance: float = PROOF_TOLERANCE
    source: str | None = None
    serving_layout: bool = False
    serving_version: int = 1
    labels: tuple[str, ...] | None = None
    quantize: str | None = None
    calibrate: str | None = None
    calibrate_clips: int = DEFAULT_CALIBRATION_CLIPS
    calibrate_method: str = "minmax"
    held_out_clips: int = DEFAULT_HELD_OUT_CLIPS
    verify_with: tuple[str, ...] = ()
    full_size_proofs: bool = False

    def __post_init__(self):
        formats = tuple(dict.fromkeys(f.strip().lower() for f in self.formats if f.strip()))
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            raise CompileError(f"--format takes {' and/or '.join(FORMATS)}, got "
                               f"`{','.join(self.formats)}`")
        object.__setattr__(self, "formats", formats)
        if isinstance(self.serving_version, bool) or not isinstance(self.serving_version, int) \
                or self.serving_version < 1:
            raise CompileError(f"--serving-version must be an integer >= 1, got "
                               f"{self.serving_version!r}")
        if self.serving_layout and "savedmodel" not in formats:
            raise CompileError("--serving-layout needs the savedmodel format (--format "
                               "savedmodel[,onnx])")
        if self.weights is not None and not os.path.isfile(self.weights):
            raise CompileError(f"weights file `{self.weights}` does not exist")
        _check_deploy_options(self)
        if self.onnx_writer not in WRITERS:
            raise CompileError(f"--onnx-writer takes {', '.join(WRITERS)}, got "
                               f"`{self.onnx_writer}`")
        if self.uses_onnx:
            top = max_opset()
            if not MIN_OPSET <= self.opset <= top:
                raise CompileError(f"--opset must be between {MIN_OPSET} and {top}, got "
                                   f"{self.opset}")

    @property
    def uses_onnx(self) -> bool:
        return "onnx" in self.formats or self.verify or bool(self.quantize or self.verify_with)

    @property
    def uses_savedmodel(self) -> bool:
        return ("savedmodel" in self.formats or self.verify or "tflite" in self.formats
                or bool(self.quantize or self.verify_with))


@dataclass
class CompileResult:
    out: str
    report: dict
    parity: Parity | None
    params: int
    timings: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def _collect_only_new_objects():
    """Garbage collections inside leave out every object that existed before (TensorFlow's
    and Keras' modules, which live as long as the process), so the collections that free
    each proved model (`proofs.Handover`) scan only what the compile made: measured in the
    quickstart compile, 1.5 s of collections became 0.5 s. The objects are handed back to
    the collector afterwards (`gc.unfreeze`)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def compile_network(net: Network, out: str, options: CompileOptions = CompileOptions(),
                    optimised: Optimised | None = None,
                    on_phase: Callable[[str, str], None] | None = None) -> CompileResult:
    """Lower ``net`` and write the artifacts into ``out`` (atomically).

    ``net`` is the network as written; ``optimised`` (`compiler.passes.optimise`'s result;
    None: ``-O0``) the graph passes run on it and the lowering form they give. The model is
    first built in the reference form from ``net`` (trained weights load into it); each
    graph pass that changed the network is then proved (`proofs.prove_graph_passes`), then
    each backend pass applied and proved (`proofs.apply_backend_passes`).
    ``on_phase(name, "start"|"done")`` reports progress. Raises CompileError (nothing
    written) on a parity or proof failure or a bad weights file.
    """
    if optimised is None:
        optimised = optimise(net, level=0)
    note = on_phase or (lambda name, event: None)
    timings: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(name):
        note(name, "start")
        t = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - t, 3)
        note(name, "done")

    o = options
    final_net = optimised.network
    expected = optimised.stats()
    has_passes = bool(optimised.stages or optimised.form.applied)
    size = (int(net.header.size[0]), int(net.header.size[1]))
    pin = (proof_input(net) if has_passes and not o.full_size_proofs else
           ProofInput(size, size, "the compile size" + (" (--full-size-proofs)"
                                                         if has_passes else "")))
    # the proofs' networks: the same nodes at the proof size (`compiler.proof_input`)
    at_proof = (lambda n: with_size(n, pin.size)) if pin.reduced else (lambda n: n)
    with _collect_only_new_objects(), staged_output(os.path.abspath(out)) as tmp:
        with phase("build"):
            lowered = lower(at_proof(net), seed=o.seed, batch=o.batch,
                            form=LoweringForm.reference())
        if o.weights:
            with phase("weights"):  # weights do not depend on the input size
                load_weights(lowered.model, o.weights, net)
        proofs: list = []
        if has_passes:
            with phase("passes"):
                feeds = random_inputs(at_proof(net), o.batch or PROOF_BATCH, o.seed)
                stages = [(name, at_proof(stage)) for name, stage in optimised.stages]
                try:
                    # the flow layer runs once per form: every proof uses the same clips
                    with repflow.memoised_outputs():
                        # handed over, not kept: each model is freed once the next is proved
                        chain = Handover(lowered)
                        del lowered
                        graph_done, proofs, logits = prove_graph_passes(
                            chain, stages, feeds, seed=o.seed, batch=o.batch,
                            tolerance=o.proof_tolerance)
                        chain = Handover(graph_done)
                        del graph_done
                        lowered, backend_proofs = apply_backend_passes(
                            at_proof(final_net), chain, optimised.form, feeds, seed=o.seed,
                            batch=o.batch, tolerance=o.proof_tolerance, before=logits)
                except PassProofError as exc:
                    raise CompileError(str(exc)) from None
                proofs += backend_proofs
        if pin.reduced:
            with phase("resize"):  # the proved layers and weights, at the compile size
                lowered = rebuild_at(final_net, Handover(lowered), seed=o.seed,
                                     batch=o.batch)
        model = lowered.model
        params = int(model.count_params())
        if params != expected.total:
            raise CompileError(f"internal error: the optimised model has {params:,} "
                               f"parameters, `asnc stats` counts {expected.total:,} for it")
        trainable = int(sum(int(np.prod(v.shape)) for v in model.trainable_weights))
        metadata = artifact_metadata(
            net, final_net, level=optimised.level, passes=_passes_applied(optimised),
            batch=o.batch, seed=o.seed,
            weights_sha256=file_sha256(o.weights) if o.weights else None)
        artifacts = _write_artifacts(model, final_net, tmp, o, phase, metadata)
        del model, lowered  # written: the parity check loads the artifacts themselves
        gc.collect()
        return_freed_memory()
        parity = None
        if o.uses_onnx and not o.verify:
            check_onnx_file(artifacts.onnx)  # `verify` runs it first
        if o.verify:
            with phase("verify"):
                parity = verify(artifacts.savedmodel, artifacts.onnx, final_net, batch=o.batch,
                                seed=o.seed, tolerance=o.parity_tolerance)
            if not parity.ok:
                raise CompileError(
                    f"TF and ONNX Runtime disagree: max |logit difference| "
                    f"{parity.max_abs_diff:.3g} > {parity.tolerance:g} (batch {parity.batch}, "
                    f"seed {parity.seed}); nothing was written"
                    + (" (the ONNX model was written directly: --onnx-writer tf2onnx "
                       "converts it with tf2onnx instead; please report this)"
                       if artifacts.onnx_writer == "direct" else ""))
        deployed, deploy_sizes = run_deploy_phases(
            artifacts.savedmodel, artifacts.onnx, final_net, tmp, o, phase,
            tf_logits=parity.tf_logits if parity is not None else None)
        sizes = artifacts.keep_only(o.formats)
        sizes.update(deploy_sizes)
        serving = None
        if o.serving_layout:
            serving = write_serving_layout(artifacts.savedmodel, tmp, final_net.header.name,
                                           o.serving_version)
        if artifacts.saved_floats is not None and artifacts.saved_floats != params:
            raise CompileError(f"the SavedModel stores {artifacts.saved_floats:,} float "
                               f"values, the model has {params:,} parameters")
        report = {
            "tool": MARKER,
            "source": o.source,
            "network": final_net.header.name,
            "options": {"seed": o.seed, "batch": o.batch, "formats": list(o.formats),
                        "opset": o.opset if o.uses_onnx else None,
                        "onnx_writer": o.onnx_writer if o.uses_onnx else None,
                        "verify": o.verify, "weights": o.weights,
                        "quantize": o.quantize, "calibrate": o.calibrate,
                        "calibrate_clips": o.calibrate_clips if o.quantize else None,
                        "calibrate_method": o.calibrate_method if o.quantize else None,
                        "verify_with": list(o.verify_with)},
            "signature": {"name": "serving_default",
                          "inputs": {k: list(v) for k, v in
                                     input_specs(final_net, o.batch).items()},
                          "outputs": {"logits": [o.batch, final_net.header.classes]}},
            "params": {"count_params": params, "trainable": trainable,
                       "non_trainable": params - trainable,
                       "as_written": analyse(net).total,
                       "savedmodel_floats": (artifacts.saved_floats
                                             if "savedmodel" in o.formats else None)},
            "stats": expected.to_json(),
            "passes": {"level": optimised.level, **optimised.to_json()},
            "proofs": [p.to_json() for p in proofs],
            "proof_input": ({"frames": net.header.frames, **pin.to_json(),
                             "batch": o.batch or PROOF_BATCH} if has_passes else None),
            "parity": parity.to_json() if parity else None,
            "artifacts": {k: {"bytes": v} for k, v in sizes.items()},
            "onnx_sha256": artifacts.onnx_sha256 if "onnx" in o.formats else None,
            "onnx_writer": artifacts.onnx_writer,
            "metadata": metadata,
            "serving": ({"path": serving, "version": o.serving_version,
                         "files": "hard links to saved_model/"} if serving else None),
            **deployed,  # openvino, int8, tflite: as asked
            "timings_s": timings,
            "versions": _versions(),
        }
        if o.labels is not None:  # the class names, for `asnc predict OUT/`
            if len(o.labels) != final_net.header.classes:
                raise CompileError(f"{len(o.labels)} class names for "
                                   f"{final_net.header.classes} classes")
            with open(os.path.join(tmp, LABELS_NAME), "w") as fh:
                fh.write("".join(f"{name}\n" for name in o.labels))
            report["labels"] = LABELS_NAME
        with open(os.path.join(tmp, REPORT_NAME), "w") as fh:
            json.dump(report, fh, indent=1)
            fh.write("\n")
    return CompileResult(os.path.abspath(out), report, parity, params, timings, sizes)


@dataclass
class _Artifacts:
    savedmodel: str
    onnx: str
    saved_floats: int | None = None
    onnx_sha256: str | None = None
    onnx_writer: str | None = None  # "direct" or "tf2onnx (fallback: ...)" (`export_onnx`)

    def keep_only(self, formats: tuple[str, ...]) -> dict[str, int]:
        """Drop what was made only for the parity check; the kept artifacts' sizes."""
        sizes = {}
        for fmt, path, name in (("savedmodel", self.savedmodel, SAVEDMODEL_DIR),
                                ("onnx", self.onnx, ONNX_NAME)):
            if fmt in formats:
                sizes[name] = dir_size(path)
            elif os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.unlink(path)
        return sizes


def _passes_applied(optimised: Optimised) -> list[str]:
    """Graph passes that ran, then the backend passes that applied (the summary's list)."""
    ran = [r.name for r in optimised.reports if not r.backend]
    return ran + list(optimised.form.applied)


def _write_artifacts(model, net: Network, tmp: str, o: CompileOptions, phase,
                     metadata: dict[str, str]) -> _Artifacts:
    fn, _ = serving_function(model, net, o.batch)
    art = _Artifacts(os.path.join(tmp, SAVEDMODEL_DIR), os.path.join(tmp, ONNX_NAME))
    if o.uses_savedmodel:
        with phase("savedmodel"):
            write_savedmodel(model, net, art.savedmodel, o.batch, fn=fn, metadata=metadata)
            art.saved_floats = savedmodel_float_count(art.savedmodel)
    if o.uses_onnx:
        with phase("onnx"):
            written = export_onnx(model, net, art.onnx, opset=o.opset, batch=o.batch,
                                  metadata=metadata, model_version=o.serving_version,
                                  writer=o.onnx_writer, check=False)
            art.onnx_sha256 = written.sha256
            art.onnx_writer = written.writer
    return art


def _versions() -> dict:
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    return {"tensorflow": tf.__version__, "keras": keras.__version__,
            "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}


def load_weights(model, path: str, net: Network | None = None) -> None:
    """Load trained weights into the freshly built model (of ``net``, when given).

    Accepted: a Keras weights file written by ``model.save_weights("x.weights.h5")`` (or a
    whole ``.keras`` file) from a model built by this backend for the same network (same
    nodes, modules and input size). Anything else is a CompileError that says what differs
    (`weightsfile`): the header a training run stamped into the file, else the first layer
    whose variables do not fit.
    """
    from ...dsl.textio import regular_file_problem
    from .weightsfile import header_mismatch, structure_mismatch

    problem = regular_file_problem(path)  # a FIFO or device would hang or never end
    if problem is not None:
        raise CompileError(f"weights file `{path}`: {problem}")
    if not (path.endswith(".weights.h5") or path.endswith(".keras") or path.endswith(".h5")):
        raise CompileError(f"weights file `{path}`: expected a Keras `.weights.h5` file "
                           "(model.save_weights) or a `.keras` file")
    differs = _safely(lambda: header_mismatch(path, net)) if net is not None else None
    if differs:
        raise CompileError(f"weights file `{path}` does not fit: {differs}")
    try:
        import warnings

        with warnings.catch_warnings():
            # Keras warns (UserWarning), not fails, on a file of another structure
            warnings.simplefilter("error", UserWarning)
            model.load_weights(path)
    except Exception as exc:
        differs = _safely(lambda: structure_mismatch(path, model))
        if differs:
            raise CompileError(f"weights file `{path}` does not fit: {differs}") from None
        raise CompileError(f"cannot load weights from `{path}`: {type(exc).__name__}: "
                           f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''} "
                           "(the file must come from this network, built at the same "
                           "size)") from None


def _safely(find: Callable[[], str | None]) -> str | None:
    # The explanation is a courtesy: a file h5py cannot read gets Keras' own message.
    try:
        return find()
    except Exception:
        return None
