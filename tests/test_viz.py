"""`asnc viz` and the DOT backend: every node and edge drawn, styles, legend, rendering."""

from __future__ import annotations

import re
import shutil

import pytest
from conftest import EXAMPLES, PUBLISHED

import asn.backends.graphviz as gv
from asn.cli.main import main
from asn.compiler.graph import build_graph
from asn.dsl.ir import Block
from asn.dsl.loader import load

EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)" \[(.*)\]$', re.M)
NODE = re.compile(r'^\s*"([^"@][^"]*)" \[', re.M)  # network nodes (legend/head ids have `@`)


def edges(dot: str) -> dict[tuple[str, str], str]:
    found = [(m.group(1), m.group(2), m.group(3)) for m in EDGE.finditer(dot)]
    out = {(a, b): attrs for a, b, attrs in found if not a.startswith("@")}
    assert len(out) == len([f for f in found if not f[0].startswith("@")]), "duplicate edge"
    return out


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
    assert f'"{gv.HEAD_ID}" [' in dot and 'rankdir="LR"' in dot
    # one rank per column: stems, then each level
    ranks = re.findall(r"\{rank=same; (.*)\}", dot)
    assert len(ranks) == 1 + len({b.level for b in net.blocks}) + 1
    stems = re.findall(r'"([^"]+)";', ranks[0])
    assert sorted(stems) == sorted(s.name for s in net.stems)
    types = [next(s.type for s in net.stems if s.name == n) for n in stems]
    assert types == sorted(types, key=["rgb", "flow", "object"].index)


def test_labels_weights_and_styles():
    net = load(str(EXAMPLES / "tutorial.asn"))
    dot = gv.to_dot(net)
    e = edges(dot)
    assert 'label="0.70"' in e["rgb", "low_mix"] and "penwidth=2.98" in e["rgb", "low_mix"]
    assert 'style="dotted"' in e["motion", "mid"] and 'label="learn"' in e["motion", "mid"]
    assert "style" not in e["rgb", "low_rgb"] and "label" not in e["rgb", "low_rgb"]
    label = re.search(r'^\s*"high" \[label="([^"]*)"', dot, re.M).group(1)
    assert label.split("\\n") == ["high", "level 2  bottleneck", "F=64  d=1  s=2", "8x4x4x256",
                                  "529.9K params"]
    assert "cluster_legend" in dot and 'label="legend"' in dot
    assert "(pruned)" not in dot  # no threshold given: nothing marked


def test_pruned_edges_match_the_pass():
    net = load(str(EXAMPLES / "assemblenet50.asn"))
    dot = gv.to_dot(net, prune_threshold=0.2)
    pruned = {k for k, v in edges(dot).items() if "(pruned)" in v}
    assert pruned == {("r0", "b6"), ("r0", "b8"), ("r0", "b9"), ("f2", "b9")}
    for k in pruned:
        attrs = edges(dot)[k]
        assert 'style="dashed"' in attrs and f'color="{gv._PRUNED}"' in attrs
    assert "pruned (w < 0.2" in dot  # legend row
    from asn.compiler.passes import run_pipeline
    _, reports = run_pipeline(net, level=2)
    r = next(r for r in reports if r.name == "prune-edges")
    assert pruned == {(x["src"], x["dst"]) for x in r.removed_edges}


def test_peer_mode_notes_and_edges():
    net = load(str(EXAMPLES / "assemblenet_plus50.asn"))
    dot = gv.to_dot(net)
    assert dot.count("peer attention: ") == len(net.blocks) + 1  # + the legend
    assert "read by peer attention only" in dot  # b9: no block reads it
    with_edges = gv.to_dot(net, peer_edges=True)
    peer = re.findall(r'^\s*"[^"@]+" -> "[^"]+" \[.*arrowhead="empty".*\]$', with_edges, re.M)
    from asn.compiler.analysis import peer_candidates
    g = build_graph(net)
    assert len(peer) == sum(len(peer_candidates(g, b.name)) for b in net.blocks)


def test_dead_nodes_dashed(tmp_path):
    f = tmp_path / "d.asn"
    f.write_text("network d {\n  depth 26\n  frames 4\n  size 32x32\n  classes 5\n}\n"
                 "stem r0 = rgb\nblock x = bottleneck(level=0, filters=8) <- r0\n"
                 "block top = bottleneck(level=3, filters=8) <- r0\n")
    dot = gv.to_dot(load(str(f)))
    assert re.search(r'^\s*"x" \[.*reaches no head.*style="rounded,filled,dashed"', dot, re.M)


def test_cli_dot_and_stdout(tmp_path, capsys):
    out = tmp_path / "g.dot"
    assert main(["viz", str(EXAMPLES / "assemblenet50.asn"), "-o", str(out),
                 "--prune-threshold", "0.2"]) == 0
    text = out.read_text()
    assert text.startswith('digraph "assemblenet50"') and text.count("(pruned)") == 4 + 1
    capsys.readouterr()
    assert main(["viz", str(EXAMPLES / "tutorial.asn"), "--size", "32", "32"]) == 0
    assert "8x8x8x64" in capsys.readouterr().out  # stem shape at 32x32
    assert main(["viz", str(EXAMPLES / "tutorial.asn"), "-o", str(tmp_path / "g.jpeg")]) == 1


def test_cli_without_dot_writes_dot(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gv, "find_dot", lambda: None)
    out = tmp_path / "g.svg"
    assert main(["viz", str(EXAMPLES / "tutorial.asn"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert not out.exists() and (tmp_path / "g.dot").exists()
    assert "not installed" in err and f"dot -Tsvg {tmp_path / 'g.dot'} -o {out}" in err


@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_cli_renders(tmp_path, fmt):
    out = tmp_path / f"g.{fmt}"
    assert main(["viz", str(EXAMPLES / "assemblenet_plus50.asn"), "-o", str(out),
                 "--prune-threshold", "0.2"]) == 0
    if shutil.which("dot") is None:
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
        assert text.count('class="edge"') == sum(len(b.inputs) for b in net.blocks
                                                 if isinstance(b, Block)) + 1 + 4
