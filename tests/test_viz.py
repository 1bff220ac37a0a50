"""`asnc viz` and the Graphviz backend: every node and edge drawn, styles, the legend of what is
used, column headers, the pruned picture (its counts, its unchanged layout), peer reads,
rendering and a missing `dot`."""

from __future__ import annotations

import json
import re
import shutil

import networkx as nx
import pytest
from conftest import EXAMPLES, PUBLISHED

import asn.backends.graphviz as gv
from asn.cli.main import main
from asn.compiler.analysis import peer_candidates
from asn.compiler.graph import build_graph
from asn.dsl.loader import load

# graphviz.Digraph quotes only what needs it: `b4 -> b8:i0:w`, `b14 -> "@classifier"`
_ID = r'"?([^\s":]+)"?'
EDGE = re.compile(rf"^\t{_ID}(?::\w+:\w+)? -> {_ID}(?::(i\d+):w)? \[(.*)\]$", re.M)
NODE = re.compile(r"^\t\t([A-Za-z_]\w*) \[", re.M)  # network nodes, in their columns
HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz `dot` is not installed")

HDR = "network n {\n  depth 26\n  frames 4\n  size 32x32\n  classes 5\n}\n"


def edges(dot: str) -> dict[tuple[str, str], str]:
    """(src, dst) -> attributes of every connection and head edge (port in the attributes)."""
    found = [(m.group(1), m.group(2), f"port={m.group(3)} {m.group(4)}")
             for m in EDGE.finditer(dot)]
    out = {(a, b): attrs for a, b, attrs in found
           if not a.startswith("@column") and not a.startswith("@peer")
           and not b.startswith("@peer")}
    assert len(out) == len([f for f in found if (f[0], f[1]) in out]), "duplicate edge"
    return out


def legend(dot: str) -> set[str]:
    return set(re.findall(r'ID="legend-([\w-]+)"', dot))


def subtitle(dot: str, prefix: str) -> str:
    return next(s for s in re.findall(r'<FONT POINT-SIZE="10">([^<]*)</FONT>', dot)
                if s.startswith(prefix))


def positions(graph) -> dict[str, tuple[float, float]]:
    """Node centres from `dot -Tplain`, in inches from the drawing's top-left corner (the
    caption is below the drawing, so a taller caption moves nothing measured from the top)."""
    lines = gv.render(graph, "plain").decode().splitlines()
    height = float(lines[0].split()[3])
    return {p[1].strip('"'): (float(p[2]), height - float(p[3]))
            for p in (line.split() for line in lines) if p[0] == "node"}


def node_line(dot: str, name: str) -> str:
    m = re.search(rf"^\t\t{name} \[.*$", dot, re.M)
    assert m is not None, name
    return m.group(0)


def write(tmp_path, text: str, name: str = "n.asn"):
    f = tmp_path / name
    f.write_text(HDR + text)
    return f


@pytest.mark.parametrize("name", PUBLISHED + ("tutorial",))
def test_every_node_and_edge(name):
    net = load(str(EXAMPLES / f"{name}.asn"))
    dot = gv.to_dot(net)
    assert sorted(NODE.findall(dot)) == sorted(n.name for n in net.nodes)
    g = build_graph(net)
    e = edges(dot)
    conns = {(u, v) for u, v in g.edges}
    heads = {(h, gv.HEAD_ID) for h in net.head_names()}
    assert set(e) == conns | heads and len(e) == g.number_of_edges() + len(heads)
    assert f'"{gv.HEAD_ID}" [' in dot and "rankdir=LR" in dot
    # one rank per column (stems, each level, classifier), each with its header
    ranks = re.findall(r"\{\n\t\trank=same\n(.*?)\t\}", dot, re.S)
    assert len(ranks) == 1 + len({b.level for b in net.blocks}) + 1
    stems = NODE.findall(ranks[0])
    assert sorted(stems) == sorted(s.name for s in net.stems)
    types = [next(s.type for s in net.stems if s.name == n) for n in stems]
    assert types == sorted(types, key=["rgb", "flow", "object"].index)
    # a block of two or more inputs: each edge ends at its own input cell, in input order
    for b in net.blocks:
        for slot, inp in enumerate(b.inputs):
            port = e[inp.source, b.name].split()[0]
            assert port == (f"port=i{slot}" if len(b.inputs) > 1 else "port=None")


def test_column_headers(tmp_path):
    header = re.compile(r'"@column\d+" \[label=<<B>([^<]*)</B>>')
    dot = gv.to_dot(load(str(EXAMPLES / "tutorial.asn")))
    assert header.findall(dot) == ["Stems", "Level 0", "Level 1", "Level 2", "Level 3",
                                   "Classifier"]
    f = write(tmp_path, "stem r0 = rgb\nblock a = bottleneck(level=0, filters=8) <- r0\n"
                        "block top = bottleneck(level=3, filters=8) <- a\n")
    # only the levels the network has
    assert header.findall(gv.to_dot(load(str(f)))) == ["Stems", "Level 0", "Level 3",
                                                        "Classifier"]


@needs_dot
@pytest.mark.parametrize("name", PUBLISHED + ("tutorial",))
def test_headers_on_top_of_their_columns(name):
    net = load(str(EXAMPLES / f"{name}.asn"))
    pos = positions(gv.to_graph(net))
    header = {k: v for k, v in pos.items() if k.startswith("@column")}
    others = {k: v for k, v in pos.items() if not k.startswith("@")}
    assert len({round(y, 3) for _, y in header.values()}) == 1  # one line
    top = next(iter(header.values()))[1]
    assert all(y > top for _, y in others.values())
    xs = sorted(x for x, _ in header.values())
    assert xs == [x for x, _ in sorted(header.values())] and len(set(xs)) == len(xs)


def test_labels_weights_and_styles():
    net = load(str(EXAMPLES / "tutorial.asn"))
    dot = gv.to_dot(net)
    e = edges(dot)
    assert "penwidth=2.98" in e["rgb", "low_mix"]  # 0.6 + 3.4 * 0.7
    assert "style=dotted" in e["motion", "mid"]
    assert "style" not in e["rgb", "low_rgb"] and "port=None" in e["rgb", "low_rgb"]
    # the weights sit in the input cells, in input order
    cells = re.findall(r'PORT="i\d+"[^>]*><FONT[^>]*>([^<]*)</FONT>',
                       node_line(dot, "high"))
    assert cells == ["0.90", "0.20"]
    mid = node_line(dot, "mid")
    assert re.findall(r'PORT="i\d+"[^>]*><FONT[^>]*>([^<]*)</FONT>', mid) == ["learn"] * 3
    label = node_line(dot, "high")
    assert ("<B>high</B><BR/><FONT POINT-SIZE=\"9\">bottleneck  F=64  d=1  s=2<BR/>"
            "8x4x4x256<BR/>529.9K params</FONT>") in label
    assert subtitle(dot, "1,764,449 params") == \
        "1,764,449 params, 1.339 GFLOPs, 9 connections; attention none"


@pytest.mark.parametrize("text, kinds", [
    # the tutorial's constructs: two stem types, weighted, learnable and single inputs
    (None, {"rgb", "flow", "module-bottleneck", "weighted", "learn", "single"}),
    # one stem type, only single inputs, a block that reaches no head
    ("stem r0 = rgb\nblock x = bottleneck(level=0, filters=8) <- r0\n"
     "block top = bottleneck(level=3, filters=8) <- r0\n",
     {"rgb", "module-bottleneck", "single", "dead"}),
    # two modules, weights only
    ("stem r0 = rgb\nstem f0 = flow\nblock a = bottleneck3d(level=0, filters=8) <- r0\n"
     "block top = bottleneck(level=3, filters=8) <- a @0.5, f0 @0.7\n",
     {"rgb", "flow", "module-bottleneck3d", "module-bottleneck", "weighted", "single"}),
])
def test_legend_lists_exactly_what_is_used(tmp_path, text, kinds):
    path = EXAMPLES / "tutorial.asn" if text is None else write(tmp_path, text)
    assert legend(gv.to_dot(load(str(path)))) == kinds


def test_legend_of_pruning_and_peer(tmp_path):
    f = write(tmp_path, "stem r0 = rgb\nblock x = bottleneck(level=0, filters=8) <- r0\n"
                        "block top = bottleneck(level=3, filters=8) <- r0 @0.9, x @0.1\n")
    net = load(str(f))
    assert legend(gv.to_dot(net)) == {"rgb", "module-bottleneck", "single", "weighted"}
    # pruned: the one input of `top` left is unweighted, `x` reaches no head after it
    assert legend(gv.to_dot(net, prune_threshold=0.5)) == {
        "rgb", "module-bottleneck", "single", "pruned", "removed"}
    dot = gv.to_dot(net, prune_threshold=0.5)
    assert re.search(r"^\t\tx \[.*style=\"rounded,filled,dashed\"", dot, re.M)
    e = edges(dot)
    assert f'color="{gv._PRUNED}"' in e["x", "top"] and f'color="{gv._PRUNED}"' in e["r0", "x"]
    plus = load(str(EXAMPLES / "assemblenet_plus50.asn"))
    assert "peer" not in legend(gv.to_dot(plus))
    assert "peer" in legend(gv.to_dot(plus, peer_edges=True))
    assert "peer" not in legend(gv.to_dot(load(str(EXAMPLES / "tutorial.asn")), peer_edges=True))


def test_pruned_edges_match_the_pass():
    net = load(str(EXAMPLES / "assemblenet50.asn"))
    dot = gv.to_dot(net, prune_threshold=0.2)
    pruned = {k for k, v in edges(dot).items() if f'color="{gv._PRUNED}"' in v}
    assert pruned == {("r0", "b6"), ("r0", "b8"), ("r0", "b9"), ("f2", "b9")}
    for k in pruned:
        assert "style=dashed" in edges(dot)[k]
    assert "removed by pruning (w &lt; 0.2" in dot  # legend row
    from asn.compiler.passes import run_pipeline
    _, reports = run_pipeline(net, level=2)
    r = next(r for r in reports if r.name == "prune-edges")
    assert pruned == {(x["src"], x["dst"]) for x in r.removed_edges}


@pytest.mark.parametrize("name, how", [("tutorial", ["--prune-threshold", "0.5"]),
                                       ("assemblenet50", ["--prune-threshold", "0.5"]),
                                       ("assemblenet50", ["--top-k", "2"])])
def test_pruned_title_counts_the_pruned_network(tmp_path, capsys, name, how):
    src = str(EXAMPLES / f"{name}.asn")
    out = tmp_path / "pruned.asn"
    assert main(["opt", src, "-O2", *how, "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    pruned = load(str(out))
    viz = tmp_path / "g.dot"
    assert main(["viz", src, *how, "-o", str(viz)]) == 0
    line = subtitle(viz.read_text(), "pruned: ")
    assert line.startswith(f"pruned: {stats['params']['total']:,} params, "
                           f"{stats['flops'] / 1e9:.3f} GFLOPs, "
                           f"{sum(len(b.inputs) for b in pruned.blocks)} connections")
    written = load(src)
    assert f"as written: {sum(len(b.inputs) for b in written.blocks)} connections" not in line
    assert subtitle(viz.read_text(), "as written: ").startswith("as written: ")


@needs_dot
@pytest.mark.parametrize("name, kw", [
    ("tutorial", {"prune_threshold": 0.5}), ("assemblenet50", {"prune_threshold": 0.5}),
    ("assemblenet50", {"prune_top_k": 1}), ("assemblenet_plus50", {"prune_threshold": 0.5}),
    ("tiny", {"prune_threshold": 0.5})])
def test_layout_stays_put_under_pruning(tmp_path, name, kw):
    if name == "tiny":  # pruning leaves a block dead
        path = write(tmp_path, "stem r0 = rgb\nblock x = bottleneck(level=0, filters=8) <- r0\n"
                               "block top = bottleneck(level=3, filters=8) <- r0 @0.9, x @0.1\n")
    else:
        path = EXAMPLES / f"{name}.asn"
    net = load(str(path))
    before, after = positions(gv.to_graph(net)), positions(gv.to_graph(net, **kw))
    assert before.keys() == after.keys()
    for n, (x, y) in before.items():
        assert after[n] == pytest.approx((x, y), abs=0.005), n  # plain rounds to 1/1e4 in.
    assert any(f'color="{gv._PRUNED}"' in v for v in edges(gv.to_dot(net, **kw)).values())


def test_peer_mode_notes_and_edges():
    net = load(str(EXAMPLES / "assemblenet_plus50.asn"))
    dot = gv.to_dot(net)
    assert "peer attention: each block attends over every node of a lower level (level 0: 5, " \
        "level 1: 9, level 2: 12, level 3: 14 candidates)" in dot
    assert "read by peer attention only" in dot  # b9: no block reads it
    assert "@peer" not in dot
    with_edges = gv.to_dot(net, peer_edges=True)
    found = [(m.group(1), m.group(2)) for m in EDGE.finditer(with_edges)
             if m.group(1).startswith("@peer") or m.group(2).startswith("@peer")]
    bus = nx.DiGraph(found)
    g = build_graph(net)
    for b in net.blocks:  # every candidate reaches its block along the bus, nothing else does
        reach = {n for n in nx.ancestors(bus, b.name) if not n.startswith("@")}
        assert reach == set(peer_candidates(g, b.name)), b.name
    # linear: an edge per node below the top level, per block, and between buses
    levels = sorted({b.level for b in net.blocks})
    below_top = [n for n in net.nodes if getattr(n, "level", -1) < levels[-1]]
    assert len(found) == len(below_top) + len(net.blocks) + len(levels) - 1


def test_dead_nodes_dashed(tmp_path):
    f = write(tmp_path, "stem r0 = rgb\nblock x = bottleneck(level=0, filters=8) <- r0\n"
                        "block top = bottleneck(level=3, filters=8) <- r0\n")
    dot = gv.to_dot(load(str(f)))
    assert re.search(r'^\t\tx \[.*reaches no head.*style="rounded,filled,dashed"', dot, re.M)


def test_label_text_is_escaped():
    # a user module's name (`"pkg.mod:Factory"`) lands in a label: no markup from it
    label = gv._node_label(["top", "pkg.mod:Fac<t>&"], [("0.50", "#000000")])
    assert "pkg.mod:Fac&lt;t&gt;&amp;" in label and label.startswith("<<TABLE")


def test_cli_dot_and_stdout(tmp_path, capsys):
    out = tmp_path / "g.dot"
    assert main(["viz", str(EXAMPLES / "assemblenet50.asn"), "-o", str(out),
                 "--prune-threshold", "0.2"]) == 0
    text = out.read_text()
    assert text.startswith("digraph assemblenet50 {")
    assert text.count(f'color="{gv._PRUNED}"') == 4  # the edges
    capsys.readouterr()
    assert main(["viz", str(EXAMPLES / "tutorial.asn"), "--size", "32", "32"]) == 0
    assert "8x8x8x64" in capsys.readouterr().out  # stem shape at 32x32
    assert main(["viz", str(EXAMPLES / "tutorial.asn"), "-o", str(tmp_path / "g.jpeg")]) == 1


def test_cli_without_dot_writes_dot(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # graphviz raises ExecutableNotFound
    out = tmp_path / "g.svg"
    assert main(["viz", str(EXAMPLES / "tutorial.asn"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert not out.exists() and (tmp_path / "g.dot").exists()
    assert "not installed" in err and f"dot -Tsvg {tmp_path / 'g.dot'} -o {out}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_cli_renders(tmp_path, fmt):
    out = tmp_path / f"g.{fmt}"
    assert main(["viz", str(EXAMPLES / "assemblenet_plus50.asn"), "-o", str(out),
                 "--prune-threshold", "0.2", "--peer-edges"]) == 0
    if not HAS_DOT:
        assert (tmp_path / "g.dot").exists()
        pytest.skip("Graphviz `dot` is not installed: rendering not checked")
    data = out.read_bytes()
    magic = {"svg": b"<svg", "png": b"\x89PNG", "pdf": b"%PDF"}[fmt]
    assert magic in data[:400]
    if fmt == "svg":
        text = data.decode()
        net = load(str(EXAMPLES / "assemblenet_plus50.asn"))
        for n in net.nodes:
            assert f"<title>{n.name}</title>" in text
        for b in net.blocks:
            for inp in b.inputs:
                assert f"<title>{inp.source}&#45;&gt;{b.name}" in text, (inp.source, b.name)
        assert "peer&#45;attention read" in text and "removed by pruning (w &lt; 0.2" in text


@needs_dot
def test_render_error_is_a_diagnostic(tmp_path, capsys, monkeypatch):
    def broken(graph, fmt):
        raise gv.RenderError("Error: syntax error in line 1")
    monkeypatch.setattr(gv, "render", broken)
    assert main(["viz", str(EXAMPLES / "tutorial.asn"), "-o", str(tmp_path / "g.png")]) == 1
    err = capsys.readouterr().err
    assert "dot failed to render" in err and "Traceback" not in err
    assert gv.render.__name__ == "broken"
    monkeypatch.undo()
    with pytest.raises(gv.RenderError, match="syntax error"):
        gv.render("digraph { a -> }", "svg")
