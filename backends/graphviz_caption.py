"""The caption of an `asnc viz` picture: the title and a legend of what the picture uses.

Both are one HTML-like table that `graphviz.py` sets as the graph's label, below the drawing.
A graph label takes no part in the layout, so a legend that grows (the pruned picture has more
rows) moves no node: the before and after pictures keep their node positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

__all__ = ["Caption", "EdgeKey", "NodeKey", "html_caption"]

_FONT = "Helvetica"


@dataclass(frozen=True)
class EdgeKey:
    """A legend row for an edge style: a sample stroke drawn with characters."""

    kind: str  # the row's ID in the label (`legend-<kind>`, an element id in SVG)
    stroke: str  # e.g. "━━━━"
    color: str
    text: str


@dataclass(frozen=True)
class NodeKey:
    """A legend row for a node style: a swatch with the node's fill and outline."""

    kind: str
    swatch: str
    fill: str
    text: str
    dashed: bool = False


@dataclass
class Caption:
    title: str
    subtitle: list[str] = field(default_factory=list)
    nodes: list[NodeKey] = field(default_factory=list)
    edges: list[EdgeKey] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _swatch(key: NodeKey) -> str:
    # an HTML-like table cell cannot be dashed: a dashed outline is drawn as a dotted border
    # plus a grey text, the closest the format allows
    style = ' STYLE="dotted"' if key.dashed else ""
    color = "#666666" if key.dashed else "#000000"
    return (f'<TD ID="legend-{key.kind}" BGCOLOR="{key.fill}" BORDER="1" COLOR="#555555"'
            f'{style} CELLPADDING="3">'
            f'<FONT POINT-SIZE="9" COLOR="{color}">{escape(key.swatch)}</FONT></TD>')


def html_caption(c: Caption) -> str:
    """The caption as an HTML-like label (`<...>`): title, subtitle lines, then the legend
    rows side by side in two columns (node styles, edge styles) and notes."""
    rows = [f'<TR><TD COLSPAN="4" ALIGN="LEFT"><FONT POINT-SIZE="13"><B>{escape(c.title)}'
            '</B></FONT></TD></TR>']
    rows += [f'<TR><TD COLSPAN="4" ALIGN="LEFT"><FONT POINT-SIZE="10">{escape(s)}</FONT>'
             '</TD></TR>' for s in c.subtitle]
    left = [(_swatch(k), escape(k.text)) for k in c.nodes]
    right = [(f'<TD ID="legend-{k.kind}" ALIGN="RIGHT"><FONT COLOR="{k.color}" '
              f'POINT-SIZE="10">{escape(k.stroke)}</FONT></TD>', escape(k.text))
             for k in c.edges]
    for k in range(max(len(left), len(right))):
        cells = []
        for side in (left, right):
            if k < len(side):
                sample, text = side[k]
                cells.append(sample + f'<TD ALIGN="LEFT"><FONT POINT-SIZE="9">{text}</FONT></TD>')
            else:
                cells.append("<TD></TD><TD></TD>")
        rows.append("<TR>" + "".join(cells) + "</TR>")
    rows += [f'<TR><TD COLSPAN="4" ALIGN="LEFT"><FONT POINT-SIZE="9">{escape(n)}</FONT>'
             '</TD></TR>' for n in c.notes]
    return ('<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="1">'
            + "".join(rows) + "</TABLE>>")
