"""Which layout a data folder has, and reading it."""

from __future__ import annotations

from pathlib import Path

from .base import LAYOUTS, Dataset, DatasetLayoutError, shown
from .folder import read_folder
from .hmdb51 import find_split_folder, read_hmdb51
from .kinetics import find_annotations, read_kinetics
from .ucf101 import find_split_files, read_ucf101

__all__ = ["detect_layout", "read_dataset"]

_READERS = {"ucf101": read_ucf101, "hmdb51": read_hmdb51, "kinetics": read_kinetics,
            "folder": read_folder}


def detect_layout(root: str | Path) -> str:
    """``ucf101`` (a classInd.txt), ``hmdb51`` (``*_test_splitN.txt``), ``kinetics`` (a CSV
    with Kinetics' header), else ``folder``; the files may sit in the folder or one below."""
    root = Path(root)
    try:
        if find_split_files(root) is not None:
            return "ucf101"
        if find_split_folder(root) is not None:
            return "hmdb51"
        if find_annotations(root):
            return "kinetics"
    except OSError as exc:
        raise DatasetLayoutError(f"cannot read the data folder `{shown(root)}`: "
                                 f"{exc.strerror or exc}") from None
    return "folder"


def read_dataset(root: str | Path, layout: str | None = None,
                 split: int | None = None) -> Dataset:
    """The dataset at ``root`` in ``layout`` (detected when None), split ``split`` (default
    1 for the layouts that have splits). Raises DatasetLayoutError / SplitFileError."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"data folder `{shown(root)}` does not exist")
    if layout is not None and layout not in LAYOUTS:
        raise DatasetLayoutError(f"unknown layout `{layout}`; choose {', '.join(LAYOUTS)}")
    layout = layout or detect_layout(root)
    try:
        return _READERS[layout](root, split)
    except OSError as exc:
        raise DatasetLayoutError(f"cannot read the data folder `{shown(root)}`: "
                                 f"{exc.strerror or exc}") from None
