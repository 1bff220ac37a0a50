"""`fold-edge-weights`' plan and the backend passes' front-end half (no TensorFlow):
hand-checked factorisations, the invariant w = s_p * y_c * r on the published networks, the
lowering plan's reasons, and `asnc stats -O1` against golden.json."""

from __future__ import annotations

import json
import math

import pytest
from conftest import EXAMPLES, PUBLISHED

from asn.cli.main import main
from asn.compiler.analysis import analyse
from asn.compiler.graph import build_graph
from asn.compiler.passes import (LoweringForm, PassContext, Sequential, edge_fold_blocker, optimise,
                                 plan_edge_folding)
from asn.compiler.validation import check
from asn.dsl.ir import Block, Stem
from asn.dsl.loader import load, load_text

HEADER = "network t {{\n  depth [1, 1, 1, 1]\n  frames 2\n  size 32x32\n  classes 3\n{extra}}}\n"


def graph_of(body: str, extra: str = ""):
    net = load_text(HEADER.format(extra=extra) + body, "<test>")
    errors = [d for d in check(net) if d.is_error]
    assert not errors, [d.message for d in errors]
    return net, build_graph(net)


def ir_weights(g):
    return {(i.source, b): i.weight for b in g.nodes
            if isinstance(g.nodes[b]["ir"], Block) and len(g.nodes[b]["ir"].inputs) > 1
            for i in g.nodes[b]["ir"].inputs}


def channels(net):
    return {n.name: n.shape[3] for n in analyse(net).nodes if n.kind in ("stem", "block")}


def check_invariant(g, plan, weights, chans):
    """Every folded edge's weight is what the factors multiply to; single inputs get 1."""
    for b in g.nodes:
        ir = g.nodes[b]["ir"]
        if not isinstance(ir, Block):
            continue
        t = plan.input_scale.get(b, 1.0)
        preds = [i.source for i in ir.inputs]
        if len(preds) == 1:
            assert plan.producer_scale.get(preds[0], 1.0) * t == pytest.approx(1.0, rel=1e-12)
            continue
        widths = [chans[p] for p in preds]
        excluded = [isinstance(g.nodes[p]["ir"], Stem) and g.nodes[p]["ir"].type == "object"
                    for p in preds]
        target = max(c for c, e in zip(widths, excluded) if not e)
        for p, c, r in zip(preds, widths, plan.residual[b]):
            y = t * (1.0 if c == target else plan.group_scale[b][c])
            s = plan.producer_scale.get(p, 1.0)
            assert s * y * r == pytest.approx(weights[(p, b)], rel=1e-12), (p, b)


TREE = """stem r = rgb
stem f = flow
block a = bottleneck(level=0, filters=4) <- r @0.5, f @0.25
block top = bottleneck(level=3, filters=4, stride=2) <- a
"""


def test_tree_folds_every_edge():
    net, g = graph_of(TREE)
    w = ir_weights(g)
    plan = plan_edge_folding(g, w, channels(net))
    # r, f -> a is a tree: a's input factor t_a takes one weight, the stems' output scales
    # the rest, so no multiply is left. `a` feeds the head block `top` alone (w = 1) and
    # `top` is fixed at 1, so `a` keeps scale 1.
    assert plan.residual["a"] == [1.0, 1.0]
    assert plan.folded_edges == 2 and plan.remaining_edges == 0
    assert "a" not in plan.producer_scale and "top" not in plan.producer_scale
    check_invariant(g, plan, w, channels(net))


CYCLE = """stem r = rgb
stem q = rgb(dilation=2)
block a = bottleneck(level=0, filters=4) <- r @{w11}, q @{w12}
block b = bottleneck(level=0, filters=4) <- r @{w21}, q @{w22}
block top = bottleneck(level=3, filters=4, stride=2) <- a @0.7, b @0.9
"""


def test_cycle_rank_two_keeps_one_multiply():
    net, g = graph_of(CYCLE.format(w11=0.5, w12=0.25, w21=0.8, w22=0.1))
    w = ir_weights(g)
    plan = plan_edge_folding(g, w, channels(net))
    # stems -> a, b: 4 edges around the cycle r-a-q-b-r, 3 on a spanning tree, 1 keeps its
    # multiply, whose value is fixed by the weights: w11 w22 / (w12 w21) or its inverse.
    # a, b -> top: a tree of its own (a and b carry the factors), both folded.
    assert plan.folded_edges == 5 and plan.remaining_edges == 1
    left = [r for rs in plan.residual.values() for r in rs if r != 1.0]
    ratio = 0.5 * 0.1 / (0.25 * 0.8)
    assert len(left) == 1 and (math.isclose(left[0], ratio) or math.isclose(left[0], 1 / ratio))
    check_invariant(g, plan, w, channels(net))


def test_cycle_rank_one_folds_everything():
    # w = outer((0.5, 0.25), (0.8, 0.4)): consistent around the cycle, nothing left
    net, g = graph_of(CYCLE.format(w11=0.4, w12=0.2, w21=0.2, w22=0.1))
    plan = plan_edge_folding(g, ir_weights(g), channels(net))
    assert plan.remaining_edges == 0 and plan.folded_edges == 6


def test_group_conv_absorbs_a_weight():
    # `a` (16 channels) and the stem (64 channels... the stem width) differ: the narrower
    # group goes through a 1x1 conv, which takes its own factor
    body = """stem r = rgb
block a = bottleneck(level=0, filters=4) <- r
block b = bottleneck(level=1, filters=8) <- a @0.3, r @0.6
block top = bottleneck(level=3, filters=4, stride=2) <- b
"""
    net, g = graph_of(body)
    w = ir_weights(g)
    chans = channels(net)
    assert chans["a"] != chans["r"]
    plan = plan_edge_folding(g, w, chans)
    assert plan.remaining_edges == 0
    assert plan.group_scale["b"]
    check_invariant(g, plan, w, chans)


@pytest.mark.parametrize("name", ["assemblenet50", "assemblenet101"])
def test_published_invariant_and_forest_count(name):
    net = load(str(EXAMPLES / f"{name}.asn"))
    g = build_graph(net)
    w = ir_weights(g)
    chans = channels(net)
    plan = plan_edge_folding(g, w, chans)
    check_invariant(g, plan, w, chans)
    multi = len(w)
    assert plan.folded_edges + plan.remaining_edges == multi
    # folded edges are at most a spanning forest's: (#producers + #input groups) - 1 per
    # component, so a network with more edges than that keeps the difference
    assert plan.folded_edges < multi and plan.remaining_edges >= 1
    assert all(1e-4 <= s <= 1e4 for s in plan.producer_scale.values())


@pytest.mark.parametrize("extra,reason", [
    ("  attention self\n", "attention"),
    ("  combine concat\n", "concat"),
])
def test_blockers(extra, reason):
    body = TREE.replace(" @0.5", "").replace(" @0.25", "") if "concat" in extra else TREE
    _, g = graph_of(body, extra)
    assert reason in edge_fold_blocker(g)
    _, reports = Sequential(["repflow-slices", "fold-batchnorm", "fold-edge-weights"])(
        g, PassContext(opt_level=1))
    assert reports.form == LoweringForm(("repflow-slices", "fold-batchnorm"))
    assert reason in reports.backend_passes_skipped["fold-edge-weights"]


def test_no_flow_stem_skips_repflow_slices():
    _, g = graph_of("stem r = rgb\nblock top = bottleneck(level=3, filters=4) <- r\n")
    _, reports = Sequential(["repflow-slices", "fold-batchnorm"])(g, PassContext(opt_level=1))
    assert not reports.form.has("repflow-slices")
    assert "flow" in reports.backend_passes_skipped["repflow-slices"]


def test_stats_O1_assemblenet50_from_golden(golden, capsys):
    """What -O1 builds, from golden.json alone: every batch norm (2C non-trainable moving
    statistics, 2C trainable) becomes C biases, and the fixed connection weights go."""
    gold = golden["assemblenet50"]["published_weights"]
    net = load(str(EXAMPLES / "assemblenet50.asn"))
    edges = len(ir_weights(build_graph(net)))
    flow = 16
    bn_channels = (gold["non_trainable"] - flow - edges) // 2
    want = gold["total"] - 3 * bn_channels - edges
    got = optimise(net, level=1).stats()
    assert got.total == want
    assert got.non_trainable == flow
    assert main(["stats", str(EXAMPLES / "assemblenet50.asn"), "-O", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"]["total"] == want


@pytest.mark.parametrize("name", PUBLISHED)
def test_stats_O1_folds_only_what_applies(name):
    net = load(str(EXAMPLES / f"{name}.asn"))
    o = optimise(net, level=1)
    plain = analyse(o.network)
    folded = o.stats()
    assert folded.total < plain.total
    assert folded.flops == plain.flops
    if net.header.attention != "none" or net.header.variant == "lite":
        assert "fold-edge-weights" in o.skipped
    else:
        assert o.form.has("fold-edge-weights")
