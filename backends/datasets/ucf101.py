"""UCF101 as distributed: ``classInd.txt``, ``trainlist0{1,2,3}.txt``, ``testlist0{1,2,3}.txt``
(the ``ucfTrainTestlist`` folder of the official splits archive) and the videos under
``<class>/<file>.avi`` (the ``UCF-101`` folder of the video archive).

Formats (the official files have CRLF line ends):

* ``classInd.txt``: ``<index> <ClassName>``, indices 1..101 in order; label = index - 1;
* ``trainlist0N.txt``: ``<ClassName>/<file>.avi <index>``; the index must be the folder's
  class (a mismatch is an error at that line);
* ``testlist0N.txt``: ``<ClassName>/<file>.avi``; the class is the folder's.
"""

from __future__ import annotations

from pathlib import Path

from .base import Dataset, Sample, SplitFileError, read_lines, shown
from .index import VideoIndex

__all__ = ["read_ucf101", "find_split_files", "CLASS_INDEX"]

CLASS_INDEX = "classInd.txt"
SPLITS = (1, 2, 3)


def find_split_files(root: Path) -> Path | None:
    """The folder holding ``classInd.txt``: ``root`` or a folder one level below it."""
    if (root / CLASS_INDEX).is_file():
        return root
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (sub / CLASS_INDEX).is_file():
            return sub
    return None


def read_class_index(path: Path) -> list[str]:
    classes: list[str] = []
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise SplitFileError(path, n, f"expected `<index> <ClassName>`, got `{line.strip()}`")
        index, name = parts
        if not index.isdigit():
            raise SplitFileError(path, n, f"class index `{index}` is not a number")
        if int(index) != len(classes) + 1:
            raise SplitFileError(path, n, f"class index {index} out of order: expected "
                                 f"{len(classes) + 1}")
        if name in classes:
            raise SplitFileError(path, n, f"class `{name}` listed twice",
                                 col=line.index(name) + 1)
        classes.append(name)
    if len(classes) < 2:
        raise SplitFileError(path, 1, f"{len(classes)} class(es); a dataset needs at least 2")
    return classes


def _read_list(path: Path, classes: list[str], index: VideoIndex, with_label: bool,
               missing: list[str]) -> list[Sample]:
    label_of = {c: i for i, c in enumerate(classes)}
    folded = {c.casefold(): i for i, c in enumerate(classes)}
    samples: list[Sample] = []
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        parts = line.split()
        rel = parts[0].replace("\\", "/")
        if "/" not in rel:
            raise SplitFileError(path, n, f"expected `<ClassName>/<file>`, got `{parts[0]}`")
        folder, name = rel.rsplit("/", 1)
        folder = folder.rsplit("/", 1)[-1]
        label = label_of.get(folder, folded.get(folder.casefold()))
        if label is None:
            raise SplitFileError(path, n, f"class `{folder}` is not in {CLASS_INDEX}")
        if with_label:
            if len(parts) != 2:
                raise SplitFileError(path, n, "expected `<ClassName>/<file> <index>`")
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(classes):
                raise SplitFileError(path, n, f"class index `{parts[1]}` is not in 1.."
                                     f"{len(classes)}", col=line.index(parts[1], len(parts[0])) + 1)
            if int(parts[1]) - 1 != label:
                raise SplitFileError(path, n, f"class index {parts[1]} is "
                                     f"`{classes[int(parts[1]) - 1]}`, but the video is in "
                                     f"`{folder}`", col=line.index(parts[1], len(parts[0])) + 1)
        elif len(parts) > 2:
            raise SplitFileError(path, n, f"expected `<ClassName>/<file>`, got `{line.strip()}`")
        found = index.find(name, folder)
        if found is None:
            missing.append(rel)
        else:
            samples.append((found, label))
    return samples


def read_ucf101(root: Path, split: int | None = None) -> Dataset:
    split = 1 if split is None else split
    lists = find_split_files(root)
    if lists is None:
        raise SplitFileError(root / CLASS_INDEX, 1, "no classInd.txt in the data folder or "
                             "a folder below it")
    if split not in SPLITS:
        raise SplitFileError(lists / CLASS_INDEX, 1, f"UCF101 has splits 1, 2 and 3, not {split}")
    train_file, test_file = lists / f"trainlist0{split}.txt", lists / f"testlist0{split}.txt"
    for f in (train_file, test_file):
        if not f.is_file():
            raise SplitFileError(f, 1, f"split {split} file missing (beside {CLASS_INDEX})")
    classes = read_class_index(lists / CLASS_INDEX)
    index = VideoIndex(root)
    missing: list[str] = []
    train = _read_list(train_file, classes, index, True, missing)
    test = _read_list(test_file, classes, index, False, missing)
    overlap = {p for p, _ in train} & {p for p, _ in test}
    notes = []
    if overlap:
        notes.append(f"{len(overlap)} video(s) in both {train_file.name} and {test_file.name}, "
                     f"e.g. {shown(sorted(overlap)[0])}")
    return Dataset("ucf101", str(root), classes, train, test, split, True, missing, notes,
                   [str(lists / CLASS_INDEX), str(train_file), str(test_file)])
