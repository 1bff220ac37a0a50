"""The output directory of a compile, written atomically.

Everything is built in a temporary directory next to ``OUT`` and put in place in one step
(`staged_output`); a failed compile leaves an existing ``OUT`` untouched, and a directory
that is not an earlier `asnc compile` output is never replaced (its `report.json` carries
the marker).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Iterator

from .errors import CompileError

__all__ = ["SAVEDMODEL_DIR", "ONNX_NAME", "REPORT_NAME", "MARKER", "staged_output",
           "dir_size"]

SAVEDMODEL_DIR = "saved_model"
ONNX_NAME = "model.onnx"
REPORT_NAME = "report.json"
MARKER = "asnc compile"  # report.json["tool"]: how we recognise an output directory of ours


def dir_size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _check_out(out: str) -> None:
    """Refuse to replace anything that is not an earlier output of `asnc compile`."""
    if not os.path.lexists(out):
        return
    if not os.path.isdir(out) or os.path.islink(out):
        raise CompileError(f"output `{out}` exists and is not a directory")
    entries = os.listdir(out)
    if not entries:
        return
    try:
        with open(os.path.join(out, REPORT_NAME)) as fh:
            ours = json.load(fh).get("tool") == MARKER
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise CompileError(f"output directory `{out}` is not empty and was not written by "
                           "`asnc compile`; not replacing it (choose another -o or empty it)")


def _swap_into_place(tmp: str, out: str) -> None:
    """Put directory `tmp` at `out`. An existing `out` is exchanged with `tmp` in one step
    (Linux renameat2 RENAME_EXCHANGE) where the system offers it, else moved aside first;
    the old contents are then removed."""
    if not os.path.lexists(out):
        os.rename(tmp, out)
        return
    if _exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old output
        return
    old = tempfile.mkdtemp(dir=os.path.dirname(out), prefix=f".{os.path.basename(out)}.old-")
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux >= 3.15); False where that is not available."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    return renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0


@contextlib.contextmanager
def staged_output(out: str) -> Iterator[str]:
    """Yield a fresh directory next to ``out``; on a normal exit it replaces ``out``
    (which must be absent, empty or an earlier asnc output), on an exception it goes."""
    _check_out(out)
    parent = os.path.dirname(out)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp: str | None = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out)}.tmp-")
    except OSError as exc:
        raise CompileError(f"cannot write next to `{out}`: {exc.strerror or exc}") from None
    assert tmp is not None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; OUT is a usual directory
        yield tmp
        _swap_into_place(tmp, out)
        tmp = None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
