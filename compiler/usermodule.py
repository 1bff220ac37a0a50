"""User block modules named by import path ("package.module:Factory").

The interface (README, "User modules"): `Factory(filters, level, stride, dilation, units,
frames, seed, name)` returns a Keras layer mapping `[B*T, h, w, C_in]` to
`[B*T, h', w', C_out]`, and `Factory.asn_static(c_in, filters, level, stride, dilation,
units, frames, height, width)` returns a dict with `channels`, `height`, `width`,
`trainable`, `non_trainable` (and optionally `flops`) so `asnc check` and `asnc stats`
stay exact without TensorFlow. The lowering checks the layer against that description.

Importing a module runs its code, so whether asnc may import one is a policy
(`user_module_imports`): the library allows it (its caller already runs Python), the command
line refuses unless the user passed `--import-modules` (README, "User modules"). While a
module is imported or describes itself, whatever it prints goes to stderr, so it can never
corrupt machine-readable output (`check --json`, `stats --json`).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from ..dsl.ir import Block

__all__ = ["UserModuleError", "ImportRefused", "StaticInfo", "resolve", "static_info",
           "user_module_imports", "imports_allowed", "set_imports_allowed", "IMPORT_FLAG"]

IMPORT_FLAG = "--import-modules"
_IMPORTS_ALLOWED: ContextVar[bool] = ContextVar("asn_user_module_imports", default=True)


class UserModuleError(ValueError):
    def __init__(self, node: str, message: str):
        super().__init__(message)
        self.node, self.message = node, message


class ImportRefused(UserModuleError):
    """The policy forbids importing the module (nothing of it was run)."""


def imports_allowed() -> bool:
    return _IMPORTS_ALLOWED.get()


def set_imports_allowed(allowed: bool) -> None:
    """Set the policy until the enclosing `user_module_imports` block ends."""
    _IMPORTS_ALLOWED.set(allowed)


@contextlib.contextmanager
def user_module_imports(allowed: bool) -> Iterator[None]:
    """Within the block, user modules may (or may not) be imported."""
    token = _IMPORTS_ALLOWED.set(allowed)
    try:
        yield
    finally:
        _IMPORTS_ALLOWED.reset(token)


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
    if not imports_allowed():
        raise ImportRefused(block.name, f"block `{block.name}` uses the user module "
                            f"`{block.module}`; asnc imports user modules (which runs their "
                            f"code) only when asked: pass {IMPORT_FLAG}")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # any failure of user code is a user error
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
        with contextlib.redirect_stdout(sys.stderr):
            info = describe(c_in=c_in, filters=block.filters, level=block.level,
                            stride=block.stride, dilation=block.dilation, units=units,
                            frames=t, height=h, width=w)
        return StaticInfo(**info)
    except (Exception, SystemExit) as exc:
        raise UserModuleError(block.name, f"`{block.module}.asn_static` failed: "
                              f"{type(exc).__name__}: {exc}") from None
