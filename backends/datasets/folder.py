"""The plain layout: ``DATA/<class>/<video>``, classes the sorted folder names, no split."""

from __future__ import annotations

import os
from pathlib import Path

from .base import VIDEO_EXTENSIONS, Dataset, DatasetLayoutError, Sample, is_text, list_dir, shown

__all__ = ["read_folder"]


def read_folder(root: Path, split: int | None = None) -> Dataset:
    if split is not None:
        raise DatasetLayoutError(f"`{shown(root)}` is a plain <class>/<video> folder, which has "
                                 "no official splits; --split needs UCF101, HMDB51 or Kinetics "
                                 "split files")
    dirs = [e for e in list_dir(root) if e.is_dir()]
    bad = [e for e in dirs if not is_text(e.name)]
    if bad:
        raise DatasetLayoutError(f"class folder `{shown(bad[0].path)}` has a name that is not "
                                 "UTF-8 text; rename it (class names are labels)")
    classes = [e.name for e in dirs]
    samples: list[Sample] = []
    skipped: list[str] = []
    for label, d in enumerate(dirs):
        for f in list_dir(d.path):
            if not f.is_file() or os.path.splitext(f.name)[1].lower() not in VIDEO_EXTENSIONS:
                continue
            if is_text(f.name):
                samples.append((f.path, label))
            else:
                skipped.append(f"skipping `{shown(f.path)}`: its file name is not UTF-8 text")
    return Dataset("folder", str(root), classes, samples, [], None, False, [], [], [], skipped)
