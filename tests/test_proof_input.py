"""The proofs' input size (`compiler.proof_input`): the border cases of a window op against
a position-by-position count, hand-checked cases, and the sizes it picks for the published
network (checked against the node sizes `analysis` gives, not against itself)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from asn.compiler.analysis import analyse
from asn.compiler.proof_input import SEARCH_LIMIT, proof_input, window_classes, with_size
from asn.dsl.loader import load_text

NET = "examples/assemblenet50.asn"


def _net(frames: int, size: tuple[int, int], path: str = NET):
    with open(path) as fh:
        net = load_text(fh.read(), path)
    header = net.header.model_copy(update={"frames": frames, "size": size})
    return net.model_copy(update={"header": header})


def _every_position(n, k, s, before, after):
    out = (n + before + after - k) // s + 1
    found = set()
    for i in range(max(out, 0)):
        taps = [i * s - before + j for j in range(k)]
        found.add((sum(t < 0 for t in taps), sum(t >= n for t in taps)))
    return found


@settings(max_examples=400, deadline=None)
@given(n=st.integers(1, 80), k=st.integers(1, 9), s=st.integers(1, 5),
       before=st.integers(0, 5), after=st.integers(0, 5))
def test_classes_equal_a_position_by_position_count(n, k, s, before, after):
    assert window_classes(n, k, s, before, after) == _every_position(n, k, s, before, after)


def test_classes_by_hand():
    # 3x3 SAME, stride 1: left border, interior, right border from 3 positions on
    assert window_classes(7, 3, 1, 1, 1) == {(1, 0), (0, 0), (0, 1)}
    assert window_classes(3, 3, 1, 1, 1) == {(1, 0), (0, 0), (0, 1)}
    assert window_classes(2, 3, 1, 1, 1) == {(1, 0), (0, 1)}  # no interior position
    assert window_classes(1, 3, 1, 1, 1) == {(1, 1)}
    # 3x3 stride 2, fixed padding 1/1: windows start at -1, 1, 3, 5; the last one reaches
    # the padding after an odd input (7 = 5 + 3 - 1 - 1) but not after an even one
    assert window_classes(8, 3, 2, 1, 1) == {(1, 0), (0, 0)}
    assert window_classes(7, 3, 2, 1, 1) == {(1, 0), (0, 0), (0, 1)}


def test_assemblenet50_224_is_proved_at_96():
    net = _net(8, (224, 224))
    pin = proof_input(net)
    assert pin.reduced and pin.size == (96, 96) and pin.compile_size == (224, 224)
    # what makes 96 as strong, from the static analysis (not from proof_input): every node
    # has the parity it has at 224 (the same SAME paddings), and the smallest nodes (the
    # level-3 blocks: 7x7 at 224, 3x3 at 96) keep a border-interior-border row for 3x3 convs
    big, small = analyse(net), analyse(with_size(net, (96, 96)))
    for a, b in zip(big.nodes, small.nodes):
        if a.kind in ("stem", "block"):
            assert a.shape[1] % 2 == b.shape[1] % 2, (a.name, a.shape, b.shape)
            assert b.shape[1] >= 3, (a.name, b.shape)
    assert min(n.shape[1] for n in small.nodes if n.kind == "block") == 3


def test_sizes_with_no_smaller_equivalent_keep_the_compile_size():
    pin = proof_input(_net(4, (64, 64)))  # the quickstart: its last level is 2x2
    assert not pin.reduced and pin.size == (64, 64) and "no smaller" in pin.reason
    # 95 cannot stand in for 224: its levels have other parities (95 odd, 224 even)
    assert proof_input(_net(8, (95, 95))).size == (95, 95)


def test_each_axis_on_its_own():
    pin = proof_input(_net(8, (224, 64)))
    assert pin.size == (96, 64)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(33, 300))
def test_the_proof_size_keeps_every_node_at_least_as_rich(h):
    """Whatever it picks: no larger than the compile size; every node at least min(3, its
    height at the compile size) high (a 3x3 conv's border-interior-border row); the input
    of every strided block of the same parity (the same padding cases)."""
    net = _net(4, (h, h))
    pin = proof_input(net)
    assert pin.size[0] <= h and pin.size[0] == pin.size[1]
    if not pin.reduced:
        return
    assert pin.size[0] <= SEARCH_LIMIT
    big, small = analyse(net), analyse(with_size(net, pin.size))
    for a, b in zip(big.nodes, small.nodes):
        if a.kind in ("stem", "block"):
            assert b.shape[1] >= min(3, a.shape[1]), (h, a.name)
    strided = [n for n in net.nodes if getattr(n, "stride", 1) > 1]
    assert strided
    for block in strided:  # its input: the smallest of its inputs (the fusion's target)
        sizes = [min(stats.node(i.source).shape[1] for i in block.inputs)
                 for stats in (big, small)]
        assert sizes[0] % 2 == sizes[1] % 2, (h, block.name, sizes)


def test_networks_whose_ops_are_not_listed_keep_the_compile_size():
    lite = _net(4, (224, 224), "examples/assemblenet_plus_lite.asn")
    pin = proof_input(lite)
    assert not pin.reduced and "lite" in pin.reason
    net = _net(8, (224, 224))
    blocks = [i for i, n in enumerate(net.nodes) if getattr(n, "module", None)]
    nodes = list(net.nodes)
    nodes[blocks[0]] = nodes[blocks[0]].model_copy(update={"module": "user.Mine"})
    pin = proof_input(net.model_copy(update={"nodes": nodes}))
    assert not pin.reduced and "user.Mine" in pin.reason
