"""The published networks: import, check, round-trip, and count exactly like the reference."""

from __future__ import annotations

import json

import pytest

from asn.compiler.analysis import analyse
from asn.compiler.validation import check
from asn.dsl.jsonform import load_json_form, to_json_form
from asn.dsl.listformat import to_list
from asn.dsl.loader import load, load_text
from asn.dsl.parser import parse
from asn.dsl.printer import format_network

from conftest import EXAMPLES, PUBLISHED


def _reference(structures, name, weights=True):
    data = dict(structures[name])
    if not weights:
        data["weights"] = []
    return load_text(json.dumps(data), f"{name}.json", name=name)


@pytest.mark.parametrize("name", PUBLISHED)
def test_example_file_is_the_published_structure(structures, name):
    """examples/NAME.asn (made with `asnc import`) encodes exactly the published list."""
    net = load(str(EXAMPLES / f"{name}.asn"))
    exported = to_list(net)
    assert exported["structure"] == structures[name]["structure"]
    assert exported["weights"] == structures[name]["weights"]  # bit-exact floats
    assert exported["depth"] == structures[name]["depth"]


@pytest.mark.parametrize("name", PUBLISHED)
def test_round_trips_keep_the_ir(name):
    net = load(str(EXAMPLES / f"{name}.asn"))
    assert not [d for d in check(net) if d.is_error]
    text = format_network(net)
    assert parse(text) == net
    assert format_network(parse(text)) == text  # fmt is idempotent
    assert load_json_form(json.loads(json.dumps(to_json_form(net))), {}, None) == net
    assert load_text(json.dumps(to_list(net)), "x.json") == net


@pytest.mark.parametrize("name", PUBLISHED)
def test_examples_are_canonical(name):
    text = (EXAMPLES / f"{name}.asn").read_text()
    assert format_network(parse(text)) == text


@pytest.mark.parametrize("classes", ["400", "101"])
def test_assemblenet50_counts_equal_model_garden(structures, golden, classes):
    ref = golden["assemblenet50"]["by_num_classes"][classes]
    for mode, weights in (("published_weights", True), ("learnable_weights", False)):
        net = _reference(structures, "assemblenet50", weights)
        net.header.classes = int(classes)
        st = analyse(net)
        assert (st.total, st.trainable, st.non_trainable) == (
            ref[mode]["total"], ref[mode]["trainable"], ref[mode]["non_trainable"]), mode
        backbone = ref[mode + "_backbone_only"]
        head = st.node("head")
        assert st.total - head.params == backbone["total"]
        assert st.non_trainable == backbone["non_trainable"]


def test_assemblenet50_shapes_equal_model_garden(structures, golden):
    net = _reference(structures, "assemblenet50")
    net.header.frames, net.header.size = 8, (224, 224)
    st = analyse(net)
    for index, shape in golden["assemblenet50"]["block_shapes"].items():
        node = net.nodes[int(index)]
        assert list(st.node(node.name).shape[1:]) == shape[1:], node.name


def test_counts_do_not_depend_on_input_size(structures, golden):
    sizes = golden["assemblenet50"]["input_size_check_total_params"]["published_weights/400"]
    net = _reference(structures, "assemblenet50")
    net.header.frames, net.header.size = 8, (224, 224)
    big = analyse(net).total
    net.header.frames, net.header.size = 4, (64, 64)
    assert analyse(net).total == big == sizes["4x64x64"] == sizes["8x224x224"]


def test_assemblenet_plus50_unread_node_still_counts(structures):
    """SEMANTICS.md: AssembleNet++-50's node 9 is read by no block; its 612,360 parameters
    (703,310 with self-attention) count anyway."""
    net = _reference(structures, "assemblenet_plus50")
    net.header.object_classes = 151
    assert analyse(net).node("b9").params == 612_360
    net.header.attention = "self"
    assert analyse(net).node("b9").params == 703_310


def test_lite_head_formula(structures):
    net = _reference(structures, "assemblenet_plus_lite")
    net.header.variant, net.header.depth, net.header.classes = "lite", (3, 5, 11, 7), 157
    assert analyse(net).node("head").params == 977_600 + 2049 * 157
