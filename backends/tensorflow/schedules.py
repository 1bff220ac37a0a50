"""Learning-rate schedules of `asnc train --lr-schedule`: constant or cosine decay, each after
an optional linear warm-up (the Model Garden's video classification configs use cosine with
linear warm-up).

With base rate ``lr``, ``W`` warm-up steps and ``N`` steps in all, at optimizer step ``s``
(0-based: the rate that step ``s`` applies):

* ``s < W``: ``lr * s / W`` (linear from 0);
* ``constant``: ``lr``;
* ``cosine``: ``lr * 0.5 * (1 + cos(pi * min(s - W, N - W) / (N - W)))``: from ``lr`` at the
  end of the warm-up to 0 at step ``N`` (the formula of ``keras.optimizers.schedules.
  CosineDecay`` with ``warmup_target=lr`` and ``decay_steps=N - W``).
"""

from __future__ import annotations

import math

import keras
from keras import ops

__all__ = ["SCHEDULES", "WarmupSchedule", "schedule_value"]

SCHEDULES = ("constant", "cosine")


def schedule_value(step: int, lr: float, total: int, warmup: int, kind: str) -> float:
    """The rate at ``step`` in plain Python (the formula above; for reports and tests)."""
    if step < warmup:
        return lr * step / warmup
    if kind == "constant":
        return lr
    decay = max(1, total - warmup)
    return lr * 0.5 * (1 + math.cos(math.pi * min(step - warmup, decay) / decay))


@keras.saving.register_keras_serializable(package="asn")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``kind`` (``constant`` | ``cosine``) after ``warmup`` linear warm-up steps, over
    ``total`` steps in all (the formula in the module docstring)."""

    def __init__(self, lr: float, total: int, warmup: int = 0, kind: str = "cosine"):
        if kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
        if not 0 <= warmup <= total:
            raise ValueError(f"warm-up of {warmup} steps does not fit in {total} steps")
        self.lr, self.total, self.warmup, self.kind = float(lr), int(total), int(warmup), kind

    def __call__(self, step):
        s = ops.cast(step, "float32")
        lr = ops.convert_to_tensor(self.lr, "float32")
        if self.kind == "constant":
            after = lr
        else:
            decay = float(max(1, self.total - self.warmup))
            done = ops.minimum(ops.maximum(s - self.warmup, 0.0), decay) / decay
            after = lr * 0.5 * (1.0 + ops.cos(math.pi * done))
        if not self.warmup:
            return after
        return ops.where(s < self.warmup, lr * s / float(self.warmup), after)

    def get_config(self):
        return {"lr": self.lr, "total": self.total, "warmup": self.warmup, "kind": self.kind}
