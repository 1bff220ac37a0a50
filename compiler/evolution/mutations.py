"""Mutations of a network, AssembleNet's evolutionary search (Ryoo et al., ICLR 2020, sec. 3.2).

Each operator takes a network and a `random.Random` and returns the child and the
parameters it drew (recorded in the journal), or raises `Redraw` when it does not apply to
this network (no block to split, no lower-level node left to connect, ...). `mutate` draws
an operator, applies it and keeps the child only if it passes the checks of `asnc check`
(levels, strides, spatial sizes, head widths): otherwise it draws again.

Every child leaves its connection weights unset: the trial learns them (one-shot training);
what it inherits from the parent (`inherit`) is where its trial starts them; the journal
records what the trial learned (`connections`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import networkx as nx

from ...dsl.ir import Block, Input, Network
from ..connectivity import clear_weights
from ..graph import build_graph, node_level
from ..validation import MAX_LEVEL, check

__all__ = ["MUTATIONS", "DILATIONS", "Redraw", "MutationError", "mutate", "is_valid",
           "connection_mutation", "split_block", "merge_blocks", "change_dilation",
           "change_filters", "move_level", "known_weights", "without_comments", "inherit",
           "DEFAULT_THRESHOLD"]

MUTATIONS = ("connections", "split", "merge", "dilation", "filters", "level")
DILATIONS = (1, 2, 4, 8)  # the paper's temporal dilations
DEFAULT_THRESHOLD = 0.2  # connections learned weaker than this are removed (the paper's 0.2)
MAX_ADDED = 2  # new connections per connection mutation: 1..MAX_ADDED
MIN_FILTERS, MAX_FILTERS = 2, 2048  # `filters` mutation bounds (halve / double)
MAX_TRIES = 100

Weights = Mapping[str, Sequence[float]]


class Redraw(Exception):
    """The mutation does not apply to this network; draw another."""


class MutationError(RuntimeError):
    """No valid child after `MAX_TRIES` draws."""


def is_valid(net: Network) -> bool:
    """What `asnc check` accepts: no error (warnings, e.g. a dead node, are allowed)."""
    try:
        return not any(d.is_error for d in check(net))
    except Exception:  # noqa: BLE001 - a malformed child (e.g. a name clash) is redrawn
        return False


def known_weights(net: Network, learned: Weights | None) -> dict[str, list[float]]:
    """Each multi-input block's connection weights: learned by the trial, else given."""
    out: dict[str, list[float]] = {}
    for b in net.blocks:
        if learned is not None and b.name in learned and len(learned[b.name]) == len(b.inputs):
            out[b.name] = [float(w) for w in learned[b.name]]
        elif b.weighted:
            out[b.name] = [float(i.weight) if i.weight is not None else 0.5 for i in b.inputs]
    return out


def inherit(parent: Network, learned: Weights | None, child: Network
            ) -> dict[str, list[float | None]]:
    """The connection weights a child starts from: for each multi-input block, the parent's
    weight (learned, else given) of each connection the parent has too; None for a new one."""
    known = known_weights(parent, learned)
    by_edge = {(i.source, b.name): w for b in parent.blocks for i, w in
               zip(b.inputs, known.get(b.name, []))}
    return {b.name: [by_edge.get((i.source, b.name)) for i in b.inputs]
            for b in child.blocks if len(b.inputs) >= 2
            and any((i.source, b.name) in by_edge for i in b.inputs)}


def _fresh_name(net: Network, base: str) -> str:
    taken = {n.name for n in net.nodes}
    k = 2
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


def _int_blocks(net: Network) -> list[Block]:
    # the operators that change widths need one filter count (bottleneck, bottleneck3d)
    return [b for b in net.blocks if isinstance(b.filters, int) and not b.is_user_module]


# ------------------------------------------------------------------------ operators


def connection_mutation(net: Network, rng: random.Random, learned: Weights | None = None,
                        threshold: float = DEFAULT_THRESHOLD) -> tuple[Network, dict]:
    """Connection-learning-guided: drop the inputs whose weight (learned by the parent's
    trial, or given) is below `threshold` (a block keeps its strongest input), then add 1 or 2
    random connections from a node of a lower level (no cycle)."""
    weights = known_weights(net, learned)
    child = clear_weights(net)
    removed: list[list[Any]] = []
    parent_weight: dict[tuple[str, str], float] = {}
    for b in child.blocks:
        ws = weights.get(b.name)
        if ws is None or len(b.inputs) < 2:
            continue
        parent_weight.update({(i.source, b.name): w for i, w in zip(b.inputs, ws)})
        strongest = max(range(len(ws)), key=ws.__getitem__)
        keep = [k for k, w in enumerate(ws) if w >= threshold or k == strongest]
        removed += [[b.inputs[k].source, b.name, ws[k]] for k in range(len(ws)) if k not in keep]
        b.inputs = [b.inputs[k] for k in keep]
    g = build_graph(child)
    candidates = [(n.name, b) for b in child.blocks for n in child.nodes
                  if node_level(n) < b.level and n.name not in {i.source for i in b.inputs}
                  and not nx.has_path(g, b.name, n.name)]
    added: list[list[str]] = []
    for _ in range(rng.randint(1, MAX_ADDED)):
        candidates = [(s, b) for s, b in candidates if s not in {i.source for i in b.inputs}]
        if not candidates:
            break
        source, block = rng.choice(candidates)
        block.inputs.append(Input(source=source))
        added.append([source, block.name])
    if not removed and not added:
        raise Redraw("no connection below the threshold and none to add")
    return child, {"threshold": threshold, "removed": removed, "added": added}


def split_block(net: Network, rng: random.Random) -> tuple[Network, dict]:
    """Split a block into two of half its filters with the same inputs; every reader of the
    block (and the heads) reads both."""
    blocks = [b for b in _int_blocks(net) if isinstance(b.filters, int) and b.filters >= 2]
    if not blocks:
        raise Redraw("no block to split")
    name = rng.choice(blocks).name
    child = clear_weights(net)
    pos = next(k for k, n in enumerate(child.nodes) if n.name == name)
    block = child.nodes[pos]
    assert isinstance(block, Block) and isinstance(block.filters, int)
    half = block.filters // 2
    twin_name = _fresh_name(child, name)
    twin = block.model_copy(deep=True, update={"name": twin_name, "filters": half})
    twin.comments_before, twin.comment_after = [], None
    block.filters = half
    child.nodes.insert(pos + 1, twin)
    for b in child.blocks:
        k = next((j for j, i in enumerate(b.inputs) if i.source == name), None)
        if k is not None:
            b.inputs.insert(k + 1, Input(source=twin_name))
    if child.heads is not None and name in child.heads:
        child.heads.insert(child.heads.index(name) + 1, twin_name)
    return child, {"block": name, "new": twin_name, "filters": [half, half]}


def merge_blocks(net: Network, rng: random.Random) -> tuple[Network, dict]:
    """Merge two blocks of one level (same module) into the first: the union of their inputs,
    the sum of their filters; readers of the second read the merged block."""
    by_level: dict[tuple[int, str], list[Block]] = {}
    for b in _int_blocks(net):
        by_level.setdefault((b.level, b.module), []).append(b)
    g = build_graph(net)
    pairs = [(a.name, b.name) for bs in by_level.values() for i, a in enumerate(bs)
             for b in bs[i + 1:] if not nx.has_path(g, a.name, b.name)
             and not nx.has_path(g, b.name, a.name)]
    if not pairs:
        raise Redraw("no two unconnected blocks of one level")
    keep_name, gone_name = rng.choice(pairs)
    child = clear_weights(net)
    nodes = child.node_map()
    keep, gone = nodes[keep_name], nodes[gone_name]
    assert isinstance(keep, Block) and isinstance(gone, Block)
    assert isinstance(keep.filters, int) and isinstance(gone.filters, int)
    have = {i.source for i in keep.inputs}
    keep.inputs += [Input(source=i.source) for i in gone.inputs if i.source not in have]
    keep.filters = keep.filters + gone.filters
    child.nodes = [n for n in child.nodes if n.name != gone_name]
    for b in child.blocks:
        sources = [keep_name if i.source == gone_name else i.source for i in b.inputs]
        b.inputs = [Input(source=s) for k, s in enumerate(sources) if s not in sources[:k]]
    if child.heads is not None:
        heads = [keep_name if h == gone_name else h for h in child.heads]
        child.heads = [h for k, h in enumerate(heads) if h not in heads[:k]]
    return child, {"into": keep_name, "removed": gone_name, "filters": keep.filters}


def change_dilation(net: Network, rng: random.Random) -> tuple[Network, dict]:
    """Give a block another temporal dilation of 1, 2, 4, 8."""
    if not net.blocks:
        raise Redraw("no block")
    name = rng.choice(net.blocks).name
    child = clear_weights(net)
    block = child.node_map()[name]
    assert isinstance(block, Block)
    old = block.dilation
    block.dilation = rng.choice([d for d in DILATIONS if d != old])
    return child, {"block": name, "from": old, "to": block.dilation}


def change_filters(net: Network, rng: random.Random) -> tuple[Network, dict]:
    """Halve or double a block's filters (within MIN_FILTERS..MAX_FILTERS)."""
    choices = [(b.name, f) for b in _int_blocks(net) if isinstance(b.filters, int)
               for f in (b.filters // 2, b.filters * 2) if MIN_FILTERS <= f <= MAX_FILTERS]
    return _set_block_field(net, rng, choices, "filters", "no block whose filters can change")


def move_level(net: Network, rng: random.Random) -> tuple[Network, dict]:
    """Move a block one level up or down (0..3)."""
    choices = [(b.name, b.level + s) for b in net.blocks for s in (-1, 1)
               if 0 <= b.level + s <= MAX_LEVEL]
    return _set_block_field(net, rng, choices, "level", "no block to move")


def _set_block_field(net: Network, rng: random.Random, choices: list[tuple[str, int]],
                     field: str, none_left: str) -> tuple[Network, dict]:
    """The child with one (block, value) of ``choices`` drawn and set as the block's
    ``field`` (connection weights cleared); its record ``{"block", "from", "to"}``."""
    if not choices:
        raise Redraw(none_left)
    name, new = rng.choice(choices)
    child = clear_weights(net)
    block = child.node_map()[name]
    assert isinstance(block, Block)
    old = getattr(block, field)
    setattr(block, field, new)
    return child, {"block": name, "from": old, "to": new}


def without_comments(net: Network) -> Network:
    """A copy without the source's comments: after a mutation they may describe what is no
    longer there (`# fixed` on weights that are now learned)."""
    new = net.model_copy(deep=True)
    new.heads_comments = ([], None)
    new.header.setting_comments = {}
    for item in [new, new.header, *new.nodes, *(i for b in new.blocks for i in b.inputs)]:
        item.comments_before, item.comment_after = [], None
    return new


_OPERATORS: dict[str, Callable[..., tuple[Network, dict]]] = {
    "split": split_block, "merge": merge_blocks, "dilation": change_dilation,
    "filters": change_filters, "level": move_level,
}


def mutate(net: Network, rng: random.Random, learned: Weights | None = None,
           threshold: float = DEFAULT_THRESHOLD, kinds: Sequence[str] = MUTATIONS,
           valid: Callable[[Network], bool] = is_valid) -> tuple[Network, dict]:
    """One mutation drawn uniformly from `kinds`, redrawn until the child passes `valid`
    (`asnc check`). Returns the child (connection weights unset) and the record
    ``{"kind": ..., **parameters}``. Raises MutationError after MAX_TRIES draws."""
    unknown = [k for k in kinds if k not in MUTATIONS]
    if unknown or not kinds:
        raise ValueError(f"unknown mutation(s) {unknown}; choose from {', '.join(MUTATIONS)}")
    for _ in range(MAX_TRIES):
        kind = rng.choice(list(kinds))
        try:
            if kind == "connections":
                child, params = connection_mutation(net, rng, learned, threshold)
            else:
                child, params = _OPERATORS[kind](net, rng)
        except Redraw:
            continue
        if valid(child):
            return without_comments(child), {"kind": kind, **params}
    raise MutationError(f"no valid child of `{net.header.name}` after {MAX_TRIES} draws")
