"""int8: static quantization of the compiled ONNX model with ONNX Runtime's tools, and the
figures that say what it cost.

The model is quantized in QDQ form (QuantizeLinear/DequantizeLinear pairs around each
quantized op: ONNX Runtime fuses them into integer kernels, OpenVINO reads them as its own
int8 recipe), weights int8 per output channel, activations uint8 from the ranges that
calibration (MinMax, Entropy or Percentile) finds on clips of the user's videos. The
convolutions and matrix products are quantized (they hold the weights and the time), and
so are the ops between them (`QUANTIZED_OPS`): the residual adds, max-pools, scalings, the
ReLUs (absorbed into the range of the quantized conv output) and the transposes and
reshapes of the temporal convolutions, so that the tensors stay 8-bit from one conv to the
next. Measured on AssembleNet-50 at 4x64x64, batch 1, one thread, one interleaved run:
with convolutions and matrix products alone the int8 model ran 1.69x (OpenVINO) and 1.57x
(ONNX Runtime) faster than fp32 in ONNX Runtime, with the ops between them too 2.02x and
1.91x, for the same largest logit change (7.7e-3; transposes and reshapes only move
8-bit values). The Representation Flow layer's 40 iterations of elementwise arithmetic
stay float (8-bit flow would be meaningless, and its fixed difference kernels at ``-O0``
are convolutions too, so its nodes are excluded by scope), and so does the classifier
head: its output would be quantized to the calibration clips' logit range, and a held-out
clip with a larger logit saturated (measured: a 3.6 logit read as 1.3 after 4 calibration
clips); it is one small matrix product.

`compare` measures the int8 model against fp32 on held-out clips: top-1 agreement, max and
mean logit deviation, accuracy of both when the clips are labelled with the network's
classes.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np

from .errors import CompileError

__all__ = ["METHODS", "quantize_int8", "compare", "Agreement", "int8_census"]

METHODS = ("minmax", "entropy", "percentile")
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm", "Add", "MaxPool", "Mul", "Relu", "Transpose",
                 "Reshape"]
# canonical node names start with their asnc scope (onnx_scopes): these stay float
FLOAT_SCOPES = ("repflow/", "head/")


def _method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]


def quantize_int8(fp32_path: str, out_path: str, calibration: np.ndarray,
                  method: str = "minmax", batch: int | None = None) -> None:
    """Write the QDQ int8 model of ``fp32_path`` to ``out_path``, calibrated on the clips
    ``[n, T, H, W, 3]`` (fed ``batch`` at a time: the model's fixed batch, else one)."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise CompileError(f"--calibrate-method takes {', '.join(METHODS)}, got `{method}`")
    step = batch or 1
    usable = len(calibration) - len(calibration) % step
    if usable < 1:
        raise CompileError(f"--calibrate-clips: {len(calibration)} clips do not fill one "
                           f"batch of {step}")

    class Clips(CalibrationDataReader):
        def __init__(self):
            self.items = iter(range(0, usable, step))

        def get_next(self):
            i = next(self.items, None)
            return None if i is None else {"video": calibration[i:i + step]}

    with tempfile.TemporaryDirectory(prefix="asnc-int8-") as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        # shape inference and ORT's graph cleanup first, as ORT's tools recommend; the
        # cleanup fuses and renames nodes (MatMul + Add -> `.../MatMulAddFusion`), keeping
        # the scope prefix, so the float scopes are read from the prepared model
        quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True)
        exclude = [n.name for n in onnx.load(prepared, load_external_data=False).graph.node
                   if n.name.startswith(FLOAT_SCOPES)]
        extra = {"CalibMovingAverage": False}
        if method == "percentile":
            extra["CalibPercentile"] = 99.999
        quantize_static(prepared, out_path, Clips(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=QUANTIZED_OPS, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=exclude, calibrate_method=_method(method),
                        extra_options=extra)


def int8_census(path: str) -> dict:
    """What the int8 file holds: QDQ node counts, int8 weight initializers and values."""
    import onnx
    from onnx import TensorProto

    model = onnx.load(path)
    ops = [n.op_type for n in model.graph.node]
    int8 = [t for t in model.graph.initializer if t.data_type == TensorProto.INT8]
    return {"quantize_linear": ops.count("QuantizeLinear"),
            "dequantize_linear": ops.count("DequantizeLinear"),
            "int8_initializers": len(int8),
            "int8_values": int(sum(int(np.prod(t.dims)) for t in int8)),
            "float_conv": ops.count("Conv")}


@dataclass
class Agreement:
    """An approximate model against its reference on the same held-out clips."""

    clips: int
    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    max_abs_logit: float
    accuracy: float | None = None
    reference_accuracy: float | None = None

    def to_json(self) -> dict:
        return {"clips": self.clips, "top1_agreement": self.top1_agreement,
                "max_abs_logit_diff": self.max_abs_diff,
                "mean_abs_logit_diff": self.mean_abs_diff,
                "max_abs_logit": self.max_abs_logit, "accuracy": self.accuracy,
                "fp32_accuracy": self.reference_accuracy}


def compare(logits: np.ndarray, reference: np.ndarray,
            labels: np.ndarray | None = None) -> Agreement:
    """Top-1 agreement and logit deviation of ``logits`` from ``reference`` ``[n, C]``;
    with ``labels``, the accuracy of both."""
    diff = np.abs(logits - reference)
    top = np.argmax(logits, axis=1)
    ref_top = np.argmax(reference, axis=1)
    acc = ref_acc = None
    if labels is not None:
        acc = float(np.mean(top == labels))
        ref_acc = float(np.mean(ref_top == labels))
    return Agreement(len(logits), float(np.mean(top == ref_top)), float(diff.max()),
                     float(diff.mean()), float(np.abs(reference).max()), acc, ref_acc)
