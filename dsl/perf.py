"""Performance helpers for the front end."""

from __future__ import annotations

import gc
from contextlib import contextmanager

__all__ = ["paused_gc"]


@contextmanager
def paused_gc():
    """Pause the cyclic garbage collector while a pass allocates many small objects.

    Parsing a 5,000-node network makes hundreds of thousands of tokens, tree nodes and IR
    objects; the collector, triggered by the allocation count, would walk the growing heap
    again and again (a quarter of the front end's time, and growing with the file). None of
    these objects form cycles that need collecting meanwhile; collection resumes after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
