"""Progress of a long pass over videos on stderr (`asnc eval`): the backend's
`epochbar.PassProgress` on the command line's stderr console. Imports TensorFlow's backend
package: import it inside a command."""

from __future__ import annotations

from ..backends.tensorflow.epochbar import PassProgress
from .common import err_console

__all__ = ["VideoProgress"]


def VideoProgress(label: str, total: int, enabled: bool = True) -> PassProgress:  # noqa: N802
    """A `PassProgress` on stderr (a live bar on a terminal, else a line every 10%)."""
    return PassProgress(label, total, enabled, err_console)
