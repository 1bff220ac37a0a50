"""Class names (`labels.txt`: one name per line, in label order) for `compile` and `predict`.

A training run writes `RUN/labels.txt` beside `RUN/final.weights.h5`; `asnc compile` copies
the labels it finds beside the weights (or `--labels FILE`) into `OUT/labels.txt`, where
`asnc predict OUT/` reads them. No TensorFlow here.
"""

from __future__ import annotations

import os

from ..dsl.diagnostics import DiagnosticError
from ..dsl.textio import read_text

__all__ = ["LABELS_FILE", "read_labels", "labels_beside", "LabelsError"]

LABELS_FILE = "labels.txt"  # also backends.tensorflow.train.LABELS_FILE


class LabelsError(ValueError):
    """A labels file that cannot be read or does not fit the network (`path: message`)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: error: {message}")
        self.path, self.message = path, message


def read_labels(path: str, classes: int | None = None) -> list[str]:
    """The names in ``path`` (blank lines ignored); with ``classes``, exactly that many."""
    try:
        text = read_text(path)
    except DiagnosticError as exc:
        message = exc.diagnostics[0].message if exc.diagnostics else "cannot read it"
        raise LabelsError(path, message) from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise LabelsError(path, "no class names in the labels file")
    if classes is not None and len(names) != classes:
        raise LabelsError(path, f"{len(names)} class names, but the network has {classes} "
                          "classes")
    return names


def labels_beside(weights: str) -> str | None:
    """`labels.txt` in the folder of the weights file (a run directory), if there is one."""
    path = os.path.join(os.path.dirname(os.path.abspath(weights)), LABELS_FILE)
    return path if os.path.isfile(path) else None
