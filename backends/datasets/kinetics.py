"""Kinetics as distributed: CSV annotations with the header
``label,youtube_id,time_start,time_end,split`` (Kinetics-600/700 add ``is_cc``), one file per
subset (``train.csv``, ``validate.csv``, ``test.csv``); clips named
``<youtube_id>_<start:06d>_<end:06d>.mp4`` (any video extension) in one folder or in a folder
per class. Classes: the labels of every CSV, sorted (the usual label order). Rows of the
``train`` split are training videos, ``val``/``validate`` rows the evaluation videos; ``test``
rows are not used (their labels were withheld for years). Clips that are missing on disk are
counted and reported, never fatal: every copy of Kinetics misses some (deleted videos).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .base import Dataset, Sample, SplitFileError, read_lines
from .index import VideoIndex

__all__ = ["read_kinetics", "find_annotations", "REQUIRED"]

REQUIRED = ("label", "youtube_id", "time_start", "time_end", "split")
TRAIN, EVAL, IGNORED = {"train"}, {"val", "validate", "validation"}, {"test"}


def _is_annotation(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            header = fh.readline(4096)
    except OSError:
        return False
    cols = [c.strip() for c in header.split(",")]
    return all(c in cols for c in REQUIRED)


def find_annotations(root: Path) -> list[Path]:
    """The Kinetics CSV files in ``root`` or a folder one level below it."""
    for folder in [root, *sorted(p for p in root.iterdir()
                                 if p.is_dir() and not p.name.startswith("."))]:
        found = sorted(p for p in folder.glob("*.csv") if p.is_file() and _is_annotation(p))
        if found:
            return found
    return []


def _clip_name(youtube_id: str, start: float, end: float) -> str:
    return f"{youtube_id}_{int(start):06d}_{int(end):06d}"


def _rows(path: Path):
    lines = read_lines(path)
    reader = csv.reader(io.StringIO("\n".join(lines)))
    header = [c.strip() for c in next(reader, [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise SplitFileError(path, 1, f"the header lacks {', '.join(missing)} (expected "
                             f"{','.join(REQUIRED)})")
    col = {c: header.index(c) for c in REQUIRED}
    for row in reader:
        n = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise SplitFileError(path, n, f"{len(row)} fields, the header has {len(header)}")
        values = {c: row[i].strip() for c, i in col.items()}
        try:
            start, end = float(values["time_start"]), float(values["time_end"])
        except ValueError:
            raise SplitFileError(path, n, f"time_start/time_end `{values['time_start']}`, "
                                 f"`{values['time_end']}` are not numbers") from None
        if not values["label"] or not values["youtube_id"]:
            raise SplitFileError(path, n, "empty label or youtube_id")
        yield n, values, start, end


def read_kinetics(root: Path, split: int | None = None) -> Dataset:
    files = find_annotations(root)
    if not files:
        raise SplitFileError(root / "train.csv", 1, "no Kinetics CSV annotations "
                             f"({','.join(REQUIRED)}) in the data folder or a folder below it")
    if split not in (None, 1):
        raise SplitFileError(files[0], 1, f"Kinetics has one split (train/validate), not {split}")
    rows = []
    for path in files:
        for n, values, start, end in _rows(path):
            kind = values["split"].lower()
            if kind not in TRAIN | EVAL | IGNORED:
                raise SplitFileError(path, n, f"split `{values['split']}` is not train, val/"
                                     "validate or test")
            rows.append((values, start, end, kind))
    classes = sorted({v["label"] for v, _, _, kind in rows if kind not in IGNORED})
    if len(classes) < 2:
        raise SplitFileError(files[0], 2, f"{len(classes)} labelled class(es); a dataset needs "
                             "at least 2")
    label_of = {c: i for i, c in enumerate(classes)}
    index = _ClipIndex(VideoIndex(root))
    train: list[Sample] = []
    test: list[Sample] = []
    missing: list[str] = []
    ignored = 0
    for values, start, end, kind in rows:
        if kind in IGNORED:
            ignored += 1
            continue
        stem = _clip_name(values["youtube_id"], start, end)
        found = index.find(stem)
        if found is None:
            missing.append(stem)
        else:
            (train if kind in TRAIN else test).append((found, label_of[values["label"]]))
    notes = [f"{ignored} `test` row(s) not used"] if ignored else []
    return Dataset("kinetics", str(root), classes, train, test, None, True, missing, notes,
                   [str(p) for p in files])


class _ClipIndex:
    """Clip files by name without extension (Kinetics copies come as .mp4, .webm, .mkv)."""

    def __init__(self, index: VideoIndex):
        self.by_stem: dict[str, str] = {}
        for name, path in index.by_name.items():
            self.by_stem.setdefault(name.rsplit(".", 1)[0], path)

    def find(self, stem: str) -> str | None:
        return self.by_stem.get(stem)
