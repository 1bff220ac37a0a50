"""IR -> canonical `.asn` text (what `asnc fmt` prints).

Canonical means: header settings in a fixed order (name, depth, frames, size, classes
always; the rest only when not the default), one statement per line in node order,
weights printed with `repr` so they survive a round trip bit for bit, inputs wrapped
one per line when a statement would pass 100 columns. Comments are kept.
"""

from __future__ import annotations

import re
from typing import cast

from .ir import Block, Header, Network, Stem

__all__ = ["format_network", "format_weight"]

WIDTH = 100
_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a NAME in the grammar: no quotes needed
_ALWAYS = ("depth", "frames", "size", "classes")
# IR field -> .asn setting name, in print order.
_ORDER = [
    ("depth", "depth"), ("frames", "frames"), ("size", "size"), ("classes", "classes"),
    ("variant", "variant"), ("combine", "combine"), ("attention", "attention"),
    ("object_classes", "objects"), ("head_pool", "head_pool"), ("bn_momentum", "bn_momentum"),
    ("bn_epsilon", "bn_epsilon"), ("flow_iterations", "flow_iterations"),
]


def format_weight(w: float) -> str:
    """`repr`, so the weight reads back bit for bit."""
    return repr(float(w))


def _value(field: str, v: object) -> str:
    if field == "size":
        h, w = cast("tuple[int, int]", v)
        return f"{h}x{w}"
    if field == "depth" and isinstance(v, (tuple, list)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _with_comment(line: str, comment: str | None) -> str:
    return f"{line}  {comment}" if comment else line


def _header(h: Header) -> list[str]:
    defaults = Header(name=h.name)
    out = list(h.comments_before)
    out.append(_with_comment(f"network {h.name} {{", h.comment_after))
    for field, key in _ORDER:
        value = getattr(h, field)
        before, after = h.setting_comments.get(field, ([], None))
        written = field in h.attr_spans or before or after
        if field not in _ALWAYS and value == getattr(defaults, field) and not written:
            continue
        out.extend(f"  {c}" if c else "" for c in before)
        out.append(_with_comment(f"  {key} {_value(field, value)}", after))
    before, _ = h.setting_comments.get("}", ([], None))
    out.extend(f"  {c}" for c in before)
    out.append("}")
    return out


def _stem(s: Stem) -> str:
    args = f"(dilation={s.dilation})" if s.dilation != 1 else ""
    return f"stem {s.name} = {s.type}{args}"


def _block(b: Block) -> list[str]:
    module = b.module if _BARE.match(b.module) else f'"{b.module}"'
    filters = b.filters if isinstance(b.filters, int) else "[" + ", ".join(
        str(f) for f in b.filters) + "]"
    args = [f"level={b.level}", f"filters={filters}"]
    if b.dilation != 1:
        args.append(f"dilation={b.dilation}")
    if b.stride != 1:
        args.append(f"stride={b.stride}")
    head = f"block {b.name} = {module}({', '.join(args)}) <-"
    ins = [i.source if i.weight is None else f"{i.source} @{format_weight(i.weight)}"
           for i in b.inputs]
    one_line = f"{head} {', '.join(ins)}"
    if len(one_line) + (len(b.comment_after) + 2 if b.comment_after else 0) <= WIDTH:
        return [_with_comment(one_line, b.comment_after)]
    lines = [head]
    for k, text in enumerate(ins):
        lines.append(f"    {text}{',' if k < len(ins) - 1 else ''}")
    lines[-1] = _with_comment(lines[-1], b.comment_after)
    return lines


def format_network(net: Network) -> str:
    lines = _header(net.header)
    prev_kind = "header"
    for node in net.nodes:
        kind = node.kind
        if (kind != prev_kind or node.comments_before) and lines[-1] != "":
            lines.append("")
        lines.extend(node.comments_before)
        if isinstance(node, Stem):
            lines.append(_with_comment(_stem(node), node.comment_after))
        else:
            lines.extend(_block(node))
        prev_kind = kind
    if net.heads is not None:
        before, after = net.heads_comments
        if lines[-1] != "":
            lines.append("")
        lines.extend(before)
        lines.append(_with_comment("heads " + ", ".join(net.heads), after))
    if net.comment_after:
        lines.append("")
        lines.extend(net.comment_after.split("\n"))
    return "\n".join(lines) + "\n"
