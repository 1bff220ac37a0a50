"""Weight rewrites of the exact backend passes (`asnc compile -O1`).

A layer that can fold its batch norms is built with ``fold_bn=True`` (convs get a bias, the
batch norms are left out) and lists its ``(conv, batch norm)`` pairs in the same order in both
forms (``conv_bn_pairs()``; the batch norm is None in the folded form). A layer whose output
or input can be rescaled without changing what it computes up to that factor has
``scale_output(s)`` / ``scale_input(t)`` (used by `fold-edge-weights`).

Every rewrite is done in float64 and stored as float32. Inference batch norm is
``gamma * (x - mean) / sqrt(var + eps) + beta``, so a conv ``K`` (bias ``b``) then that batch
norm is the conv ``K * a`` with bias ``(b - mean) * a + beta``, ``a = gamma / sqrt(var + eps)``
per output channel (the kernel's last axis).
"""

from __future__ import annotations

import numpy as np

__all__ = ["fold_pair", "folded_values", "fold_in_place", "load_folded", "copy_matching",
           "transfer_by_name", "scale_output", "scale_kernel", "bn_count"]


def _get(v) -> np.ndarray:
    return np.asarray(v.numpy(), dtype=np.float64)


def _set(v, value: np.ndarray) -> None:
    v.assign(value.astype(np.float32))


def folded_values(ref_conv, ref_bn) -> tuple[np.ndarray, np.ndarray]:
    """The kernel and bias (float64) of ``ref_conv`` then ``ref_bn`` as one conv."""
    kernel = _get(ref_conv.kernel)
    ref_bias = getattr(ref_conv, "bias", None)
    bias = _get(ref_bias) if ref_bias is not None else np.zeros(kernel.shape[-1])
    if ref_bn is not None:
        if getattr(ref_bn, "scale", True) is False or getattr(ref_bn, "center", True) is False:
            raise ValueError(f"{ref_bn.name}: only batch norms with gamma and beta fold here")
        a = _get(ref_bn.gamma) / np.sqrt(_get(ref_bn.moving_variance) + float(ref_bn.epsilon))
        kernel = kernel * a
        bias = (bias - _get(ref_bn.moving_mean)) * a + _get(ref_bn.beta)
    return kernel, bias


def fold_pair(new_conv, ref_conv, ref_bn) -> None:
    """Give ``new_conv`` (built with a bias) the function of ``ref_conv`` then ``ref_bn``."""
    kernel, bias = folded_values(ref_conv, ref_bn)
    if new_conv.kernel.shape != kernel.shape:
        raise ValueError(f"{new_conv.name}: kernel {tuple(new_conv.kernel.shape)} cannot take "
                         f"{ref_conv.name}'s {kernel.shape}")
    _set(new_conv.kernel, kernel)
    if new_conv.bias is None:
        raise ValueError(f"{new_conv.name}: a folded conv needs a bias")
    _set(new_conv.bias, bias)


def load_folded(new_layer, ref_layer) -> int:
    """Fold every batch norm of ``ref_layer`` into the convs of ``new_layer`` (its
    ``fold_bn=True`` twin) and copy its other weights by path; returns the batch norms
    folded."""
    new_pairs, ref_pairs = new_layer.conv_bn_pairs(), ref_layer.conv_bn_pairs()
    if len(new_pairs) != len(ref_pairs):
        raise ValueError(f"{new_layer.name}: {len(new_pairs)} folded convs for "
                         f"{len(ref_pairs)} reference convs")
    done = set()
    folded = 0
    for (conv, bn_new), (ref_conv, ref_bn) in zip(new_pairs, ref_pairs):
        if bn_new is not None:
            raise ValueError(f"{new_layer.name}: built without fold_bn")
        fold_pair(conv, ref_conv, ref_bn)
        folded += ref_bn is not None
        done.update(id(v) for v in conv.weights)
    copy_matching(new_layer, ref_layer, skip=done)
    return folded


def fold_in_place(layer) -> int:
    """Turn ``layer`` (built with ``fold_bn=False``) into its ``fold_bn=True`` form in place,
    the same values as `load_folded` gives the twin: each conv takes its batch norm (a bias
    is added where it has none, named and ordered as a conv built with one), the batch
    norms leave the layer and its sublayers (their attributes, lists and dicts hold None,
    as in that form), and every `BatchNormOptions` layer inside says ``fold_bn``. No model
    is built, so a compile pays for the batch norms' numbers only. Returns the batch norms
    folded."""
    from .bn_options import BatchNormOptions

    if layer.fold_bn:
        raise ValueError(f"{layer.name}: already folded")
    folded = []
    for conv, bn in layer.conv_bn_pairs():
        kernel, bias = folded_values(conv, bn)
        if getattr(conv, "bias", None) is None:
            _add_bias(conv, bias.shape)
        _set(conv.kernel, kernel)
        _set(conv.bias, bias)
        if bn is not None:
            folded.append(bn)
    gone = {id(bn) for bn in folded}
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        _drop_from(sub, gone, folded)
        if isinstance(sub, BatchNormOptions):
            sub.fold_bn = True
    return len(folded)


def _add_bias(conv, shape) -> None:
    """A zero ``bias`` variable on a built conv, with the path it would have had from its
    build: ``<the kernel's scope>/bias``, after the kernel."""
    from .conv import parent_scope

    conv._tracker.unlock()
    try:
        with parent_scope(conv.kernel):
            bias = conv.add_weight(name="bias", shape=tuple(shape), initializer="zeros")
        conv.bias = bias
        conv.use_bias = True
    finally:
        conv._tracker.lock()


def _drop_from(layer, gone: set[int], layers: list) -> None:
    """Replace every reference of ``layer`` to one of ``layers`` (ids in ``gone``) by None:
    attributes, and items of its (tracked) lists, of dicts in them, and of its dicts."""
    def clear(container):
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, value in list(items):
            if id(value) in gone:
                container[key] = None
            elif isinstance(value, (list, dict)):
                clear(value)

    for name, value in list(vars(layer).items()):
        if name.startswith("_"):
            continue
        if id(value) in gone:
            object.__setattr__(layer, name, None)
        elif isinstance(value, (list, dict)):
            clear(value)
    for bn in layers:
        layer._tracker.untrack(bn)


def _relative_path(v, layer) -> str:
    path = v.path
    prefix = layer.name + "/"
    return path[len(prefix):] if path.startswith(prefix) else path


def copy_matching(new_layer, ref_layer, skip=frozenset()) -> None:
    """Copy ``ref_layer``'s weights into ``new_layer``'s of the same path and shape; every
    weight of ``new_layer`` not in ``skip`` must find one."""
    ref = {_relative_path(v, ref_layer): v for v in ref_layer.weights}
    for v in new_layer.weights:
        if id(v) in skip:
            continue
        src = ref.get(_relative_path(v, new_layer))
        if src is None or tuple(src.shape) != tuple(v.shape):
            raise ValueError(f"{new_layer.name}: no reference weight for `{v.path}` "
                             f"{tuple(v.shape)}")
        v.assign(src.numpy())


def transfer_by_name(new_model, old_model) -> list[str]:
    """Copy every weight of ``old_model``'s layers into ``new_model``'s layer of the same name
    where all its weights match in path and shape; returns the layers that could not take
    them (new, or changed by the pass: they keep their seeded initial weights)."""
    old = {layer.name: layer for layer in old_model.layers}
    missed = []
    for layer in new_model.layers:
        if not layer.weights:
            continue
        src = old.get(layer.name)
        try:
            if src is None:
                raise ValueError("no such layer")
            copy_matching(layer, src)
        except ValueError:
            missed.append(layer.name)
    return missed


def scale_output(conv, bn, s: float) -> None:
    """Multiply the output of ``conv`` then ``bn`` (None: folded, or no batch norm) by ``s``."""
    if bn is not None:
        _set(bn.gamma, _get(bn.gamma) * s)
        _set(bn.beta, _get(bn.beta) * s)
        return
    _set(conv.kernel, _get(conv.kernel) * s)
    if getattr(conv, "bias", None) is not None:
        _set(conv.bias, _get(conv.bias) * s)


def scale_kernel(conv, f: float) -> None:
    """Multiply ``conv``'s kernel by ``f`` (its input is ``1/f`` times the reference's)."""
    _set(conv.kernel, _get(conv.kernel) * f)


def bn_count(layer) -> int:
    """Batch norms a layer still applies (0 for a folded layer)."""
    pairs = getattr(layer, "conv_bn_pairs", None)
    return sum(bn is not None for _, bn in pairs()) if pairs else 0
