"""Properties of the front end over generated valid networks (hypothesis).

`netgen.networks()` draws valid networks (every header setting, every stem type and block
module, attention modes, lite variant, heads, declaration orders; see tests/netgen.py),
with random names and optional comments. For each:

- `.asn` text (with or without comments) -> parse gives the network back;
- format -> parse gives the same IR (spans and comments do not take part in `==`);
- `fmt` is idempotent;
- the JSON form and the list format round-trip to the same IR;
- `check` (which runs the static analysis) never raises: a network either checks clean or
  gets clean diagnostics (inputs that cannot be resized, pixel-less blocks).
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asn.compiler.analysis import analyse, peer_candidates
from asn.compiler.graph import build_graph
from asn.compiler.validation import check
from asn.dsl.diagnostics import DiagnosticError, Source, render
from asn.dsl.ir import Network
from asn.dsl.jsonform import to_json_form
from asn.dsl.listformat import to_list
from asn.dsl.loader import load_text
from asn.dsl.parser import parse
from asn.dsl.printer import format_network

from netgen import networks

PROPS = settings(max_examples=120, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

comments = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                   max_size=12).map(lambda t: "#" + t.replace("\x85", ""))


def with_comments(text: str, draw) -> str:
    """The canonical text with comments on their own lines and at line ends."""
    out = []
    for line in text.split("\n"):
        if draw(st.integers(0, 3)) == 0:
            out.append(draw(comments))
        if line and draw(st.integers(0, 3)) == 0:
            line = line + "  " + draw(comments)
        out.append(line)
    return "\n".join(out)


def _check_clean(net: Network, path: str = "gen.asn", text: str = "") -> None:
    diags = check(net)
    for d in diags:
        render(d, Source(path, text))
        # only diagnostics a valid-by-construction network may get: sizes that do not fuse,
        # blocks without pixels, blocks that read object stems only, dead nodes
        assert d.code in ("ASN122", "ASN150", "ASN131", "ASN140") or (
            d.code == "ASN123" and "every input is an object stem" in d.message), d
    if not diags.has_errors:
        stats = analyse(net)
        assert stats.total > 0 and stats.flops > 0


@PROPS
@given(networks())
def test_format_then_parse_is_identity(net):
    text = format_network(net)
    again = parse(text, "gen.asn")
    assert again == net
    assert format_network(again) == text  # idempotent


@PROPS
@given(networks(), st.data())
def test_comments_survive_and_fmt_is_idempotent(net, data):
    text = with_comments(format_network(net), data.draw)
    parsed = parse(text, "gen.asn")
    assert parsed == net  # comments never change the network
    once = format_network(parsed)
    twice = format_network(parse(once, "gen.asn"))
    assert once == twice
    # every comment is kept, in order
    kept = [ln.strip() for ln in once.split("\n") if "#" in ln]
    wanted = [ln[ln.index("#"):].rstrip() for ln in text.split("\n") if "#" in ln]
    assert [k[k.index("#"):].rstrip() for k in kept] == wanted


@PROPS
@given(networks())
def test_json_form_round_trip(net):
    text = json.dumps(to_json_form(net), indent=1)
    assert load_text(text, "gen.json") == net


@PROPS
@given(networks())
def test_list_format_round_trip(net):
    data = to_list(net)
    assert set(data) >= {"structure", "weights", "depth", "names", "network"}
    assert load_text(json.dumps(data), "gen.json") == net


@PROPS
@given(networks())
def test_analysis_never_raises(net):
    _check_clean(net, text=format_network(net))


@PROPS
@given(networks(), st.randoms(use_true_random=False))
def test_declaration_order_is_free(net, rnd):
    """Declarations may come in any order: the shuffled text checks the same."""
    # but for the lite variant's default head, the first level-3 block declared: name it
    net = net.model_copy(update={"heads": net.head_names()})
    nodes = list(net.nodes)
    rnd.shuffle(nodes)
    shuffled = net.model_copy(update={"nodes": nodes})
    text = format_network(shuffled)
    again = parse(text, "gen.asn")
    assert again == shuffled
    # the same problems (the shape analysis reports every block it cannot fuse, not the
    # first in declaration order)
    assert sorted(d.code for d in check(again)) == sorted(d.code for d in check(net))
    # the list format writes a topological order; reading it back gives the same nodes
    back = load_text(json.dumps(to_list(again)), "gen.json")
    assert sorted(back.nodes, key=lambda n: n.name) == sorted(net.nodes, key=lambda n: n.name)


@PROPS
@given(networks(), st.sampled_from(["frames", "size", "classes"]), st.integers(-3, 0))
def test_invalid_header_values_are_diagnostics(net, field, bad):
    data = to_json_form(net)
    data["header"][field] = [bad, bad] if field == "size" else bad
    try:
        load_text(json.dumps(data), "gen.json")
    except DiagnosticError as exc:
        assert exc.diagnostics and all(d.code == "ASN012" for d in exc.diagnostics)
    else:
        raise AssertionError("accepted an invalid header")


def test_keywords_are_names():
    net = parse("network network { }\nstem stem = rgb\nstem block = flow\n"
                "block heads = bottleneck(level=3, filters=8) <- stem @0.5, block @0.5\n"
                "heads heads\n")
    assert [n.name for n in net.nodes] == ["stem", "block", "heads"]
    assert parse(format_network(net)) == net


@PROPS
@given(networks(), st.randoms(use_true_random=False))
def test_peer_attention_counts_match_the_definition(net, rnd):
    """Peer attention, per block: every node of a lower level (`peer_candidates`) projected
    to P (the widest) by a dense layer, then per connection one logit per candidate and a
    dense layer from P to the connection's width. The analysis sums this per level; check it
    against the definition, node by node, in any declaration order."""
    header = net.header.model_copy(update={"attention": "peer", "combine": "sigmoid"})
    nodes = list(net.nodes)
    rnd.shuffle(nodes)  # lower levels may be declared after the blocks that attend to them
    peer = net.model_copy(update={"header": header, "nodes": nodes})
    plain = peer.model_copy(update={"header": header.model_copy(update={"attention": "none"})})
    try:
        with_peer, without = analyse(peer), analyse(plain)
    except Exception as exc:  # a shape problem is the same with and without attention
        assert type(exc).__name__ == "ShapeError", exc
        return
    g = build_graph(peer)
    shapes = {n.name: n.shape for n in with_peer.nodes}
    base = {n.name: n for n in without.nodes}
    T = header.frames
    for n in with_peer.nodes:
        if n.kind != "block":
            continue
        below = peer_candidates(g, n.name)
        P = max(shapes[c][3] for c in below)
        widths = [shapes[i.source][3] for i in g.nodes[n.name]["ir"].inputs]
        params = sum(shapes[c][3] * P + P for c in below) + sum(
            len(below) + P * w + w for w in widths)
        flops = sum(2 * shapes[c][3] * P * T for c in below) + sum(2 * P * w * T for w in widths)
        assert n.params - base[n.name].params == params, n.name
        assert n.flops - base[n.name].flops == flops, n.name
