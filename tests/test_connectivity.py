"""`asnc connect` and the connection-weight helpers (no TensorFlow); `TINY` is the network
of the training tests too."""

from __future__ import annotations

import numpy as np
import pytest

from asn.cli.main import main
from asn.compiler.connectivity import clear_weights, connect_all, learnable_blocks, with_weights
from asn.compiler.validation import check
from asn.dsl.loader import load, load_text
from asn.dsl.printer import format_network

TINY = """\
# A tiny network for the training tests.
network tiny {
  depth [1, 1, 1, 1]
  frames 4
  size 32x32
  classes 7  # the data's class count replaces this
  flow_iterations 2
}

stem rgb = rgb
stem motion = flow  # computed in-network from the frames

block low = bottleneck(level=0, filters=4) <- rgb, motion
block mid = bottleneck(level=1, filters=4, stride=2) <- low @0.7, motion @0.3  # fixed
block top = bottleneck(level=3, filters=8, stride=2) <- mid, low, rgb
"""

def test_connect_all_hand_checked(tmp_path, capsys):
    src = tmp_path / "small.asn"
    src.write_text("network small { depth [1, 1, 1, 1] }\n"
                   "stem r = rgb\nstem f = flow\n"
                   "block a = bottleneck(level=0, filters=4) <- r\n"
                   "block b = bottleneck(level=1, filters=4) <- a\n"
                   "block c = bottleneck(level=1, filters=4) <- f\n"
                   "block d = bottleneck(level=2, filters=4) <- b @0.6, c @0.4\n"
                   "block e = bottleneck(level=3, filters=4) <- d\n")
    dense_file = tmp_path / "dense.asn"
    assert main(["connect", str(src), "--all", "-o", str(dense_file)]) == 0
    assert "added 13 connection(s) to 5 block(s); 19 in all" in capsys.readouterr().err
    dense = load(str(dense_file))
    assert not check(dense)  # no error, no warning
    inputs = {b.name: [i.source for i in b.inputs] for b in dense.blocks}
    # existing inputs first, then every lower-level node (stems sit below level 0)
    assert inputs == {"a": ["r", "f"], "b": ["a", "r", "f"], "c": ["f", "r", "a"],
                      "d": ["b", "c", "r", "f", "a"], "e": ["d", "r", "f", "a", "b", "c"]}
    assert all(i.weight is None for b in dense.blocks for i in b.inputs)
    assert dense_file.read_text() == format_network(dense)  # canonical
    assert main(["connect", str(src)]) == 1  # says what to connect


def test_connect_all_skips_cycles_and_clears_weights():
    net = load_text("network n { depth [1, 1, 1, 1] }\nstem r = rgb\n"
                    "block x = bottleneck(level=0, filters=4) <- r @0.5, y @0.5\n"
                    "block y = bottleneck(level=1, filters=4) <- r\n"
                    "block z = bottleneck(level=3, filters=4) <- x\n")
    dense, report = connect_all(net)
    assert report.skipped == [("x", "y")]  # y already feeds x
    assert [i.source for i in dense.node_map()["z"].inputs] == ["x", "r", "y"]
    assert not any(d.is_error for d in check(dense))
    assert net.node_map()["x"].inputs[0].weight == 0.5  # the argument is left alone


def test_weight_helpers():
    net = load_text(TINY)
    assert learnable_blocks(net) == ["low", "top"]
    assert learnable_blocks(clear_weights(net)) == ["low", "mid", "top"]
    new = with_weights(net, {"low": [0.25, np.float32(0.75)]})
    assert [i.weight for i in new.node_map()["low"].inputs] == [0.25, 0.75]
    assert net.node_map()["low"].inputs[0].weight is None
    for bad in ({"nope": [0.5]}, {"low": [0.5]}, {"low": [0.5, 1.0]}):
        with pytest.raises(ValueError):
            with_weights(net, bad)
