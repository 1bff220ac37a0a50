"""Writing an output file without losing data; every command that writes a file uses it.

`write_file(path, data)`:

- a regular file (or a new one) is replaced atomically: the data goes to a temporary beside
  it, then a rename puts it in place, so a reader never sees half a file. An existing file
  keeps its mode and, where the process may set it, its owner; through a symlink the link's
  target is rewritten and the link kept;
- a file with several hard links is rewritten in place, so every link sees the new content
  (the data is first written in full to a temporary beside it: a full disk fails before the
  original is touched);
- anything else that exists (a device such as `/dev/null`, a FIFO, `/dev/stdout`, a kernel
  file under `/proc`) is written through, as a shell's `>` does: a rename would replace the
  node itself;
- a directory, a read-only file and every OSError become a diagnostic
  ``path: error: cannot write: ... [ASN005]`` (DiagnosticError), never a traceback.

Temporaries (``.asnc-write-*``) made here are removed when a write fails; nothing else is.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile

from .diagnostics import Diagnostic, DiagnosticError, Source

__all__ = ["write_file", "cannot_write", "TEMP_PREFIX"]

TEMP_PREFIX = ".asnc-write-"
# Paths whose nodes belong to the kernel: `/dev/stdout` -> `/proc/self/fd/1` may resolve to
# the regular file a shell redirected stdout to, which must be written, not replaced.
_KERNEL_DIRS = ("/dev/", "/proc/", "/sys/")


def cannot_write(path: str, reason: str, help: str | None = None) -> DiagnosticError:
    return DiagnosticError([Diagnostic("error", "ASN005", f"cannot write: {reason}", None,
                                       help)], Source(path, ""))


def write_file(path: str, data: str | bytes) -> None:
    """Write `data` to `path` as described in the module docstring; raises DiagnosticError."""
    payload = data.encode() if isinstance(data, str) else data
    try:
        _write(path, payload)
    except OSError as exc:
        raise cannot_write(path, (exc.strerror or str(exc)).lower()) from None


def _write(path: str, payload: bytes) -> None:
    try:
        st: os.stat_result | None = os.stat(path)  # the kernel follows /proc's magic links
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise cannot_write(path, "is a directory", "give a file name")
    if st is not None and (not stat.S_ISREG(st.st_mode) or _through_kernel(path)):
        _write_through(path, payload)
        return
    target = os.path.realpath(path)  # a symlink's target is rewritten, the link kept
    if st is not None and (not st.st_mode & 0o222 or not os.access(target, os.W_OK)):
        # a rename would replace it (and root may write anything): refuse, as editors do
        raise cannot_write(path, "the file is read-only",
                           "make it writable (chmod u+w) or write elsewhere")
    if st is not None and st.st_nlink > 1:
        _rewrite_in_place(target, payload)
    else:
        _replace(target, payload, st)


def _through_kernel(path: str) -> bool:
    """True when `path` or a symlink on the way to its final target lies in /dev or /proc."""
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on nested symlinks
        if current.startswith(_KERNEL_DIRS):
            return True
        if not os.path.islink(current):
            return False
        current = os.path.join(os.path.dirname(current), os.readlink(current))
        current = os.path.abspath(current)
    return False


def _write_through(path: str, payload: bytes) -> None:
    with contextlib.suppress(Exception):
        sys.stdout.flush()  # /dev/stdout: what was printed before comes first
    # Appending, never truncating: `/dev/stdout` of `asnc ... >> log` is the log file itself
    # (a device or FIFO has no content to truncate anyway).
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    with os.fdopen(fd, "wb") as fh:
        fh.write(payload)


def _temporary(directory: str, payload: bytes) -> str:
    """A temporary beside the destination holding `payload` in full (flushed to disk)."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _replace(target: str, payload: bytes, st: os.stat_result | None) -> None:
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    tmp = _temporary(directory, payload)
    try:
        if st is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # mkstemp makes 0600; a new file gets the usual mode
        else:
            mode = stat.S_IMODE(st.st_mode)
            with contextlib.suppress(PermissionError):  # only root may give a file away
                os.chown(tmp, st.st_uid, st.st_gid)
        os.chmod(tmp, mode)  # after chown, which clears setuid bits
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def _rewrite_in_place(target: str, payload: bytes) -> None:
    """Rewrite the inode itself (its hard links stay one file); the old bytes are put back
    if the copy fails half-way."""
    tmp = _temporary(os.path.dirname(target), payload)
    try:
        with open(target, "r+b") as fh:
            old = fh.read()
            try:
                fh.seek(0)
                fh.write(payload)
                fh.truncate()
                fh.flush()
                os.fsync(fh.fileno())
            except BaseException:
                with contextlib.suppress(OSError):
                    fh.seek(0)
                    fh.write(old)
                    fh.truncate()
                raise
    finally:
        _remove(tmp)


def _remove(tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
