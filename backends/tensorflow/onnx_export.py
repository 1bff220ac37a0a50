"""The ONNX model of a lowered network, byte-identical for the same model, with asnc's
producer fields and metadata (`metadata`).

Two writers: the direct writer (`onnx_direct`: the Keras layers written as ONNX nodes, NCHW,
in seconds) for every layer it has an emitter for, else tf2onnx's conversion of the
serving function, made deterministic here: canonical node order and names (each with its
asnc scope, `onnx_scopes`), named symbolic dimensions. `export_onnx` says which one wrote
the file (`OnnxFile.writer`, the compile report's ``onnx_writer``).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

from .errors import CompileError
from .metadata import asnc_version
from .onnx_scopes import layer_scopes, resolve_scopes, tf_scope
from .onnx_stream import stream_model
from .savedmodel import serving_function

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "WRITERS", "OnnxFile", "export_onnx", "max_opset",
           "to_onnx"]

DEFAULT_OPSET = 17
MIN_OPSET = 17


def max_opset() -> int:
    from tf2onnx import constants

    return max(constants.OPSET_TO_IR_VERSION)


WRITERS = ("auto", "direct", "tf2onnx")


@dataclass(frozen=True)
class OnnxFile:
    """The ONNX bytes and the writer that made them: ``"direct"``, ``"tf2onnx"`` (asked) or
    ``"tf2onnx (fallback: <layer> (<class>): <reason>)"``."""

    data: bytes | None  # None when written to a path (`export_onnx`)
    writer: str
    sha256: str


def to_onnx(model, net, path: str | None = None, opset: int = DEFAULT_OPSET,
            batch: int | None = None, metadata: dict[str, str] | None = None,
            model_version: int = 1, writer: str = "auto") -> bytes:
    """`export_onnx`'s bytes (also written to ``path`` if given)."""
    data = export_onnx(model, net, None, opset, batch, metadata, model_version,
                       writer).data
    assert data is not None  # no path: the bytes come back
    if path is not None:
        with open(path, "wb") as fh:
            fh.write(data)
    return data


def export_onnx(model, net, path: str | None = None, opset: int = DEFAULT_OPSET,
                batch: int | None = None, metadata: dict[str, str] | None = None,
                model_version: int = 1, writer: str = "auto", check: bool = True) -> OnnxFile:
    """The model's ``logits`` as ONNX, deterministic: written to ``path`` (``data`` is
    then None: the file is never held in memory whole), else returned as ``data``.
    ``check``: run ONNX's checker on the result (a compile runs it on the file later,
    once the Keras model is freed: `parity.verify`).

    ``writer``: ``"auto"`` (the direct writer, tf2onnx for a model it cannot write),
    ``"direct"`` (a CompileError where it cannot) or ``"tf2onnx"``; ``fn``: the serving
    function tf2onnx converts (default `serving_function`). ``metadata`` goes into
    ``metadata_props`` (in the given order) and the doc string."""
    import onnx

    from .onnx_direct import UnsupportedLayer

    if writer not in WRITERS:
        raise ValueError(f"writer must be one of {WRITERS}, got {writer!r}")
    top = max_opset()
    if not MIN_OPSET <= opset <= top:
        raise CompileError(f"--opset must be between {MIN_OPSET} and {top}, got {opset}")
    proto, tensors, used = None, [], "tf2onnx"
    if writer != "tf2onnx":
        try:
            proto, tensors = _direct(model, net, opset, batch)
            used = "direct"
        except UnsupportedLayer as exc:
            if writer == "direct":
                raise CompileError(f"the direct ONNX writer cannot write {exc}") from None
            used = f"tf2onnx (fallback: {exc})"
    if proto is None:
        proto = _tf2onnx_proto(model, net, opset, batch)
    _describe(proto, net, metadata or {}, model_version)
    # the weights go into the file one tensor at a time (`onnx_stream`): no ModelProto and
    # bytes of the whole model side by side
    if path is None:
        buffer = io.BytesIO()
        sha256 = stream_model(proto, tensors, buffer)
        del proto
        data: bytes | None = buffer.getvalue()
        del buffer
        if check:
            onnx.checker.check_model(data)  # bytes: checked as they are, not serialised again
    else:
        with open(path, "wb") as fh:
            sha256 = stream_model(proto, tensors, fh)
        del proto
        data = None
        if check:
            onnx.checker.check_model(path)  # read back from the file by the checker itself
    return OnnxFile(data, used, sha256)


def _direct(model, net, opset: int, batch: int | None):
    from tf2onnx import constants

    from .onnx_direct import write_model

    return write_model(model, net, layer_scopes(model, net), opset, batch,
                       constants.OPSET_TO_IR_VERSION[opset])


def _tf2onnx_proto(model, net, opset: int, batch: int | None):
    """tf2onnx's conversion of the serving function, canonical (`_canonicalise`).

    Its own trace, with the flow layer's iterations unrolled (`unrolled_iterations`): the
    SavedModel's trace holds them as a While loop, which tf2onnx's lean and plain
    conversions turned into different bytes, and which is not the direct writer's
    unrolled form."""
    import tensorflow as tf
    import tf2onnx

    from .repflow import unrolled_iterations

    fn, signature = serving_function(model, net, batch)
    with tf.device("/cpu:0"), unrolled_iterations():
        proto = _convert(tf2onnx, fn, signature, opset)
    _canonicalise(proto, net.header.name, layer_scopes(model, net), model.name)
    return proto


def _convert(tf2onnx, fn, signature, opset):
    """tf2onnx's conversion of ``fn``, the lean way when this tf2onnx allows it.

    `_lean_convert` is `tf2onnx.convert.from_function` without its two costs that grow with
    the weights (37 M values for AssembleNet-50), not with the graph: TF's freezing wraps
    the frozen graph in a new function only for tf2onnx to read its GraphDef back, and each
    of tf2onnx's optimisers re-serialises every node, constants included (`_LeanOptimizer`),
    and copies the graph first (TF2ONNX_CATCH_ERRORS). The graph it converts and every
    rewrite are the same, so the ONNX bytes are too (the byte-identity test compares with
    the plain conversion). Where a step fails (another tf2onnx, an optimiser error), the
    conversion is redone with tf2onnx's own `from_function` and its error recovery.
    """
    try:
        return _lean_convert(tf2onnx, fn, signature, opset)
    except Exception:
        pass  # redo it the careful way below
    return tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)[0]


def _lean_convert(tf2onnx, fn, signature, opset):
    import tensorflow as tf
    from tensorflow.python.framework import convert_to_constants as c2c
    from tf2onnx import constants, optimizer, tf_loader

    concrete = fn.get_concrete_function(*signature)
    input_names = [t.name for t in concrete.inputs if t.dtype != tf.dtypes.resource]
    output_names = [t.name for t in concrete.outputs if t.dtype != tf.dtypes.resource]
    renames = tf2onnx.convert.tensor_names_from_structed(concrete, input_names, output_names)
    # convert_variables_to_constants_v2 minus _construct_concrete_function (seconds, and a
    # second copy of every weight): the frozen GraphDef is all tf2onnx reads
    data = c2c._FunctionConverterDataInEager(func=concrete, lower_control_flow=False,
                                             aggressive_inlining=True)
    graph_def, _ = c2c._replace_variables_by_constants(converter_data=data)
    del data
    with tf.Graph().as_default() as graph:  # what as_graph_def(add_shapes=True) adds
        tf.import_graph_def(graph_def, name="")
        graph_def = graph.as_graph_def(add_shapes=True)
    del graph
    graph_def = tf_loader.fix_freezing_errors_part2(graph_def)
    with tf.Graph().as_default() as graph, tf_loader.tf_session(graph=graph) as sess:
        tf.import_graph_def(graph_def, name="")
        input_names = tf_loader.inputs_without_resource(sess, input_names)
    del graph, sess  # grappler copies the graph several times: not one more than needed
    with tf.Graph().as_default():  # (it exports a meta graph: no eager mode)
        graph_def = tf_loader.tf_optimize(input_names, output_names, graph_def)
    key = constants.ENV_TF2ONNX_CATCH_ERRORS
    user_set = key in os.environ  # a value the user set is left alone
    if not user_set:
        os.environ[key] = "false"  # no copy of the graph per optimiser
    try:
        lean = {name: _lean_optimizer(cls) for name, cls in optimizer._get_optimizers().items()}
        return tf2onnx.convert._convert_common(
            graph_def, name=concrete.name, continue_on_error=True, opset=opset,
            input_names=input_names, output_names=output_names, tensors_to_rename=renames,
            initialized_tables=None, optimizers=lean)[0]
    finally:
        if not user_set:
            os.environ.pop(key, None)


def _lean_optimizer(cls):
    """``cls`` (a tf2onnx optimiser) without the node-to-proto sync it does after it runs.

    tf2onnx keeps each node twice, as Python state and as a NodeProto, and syncs the proto
    after every optimiser (`Graph.update_proto`): copying every constant tensor, 24 times
    per conversion. No optimiser reads the protos (they work on the nodes' state) and
    `make_model` syncs them once at the end, so skipping the intermediate syncs changes
    nothing but the time.
    """

    class Lean(cls):
        def optimize(self, graph, iteration):
            graph.update_proto = _no_sync  # instance attribute: this graph, this call
            try:
                return super().optimize(graph, iteration)
            finally:
                del graph.update_proto

    Lean.__name__ = Lean.__qualname__ = f"Lean{cls.__name__}"
    return Lean


def _no_sync(external_tensor_storage=None):
    return None


def _canonicalise(proto, name: str, scopes: dict[str, str] | None = None,
                  model_name: str | None = None) -> None:
    """Make the ONNX bytes a function of the model alone.

    tf2onnx names the graph after the traced function (a process-wide counter), and its
    optimisers walk Python sets, so node order and the ``__N`` counters of the names they
    make up change from one process to the next. Here: nodes in a canonical topological
    order (depth-first from the outputs, inputs in operand order), initializers in order of
    first use; node, tensor and initializer names made from that order (``n<k>_<Op>``,
    ``n<k>_<Op>:<j>``, ``c<k>``), a node's name prefixed with its asnc scope where it has
    one (``b8/n123_Conv``, ``b8/fusion/n120_Mul``; ``scopes``: Keras layer -> scope).
    Graph inputs and outputs keep their names.
    """
    g = proto.graph
    g.name = name
    g.doc_string = ""
    proto.doc_string = ""
    _name_symbolic_dims(g)
    if any(a.type in (5, 10) or a.g.node or a.graphs for n in g.node for a in n.attribute):
        return  # sub-graphs (If/Loop): leave as is rather than rename inside them
    nodes = list(g.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    order, emitted = [], set()
    stack = [(producer[o.name], False) for o in reversed(g.output) if o.name in producer]
    while stack:
        i, expanded = stack.pop()
        if i in emitted:
            continue
        if expanded:
            emitted.add(i)
            order.append(i)
            continue
        stack.append((i, True))
        for t in reversed(nodes[i].input):
            j = producer.get(t)
            if j is not None and j not in emitted:
                stack.append((j, False))
    # nodes no output needs (tf2onnx normally prunes them): after the rest, in old order
    order += [i for i in range(len(nodes)) if i not in emitted]

    # Names from the structure alone: tf2onnx merges equal constants and equal nodes, and
    # which original name survives a merge depends on set order too.
    prefix = _scope_prefixes(nodes, order, scopes or {}, model_name or name)
    keep = {v.name for v in g.input} | {v.name for v in g.output} | {""}
    tensor_map: dict[str, str] = {t: t for t in keep}
    inits = {t.name: t for t in g.initializer}
    new_nodes, init_order = [], []
    for k, i in enumerate(order):
        n = onnx_copy(nodes[i])
        n.name = f"{prefix[k]}n{k}_{n.op_type}"
        for j, t in enumerate(n.input):
            if t not in tensor_map:
                if t in inits:
                    init_order.append(t)
                    tensor_map[t] = f"c{len(init_order) - 1}"
                else:  # a graph input that is neither video nor object: keep it
                    tensor_map[t] = t
            n.input[j] = tensor_map[t]
        for j, t in enumerate(n.output):
            if t not in keep:
                tensor_map[t] = f"{n.name}:{j}"
            n.output[j] = tensor_map[t]
        new_nodes.append(n)
    new_inits = []
    for t in init_order:
        c = onnx_copy(inits[t])
        c.name = tensor_map[t]
        new_inits.append(c)
    infos = [onnx_copy(v) for v in g.value_info if v.name in tensor_map]
    for v in infos:
        v.name = tensor_map[v.name]
    rank = {t: k for k, t in enumerate(tensor_map.values())}
    infos.sort(key=lambda v: rank[v.name])
    del g.node[:]
    g.node.extend(new_nodes)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    del g.value_info[:]
    g.value_info.extend(infos)


def _scope_prefixes(nodes, order: list[int], scopes: dict[str, str],
                    model_name: str) -> list[str]:
    """``"<scope>/"`` (or ``""``) for each node in canonical order."""
    reader: dict[str, list[int]] = {}
    for k, i in enumerate(order):
        for t in nodes[i].input:
            reader.setdefault(t, []).append(k)
    consumers = [sorted({c for t in nodes[i].output if t for c in reader.get(t, ())})
                 for i in order]
    base = [tf_scope(nodes[i].name, model_name, scopes) for i in order]
    return [f"{s}/" if s else "" for s in resolve_scopes(base, consumers)]


def _describe(proto, net, metadata: dict[str, str], model_version: int) -> None:
    """What ONNX tools show about the model: producer, version, doc string, metadata."""
    proto.producer_name = "asnc"
    proto.producer_version = asnc_version()
    proto.model_version = model_version
    hdr = net.header
    proto.doc_string = (f"{hdr.name}: AssembleNet-family video network ({hdr.frames} frames "
                        f"at {hdr.size[0]}x{hdr.size[1]}, {hdr.classes} classes), compiled "
                        "by asnc; inputs NTHWC float32 (RGB in [0, 1], as asnc trains), "
                        "output logits.")
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _name_symbolic_dims(g) -> None:
    """tf2onnx names each unknown dimension `unk__<N>` from a process-wide counter, so the
    same model got other bytes in another process. Axis 0 of ``video``, ``object`` and
    ``logits`` is `batch`; any other unknown dimension is `<tensor>_<axis>`."""
    for v in [*g.input, *g.output, *g.value_info]:
        for axis, d in enumerate(v.type.tensor_type.shape.dim):
            if d.HasField("dim_param") and d.dim_param.startswith("unk__"):
                batch = axis == 0 and v.name in ("video", "object", "logits")
                d.dim_param = "batch" if batch else f"{v.name}_{axis}"


def onnx_copy(message):
    new = type(message)()
    new.CopyFrom(message)
    return new
