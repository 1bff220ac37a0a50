"""What every layout reader returns (`Dataset`), and its errors."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ...dsl.textio import read_bounded

__all__ = ["Dataset", "Sample", "SplitFileError", "DatasetLayoutError", "LAYOUTS",
           "VIDEO_EXTENSIONS", "read_lines", "is_text", "shown"]

LAYOUTS = ("ucf101", "hmdb51", "kinetics", "folder")
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".webm", ".mkv", ".mov"})

Sample = tuple[str, int]  # (video path, label index): as backends.tensorflow.data.Sample


class DatasetLayoutError(ValueError):
    """The data folder cannot be read as the layout says (a user error, a diagnostic)."""


class SplitFileError(DatasetLayoutError):
    """A malformed split or annotation file: ``path:line:col: error: message``."""

    def __init__(self, path: str | Path, line: int, message: str, col: int = 1):
        self.path, self.line, self.col, self.message = shown(path), line, col, message
        super().__init__(f"{self.path}:{line}:{col}: error: {message}")


@dataclass
class Dataset:
    """A dataset split as its layout defines it.

    ``train`` and ``test`` hold ``(path, label)`` in the annotation files' order (the folder
    layout: sorted). The folder layout has no official split: every video is in ``train``
    and ``test`` is empty (`asnc train` holds out `--val-ratio`, `asnc eval` uses all of
    them). ``missing``: videos the annotations list that are not on disk (counted, not
    fatal: real copies of Kinetics always miss some).
    """

    layout: str
    root: str
    classes: list[str]
    train: list[Sample]
    test: list[Sample]
    split: int | None = None
    official_split: bool = True
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # the split/annotation files read
    warnings: list[str] = field(default_factory=list)  # e.g. videos skipped by name

    @property
    def all_samples(self) -> list[Sample]:
        return [*self.train, *self.test]

    def describe(self) -> str:
        where = f"split {self.split}" if self.split is not None else "no official split"
        text = (f"{self.layout} layout ({where}): {len(self.classes)} classes, "
                f"{len(self.train)} training and {len(self.test)} test videos")
        if self.missing:
            text += f"; {len(self.missing)} listed video(s) missing on disk"
        return text


def is_text(name: str) -> bool:
    """A file name that is valid UTF-8 (undecodable bytes reach Python as surrogates)."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def shown(path: str | Path) -> str:
    """A path as printable text: undecodable bytes as \\xNN escapes."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def read_lines(path: str | Path) -> list[str]:
    """The lines of a text file (bounded read; CRLF, as the official UCF101 files have, and
    a UTF-8 byte-order mark are handled), each stripped of its line end only."""
    try:
        data = read_bounded(str(path))
    except Exception as exc:  # DiagnosticError (too large, a directory) or OSError
        raise DatasetLayoutError(f"{shown(path)}: error: cannot read it ({_reason(exc)})") \
            from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SplitFileError(path, line, "not UTF-8 text") from None
    return text.splitlines()


def _reason(exc: Exception) -> str:
    diags = getattr(exc, "diagnostics", None)
    if diags:
        return str(diags[0].message)
    return str(getattr(exc, "strerror", None) or exc)


def list_dir(path: str | Path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise DatasetLayoutError(f"cannot read the folder `{shown(path)}`: "
                                 f"{exc.strerror or exc}") from None
