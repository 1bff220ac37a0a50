"""Lowering: IR `Network` -> functional Keras model (SEMANTICS.md is the spec).

`build_model(net)` builds exactly the reference network, node for node:

* inputs: ``video`` ``[batch, T, H, W, 3]`` float32 (folded to ``[batch*T, H, W, 3]`` by the
  ``fold`` layer) and, only when the network has object stems, ``object``
  ``[batch, T, H, W, N_obj]`` float32 (folded by the ``object_fold`` layer: the reference
  takes it folded, but a serving input with another leading axis than ``video``'s fails
  deep in the graph for a caller who feeds ``batch`` rows);
* one ``repflow`` layer (Representation Flow on the folded clip) if there is a flow stem,
  ``header.iterations`` iterations;
* one composite layer per node, named by the node: stems, then blocks in stable topological
  order, each block preceded by its connection fusion (``<block>_fusion``), its peer
  candidates (``<block>_peer``, peer attention only) or, for a single input with attention on,
  ``<block>_in0_attention``;
* the classifier ``head`` (``MultiStreamHead``; lite variant: ``LiteHead`` on the one head).

The model's outputs are a dict ``{"logits": [batch, classes], "features": {node: tensor}}``:
like the reference backbone, every node's output is an endpoint, so a node that reaches no head
is still built and its parameters count. Auxiliary layer names that a node already uses get a
trailing ``_`` (node names win).

Forms (``form``, a `compiler.passes.LoweringForm`: the backend passes that applied):

* `LoweringForm.reference()`: the reference form of ``-O0``, the flow layer's 2- and 3-tap
  convolutions included;
* `LoweringForm.training()` (`build_model`'s default): the reference layers with the flow
  layer as slices (``repflow-slices``: the same values and the same 16 weights, much faster
  to run and to convert);
* with ``fold-batchnorm``: convs with biases, no batch norms (weights come from
  ``rewrites.fold_batchnorm``, not from the initialisers); with ``fold-edge-weights``:
  fusions become ``ScaledSumFusion`` with the residual scales of ``edge_fold``; such a
  model's node outputs are scaled, so it has no ``features`` output.

Seeds: every layer's seed comes from ``(seed, crc32(node name), role)``, so two builds with the
same seed have identical weights, and different nodes get different initial values.
"""

from __future__ import annotations

import zlib

from dataclasses import dataclass, field

import keras
from keras import ops

from ...compiler.analysis import LITE_STEM_WIDTH, PeerTable, stem_width
from ...compiler.graph import build_graph, stable_topological_order
from ...compiler.passes import EdgeFoldPlan, LoweringForm
from ...dsl.ir import INTER_CHANNELS, Block, Network, Stem

__all__ = ["build_model", "LoweringError", "Lowered", "lower", "node_seed", "input_specs",
           "model_input", "FoldTime"]

_SEED_RANGE = 2**31
# Roles of the layers one node can own; a node's seeds are spaced so roles never collide.
_ROLES = {"node": 0, "fusion": 1, "peer": 2, "attention": 3}
_ROLE_SPACING = 8
_HEAD_INDEX = 2**32  # the head is not a node; it takes a slot past any name's crc32


class LoweringError(ValueError):
    """The network cannot be lowered (a user module that does not keep its promise, ...)."""

    def __init__(self, node: str | None, message: str):
        super().__init__(message)
        self.node, self.message = node, message


def node_seed(seed: int, index: int, role: str = "node") -> int:
    """Seed of the layer playing ``role`` for the node whose key is ``index`` (crc32 of its
    name)."""
    return (seed * 1_000_003 + _ROLE_SPACING * index + _ROLES[role]) % _SEED_RANGE


@keras.saving.register_keras_serializable(package="asn")
class FoldTime(keras.layers.Layer):
    """``[B, T, H, W, C]`` -> ``[B*T, H, W, C]`` (the reference's reshape of the clip)."""

    def __init__(self, frames: int, **kwargs):
        super().__init__(**kwargs)
        self.frames = frames

    def call(self, x):
        return ops.reshape(x, (-1, *tuple(x.shape[2:])))

    def compute_output_shape(self, input_shape):
        b = input_shape[0]
        return (None if b is None else b * input_shape[1], *tuple(input_shape[2:]))

    def get_config(self):
        return {**super().get_config(), "frames": self.frames}


def input_specs(net: Network, batch: int | None = None) -> dict[str, tuple]:
    """Model input shapes by name: ``video`` always, ``object`` with object stems."""
    hdr = net.header
    T, (H, W) = hdr.frames, hdr.size
    specs = {"video": (batch, T, H, W, 3)}
    if any(isinstance(n, Stem) and n.type == "object" for n in net.nodes):
        specs["object"] = (batch, T, H, W, hdr.object_classes)
    return specs


def model_input(feeds: dict):
    """What the model is called with for inputs by name: the video tensor alone, or the
    dict of every input (networks with an object input)."""
    return feeds["video"] if len(feeds) == 1 else feeds


@dataclass
class Lowered:
    """What `lower` returns: the model and how its layers map to the IR."""

    model: keras.Model
    node_layers: dict[str, list[str]] = field(default_factory=dict)  # node -> its layer names
    order: list[str] = field(default_factory=list)  # nodes in build order
    fusions: dict[str, str] = field(default_factory=dict)  # block -> its fusion layer's name
    form: LoweringForm = field(default_factory=LoweringForm.reference)  # as built
    edge_fold: EdgeFoldPlan | None = None  # the plan it was built with (fold-edge-weights)


class _Names:
    """Unique Keras layer names: node names exactly, auxiliary names dodged around them."""

    def __init__(self, reserved):
        self.used = set(reserved)

    def aux(self, name: str) -> str:
        while name in self.used:
            name += "_"
        self.used.add(name)
        return name


def build_model(net: Network, seed: int = 0, batch: int | None = None,
                form: LoweringForm = LoweringForm.training()) -> keras.Model:
    """The functional Keras model of ``net``, by default in the training form (see the
    module docstring)."""
    return lower(net, seed=seed, batch=batch, form=form).model


def lower(net: Network, *, form: LoweringForm, seed: int = 0, batch: int | None = None,
          edge_fold: EdgeFoldPlan | None = None, placeholder: bool = False) -> Lowered:
    """Lower ``net`` in ``form``; ``edge_fold`` is needed with ``fold-edge-weights``.

    ``placeholder``: zeros instead of the seeded random initial weights
    (`layers.initialisers`), for a caller that sets every weight itself (a rewrite).
    """
    if placeholder:
        from .layers.initialisers import placeholder_weights

        with placeholder_weights():
            return lower(net, form=form, seed=seed, batch=batch, edge_fold=edge_fold)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be None or an int >= 1, got {batch!r}")
    from .layers import (BottleneckBlock, ConcatFusion, FlowStem, InvertedBottleneckBlock,
                         LiteHead, LiteStem, MultiStreamHead, ObjectStem, PeerAttention,
                         PeerCandidates, RGBStem, ScaledSumFusion, SelfAttention,
                         SigmoidFusion)
    from .repflow import RepresentationFlow

    if not isinstance(form, LoweringForm):
        raise TypeError(f"form must be a LoweringForm, got {type(form).__name__}")
    slices = form.has("repflow-slices")
    fold = form.has("fold-batchnorm")
    fold_edges = form.has("fold-edge-weights")
    centre_taps = form.has("drop-padding-taps")
    if fold_edges and edge_fold is None:
        raise ValueError("the fold-edge-weights form needs the edge_fold plan")

    hdr = net.header
    g = build_graph(net)
    T = hdr.frames
    lite = hdr.variant == "lite"
    bn = {"bn_momentum": float(hdr.bn_momentum), "bn_epsilon": float(hdr.bn_epsilon),
          "fold_bn": fold}
    units = hdr.units
    stems = net.stems
    mode = None if hdr.attention == "none" or hdr.combine == "concat" else hdr.attention
    peer_table = PeerTable(g) if mode == "peer" else None  # one sort, not one per block
    # Seeds follow node *names*, not positions, so a pass that removes nodes or edges leaves
    # every surviving layer with the same initial weights (pruned vs unpruned comparisons).
    index = {n.name: zlib.crc32(n.name.encode()) for n in net.nodes}
    names = _Names(index)
    node_layers: dict[str, list[str]] = {}
    fusions: dict[str, str] = {}

    specs = input_specs(net, batch)
    video = keras.Input(batch_shape=specs["video"], name="video", dtype="float32")
    inputs = {"video": video}
    if "object" in specs:
        inputs["object"] = keras.Input(batch_shape=specs["object"], name="object",
                                       dtype="float32")
    clip = FoldTime(T, name=names.aux("fold"))(video)
    objects = None
    if "object" in inputs:
        objects = FoldTime(T, name=names.aux("object_fold"))(inputs["object"])
    flow = None
    if any(s.type == "flow" for s in stems):
        flow = RepresentationFlow(T, iterations=hdr.iterations, bottleneck=1, fused=slices,
                                  name=names.aux("repflow"))(clip)

    width = LITE_STEM_WIDTH if lite else stem_width(hdr, stems)
    outputs: dict[str, object] = {}
    order = stable_topological_order(g)
    for name in order:
        ir = g.nodes[name]["ir"]
        i = index[name]
        s = node_seed(seed, i)
        if isinstance(ir, Stem):
            if ir.type == "object":
                outputs[name] = ObjectStem(name=name)(objects)
            elif lite:
                src, c = (clip, 3) if ir.type == "rgb" else (flow, 2)
                outputs[name] = LiteStem(c, ir.dilation, T, width=width, seed=s, name=name,
                                         **bn)(src)
            elif ir.type == "rgb":
                outputs[name] = RGBStem(width, ir.dilation, T, seed=s, name=name, **bn)(clip)
            else:
                outputs[name] = FlowStem(width, seed=s, name=name, **bn)(flow)
            node_layers[name] = [name]
            continue

        layers_of_node: list[str] = []
        preds = [inp.source for inp in ir.inputs]
        xs = [outputs[p] for p in preds]
        candidates = None
        if mode == "peer":
            assert peer_table is not None
            below = peer_table(name)
            cand_in = [outputs[n] for n in below]
            P = max(int(t.shape[-1]) for t in cand_in)
            lname = names.aux(f"{name}_peer")
            candidates = PeerCandidates(P, len(below), seed=node_seed(seed, i, "peer"),
                                        name=lname)(cand_in)
            layers_of_node.append(lname)
        if len(xs) == 1:
            x = xs[0]
            if mode is not None:
                lname = names.aux(f"{name}_in0_attention")
                c = int(x.shape[-1])
                a_seed = node_seed(seed, i, "attention")
                if mode == "peer":
                    x = PeerAttention(c, len(below), seed=a_seed, name=lname)(x, candidates)
                else:
                    x = SelfAttention(c, seed=a_seed, name=lname)(x)
                layers_of_node.append(lname)
        else:
            lname = names.aux(f"{name}_fusion")
            fusions[name] = lname
            if hdr.combine == "concat":
                x = ConcatFusion(len(xs), name=lname)(xs)
            else:
                weights = [inp.weight for inp in ir.inputs]
                if any(w is None for w in weights):
                    weights = None
                excluded = [isinstance(g.nodes[p]["ir"], Stem) and g.nodes[p]["ir"].type ==
                            "object" for p in preds]
                exclude = excluded if any(excluded) else None
                if fold_edges:
                    x = ScaledSumFusion(len(xs), edge_fold.residual[name],
                                        exclude_from_target=exclude,
                                        seed=node_seed(seed, i, "fusion"), name=lname)(xs)
                else:
                    fusion = SigmoidFusion(len(xs), weights=weights, attention=mode,
                                           exclude_from_target=exclude,
                                           seed=node_seed(seed, i, "fusion"), name=lname)
                    x = fusion(xs, candidates=candidates) if mode == "peer" else fusion(xs)
            layers_of_node.append(lname)

        L = ir.level
        if ir.module in ("bottleneck", "bottleneck3d"):
            block = BottleneckBlock(ir.filters, INTER_CHANNELS[L], units[L], ir.dilation,
                                    ir.stride, T,
                                    temporal="3d" if ir.module == "bottleneck3d" else "2plus1d",
                                    centre_taps=centre_taps, seed=s, name=name, **bn)
        elif ir.module == "lite":
            block = InvertedBottleneckBlock(tuple(ir.filters), units[L], ir.dilation, ir.stride,
                                            T, seed=s, name=name, **bn)
        else:
            block = _user_block(ir, units[L], T, s)
        y = block(x)
        if ir.is_user_module:
            _check_user_block(ir, block, x, y, units[L], T)
        outputs[name] = y
        layers_of_node.append(name)
        node_layers[name] = layers_of_node

    heads = net.head_names()
    if not heads:
        raise LoweringError(None, "the network has no head")
    head_seed = node_seed(seed, _HEAD_INDEX)
    head_name = names.aux("head")
    max_pool = hdr.head_pool == "max"
    if lite:
        logits = LiteHead(hdr.classes, T, max_pool_predictions=max_pool, seed=head_seed,
                          name=head_name, **bn)(outputs[heads[0]])
    else:
        logits = MultiStreamHead(hdr.classes, T, max_pool_predictions=max_pool, seed=head_seed,
                                 name=head_name)([outputs[h] for h in heads])
    result = {"logits": logits}
    if not fold_edges:
        result["features"] = {n.name: outputs[n.name] for n in net.nodes}  # declaration order
    model = keras.Model(inputs=inputs if len(inputs) > 1 else video, outputs=result,
                        name=hdr.name)
    return Lowered(model, node_layers, order, fusions, form, edge_fold)


def _user_block(ir: Block, units: int, frames: int, seed: int):
    from ...compiler.usermodule import UserModuleError, resolve

    factory = resolve(ir)
    try:
        layer = factory(filters=ir.filters, level=ir.level, stride=ir.stride,
                        dilation=ir.dilation, units=units, frames=frames, seed=seed,
                        name=ir.name)
    except Exception as exc:
        raise UserModuleError(ir.name, f"user module `{ir.module}` failed to build: "
                              f"{type(exc).__name__}: {exc}") from None
    if not isinstance(layer, keras.layers.Layer):
        raise UserModuleError(ir.name, f"user module `{ir.module}` returned "
                              f"{type(layer).__name__}, not a Keras layer")
    if layer.name != ir.name:
        raise UserModuleError(ir.name, f"user module `{ir.module}` named its layer "
                              f"`{layer.name}`, not `{ir.name}` (pass `name` on)")
    return layer


def _check_user_block(ir: Block, layer, x, y, units: int, frames: int) -> None:
    """The layer must do what its `asn_static` description says (shape and parameters)."""
    from ...compiler.usermodule import UserModuleError, static_info

    _, h, w, c = x.shape
    info = static_info(ir, int(c), units, (frames, int(h), int(w)))
    want = (info.height, info.width, info.channels)
    got = tuple(int(d) for d in y.shape[1:]) if len(y.shape) == 4 else tuple(y.shape)
    if got != want:
        raise UserModuleError(ir.name, f"user module `{ir.module}` outputs [B*T, "
                              f"{', '.join(map(str, got))}] but its asn_static says "
                              f"[B*T, {want[0]}, {want[1]}, {want[2]}]")
    tr = sum(int(v.numpy().size) for v in layer.trainable_weights)
    nt = sum(int(v.numpy().size) for v in layer.non_trainable_weights)
    if (tr, nt) != (info.trainable, info.non_trainable):
        raise UserModuleError(ir.name, f"user module `{ir.module}` holds {tr} trainable and "
                              f"{nt} non-trainable values but its asn_static says "
                              f"{info.trainable} and {info.non_trainable}")
