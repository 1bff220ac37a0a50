"""The asnc scope of each ONNX node (``b8``, ``b8/fusion``, ``head``...), from the TF op
name tf2onnx gives it (``<model>_1/<layer>_1/...``), so that canonical node names can keep
it (``b8/n123_Conv``) and Netron's search finds a block's nodes.

The scope must be as deterministic as the rest of the canonical file, but tf2onnx merges
equal nodes (the same op on the same input, e.g. one global pool of a stem that every peer
attention layer computes), and which layer's name survives a merge depends on Python's
string hashing. Such a node feeds several scopes, its own among them: it takes the scope
of its first consumer in canonical order instead (`resolve_scopes`). A node tf2onnx made
up (``Transpose__233``) takes its first consumer's scope too.
"""

from __future__ import annotations

import re

__all__ = ["ROLES", "layer_scopes", "tf_scope", "resolve_scopes"]

# Auxiliary layers of a block (lower.py names them `<block>_<role>`).
ROLES = ("fusion", "peer", "in0_attention")
_SUFFIX = re.compile(r"^(.*)_\d+$")  # tf.name_scope's uniquifying `_<N>`


def layer_scopes(model, net) -> dict[str, str]:
    """Keras layer name -> asnc scope: a node's own layer is the node's name, its
    auxiliary layers ``<node>/<role>``, the others (``fold``, ``repflow``, ``head``) their
    name without the `_` that dodges a node name."""
    nodes = {n.name for n in net.nodes}
    scopes: dict[str, str] = {}
    for layer in model.layers:
        name = layer.name
        if name in nodes:
            scopes[name] = name
            continue
        bare = name.rstrip("_") or name
        for role in ROLES:
            owner = bare[: -len(role) - 1]
            if bare.endswith(f"_{role}") and owner in nodes:
                scopes[name] = f"{owner}/{role}"
                break
        else:
            scopes[name] = name if bare in nodes else bare
    return scopes


def _unsuffixed(segment: str) -> str:
    m = _SUFFIX.match(segment)
    return m.group(1) if m else segment


def tf_scope(op_name: str, model_name: str, scopes: dict[str, str]) -> str | None:
    """The scope of a TF op name ``<model>[_N]/<layer>[_N]/...``, or None."""
    parts = op_name.split("/")
    if len(parts) < 3 or model_name not in (parts[0], _unsuffixed(parts[0])):
        return None
    layer = parts[1]
    for candidate in (_unsuffixed(layer), layer):
        if candidate in scopes:
            return scopes[candidate]
    return None


def resolve_scopes(base: list[str | None], consumers: list[list[int]]) -> list[str | None]:
    """Final scopes of nodes in canonical (topological) order: ``base[k]`` from the TF name,
    ``consumers[k]`` the indices of the nodes that read node k's outputs, in order."""
    n = len(base)
    scope: list[str | None] = [None] * n
    merged = [False] * n
    for k in reversed(range(n)):  # consumers come later in a topological order
        used = [scope[c] for c in consumers[k] if scope[c] is not None]
        own = base[k]
        if own is None:
            scope[k] = used[0] if used else None
        elif len(set(used)) > 1 and own in used:
            scope[k], merged[k] = used[0], True
        elif consumers[k] and all(merged[c] for c in consumers[k]) and \
                own in {base[c] for c in consumers[k]}:
            # feeds only merged nodes of its own original scope: a merged chain
            scope[k], merged[k] = scope[consumers[k][0]], True
        else:
            scope[k] = own
    return scope
