"""User block modules named by import path ("package.module:Factory").

The interface (README, "User modules"): `Factory(filters, level, stride, dilation, units,
frames, seed, name)` returns a Keras layer mapping `[B*T, h, w, C_in]` to
`[B*T, h', w', C_out]`, and `Factory.asn_static(c_in, filters, level, stride, dilation,
units, frames, height, width)` returns a dict with `channels`, `height`, `width`,
`trainable`, `non_trainable` (and optionally `flops`) so `asnc check` and `asnc stats`
stay exact without TensorFlow. The lowering checks the layer against that description.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..dsl.ir import Block

__all__ = ["UserModuleError", "StaticInfo", "resolve", "static_info"]


class UserModuleError(ValueError):
    def __init__(self, node: str, message: str):
        super().__init__(message)
        self.node, self.message = node, message


@dataclass
class StaticInfo:
    channels: int
    height: int
    width: int
    trainable: int
    non_trainable: int
    flops: int = 0


def resolve(block: Block):
    module_name, _, attr = block.module.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure of user code is a user error
        raise UserModuleError(block.name, f"cannot import user module `{module_name}`: "
                              f"{type(exc).__name__}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise UserModuleError(block.name, f"module `{module_name}` has no `{attr}`")
    return factory


def static_info(block: Block, c_in: int, units: int, thw: tuple[int, int, int]) -> StaticInfo:
    factory = resolve(block)
    describe = getattr(factory, "asn_static", None)
    if describe is None:
        raise UserModuleError(block.name, f"user module `{block.module}` has no `asn_static` "
                              "description, so its shape and parameters are unknown")
    t, h, w = thw
    try:
        info = describe(c_in=c_in, filters=block.filters, level=block.level, stride=block.stride,
                        dilation=block.dilation, units=units, frames=t, height=h, width=w)
        return StaticInfo(**info)
    except Exception as exc:
        raise UserModuleError(block.name, f"`{block.module}.asn_static` failed: "
                              f"{type(exc).__name__}: {exc}") from None
