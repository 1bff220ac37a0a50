"""The TF-free parts of the exact backend passes: does a pass apply, and how does it change
the static counts. The rewrites themselves are `asn.backends.tensorflow.rewrites.<name>`
(the pass name with `_` for `-`); the compile proves each one on random inputs.

Pipeline order is registration order: `repflow-slices`, `fold-batchnorm`,
`fold-edge-weights`, `drop-padding-taps`.
"""

from __future__ import annotations

from dataclasses import replace

import networkx as nx

from ..analysis import CountRules, centre_tap_only
from .edgefold import edge_fold_blocker
from .registry import backend_pass

__all__ = ["RepflowSlices", "FoldBatchnorm", "FoldEdgeWeights", "DropPaddingTaps",
           "padding_tap_blocks"]


@backend_pass("repflow-slices", opt_level=1, exact=True)
class RepflowSlices:
    """Representation Flow: the fixed 2- and 3-tap difference convolutions of its unrolled
    iterations become slices and subtractions (backend)"""

    def blocker(self, g: nx.DiGraph) -> str | None:
        if any(getattr(g.nodes[n]["ir"], "type", None) == "flow" for n in g.nodes):
            return None
        return "no flow stem, so no Representation Flow layer"

    # counting: the same 16 fixed values are kept (as constants' variables), so no change


@backend_pass("fold-batchnorm", opt_level=1, exact=True)
class FoldBatchnorm:
    """fold inference batch norms into the convolutions before them (backend)"""

    def counting(self, rules: CountRules) -> CountRules:
        return replace(rules, batchnorm_as_bias=True)  # 4C values become C biases


@backend_pass("fold-edge-weights", opt_level=1, exact=True)
class FoldEdgeWeights:
    """fold connection weights into the producers' and the blocks' convolutions; only edges
    off a spanning forest keep a constant multiply (backend)"""

    def blocker(self, g: nx.DiGraph) -> str | None:
        reason = edge_fold_blocker(g)
        if reason is None and not any(len(getattr(g.nodes[n]["ir"], "inputs", ())) > 1
                                      for n in g.nodes):
            reason = "no block has two or more inputs"
        return reason

    def counting(self, rules: CountRules) -> CountRules:
        return replace(rules, edge_weight_variables=False)  # the logits become constants


def padding_tap_blocks(g: nx.DiGraph) -> list[str]:
    """The blocks whose temporal convs read real frames with their centre tap only: the
    (2+1)D bottleneck blocks of at least two units (unit 1 holds the first temporal conv)
    whose dilation is at least the clip's frames (`analysis.centre_tap_only`)."""
    hdr = g.graph["network"]
    units = hdr.units
    found = []
    for n in g.nodes:
        ir = g.nodes[n]["ir"]
        if (getattr(ir, "kind", None) == "block" and ir.module == "bottleneck"
                and units[ir.level] >= 2 and centre_tap_only(ir.dilation, hdr.frames)):
            found.append(n)
    return found


@backend_pass("drop-padding-taps", opt_level=1, exact=True)
class DropPaddingTaps:
    """temporal convs whose dilation is at least the clip's frames become their centre tap,
    a pointwise conv: their other taps read only zero padding (backend)"""

    def blocker(self, g: nx.DiGraph) -> str | None:
        if padding_tap_blocks(g):
            return None
        return (f"no temporal conv has a dilation of at least the clip's "
                f"{g.graph['network'].frames} frames")

    def counting(self, rules: CountRules) -> CountRules:
        return replace(rules, padding_taps=False)  # 3 taps become 1
