"""Keras weights files (``.weights.h5``) and the network they belong to.

A training run stamps the header it trained with (network name, frames, size, classes) into
the file's HDF5 attributes (`stamp`); `mismatch` compares a file with the model a network
builds and says, in the user's terms, what differs: a stamped setting first ("the weights
were trained with classes 3, the network says 7"), else the first layer whose variables
differ, named by its node. Keras itself only says "1 objects could not be loaded".

Keras keys a file by layer class and position (``layers/bottleneck_block_2/...``), not by
layer name; `_generic_names` rebuilds that key for each layer of the model so that a
difference can be reported by node name.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter

import h5py

from ...dsl.ir import Network

__all__ = ["stamp", "stamped_header", "header_mismatch", "structure_mismatch", "HEADER_KEYS"]

HEADER_KEYS = ("frames", "size", "classes")
_PREFIX = "asnc_"


def stamp(path, net: Network) -> None:
    """Record the header ``net`` was trained with in the weights file at ``path``."""
    h = net.header
    with h5py.File(path, "a") as f:
        f.attrs[f"{_PREFIX}network"] = h.name
        f.attrs[f"{_PREFIX}frames"] = int(h.frames)
        f.attrs[f"{_PREFIX}size"] = [int(h.size[0]), int(h.size[1])]
        f.attrs[f"{_PREFIX}classes"] = int(h.classes)


def stamped_header(path) -> dict | None:
    """``{"network", "frames", "size", "classes"}`` stamped into the file, or None (also for
    a file that is not HDF5, such as a `.keras` zip)."""
    if not h5py.is_hdf5(path):
        return None
    with h5py.File(path, "r") as f:
        if f"{_PREFIX}classes" not in f.attrs:
            return None
        a = f.attrs
        return {"network": str(a[f"{_PREFIX}network"]), "frames": int(a[f"{_PREFIX}frames"]),
                "size": tuple(int(x) for x in a[f"{_PREFIX}size"]),
                "classes": int(a[f"{_PREFIX}classes"])}


def _show(key: str, value) -> str:
    return f"{value[0]}x{value[1]}" if key == "size" else str(value)


def header_mismatch(path, net: Network) -> str | None:
    """The header settings the file was trained with that ``net`` does not have, as a
    sentence, or None (also for a file without a stamp)."""
    saved = stamped_header(path)
    if saved is None:
        return None
    h = net.header
    now = {"frames": h.frames, "size": tuple(h.size), "classes": h.classes}
    diffs = [k for k in HEADER_KEYS if saved[k] != now[k]]
    if not diffs:
        return None
    was = ", ".join(f"{k} {_show(k, saved[k])}" for k in diffs)
    says = ", ".join(f"{k} {_show(k, now[k])}" for k in diffs)
    of = "" if saved["network"] == h.name else f" (network `{saved['network']}`)"
    return f"the weights were trained with {was}{of}, the network says {says}"


def _variables(path) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = tuple(obj.shape)
        f.visititems(visit)
    return out


def _generic_names(model) -> dict[str, str]:
    """Keras' file key of each layer (``layers/<snake class name>[_N]``) -> layer name."""
    from keras.src.utils.naming import to_snake_case

    seen: Counter = Counter()
    names = {}
    for layer in model.layers:
        base = to_snake_case(type(layer).__name__)
        key = base if not seen[base] else f"{base}_{seen[base]}"
        seen[base] += 1
        names[f"layers/{key}"] = layer.name
    return names


def _layer_of(key: str, names: dict[str, str]) -> tuple[str, str]:
    parts = key.split("/")
    prefix = "/".join(parts[:2])
    return names.get(prefix, prefix), "/".join(parts[2:])


def structure_mismatch(path, model) -> str | None:
    """The first variable of ``model`` that the weights file lacks or holds in another shape
    (named by its layer, i.e. its node), or None. Saves the model's own weights to a
    temporary file to learn Keras' keys: call it only once a load failed."""
    if not h5py.is_hdf5(path):
        return None
    fd, fresh = tempfile.mkstemp(suffix=".weights.h5")
    os.close(fd)
    try:
        model.save_weights(fresh, overwrite=True)
        want = _variables(fresh)
    finally:
        os.unlink(fresh)
    have = _variables(path)
    names = _generic_names(model)
    for key, shape in want.items():  # in the model's layer order
        layer, var = _layer_of(key, names)
        if key not in have:
            return f"the weights have nothing for layer `{layer}` ({var}): they were saved " \
                   "from another network"
        if have[key] != shape:
            if layer == "head" and var.endswith("classifier/vars/0") and len(shape) == 2:
                return (f"the weights were trained with classes {have[key][-1]}, the network "
                        f"says {shape[-1]}")
            what = ("the classifier" if layer == "head" else f"layer `{layer}`")
            return (f"{what}: variable {var} has shape {have[key]} in the weights, {shape} in "
                    "the network")
    extra = sorted(set(have) - set(want))
    if extra:
        return f"the weights hold {len(extra)} variable(s) the network does not have (first: " \
               f"{extra[0]}): they were saved from another network"
    return None

