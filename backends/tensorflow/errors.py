"""The one error a compile reports to the user (exit 1, nothing written)."""

from __future__ import annotations

__all__ = ["CompileError"]


class CompileError(Exception):
    """A compile failed for a reason the user can act on (parity, weights, output path,
    options)."""
