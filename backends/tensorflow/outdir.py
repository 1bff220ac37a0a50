"""The output directory of a compile, written atomically.

Everything is built in a staging directory next to ``OUT`` and put in place in one step
(`staged_output`); a failed compile leaves an existing ``OUT`` untouched, and a directory
that is not an earlier `asnc compile` output (its `report.json` carries the marker) is never
replaced: not at the start, and not at the moment of the swap either, when whatever is at
``OUT`` then (a directory made there while the compile ran) is what gets checked.

Staging directories are named ``.asnc-compile-<pid>-<random>`` (no glob characters:
TensorFlow reads ``[``, ``*``, ``?`` in a path as a pattern) and hold an owner file while
they are being built. A compile killed half-way (SIGKILL) leaves its staging directory
behind; the next compile into the same parent removes it once its process is gone, and
removes nothing else (`remove_stale`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import stat
import tempfile
from typing import Iterator

from .errors import CompileError

__all__ = ["FORMATS", "DEFAULT_FORMATS", "SAVEDMODEL_DIR", "ONNX_NAME", "REPORT_NAME", "MARKER",
           "STAGING_PREFIX", "OWNER_FILE", "staged_output", "remove_stale", "dir_size"]

# The artifacts `--format` chooses from. Here, in a module without TensorFlow, so that the
# command line refuses another name at once; `compile.FORMATS` is this tuple.
FORMATS = ("savedmodel", "onnx", "tflite")
DEFAULT_FORMATS = ("savedmodel", "onnx")  # tflite when asked (`--format ...,tflite`)
SAVEDMODEL_DIR = "saved_model"
ONNX_NAME = "model.onnx"
REPORT_NAME = "report.json"
MARKER = "asnc compile"  # report.json["tool"]: how we recognise an output directory of ours
STAGING_PREFIX = ".asnc-compile-"
OWNER_FILE = ".asnc-owner"  # {"tool": MARKER, "pid": N, "host": H} in a staging directory
_STAGING = re.compile(r"^\.asnc-compile-(\d+)-[A-Za-z0-9_]+$")
_GLOB = re.compile(r"[][*?{}\\]")  # what TensorFlow's file matching reads as a pattern
_MAX_REPORT = 16 * 1024 * 1024  # a report.json larger than this is not one of ours
_HOST = socket.gethostname()


def dir_size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _json_file(path: str):
    """The JSON in regular file `path`, or None (a FIFO or a huge file is never read)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_REPORT:
            return None
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _is_output(path: str) -> bool:
    data = _json_file(os.path.join(path, REPORT_NAME))
    return isinstance(data, dict) and data.get("tool") == MARKER


def _replaceable(path: str) -> bool:
    """A real directory (not a symlink) that is empty or an earlier asnc output."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        return not os.listdir(path) or _is_output(path)
    except OSError:
        return False


def _check_out(out: str) -> None:
    """Refuse early to replace anything that is not an earlier output of `asnc compile`."""
    if not os.path.lexists(out):
        return
    if not os.path.isdir(out) or os.path.islink(out):
        raise CompileError(f"output `{out}` exists and is not a directory")
    if not _replaceable(out):
        raise CompileError(f"output directory `{out}` is not empty and was not written by "
                           "`asnc compile`; not replacing it (choose another -o or empty it)")


# ----------------------------------------------------------------------------- staging dirs
def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:  # a killed process nobody has reaped yet is a zombie: gone for our purpose
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _owned_staging(path: str) -> bool:
    """Made by asnc: its owner file (by name: a kill can leave it half-written), or an asnc
    output (the moment before a swap, or an old output being removed), or empty (killed
    right after it was made)."""
    try:
        if stat.S_ISREG(os.lstat(os.path.join(path, OWNER_FILE)).st_mode):
            return True
    except OSError:
        pass
    return _replaceable(path)


def remove_stale(parent: str) -> list[str]:
    """Remove the staging directories in `parent` that a compile killed half-way left:
    named by asnc, carrying its marker, their process gone. Returns the removed paths."""
    removed: list[str] = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        m = _STAGING.match(name)
        path = os.path.join(parent, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if (m is None or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid()
                or _alive(int(m.group(1))) or not _owned_staging(path)):
            continue
        owner = _json_file(os.path.join(path, OWNER_FILE))
        if isinstance(owner, dict) and owner.get("host", _HOST) != _HOST:
            continue  # a shared folder: that pid is another machine's, maybe running
        with contextlib.suppress(OSError):
            _remove_ours(path)
            removed.append(path)
    return removed


def _write_owner(path: str) -> None:
    with open(os.path.join(path, OWNER_FILE), "w") as fh:
        json.dump({"tool": MARKER, "pid": os.getpid(), "host": _HOST}, fh)


def _remove_ours(path: str) -> None:
    """Remove a directory asnc made, keeping the owner file until last, so that a kill
    half-way leaves something the next compile still recognises and removes."""
    _write_owner(path)
    for name in os.listdir(path):
        if name == OWNER_FILE:
            continue
        entry = os.path.join(path, name)
        if os.path.isdir(entry) and not os.path.islink(entry):
            shutil.rmtree(entry)
        else:
            os.unlink(entry)
    os.unlink(os.path.join(path, OWNER_FILE))
    os.rmdir(path)


def _new_staging(parent: str) -> str:
    tmp = tempfile.mkdtemp(dir=parent, prefix=f"{STAGING_PREFIX}{os.getpid()}-")
    _write_owner(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; OUT is a usual directory
    return tmp


# ----------------------------------------------------------------------------- the swap
def _swap_into_place(tmp: str, out: str) -> None:
    """Put directory `tmp` at `out`, replacing only what is there at this moment if it is
    empty or an earlier asnc output.

    With Linux renameat2 RENAME_EXCHANGE the two are exchanged in one step and what came
    out of `out` is checked afterwards, now at `tmp`'s name where nobody else looks for it:
    there is no window between the check and the swap. Foreign contents are exchanged back
    (one step again) and the compile fails. Without it, `out` is renamed aside, checked,
    and renamed back if foreign; `out` is missing for that instant only.
    """
    try:
        os.rename(tmp, out)  # nothing at `out`, or an empty directory (nothing lost)
        return
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise
    if _exchange(tmp, out):
        if not _replaceable(tmp):  # tmp now holds what was at `out`
            _exchange(tmp, out)
            raise _changed(out)
        _remove_ours(tmp)
        return
    old = tempfile.mkdtemp(dir=os.path.dirname(out), prefix=f"{STAGING_PREFIX}{os.getpid()}-")
    os.rmdir(old)
    os.rename(out, old)
    if not _replaceable(old):
        os.rename(old, out)
        raise _changed(out)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    _remove_ours(old)


def _changed(out: str) -> CompileError:
    return CompileError(f"`{out}` changed while the compile ran: it now holds something "
                        "that is not an asnc output; left it as it is and wrote nothing "
                        "(choose another -o)")


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
def _pattern_free(path: str) -> Iterator[str]:
    """`path`, or where it contains glob characters, a symlink to it that does not (in the
    system's temporary directory), so TensorFlow finds its own files again."""
    if not _GLOB.search(path):
        yield path
        return
    alias_dir = tempfile.mkdtemp(prefix="asnc-alias-")
    if _GLOB.search(alias_dir):
        os.rmdir(alias_dir)
        raise CompileError(f"the output path `{path}` contains one of []*?{{}}\\, which "
                           "TensorFlow reads as a pattern; choose another -o")
    alias = os.path.join(alias_dir, "out")
    try:
        os.symlink(path, alias)
        yield alias
    finally:
        with contextlib.suppress(OSError):
            os.unlink(alias)
        with contextlib.suppress(OSError):
            os.rmdir(alias_dir)


@contextlib.contextmanager
def staged_output(out: str) -> Iterator[str]:
    """Yield a fresh directory to write into; on a normal exit it replaces ``out`` (which
    must be absent, empty or an earlier asnc output, then and at the swap), on an exception
    it goes. The path yielded has no glob characters (a symlink to the staging directory
    where its parent has some)."""
    _check_out(out)
    parent = os.path.dirname(out)
    try:
        os.makedirs(parent, exist_ok=True)
        remove_stale(parent)
        tmp: str | None = _new_staging(parent)
    except OSError as exc:
        raise CompileError(f"cannot write next to `{out}`: {exc.strerror or exc}") from None
    assert tmp is not None
    try:
        with _pattern_free(tmp) as path:
            yield path
        os.unlink(os.path.join(tmp, OWNER_FILE))  # report.json marks it ours from here on
        _swap_into_place(tmp, out)
        tmp = None
    except OSError as exc:
        raise CompileError(f"cannot write `{out}`: {exc.strerror or exc}") from None
    finally:
        # only what is asnc's: should putting foreign contents back ever fail, they are
        # at `tmp` now, and stay there
        if tmp is not None and _owned_staging(tmp):
            with contextlib.suppress(OSError):
                _remove_ours(tmp)
