"""TF Serving's model layout, ``serving/<name>/<version>/``: the compile's SavedModel a
second time, as hard links to ``saved_model/``'s files (no second copy on disk: both lie in
the one staging directory, so on one file system), copied where linking fails.

TF Serving (``--model_base_path=OUT/serving/<name>``) serves the highest version number
in that directory; ``tf.saved_model.load`` and ``saved_model_cli`` read the version
directory like any SavedModel.
"""

from __future__ import annotations

import os
import shutil

__all__ = ["SERVING_DIR", "serving_path", "write_serving_layout"]

SERVING_DIR = "serving"


def serving_path(name: str, version: int) -> str:
    """``serving/<name>/<version>``, relative to the output directory."""
    return os.path.join(SERVING_DIR, name, str(version))


def write_serving_layout(savedmodel_dir: str, out_dir: str, name: str, version: int) -> str:
    """Link (else copy) every file of ``savedmodel_dir`` under ``out_dir/serving/...``;
    the relative path written."""
    rel = serving_path(name, version)
    target = os.path.join(out_dir, rel)
    shutil.copytree(savedmodel_dir, target, copy_function=_link_or_copy)
    return rel


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)
