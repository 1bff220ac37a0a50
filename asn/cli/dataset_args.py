"""`--data`, `--layout` and `--split` of `eval`, `train` and `search`: the dataset as its
layout defines it (`backends/datasets`), its problems as diagnostics. No TensorFlow."""

from __future__ import annotations

import enum
from typing import Optional

import typer

from .common import EXIT_BAD_INPUT, err_console

__all__ = ["Layout", "LayoutOpt", "SplitOpt", "read_data"]


class Layout(str, enum.Enum):
    """`--layout` (backends.datasets.LAYOUTS; typer refuses others)."""
    ucf101 = "ucf101"
    hmdb51 = "hmdb51"
    kinetics = "kinetics"
    folder = "folder"

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


LayoutOpt = typer.Option(None, "--layout", metavar="LAYOUT", help="ucf101 | hmdb51 | kinetics "
                         "| folder (default: detected from the split files in --data).")
SplitOpt = typer.Option(None, "--split", metavar="N", min=1, help="The official split "
                        "(UCF101 and HMDB51: 1, 2 or 3; default 1).")

MISSING_SHOWN = 3


def read_data(data: str, layout: Optional[Layout], split: Optional[int], quiet: bool = False):
    """The `Dataset` at `data`; a bad folder or split file is a diagnostic (exit 1); missing
    videos and notes are warnings (unless `quiet`)."""
    from ..backends.datasets import DatasetLayoutError, read_dataset

    try:
        ds = read_dataset(data, str(layout) if layout is not None else None, split)
    except DatasetLayoutError as exc:
        text = str(exc)
        err_console.print(text if ": error: " in text else f"error: {text}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    for warning in ds.warnings:
        err_console.print(f"warning: {warning}")
    if not quiet:
        for note in ds.notes:
            err_console.print(f"note: {note}")
        if ds.missing:
            shown = ", ".join(ds.missing[:MISSING_SHOWN])
            more = f" and {len(ds.missing) - MISSING_SHOWN} more" \
                if len(ds.missing) > MISSING_SHOWN else ""
            err_console.print(f"warning: {len(ds.missing)} video(s) listed in the "
                              f"{ds.layout} split files are missing under `{data}`: "
                              f"{shown}{more}")
    return ds
