"""The direct ONNX writer: the lowered functional Keras model written as an ONNX graph with
the `onnx` package, layer by layer, NCHW inside (the ``video``/``object`` inputs are folded
and transposed once; every conv is an NCHW Conv), weights read from the layers' variables.

`write_model` walks the model from its ``logits`` output back to its inputs and emits each
Keras layer with the emitter of its exact class (`EMITTERS`; one module per layer family:
`convs` (convs, batch norms, blocks), `stems`, `flow`, `fusions`, `head`, on the
`graph.Graph` builder). A layer with no emitter, or an option an emitter does not cover
(attention, the lite variant, user modules), raises `UnsupportedLayer` before anything is
returned; `onnx_export.to_onnx` then converts with tf2onnx instead.

Why by hand rather than tf2onnx: the conversion went through TF's freezing, grappler and
tf2onnx's optimisers (a third of a compile's time and its peak memory, issue 12), to
rediscover a graph whose every op the layers already state. The compile's parity check (TF
SavedModel vs ONNX Runtime) proves each file this writer makes.
"""

from __future__ import annotations

from typing import Callable

from .graph import Graph, UnsupportedLayer, value_info

__all__ = ["UnsupportedLayer", "write_model", "EMITTERS", "unsupported_layers"]


def _emitters() -> dict[type, Callable]:
    from ..layers.attention import PeerAttention, PeerCandidates, SelfAttention
    from ..layers.blocks import BottleneckBlock
    from ..layers.fusion import ConcatFusion, ScaledSumFusion, SigmoidFusion
    from ..layers.heads import MultiStreamHead
    from ..layers.lite import InvertedBottleneckBlock, LiteHead, LiteStem
    from ..layers.stems import FlowStem, ObjectStem, RGBStem
    from ..lower import FoldTime
    from ..repflow import RepresentationFlow
    from . import attention, convs, flow, fusions, head, lite, stems

    return {
        FoldTime: stems.fold_time,
        RGBStem: stems.rgb_stem,
        FlowStem: stems.flow_stem,
        ObjectStem: stems.object_stem,
        RepresentationFlow: flow.representation_flow,
        BottleneckBlock: convs.bottleneck_block,
        SigmoidFusion: fusions.sigmoid_fusion,
        ScaledSumFusion: fusions.scaled_sum_fusion,
        ConcatFusion: fusions.concat_fusion,
        MultiStreamHead: head.multi_stream_head,
        PeerCandidates: attention.peer_candidates,
        SelfAttention: attention.self_attention,
        PeerAttention: attention.peer_attention,
        LiteStem: lite.lite_stem,
        InvertedBottleneckBlock: lite.inverted_bottleneck_block,
        LiteHead: lite.lite_head,
    }


EMITTERS: dict[type, Callable] = {}


def _history(kt):
    op, node_index, _ = kt._keras_history
    return op, op._inbound_nodes[node_index]


def _logits_tensor(model):
    struct = getattr(model, "_outputs_struct", None)
    if not isinstance(struct, dict) or "logits" not in struct:
        raise UnsupportedLayer(model.name, type(model).__name__, "no `logits` output")
    return struct["logits"]


def _layers_to(model) -> list:
    """The layers the logits depend on, inputs excluded, in depth-first order."""
    import keras

    seen, order, stack = set(), [], [_logits_tensor(model)]
    while stack:
        op, node = _history(stack.pop())
        if id(op) in seen or isinstance(op, keras.layers.InputLayer):
            continue
        seen.add(id(op))
        order.append(op)
        stack.extend(node.arguments.keras_tensors)
    return order


def _check(layer) -> None:
    if type(layer) not in EMITTERS:
        raise UnsupportedLayer(layer.name, type(layer).__name__,
                               "no direct ONNX emitter for this layer class")
    for inner in getattr(layer, "_attention_layers", ()):  # a sigmoid fusion's
        if type(inner) not in EMITTERS:
            raise UnsupportedLayer(f"{layer.name}/{inner.name}", type(inner).__name__,
                                   "no direct ONNX emitter for this layer class")


def unsupported_layers(model) -> list[UnsupportedLayer]:
    """Why the direct writer cannot write ``model`` (empty: it can)."""
    if not EMITTERS:
        EMITTERS.update(_emitters())
    found = []
    try:
        layers = _layers_to(model)
    except UnsupportedLayer as exc:
        return [exc]
    for layer in layers:
        try:
            _check(layer)
        except UnsupportedLayer as exc:
            found.append(exc)
    return found


def write_model(model, net, scopes: dict[str, str], opset: int, batch: int | None,
                ir_version: int):
    """The ONNX ModelProto of ``model``'s ``logits`` without its weights, and the weights
    (TensorProtos, in initializer order) that `onnx_stream.stream_model` writes into its
    graph (graph named after the network; the caller adds producer, doc string and
    metadata). Raises `UnsupportedLayer`."""
    import keras
    from onnx import helper

    from ..lower import input_specs

    problems = unsupported_layers(model)
    if problems:
        raise problems[0]
    g = Graph(opset)
    names: dict[int, str] = {}

    def emit(kt) -> str:
        known = names.get(id(kt))
        if known is not None:
            return known
        op, node = _history(kt)
        if isinstance(op, keras.layers.InputLayer):
            out = op.name
        else:
            args, kwargs = node.arguments.args, dict(node.arguments.kwargs)
            # the one extra input a layer takes: peer attention's candidates
            candidates = kwargs.pop("candidates", None)
            if len(args) == 2 and candidates is None:
                args, candidates = args[:1], args[1]
            if len(args) != 1 or any(v is not None for v in kwargs.values()):
                raise UnsupportedLayer(op.name, type(op).__name__, "called with extra inputs")
            arg = args[0]
            if isinstance(arg, (list, tuple)):
                xs, shapes = [emit(a) for a in arg], [tuple(a.shape) for a in arg]
            else:
                xs, shapes = emit(arg), tuple(arg.shape)
            extra = {} if candidates is None else {"candidates": emit(candidates)}
            with g.scope(scopes.get(op.name, op.name)):
                out = EMITTERS[type(op)](g, op, xs, shapes, **extra)
        names[id(kt)] = out
        return out

    if emit(_logits_tensor(model)) != "logits":
        raise UnsupportedLayer(model.name, type(model).__name__, "the head did not make logits")
    g.prune(["logits"])
    specs = input_specs(net, batch)
    inputs = [value_info(name, dims) for name, dims in specs.items()]
    outputs = [value_info("logits", (batch, net.header.classes))]
    model = helper.make_model(helper.make_graph(g.nodes, net.header.name, inputs, outputs),
                              opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=ir_version)
    # The weights stay out of the ModelProto: `onnx_stream.stream_model` writes them into
    # the file one at a time (a ModelProto and its bytes held AssembleNet-50's 143 MiB twice).
    tensors, g.initializers = g.initializers, []
    return model, tensors
