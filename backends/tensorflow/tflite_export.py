"""TFLite / LiteRT artifacts: the compiled SavedModel converted with TensorFlow's converter,
in fp32 and (with calibration clips) int8, run in the LiteRT interpreter (`ai-edge-litert`).

fp32: the same function, checked against TF on the parity check's seeded inputs like the
ONNX model. int8: TFLite's post-training integer quantization (weights int8 per channel,
activations int8 from the calibration clips' ranges; inputs and outputs stay float32). The
Representation Flow layer and the classifier head stay float, as in the int8 ONNX model:
the flow's iterations in 8 bits would be meaningless (and fail: an int8 divisor rounds to
zero), quantized logits saturate at the calibration clips' range. TFLite's converter has no
per-op choice; its `QuantizationDebugger` does (`denylisted_nodes`: the layer's nodes,
named from the fp32 file).
"""

from __future__ import annotations

import os
import warnings
from typing import Iterator

import numpy as np

from .errors import CompileError

__all__ = ["to_tflite", "tflite_census"]


# Kept float, as in the int8 ONNX model (`quantize`): the flow layer and the classifier
# head (TF op names <model>/repflow_1/..., <model>/head_1/...; the logits op is named after
# the signature's output).
FLOAT_SCOPES = ("/repflow", "/head")


def to_tflite(savedmodel_dir: str, out_path: str, calibration: np.ndarray | None = None,
              batch: int | None = None, fp32_path: str | None = None) -> int:
    """Convert; with ``calibration`` clips ``[n, T, H, W, 3]`` (fed ``batch`` at a time: the
    model's fixed batch, else one) to int8, the flow layer and head (named in the fp32 file
    ``fp32_path``) kept float. Returns the file's size."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(savedmodel_dir,
                                                         signature_keys=["serving_default"])
    if calibration is not None:
        clips, step = calibration, batch or 1

        def representative() -> Iterator[dict]:
            for i in range(0, len(clips) - len(clips) % step, step):
                yield {"video": clips[i:i + step]}

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
    try:
        if calibration is None:
            data = converter.convert()
        else:
            data = _int8_keeping_float_scopes(converter, representative, fp32_path)
    except Exception as exc:  # the converter raises ConverterError and friends
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CompileError(f"TFLite conversion failed: {type(exc).__name__}: {first}") from None
    with open(out_path, "wb") as fh:
        fh.write(data)
    return os.path.getsize(out_path)


def _int8_keeping_float_scopes(converter, representative, fp32_path: str | None) -> bytes:
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    keep: list[str] = []
    if fp32_path is not None:
        fp32 = Interpreter(model_path=fp32_path)
        keep = [t["name"] for t in _all_tensor_details(fp32)
                if any(scope in t["name"] for scope in FLOAT_SCOPES)]
        keep += [t["name"] for t in fp32.get_output_details()]
    with warnings.catch_warnings():
        # TF's own calibrator runs the deprecated tf.lite.Interpreter (not ours to change)
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is "
                                "deprecated", category=UserWarning)
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=representative, debug_options=options)
        return debugger.get_nondebug_quantized_model()


def _all_tensor_details(interpreter) -> list[dict]:
    """Tensors of every subgraph (a loop's body is a subgraph of its own)."""
    found: list[dict] = []
    index = 0
    while True:
        try:
            found += interpreter.get_tensor_details(subgraph_index=index)
        except (ValueError, IndexError, RuntimeError):
            return found
        index += 1


def tflite_census(path: str) -> dict:
    """Tensor types in the TFLite file (an int8 model really holds int8 tensors)."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=path).get_tensor_details()
    kinds: dict[str, int] = {}
    for t in details:
        name = np.dtype(t["dtype"]).name
        kinds[name] = kinds.get(name, 0) + 1
    return {"tensors_by_type": dict(sorted(kinds.items()))}
