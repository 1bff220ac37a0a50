"""HMDB51 as distributed: the ``<class>_test_split{1,2,3}.txt`` files (the
``testTrainMulti_7030_splits`` archive), one per class and split, lines
``<file>.avi <id>`` with id 0 (unused), 1 (train) or 2 (test); videos under
``<class>/<file>.avi``. Classes are the split files' class names, sorted (the usual label
order, 51 for the real dataset).
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import Dataset, Sample, SplitFileError, read_lines
from .index import VideoIndex

__all__ = ["read_hmdb51", "find_split_folder", "SPLIT_FILE"]

SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<n>[0-9]+)\.txt$")
SPLITS = (1, 2, 3)


def _split_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and SPLIT_FILE.match(p.name))


def find_split_folder(root: Path) -> Path | None:
    """The folder holding the ``*_test_splitN.txt`` files: ``root`` or one below it."""
    if _split_files(root):
        return root
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if _split_files(sub):
            return sub
    return None


def read_hmdb51(root: Path, split: int | None = None) -> Dataset:
    split = 1 if split is None else split
    folder = find_split_folder(root)
    if folder is None:
        raise SplitFileError(root / "<class>_test_split1.txt", 1, "no HMDB51 split files in "
                             "the data folder or a folder below it")
    files = {}
    for p in _split_files(folder):
        m = SPLIT_FILE.match(p.name)
        assert m is not None
        if int(m["n"]) == split:
            files[m["cls"]] = p
    if split not in SPLITS or not files:
        raise SplitFileError(folder / f"<class>_test_split{split}.txt", 1,
                             f"HMDB51 has splits 1, 2 and 3; no split {split} files here")
    classes = sorted(files)
    if len(classes) < 2:
        raise SplitFileError(files[classes[0]], 1, "split files of 1 class; a dataset needs at "
                             "least 2")
    index = VideoIndex(root)
    train: list[Sample] = []
    test: list[Sample] = []
    missing: list[str] = []
    unused = 0
    for label, name in enumerate(classes):
        path = files[name]
        for n, line in enumerate(read_lines(path), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise SplitFileError(path, n, f"expected `<file> <0|1|2>`, got `{line.strip()}`")
            video, kind = parts
            if kind not in ("0", "1", "2"):
                raise SplitFileError(path, n, f"split id `{kind}` is not 0 (unused), 1 (train) "
                                     "or 2 (test)", col=line.index(kind, len(video)) + 1)
            if kind == "0":
                unused += 1
                continue
            found = index.find(video, name) or index.find(video)
            if found is None:
                missing.append(f"{name}/{video}")
            else:
                (train if kind == "1" else test).append((found, label))
    notes = [f"{unused} video(s) marked 0 (unused in split {split})"] if unused else []
    return Dataset("hmdb51", str(root), classes, train, test, split, True, missing, notes,
                   [str(files[c]) for c in classes])
