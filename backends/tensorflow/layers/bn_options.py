"""The batch-norm options of a layer, and its `fold-batchnorm` form, in one place.

Every layer with batch norms takes ``bn_momentum``, ``bn_epsilon`` and ``fold_bn``. With
``fold_bn`` the layer is built in the inference form of `fold-batchnorm`: every conv has a bias
and no batch norm follows it (``layers.folding.load_folded`` fills it from the reference form).
``BatchNormOptions`` checks and stores the three, makes the batch norms (None where folded) and
gives their ``get_config`` entries; ``apply_bn`` and ``build_chain`` skip a folded batch norm.
"""

from __future__ import annotations

from .conv import batch_norm, check_bool

__all__ = ["BatchNormOptions", "apply_bn", "build_chain", "check_bn_args"]


def check_bn_args(momentum, epsilon) -> tuple[float, float]:
    """Validate batch-norm momentum (0 <= m <= 1) and epsilon (> 0)."""
    if (
        isinstance(momentum, bool)
        or not isinstance(momentum, (int, float))
        or not 0 <= momentum <= 1
    ):
        raise ValueError(f"`bn_momentum` must be a number in [0, 1], got {momentum!r}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
        raise ValueError(f"`bn_epsilon` must be a number > 0, got {epsilon!r}")
    return float(momentum), float(epsilon)


class BatchNormOptions:
    """Mixin of a Keras layer whose convs are followed by batch norms (listed before
    ``keras.layers.Layer`` in the bases).

    The layer passes its three batch-norm arguments on to ``super().__init__``, makes each batch
    norm with ``self.batch_norm(name)`` and each conv with ``use_bias=self.fold_bn``, adds
    ``**self.bn_config()`` to its ``get_config``, and lists its ``(conv, batch norm)`` pairs in
    ``conv_bn_pairs()`` in the same order in both forms.

    Args:
        bn_momentum, bn_epsilon: batch-norm settings (momentum in [0, 1], epsilon > 0).
        fold_bn: the inference form of `fold-batchnorm` (module docstring).
    """

    def __init__(self, *, bn_momentum=0.99, bn_epsilon=1e-5, fold_bn=False, **kwargs):
        super().__init__(**kwargs)
        self.fold_bn = check_bool("fold_bn", fold_bn)
        self.bn_momentum, self.bn_epsilon = check_bn_args(bn_momentum, bn_epsilon)

    def batch_norm(self, name: str, zero_gamma: bool = False):
        """The batch norm after a conv, or None where it is folded into that conv."""
        if self.fold_bn:
            return None
        return batch_norm(name, self.bn_momentum, self.bn_epsilon, zero_gamma)

    def bn_config(self) -> dict:
        """The three arguments' ``get_config`` entries."""
        return {"bn_momentum": self.bn_momentum, "bn_epsilon": self.bn_epsilon,
                "fold_bn": self.fold_bn}


def apply_bn(bn, x, training=None):
    return x if bn is None else bn(x, training=training)


def build_chain(layers, shape):
    """Build ``layers`` in order from ``shape`` (None: a folded batch norm, skipped); return the
    final output shape."""
    for layer in layers:
        if layer is None:
            continue
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape
