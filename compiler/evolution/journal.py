"""`RUN/journal.jsonl`: one JSON object per individual, appended as each trial ends.

Appends are one `write` of a whole line on a descriptor opened with O_APPEND, then fsync: a
crash leaves at most a torn last line, which `read` skips (and the next append starts on a
line of its own), so every record read back is one that was wholly written. Records are
only ever appended; an individual's record is written once, when its trial has ended (done
or failed) or when it was rejected before training.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["Journal", "JOURNAL_FILE", "TRIAL_STATUSES"]

JOURNAL_FILE = "journal.jsonl"
# done / failed: a trial ran (it counts against --trials); rejected: over budget, never trained
TRIAL_STATUSES = ("done", "failed")
MAX_LINE = 16 * 1024 * 1024  # a record holds a network's text: bounded, not unlimited


class Journal:
    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / JOURNAL_FILE
        self.torn = 0  # lines `read` skipped (a crash mid-append)

    def exists(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def read(self) -> list[dict]:
        """Every whole record, in the order written."""
        records: list[dict] = []
        self.torn = 0
        if not self.path.exists():
            return records
        with open(self.path, "rb") as f:
            for raw in f:
                if len(raw) > MAX_LINE or not raw.endswith(b"\n"):
                    self.torn += 1
                    continue
                try:
                    value = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    self.torn += 1
                    continue
                if isinstance(value, dict) and isinstance(value.get("id"), int):
                    records.append(value)
                else:
                    self.torn += 1
        return records

    def append(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True, allow_nan=False).encode() + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size:  # a torn last line (a crash mid-append): start on a line of our own
                with open(self.path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
