"""`RUN/net.asn`: the network as trained, the `.asn` text of a training run directory.

`asnc search` also writes `RUN/learned.asn`, the same network with the learned weights.
The training backend (`backends/tensorflow/train.py`) writes the rest of the run directory
(checkpoints, `labels.txt`, `metrics.json`, `final.weights.h5`) and works on IR only; the
network's text is read and written here, by `asnc train` and `asnc search`. `asnc compile
RUN/net.asn --weights RUN/final.weights.h5` rebuilds the trained model from it.

Imports TensorFlow (through the backend's run-directory names): import it inside a command.
"""

from __future__ import annotations

from pathlib import Path

from ..backends.tensorflow.train import LEARNED_FILE, NETWORK_FILE
from ..dsl.ir import Network
from ..dsl.loader import load
from ..dsl.printer import format_network
from .common import atomic_write

__all__ = ["write_network", "write_learned", "resume_blocker"]


def write_network(run_dir: Path, net: Network) -> None:
    """Write `net` as canonical `.asn` text to `run_dir/net.asn` (atomically)."""
    atomic_write(str(run_dir / NETWORK_FILE), format_network(net))


def write_learned(run_dir: Path, text: str) -> None:
    """`asnc search`'s result beside the weights: `run_dir/learned.asn` (`net.asn` stays the
    network as trained, learnable weights unset, which is what `--resume` compares)."""
    atomic_write(str(run_dir / LEARNED_FILE), text)


def resume_blocker(run_dir: Path, net: Network) -> str | None:
    """Why a run of `net` cannot resume the run in `run_dir` (its `net.asn` is another
    network), or None."""
    path = run_dir / NETWORK_FILE
    if path.exists() and load(str(path)) != net:
        return (f"{run_dir} holds a run of another network (see {path}); resume it with that "
                "network or choose another --out")
    return None
