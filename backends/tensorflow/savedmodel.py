"""The SavedModel: one signature, `serving_default`, ``video`` (and ``object``) -> ``logits``.

``video`` float32 ``[batch, T, H, W, 3]`` (and ``object`` float32 ``[batch, T, H, W, N_obj]``
for networks with object stems, folded to frames inside the model), output ``logits``
float32 ``[batch, classes]``; ``batch`` is dynamic (None) unless a fixed batch is asked for.
Every model variable is saved, also those of nodes that reach no head (the count equals
``count_params``).
"""

from __future__ import annotations

import os

import numpy as np

from .lower import input_specs
from .metadata import write_metadata_file

__all__ = ["serving_function", "write_savedmodel", "savedmodel_float_count"]


def _signature(net, batch):
    import tensorflow as tf

    return [tf.TensorSpec(shape, tf.float32, name=name)
            for name, shape in input_specs(net, batch).items()]


def serving_function(model, net, batch: int | None = None):
    """``tf.function`` ``(video[, object]) -> {"logits": ...}`` with a fixed input signature."""
    import tensorflow as tf

    signature = _signature(net, batch)
    if len(signature) == 1:
        def serve(video):
            return {"logits": model(video, training=False)["logits"]}
    else:
        def serve(video, object):  # noqa: A002 - the signature's input name
            return {"logits": model({"video": video, "object": object},
                                    training=False)["logits"]}
    return tf.function(serve, input_signature=signature, autograph=False), signature


def write_savedmodel(model, net, path: str, batch: int | None = None, fn=None,
                     metadata: dict[str, str] | None = None) -> None:
    """SavedModel whose ``serving_default`` signature is ``fn`` (default `serving_function`).

    The saved object holds ``model_variables``: every model variable, exactly once (also
    those of nodes that reach no head), so the stored float count equals ``count_params``;
    ``serve``: the same function with one positional argument (``video``, or the dict
    ``{"video", "object"}``), the endpoint ``keras.layers.TFSMLayer`` calls by default (it
    calls positionally, a signature takes keywords only); with ``metadata``,
    ``asnc_metadata()`` (a dict of string scalars) and ``assets.extra/asnc.json``.

    Written with ``tf.saved_model.save`` and the already-traced concrete function rather than
    ``keras.export.ExportArchive``: the archive re-traces the endpoint inside the save (the
    unrolled flow layer makes a trace cost seconds), stores its ``tf.function`` so that
    loading restores it too (the SavedModel loads about 1.5x slower), and ``track(model)``
    stores every value twice (Keras variable and its ``tf.Variable``). The signature is the
    same: ``video`` (and ``object``) -> ``logits``.
    """
    import tensorflow as tf

    if fn is None:
        fn, _ = serving_function(model, net, batch)
    concrete = fn.get_concrete_function()  # traced once; the input signature is fixed
    root = tf.Module(name=net.header.name)
    root.model_variables = [v.value for v in model.weights]
    root.serve = _positional_endpoint(concrete, fn.input_signature)
    if metadata is not None:
        values = dict(metadata)  # constants in a tiny function: a Module's plain tensors
        root.asnc_metadata = tf.function(  # are not saved
            lambda: {k: tf.constant(v) for k, v in values.items()}, input_signature=[],
            autograph=False)
    tf.saved_model.save(root, path, signatures={"serving_default": concrete})
    if metadata is not None:
        write_metadata_file(path, metadata)


def _positional_endpoint(concrete, signature):
    """A ``tf.function`` that calls the traced ``concrete`` function (a call op, no second
    trace of the model) with one positional argument: the video tensor, or a dict of all
    inputs by name."""
    import tensorflow as tf

    if len(signature) == 1:
        name = signature[0].name
        return tf.function(lambda video: concrete(**{name: video}),
                           input_signature=list(signature), autograph=False)
    specs = {spec.name: spec for spec in signature}
    return tf.function(lambda inputs: concrete(**inputs), input_signature=[specs],
                       autograph=False)


def savedmodel_float_count(path: str) -> int:
    """Number of floating-point values stored in a SavedModel's variables."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    return sum(int(np.prod(shapes[k], dtype=np.int64)) for k in shapes
               if dtypes[k].is_floating and k != "_CHECKPOINTABLE_OBJECT_GRAPH")
