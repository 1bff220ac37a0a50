"""Where the videos an annotation file names are on disk.

Annotation files name a video by ``<class>/<file>`` (UCF101), by file name (HMDB51,
Kinetics); copies on disk differ in where the class folders sit (``DATA/``, ``DATA/UCF-101/``)
and in the case of a name (UCF101's ``HandStandPushups`` files sit in ``HandstandPushups/``).
`VideoIndex` lists the video files once, two folder levels deep, and finds a name exactly or,
failing that, ignoring case.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import VIDEO_EXTENSIONS, is_text, list_dir

__all__ = ["VideoIndex"]


class VideoIndex:
    """Video files under ``root``: ``root/<file>``, ``root/<dir>/<file>`` and
    ``root/<dir>/<dir>/<file>`` and one level more (so ``DATA/UCF-101/<class>/<file>`` and
    ``DATA/k400/train/<class>/<clip>`` are found too)."""

    def __init__(self, root: str | Path, depth: int = 4):
        self.root = Path(root)
        self.by_rel: dict[str, str] = {}  # "class/file" (the parent folder and the name)
        self.by_name: dict[str, str] = {}  # "file"
        self._walk(self.root, depth)
        self.by_rel_folded = {k.casefold(): v for k, v in self.by_rel.items()}
        self.by_name_folded = {k.casefold(): v for k, v in self.by_name.items()}

    def _walk(self, folder: Path, depth: int) -> None:
        for entry in list_dir(folder):
            if not is_text(entry.name):
                continue
            if entry.is_dir():
                if depth > 1:
                    self._walk(Path(entry.path), depth - 1)
            elif os.path.splitext(entry.name)[1].lower() in VIDEO_EXTENSIONS:
                rel = f"{folder.name}/{entry.name}"
                self.by_rel.setdefault(rel, entry.path)
                self.by_name.setdefault(entry.name, entry.path)

    def find(self, name: str, folder: str | None = None) -> str | None:
        """The path of the video ``folder/name`` (or ``name`` in any folder), or None."""
        if folder is not None:
            rel = f"{folder}/{name}"
            return self.by_rel.get(rel) or self.by_rel_folded.get(rel.casefold())
        return self.by_name.get(name) or self.by_name_folded.get(name.casefold())
