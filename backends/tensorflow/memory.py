"""Giving freed memory back to the system between a compile's phases."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["return_freed_memory"]


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # a C library without it (not glibc)
        return None


def return_freed_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim(0)``; a no-op
    elsewhere). Call it after freeing a model: glibc keeps the holes that a freed Keras
    model or reloaded SavedModel leaves in the heap mapped, and what the next phase loads
    then comes on top of them. Measured in the quickstart compile, with a trim after the
    compile's model and after the reloaded SavedModel are freed: the parity check's peak
    1.15 -> 1.06 GB, in the same time."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
