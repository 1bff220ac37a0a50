"""Graph passes: each pass alone on small hand-built networks, the pipeline per level, the
pass manager's contract, `asnc opt` and `asnc stats -O`."""

from __future__ import annotations

import copy
import json

import networkx as nx
import pytest
from conftest import EXAMPLES, PUBLISHED

from asn.cli.main import main
from asn.compiler.analysis import analyse, analyse_graph
from asn.compiler.graph import build_graph
from asn.compiler.passes import (LoweringForm, PassContext, PassReport, Reports, Sequential,
                                 StatsInstrument,
                                 UnknownPassError, dead_node_elimination, get_pass, graph_pass,
                                 plan_pruning, prune_edges, registered_passes, run_pipeline)
from asn.compiler.validation import check
from asn.dsl.loader import load, load_text
from asn.dsl.printer import format_network

SMALL = "network {name} {{\n  depth 26\n  frames 4\n  size 32x32\n  classes 5\n{extra}}}\n"


def net_of(body: str, extra: str = "", name: str = "t"):
    net = load_text(SMALL.format(name=name, extra=extra) + body, "<test>")
    diags = check(net)
    assert not any(d.is_error for d in diags), [d.message for d in diags]
    return net


def snapshot(g: nx.DiGraph):
    return (sorted(g.nodes),
            sorted((u, v, d["slot"], d["weight"]) for u, v, d in g.edges(data=True)),
            {n: g.nodes[n]["ir"].model_dump() for n in g.nodes},
            dict(g.graph["network"].model_dump()), list(g.graph["heads"]),
            g.graph.get("explicit_heads"))


def apply(p, net, **ctx):
    """Run one pass alone on the network's graph, between the manager's instrument; check
    it left its input alone and measured nothing itself (the instrument does)."""
    g = build_graph(net)
    before = snapshot(g)
    context, form, instrument = PassContext(**ctx), LoweringForm.reference(), StatsInstrument()
    instrument.run_before_pass(p.name, g, form, context)
    new, report = p(g, context)
    assert snapshot(g) == before, "a pass mutated its input graph"
    assert new is not g and isinstance(report, PassReport)
    assert report.params_before is report.params_after is None, "a pass measured itself"
    instrument.run_after_pass(report, new, form, context)
    json.dumps(report.to_json())  # serialisable
    return new, report


def same_kept_nodes(g_before, g_after):
    """Exactness proxy: every kept node has the same shape, parameters and FLOPs."""
    a, b = analyse_graph(g_before), analyse_graph(g_after)
    for n in b.nodes:
        assert a.node(n.name).shape == n.shape and a.node(n.name).params == n.params \
            and a.node(n.name).flops == n.flops, n.name


# -- dead-node elimination -------------------------------------------------------------------

DEAD = """
stem r0 = rgb
stem r1 = rgb(dilation=2)
stem f2 = flow                     # read only by a dead block
block a = bottleneck(level=0, filters=8) <- r0 @0.9, r1 @0.6
block b = bottleneck(level=1, filters=8, stride=2) <- a
block dead = bottleneck(level=1, filters=8) <- a @0.5, f2 @0.5
block dead2 = bottleneck(level=2, filters=8) <- dead
block top = bottleneck(level=3, filters=8, stride=2) <- b
"""


def test_dce_removes_dead_blocks_keeps_width_changing_stem():
    net = net_of(DEAD)
    g = build_graph(net)
    new, r = apply(dead_node_elimination, net)
    assert [n["name"] for n in r.removed_nodes] == ["dead", "dead2"]
    st = analyse(net)
    assert [n["params"] for n in r.removed_nodes] == [st.node("dead").params,
                                                      st.node("dead2").params]
    # f2 is dead too, but 3 stems -> 2 would change the stem width 42 -> 64
    assert [k["name"] for k in r.kept_nodes] == ["f2"]
    assert "128 // 3 = 42" in r.kept_nodes[0]["reason"]
    assert sorted(new.nodes) == ["a", "b", "f2", "r0", "r1", "top"]
    assert r.exact and r.params_before == st.total
    assert r.params_after == st.total - st.node("dead").params - st.node("dead2").params
    assert r.flops_after == st.flops - st.node("dead").flops - st.node("dead2").flops
    same_kept_nodes(g, new)


def test_dce_nothing_dead_is_identity():
    net = net_of("stem r0 = rgb\nblock top = bottleneck(level=3, filters=8) <- r0\n")
    new, r = apply(dead_node_elimination, net)
    assert not r.changed and r.params_before == r.params_after
    assert snapshot(new) == snapshot(build_graph(net))


def test_dce_removes_stems_when_width_stays():
    # 14 stems: 128 // 14 == 128 // 13 == 9, but 128 // 12 == 10. Two dead stems: one goes.
    stems = "".join(f"stem r{i} = rgb\n" for i in range(14))
    body = stems + "block top = bottleneck(level=3, filters=8) <- " + ", ".join(
        f"r{i} @0.5" for i in range(12)) + "\n"
    net = net_of(body)
    g = build_graph(net)
    new, r = apply(dead_node_elimination, net)
    assert [n["name"] for n in r.removed_nodes] == ["r12"]
    assert [k["name"] for k in r.kept_nodes] == ["r13"]
    same_kept_nodes(g, new)


def test_dce_object_stem_and_flow_layer():
    # 19 rgb + 1 flow + 1 object: the flow and object stems are dead; 21 -> 19 stems keeps
    # the width 128 // 21 == 128 // 19 == 6.
    stems = "".join(f"stem r{i} = rgb\n" for i in range(19)) + "stem f = flow\nstem o = object\n"
    body = stems + "block x = bottleneck(level=0, filters=8) <- f @0.5, o @0.5\n" + \
        "block top = bottleneck(level=3, filters=8) <- " + ", ".join(
            f"r{i} @0.5" for i in range(19)) + "\n"
    net = net_of(body, "  objects 151\n")
    g = build_graph(net)
    new, r = apply(dead_node_elimination, net)
    assert [n["name"] for n in r.removed_nodes] == ["f", "o", "x", "repflow"]
    assert r.removed_nodes[-1]["kind"] == "flow_layer" and r.removed_nodes[-1]["params"] == 16
    assert new.graph["network"].object_classes is None
    assert any("Representation Flow" in n for n in r.notes)
    same_kept_nodes(g, new)
    out, _ = run_pipeline(net, level=1)
    text = format_network(out)
    assert "objects" not in text and check(load_text(text)) == []


def test_dce_lite_stems_are_fixed_width():
    body = """
stem r0 = rgb
stem f1 = flow
block a = lite(level=0, filters=[8, 8, 8]) <- r0
block x = lite(level=0, filters=[8, 8, 8]) <- f1
block top = lite(level=3, filters=[8, 8, 16], stride=2) <- a
block late = lite(level=3, filters=[8, 8, 16], stride=2) <- a
"""
    net = net_of(body, "  variant lite\n")
    g = build_graph(net)
    new, r = apply(dead_node_elimination, net)
    # lite stems are 24 wide whatever their number; the lite head reads only the first level 3
    assert [n["name"] for n in r.removed_nodes] == ["f1", "x", "late", "repflow"]
    assert r.kept_nodes == [] and new.graph["heads"] == ["top"]
    same_kept_nodes(g, new)


def test_dce_peer_mode_keeps_peer_candidates():
    body = """
stem r0 = rgb
block side = bottleneck(level=0, filters=8) <- r0
block a = bottleneck(level=1, filters=8) <- r0
block top = bottleneck(level=3, filters=8) <- a
block other = bottleneck(level=3, filters=8) <- a
heads top
"""
    peer = net_of(body, "  attention peer\n")
    new, r = apply(dead_node_elimination, peer)
    assert [n["name"] for n in r.removed_nodes] == ["other"]  # side is a peer candidate
    same_kept_nodes(build_graph(peer), new)
    none = net_of(body)
    _, r = apply(dead_node_elimination, none)
    assert [n["name"] for n in r.removed_nodes] == ["side", "other"]


# -- edge pruning ----------------------------------------------------------------------------

PRUNE = """
stem r0 = rgb
stem r1 = rgb
block a = bottleneck(level=0, filters=8) <- r0 @0.1, r1 @0.15
block b = bottleneck(level=0, filters=8) <- r0 @0.3, r1 @0.05, a @0.9
block side = bottleneck(level=0, filters=8) <- r1
block c = bottleneck(level=1, filters=8, stride=2) <- a @0.7, b @0.4, side @0.05
block l = bottleneck(level=1, filters=8, stride=2) <- a, b
block top = bottleneck(level=3, filters=8, stride=2) <- c @0.6, l @0.5
"""


def test_prune_threshold():
    net = net_of(PRUNE)
    new, r = apply(prune_edges, net)  # default threshold 0.2
    assert not r.exact
    assert [(e["src"], e["dst"]) for e in r.removed_edges] == [
        ("r0", "a"), ("r1", "b"), ("side", "c")]
    assert r.removed_edges[0]["weight"] == 0.1
    assert plan_pruning(build_graph(net)) == (r.removed_edges, r.skipped_edges)
    # a keeps its strongest input (0.15 < 0.2), left alone it takes no weight
    assert r.dropped_weights == [{"block": "a", "src": "r1", "weight": 0.15}]
    assert [i.model_dump() for i in new.nodes["a"]["ir"].inputs] == [
        {"source": "r1", "weight": None}]
    assert [(e["src"], e["reason"]) for e in r.skipped_edges] == [
        ("r1", "strongest input of its block"), ("a", "learnable weight"),
        ("b", "learnable weight")]
    # side reached the head only through the pruned edge: dead-node elimination follows
    assert [n["name"] for n in r.removed_nodes] == ["side"]
    assert sorted(new.nodes) == ["a", "b", "c", "l", "r0", "r1", "top"]
    assert [(i.source, i.weight) for i in new.nodes["c"]["ir"].inputs] == [("a", 0.7),
                                                                            ("b", 0.4)]
    assert [new.edges[u, "c"]["slot"] for u in ("a", "b")] == [0, 1]
    assert r.params_after == analyse_graph(new).total < r.params_before


def test_prune_top_k_and_disabled_dce():
    net = net_of(PRUNE)
    new, r = apply(prune_edges, net, prune_top_k=1, disabled=["dead-node-elimination"])
    assert [(e["src"], e["dst"]) for e in r.removed_edges] == [
        ("r0", "a"), ("r0", "b"), ("r1", "b"), ("b", "c"), ("side", "c"), ("l", "top")]
    assert r.removed_nodes == [] and "side" in new.nodes
    assert any("disabled" in n for n in r.notes)


def test_prune_keeps_spatial_size():
    body = """
stem r0 = rgb
block low = bottleneck(level=0, filters=8) <- r0
block mid = bottleneck(level=1, filters=8, stride=2) <- low
block top = bottleneck(level=3, filters=8) <- low @0.9, mid @0.1
"""
    net = net_of(body)
    new, r = apply(prune_edges, net)
    assert r.removed_edges == []  # mid is the only 16x16 input: top would grow to 32x32
    assert r.skipped_edges[0]["src"] == "mid" and "spatial size" in r.skipped_edges[0]["reason"]
    assert analyse_graph(new).node("top").shape == analyse(net).node("top").shape


def test_plan_pruning_assemblenet50_independent_count(structures, golden):
    ref = structures["assemblenet50"]
    expected = []
    for i, ws in enumerate(ref["weights"]):
        if not ws or len(ws[0]) < 2:
            continue
        w = ws[0]
        strongest = max(range(len(w)), key=lambda k: (w[k], -k))
        expected += [(ref["structure"][i][1][k], i) for k in range(len(w))
                     if w[k] < 0.2 and k != strongest]
    net = load(str(EXAMPLES / "assemblenet50.asn"))
    out, reports = run_pipeline(net, level=2)
    r = next(r for r in reports if r.name == "prune-edges")
    got = [(int(e["src"][1:]), int(e["dst"][1:])) for e in r.removed_edges]
    assert len(got) == len(expected) == 4 and sorted(got) == sorted(expected)
    assert r.removed_nodes == [] and r.dropped_weights == []
    gold = golden["assemblenet50"]["published_weights"]["total"]
    assert r.params_after == analyse(out).total < r.params_before == gold
    # every block still has its strongest input
    for b in net.blocks:
        if len(b.inputs) > 1:
            best = max(b.inputs, key=lambda i: i.weight).source
            assert best in [i.source for i in out.node_map()[b.name].inputs]


# -- the manager -----------------------------------------------------------------------------

def test_registry_and_levels():
    names = [p.name for p in registered_passes()]
    assert names[:2] == ["dead-node-elimination", "prune-edges"]
    assert get_pass("dead-node-elimination").info.exact
    assert get_pass("prune-edges").info.opt_level == 2 and not get_pass("prune-edges").info.exact
    assert all(p.info.backend for p in registered_passes()[2:])
    with pytest.raises(UnknownPassError, match="did you mean `prune-edges`"):
        run_pipeline(net_of(PRUNE), passes=["prune-edge"])
    with pytest.raises(UnknownPassError):
        run_pipeline(net_of(PRUNE), disabled=["nope"])


def test_decorator_contract():
    with pytest.raises(TypeError, match="opt_level"):
        graph_pass("x")
    with pytest.raises(TypeError, match="int"):
        graph_pass("x", opt_level="1")
    with pytest.raises(TypeError, match="bool"):
        graph_pass("x", opt_level=1, exact=1)

    @graph_pass(opt_level=1, register=False)
    def copy_graph(g, ctx):
        st = analyse_graph(g)
        return g.copy(), PassReport("copy-graph", True, params_before=st.total,
                                    params_after=st.total)

    assert copy_graph.name == "copy-graph" and copy_graph.info.opt_level == 1

    @graph_pass("cls-pass", opt_level=2, exact=False, register=False)
    class ClsPass:
        def transform(self, g, ctx):
            return g.copy(), PassReport("cls-pass", False)

    g = build_graph(net_of(PRUNE))
    with PassContext(opt_level=1):
        _, reps = Sequential([copy_graph, ClsPass])(g)
    assert [r.name for r in reps] == ["copy-graph"]  # cls-pass is -O2
    with PassContext(opt_level=1, required=["cls-pass"], disabled=["copy-graph"]):
        _, reps = Sequential([copy_graph, ClsPass])(g)
    assert [r.name for r in reps] == ["cls-pass"]

    @graph_pass("bad", opt_level=1, register=False)
    def bad(g, ctx):
        return g, PassReport("bad", True)

    with pytest.raises(RuntimeError, match="new graph"):
        bad(g, PassContext())


def test_o0_is_identity_and_levels():
    net = load(str(EXAMPLES / "assemblenet_plus50.asn"))
    out, reports = run_pipeline(net, level=0)
    assert out is net and reports == [] and isinstance(reports, Reports)
    out1, r1 = run_pipeline(net, level=1)
    assert [r.name for r in r1 if not r.backend] == ["dead-node-elimination"]
    assert out1 == net  # peer mode: nothing is dead
    out2, r2 = run_pipeline(net, level=2)
    assert [r.name for r in r2 if not r.backend] == ["dead-node-elimination", "prune-edges"]
    assert r2.backend_passes == [r.name for r in r2 if r.backend and r.applied]
    assert set(r2.backend_passes_skipped) == {"fold-edge-weights", "drop-padding-taps"}
    assert "attention" in r2.backend_passes_skipped["fold-edge-weights"]
    # its largest dilation (8) is below its 32 frames: every temporal tap reads a frame
    assert "32 frames" in r2.backend_passes_skipped["drop-padding-taps"]
    assert analyse(out2).total < analyse(net).total
    out3, _ = run_pipeline(net, level=1, prune_threshold=0.2)  # a threshold enables pruning
    assert out3 == out2
    out4, r4 = run_pipeline(net, level=2, disabled="prune-edges")
    assert out4 == net and all(r.name != "prune-edges" for r in r4)
    out5, r5 = run_pipeline(net, passes="prune-edges", prune_top_k=2)
    assert [r.name for r in r5] == ["prune-edges"]
    assert all(len(b.inputs) <= 2 for b in out5.blocks)


@pytest.mark.parametrize("name", PUBLISHED + ("tutorial",))
@pytest.mark.parametrize("level", [1, 2])
def test_examples_optimise_to_valid_networks(name, level):
    net = load(str(EXAMPLES / f"{name}.asn"))
    out, reports = run_pipeline(net, level=level)
    text = format_network(out)
    again = load_text(text)
    assert [d for d in check(again) if d.is_error] == []
    assert format_network(again) == text
    graph_reports = [r for r in reports if not r.backend]
    assert graph_reports[-1].params_after == analyse(out).total
    if level == 1:
        assert analyse(out).total == analyse(net).total  # no published network has dead nodes


# -- command line ----------------------------------------------------------------------------

def test_stats_O1_attention_none_vs_peer(tmp_path, capsys):
    src = (EXAMPLES / "assemblenet_plus50.asn").read_text()
    results = {}
    for mode in ("none", "peer"):
        f = tmp_path / f"{mode}.asn"
        f.write_text(src.replace("attention peer", f"attention {mode}"))
        for level in (0, 1):
            assert main(["stats", "--json", "-O", str(level), str(f)]) == 0
            results[mode, level] = json.loads(capsys.readouterr().out)
    names = lambda d: [n["name"] for n in d["nodes"]]  # noqa: E731
    assert "b9" in names(results["peer", 1])  # reaches the head through peer candidates
    assert names(results["peer", 1]) == names(results["peer", 0])
    assert results["peer", 1]["flops"] == results["peer", 0]["flops"]
    assert "b9" not in names(results["none", 1])
    b9 = next(n for n in results["none", 0]["nodes"] if n["name"] == "b9")
    assert b9["params"] == 612360
    assert results["none", 0]["flops"] - results["none", 1]["flops"] == b9["flops"]
    # -O1 also folds batch norms (counted by test_edgefold); dead-node elimination alone
    # removes exactly b9's parameters
    for mode, removed in (("none", 612360), ("peer", 0)):
        net = load(str(tmp_path / f"{mode}.asn"))
        new, _ = run_pipeline(net, passes=["dead-node-elimination"])
        assert analyse(net).total - analyse(new).total == removed


def test_opt_cli_writes_valid_asn_and_report(tmp_path, capsys):
    src = tmp_path / "in.asn"
    src.write_text("# a network to optimise\n" + SMALL.format(name="t", extra="") + DEAD)
    out, rep = tmp_path / "out.asn", tmp_path / "report.json"
    assert main(["opt", str(src), "-O", "2", "-o", str(out), "--report", str(rep)]) == 0
    err = capsys.readouterr().err
    assert "dead-node-elimination" in err and "dead2" in err and f"wrote {out}" in err
    text = out.read_text()
    assert text.startswith("# a network to optimise\n")
    assert "# read only by a dead block" in text  # comments of kept nodes are kept
    assert "dead" not in text.replace("# read only by a dead block", "")
    net = load_text(text, str(out))
    assert [d.code for d in check(net)] == ["ASN131"]  # the kept stem f2 still reaches nothing
    assert main(["fmt", "--check", str(out)]) == 0
    data = json.loads(rep.read_text())
    assert [p["name"] for p in data["passes"] if not p["backend"]] == [
        "dead-node-elimination", "prune-edges"]
    # one count per level: `opt -O2` ends at what `stats -O2` (and `compile -O2`) counts
    assert main(["stats", str(src), "-O", "2", "--json"]) == 0
    assert data["params_after"] == json.loads(capsys.readouterr().out)["params"]["total"]
    assert data["params_before"] == analyse(load(str(src))).total
    assert data["passes"][0]["removed_nodes"][0]["name"] == "dead"


def test_opt_cli_passes_and_errors(tmp_path, capsys):
    f = str(EXAMPLES / "assemblenet50.asn")
    assert main(["opt", f, "--passes", "prune-edges", "--prune-threshold", "0.5"]) == 0
    captured = capsys.readouterr()
    net = load_text(captured.out)
    assert all(w is None or w >= 0.5 or len(b.inputs) == 1 or
               w == max(i.weight for i in b.inputs)
               for b in net.blocks for w in (i.weight for i in b.inputs))
    assert "prune-edges (approximate)" in captured.err
    assert main(["opt", f, "--passes", "dead-node-elim"]) == 1
    assert "unknown pass" in capsys.readouterr().err
    assert main(["opt", f, "-O", "-1"]) == 1
    assert main(["opt", "--list-passes", f]) == 0
    assert "prune-edges" in capsys.readouterr().out
    assert main(["opt", "--list-passes"]) == 0  # no file needed to list them
    listed = capsys.readouterr().out
    assert [line.split()[0] for line in listed.splitlines()] == [
        p.name for p in registered_passes()]
    assert "multiply (backend)" in listed  # a docstring's whole first paragraph
    assert main(["opt"]) == 1


def test_passes_do_not_import_tensorflow():
    import subprocess
    import sys
    code = ("import sys; from asn.compiler.passes import run_pipeline; "
            "from asn.backends.graphviz import to_dot; import asn.cli.cmd_opt, asn.cli.cmd_viz; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_copy_does_not_share_inputs():
    net = net_of(PRUNE)
    snap = copy.deepcopy(net.model_dump())
    run_pipeline(net, level=2, prune_top_k=1)
    assert net.model_dump() == snap


def test_comments_survive_repeated_parses():
    # lark builds its lexers lazily: comments must not depend on what was parsed before
    text = "# top\nnetwork t {\n}\nstem r0 = rgb  # stem\n" \
           "block top = bottleneck(level=3, filters=8) <- r0  # end\n"
    first = load_text(text)
    load_text("network u {\n}\nstem r0 = rgb\n")
    again = load_text(text)
    assert again.header.comments_before == first.header.comments_before == ["# top"]
    assert [n.comment_after for n in again.nodes] == ["# stem", "# end"]


def test_backend_pass_registration_and_forms():
    """A backend pass is a class with `blocker` and `counting`; forms hold only registered
    backend passes, each once, in pipeline order."""
    from asn.compiler.analysis import CountRules
    from asn.compiler.passes import backend_pass

    with pytest.raises(TypeError, match="opt_level"):
        backend_pass("no-level")
    with pytest.raises(TypeError, match="decorates a class"):
        backend_pass("not-a-class", opt_level=1)(lambda g: None)
    with pytest.raises(ValueError, match="already registered"):
        backend_pass("fold-batchnorm", opt_level=1)(type("Again", (), {}))
    form = LoweringForm.reference().with_pass("fold-edge-weights").with_pass("repflow-slices")
    assert form.applied == ("repflow-slices", "fold-edge-weights")  # pipeline order
    assert LoweringForm.training() == LoweringForm(("repflow-slices",))
    assert form.count_rules() == CountRules(edge_weight_variables=False)
    assert LoweringForm(("fold-batchnorm",)).count_rules() == CountRules(batchnorm_as_bias=True)
    with pytest.raises(UnknownPassError, match="graph pass"):
        LoweringForm(("dead-node-elimination",))
    with pytest.raises(UnknownPassError, match="unknown pass"):
        LoweringForm.reference().has("fold-batchnorms")
    with pytest.raises(ValueError, match="pipeline order"):
        LoweringForm(("fold-edge-weights", "repflow-slices"))
