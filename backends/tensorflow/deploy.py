"""`asnc compile`'s deployment phases beyond fp32 SavedModel + ONNX (issue 14).

Run after the TF vs ONNX Runtime parity check, in the staging directory, each only when
asked:

* ``openvino`` (``--verify-with openvino``): the ONNX model in OpenVINO on the parity
  check's seeded inputs, against the SavedModel, within the parity tolerance;
* ``calibrate`` + ``quantize`` (``--quantize int8 --calibrate DIR``): ``model.int8.onnx``
  (`quantize`), judged on held-out clips of DIR against the fp32 model in ONNX Runtime and
  in OpenVINO, and timed there beside the fp32 model;
* ``tflite`` (``--format ...,tflite``): ``model.tflite`` checked in LiteRT against TF, and
  with ``--quantize int8`` ``model.int8.tflite`` from the same calibration clips, judged on
  the same held-out clips.

Returns the report's sections and the files' sizes; a failed check is a CompileError
(nothing is written, as for the ONNX parity check).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import CompileError
from .parity import graph_as_stored, random_inputs

__all__ = ["ONNX_INT8_NAME", "TFLITE_NAME", "TFLITE_INT8_NAME", "run_deploy_phases",
           "TIMING_REPEATS"]

ONNX_INT8_NAME = "model.int8.onnx"
TFLITE_NAME = "model.tflite"
TFLITE_INT8_NAME = "model.int8.tflite"
TIMING_REPEATS = 5


def _parity(got: np.ndarray, ref: np.ndarray, tolerance: float, batch: int, what: str) -> dict:
    if got.shape != ref.shape:
        raise CompileError(f"{what} logits have shape {got.shape}, the SavedModel's "
                           f"{ref.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64))))
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(ref))):
        diff = float("inf")
    ok = bool(np.isfinite(diff)) and diff <= tolerance
    if not ok:
        raise CompileError(f"TF and {what} disagree: max |logit difference| {diff:.3g} > "
                           f"{tolerance:g} (batch {batch}); nothing was written")
    return {"max_abs_diff": diff, "max_abs_logit": float(np.max(np.abs(ref))),
            "tolerance": tolerance, "ok": ok, "batch": batch, "inputs": "uniform [0, 1)"}


def run_deploy_phases(savedmodel: str, onnx_path: str, net, tmp: str, o, phase,
                      tf_logits: np.ndarray | None = None
                      ) -> tuple[dict[str, Any], dict[str, int]]:
    """The asked deployment phases for compile options ``o`` (`compile.CompileOptions`).
    ``tf_logits``: the SavedModel's logits on the parity check's input (`parity.verify`'s),
    else the SavedModel is run here when a check needs them."""
    from .runtimes import (litert_runner, logits_on_clips, median_seconds,
                           onnxruntime_runner, openvino_runner, savedmodel_runner)

    report: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    n = o.batch or 2  # as the ONNX parity check: a dynamic batch is checked at 2
    feeds = random_inputs(net, n, o.seed)
    tf_ref = tf_logits

    def reference() -> np.ndarray:
        nonlocal tf_ref
        if tf_ref is None:
            with graph_as_stored():  # as `verify` runs it
                tf_ref = savedmodel_runner(savedmodel)(feeds)
        return tf_ref

    if "openvino" in o.verify_with:
        with phase("openvino"):
            got = openvino_runner(onnx_path)(feeds)
            report["openvino"] = _parity(got, reference(), o.parity_tolerance, n,
                                         "OpenVINO")

    clips = None
    fp32_held_out = None
    if o.quantize:
        if set(random_inputs(net, 1, 0)) != {"video"}:
            raise CompileError("--quantize: calibration draws video clips only; this "
                               "network also takes an object input")
        from .calibration import draw_clips
        from .quantize import compare, int8_census, quantize_int8

        hdr = net.header
        with phase("calibrate"):
            clips = draw_clips(o.calibrate, hdr.frames, tuple(hdr.size), hdr.classes,
                               o.calibrate_clips, o.held_out_clips, o.seed)
        with phase("quantize"):
            int8_path = os.path.join(tmp, ONNX_INT8_NAME)
            quantize_int8(onnx_path, int8_path, clips.calibration, o.calibrate_method,
                          o.batch)
            census = int8_census(int8_path)
            if census["quantize_linear"] == 0 or census["int8_initializers"] == 0:
                raise CompileError("internal error: the int8 model holds no QDQ nodes or "
                                   "no int8 weights")
            labels = clips.held_out_labels if clips.labelled else None
            runners = {"fp32_onnxruntime": onnxruntime_runner(onnx_path),
                       "int8_onnxruntime": onnxruntime_runner(int8_path),
                       "fp32_openvino": openvino_runner(onnx_path),
                       "int8_openvino": openvino_runner(int8_path)}
            fp32_held_out = logits_on_clips(runners["fp32_onnxruntime"], clips.held_out,
                                            o.batch)
            agreement = {
                name: compare(logits_on_clips(runners[name], clips.held_out, o.batch),
                              fp32_held_out, labels).to_json()
                for name in ("int8_onnxruntime", "int8_openvino")}
            one = {"video": np.ascontiguousarray(clips.held_out[:1].repeat(o.batch or 1, 0))}
            speed = {}
            for _ in range(2):  # interleaved: each runtime timed twice, the best kept
                for name, run in runners.items():
                    t = median_seconds(run, one, TIMING_REPEATS)
                    speed[name] = min(speed.get(name, t), t)
            base = speed["fp32_onnxruntime"]
            report["int8"] = {
                "file": ONNX_INT8_NAME, "format": "QDQ", "weights": "int8 per channel",
                "activations": "uint8", "method": o.calibrate_method,
                "calibration": clips.to_json(o.calibrate), "graph": census,
                "reference": "the fp32 ONNX model in ONNX Runtime, same held-out clips",
                "agreement": agreement,
                "latency_ms": {k: round(1000 * v, 3) for k, v in speed.items()},
                "speed_vs_fp32_onnxruntime": {k: round(base / v, 3) for k, v in speed.items()},
                "latency_batch": o.batch or 1}
            sizes[ONNX_INT8_NAME] = os.path.getsize(int8_path)

    if "tflite" in o.formats:
        from .tflite_export import tflite_census, to_tflite

        with phase("tflite"):
            path = os.path.join(tmp, TFLITE_NAME)
            sizes[TFLITE_NAME] = to_tflite(savedmodel, path)
            section: dict[str, Any] = {
                "file": TFLITE_NAME, "runtime": "ai-edge-litert",
                "parity": _parity(litert_runner(path)(feeds), reference(),
                                  o.parity_tolerance, n, "LiteRT")}
            if clips is not None and fp32_held_out is not None:
                from .quantize import compare

                path8 = os.path.join(tmp, TFLITE_INT8_NAME)
                sizes[TFLITE_INT8_NAME] = to_tflite(savedmodel, path8, clips.calibration,
                                                    o.batch, fp32_path=path)
                got = logits_on_clips(litert_runner(path8), clips.held_out, o.batch)
                section["int8"] = {
                    "file": TFLITE_INT8_NAME,
                    "agreement": compare(got, fp32_held_out,
                                         clips.held_out_labels if clips.labelled
                                         else None).to_json(),
                    "graph": tflite_census(path8)}
            report["tflite"] = section
    return report, sizes
