"""Names of the passes a backend applies while lowering (numeric fusion).

The front end does not run them: `run_pipeline` lists the enabled ones in
`Reports.backend_passes`, and the backend reads that list. Declaring the names here lets
`--passes` and `--disable-pass` name them and `-O` levels enable them. A backend may declare
more with `backend_pass(...)`.
"""

from __future__ import annotations

from .manager import backend_pass

__all__ = ["FOLD_BATCHNORM"]

FOLD_BATCHNORM = backend_pass(
    "fold-batchnorm", opt_level=1, exact=True,
    description="fold inference batch norms into the convolutions before them (backend; "
                "exact up to float rounding)")
