"""One trial of `asnc evolve`: brief one-shot training of an individual, held-out top-1.

The trial is the existing one-shot training (`train.prepare_run` and `train.train`: learnable
connection weights, the options' epochs and steps) on the dataset as its layout defines it
(`backends.datasets`): an official split trains on its training videos and holds out its test
videos; a plain folder holds out `data.split` with the run's seed. Either way every individual
is judged on the same videos. Its fitness is the held-out top-1 accuracy under the run's
evaluation protocol (`--clips` x `--crops`, default 1x1); its learned connection weights go
back to the search, which the connection-learning-guided mutation of its children reads.
The trial draws no pictures: matplotlib's import, the curves and the confusion matrix took
~7 s per trial on this project's loaded 2-core machine, as long as a brief trial's training
(`asnc plot RUN/trials/<id>` draws a trial's curves afterwards).

`run_trial` runs in a Ray worker process (`asn/cli/evolve_loop.py`), possibly on another
machine: it takes and returns plain values (IR, dicts), never raises for bad data (a failed
trial is a result, recorded with its error), and writes `TRIAL_DIR/worker.json` (pid, host,
attempt, start time) first, so the driver can show the trial as running and a test can kill
its worker.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ...dsl.ir import Network
from ...dsl.outputs import write_file

__all__ = ["TrialSpec", "run_trial", "unchanged_nodes", "WORKER_FILE"]

WORKER_FILE = "worker.json"


@dataclass(frozen=True)
class TrialSpec:
    id: int
    net: Network  # as trained: frames, size and the data's classes applied; weights unset
    data: str
    out: str  # the trial's run directory (`RUN/trials/<id>`)
    epochs: int
    steps: int | None
    batch: int
    lr: float
    val_ratio: float
    seed: int  # the run's seed: the same split for every individual
    cpus: int  # TensorFlow's thread pools are sized to the CPUs Ray gave the trial
    layout: str | None = None  # `datasets.LAYOUTS`; None: detected
    split: int | None = None  # the official split (None: the layout's default or none)
    clips: int = 1  # the fitness's evaluation protocol
    crops: int = 1
    attempt: int = 1
    cache: bool = False
    # what the child starts from: connection weights inherited from the parent (after sigmoid,
    # per block in input order; None: a new connection, starting at 0.5) ...
    inherited: dict[str, list[float | None]] | None = None
    # ... and, with --warm-start, the parent (its network and trained weights file), whose
    # weights the child's unchanged stems and blocks start from
    warm_from: tuple[Network, str] | None = None


_threads_set = False


def _limit_threads(cpus: int) -> None:
    # Once per worker process, before TensorFlow runs an op (it cannot change afterwards):
    # Ray schedules `cpus` per trial, and TF's default pools would take every core.
    global _threads_set
    import tensorflow as tf

    if _threads_set:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, cpus))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, cpus)))
    except RuntimeError:  # already initialised in this process
        pass
    _threads_set = True


def run_trial(spec: TrialSpec) -> dict:
    """Train `spec.net` briefly and evaluate it; a dict with `status` "done" (`fitness`,
    `val_loss`, `connections`, ...) or "failed" (`error`), and `started`, `finished`, `pid`,
    `host`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.time()
    out = Path(spec.out)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "attempt": spec.attempt,
            "started": started}
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_file(str(out / WORKER_FILE), json.dumps(info) + "\n")
    except Exception as exc:  # noqa: BLE001 - the run directory is not writable here
        return {**info, "status": "failed", "finished": time.time(),
                "error": f"cannot write the trial directory {out}: {exc}"}
    return {**info, **_train(spec), "finished": time.time()}


def _train(spec: TrialSpec) -> dict:
    from ...dsl.diagnostics import DiagnosticError
    from ..datasets import DatasetLayoutError, read_dataset
    from . import data as D
    from .train import TrainError, TrainOptions, prepare_run, train

    _limit_threads(spec.cpus)
    import keras

    keras.backend.clear_session()  # a Ray worker runs many trials: free the last graph
    try:
        ds = read_dataset(spec.data, spec.layout, spec.split)
        started_from: dict = {}
        options = TrainOptions(data=spec.data, out=spec.out, epochs=spec.epochs,
                               batch=spec.batch, lr=spec.lr, steps=spec.steps,
                               val_ratio=spec.val_ratio, seed=spec.seed, overwrite=True,
                               cache=spec.cache, verbose=0, layout=ds.layout, split=ds.split,
                               eval_clips=spec.clips, eval_crops=spec.crops, pictures=False,
                               initialise=lambda lowered: started_from.update(
                                   _initialise(lowered, spec)))
        held_out = ds.test if ds.official_split else None  # None: --val-ratio of the folder
        result = train(prepare_run(spec.net, options, ds.classes, ds.train, held_out))
    except (TrainError, DatasetLayoutError, D.DatasetError, D.DecodeError, DiagnosticError,
            OSError, ValueError) as exc:
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    final = result.metrics.get("final") or {}
    evaluation = result.metrics.get("evaluation") or {}
    if "val_accuracy" not in final and "top1" not in evaluation:
        return {"status": "failed", "error": "no held-out video could be evaluated"}
    # the protocol's top-1 (every held-out video that decodes, --clips x --crops views); the
    # last epoch's single-clip accuracy where no held-out video decoded for the protocol
    if "top1" in evaluation:
        fitness, protocol = float(evaluation["top1"]), result.metrics["protocols"]["evaluation"]
    else:
        fitness, protocol = float(final["val_accuracy"]), result.metrics["protocols"]["final"]
    return {"status": "done", "fitness": fitness, "fitness_protocol": protocol,
            "layout": ds.layout, "split": ds.split,
            "val_loss": float(final["val_loss"]) if "val_loss" in final else None,
            "connections": result.connections,
            "train_videos": result.metrics["train_videos"],
            "val_videos": result.metrics["val_videos"],
            "skipped_videos": len(result.metrics["skipped_videos"]),
            "train_s": result.metrics["time_s"], "started_from": started_from}


def _initialise(lowered, spec: TrialSpec) -> dict:
    """Start the child from what it inherits; return what was set (for the journal)."""
    import numpy as np
    from keras import ops

    from .layers import SigmoidFusion

    layers = {layer.name: layer for layer in lowered.model.layers}
    done: dict = {"inherited_connections": 0, "warm_layers": 0}
    for block, weights in (spec.inherited or {}).items():
        for name in lowered.node_layers.get(block, []):
            layer = layers.get(name)
            if not isinstance(layer, SigmoidFusion) or len(weights) != layer.edge_logits.shape[0]:
                continue
            logits = np.array(ops.convert_to_numpy(layer.edge_logits), dtype=np.float32)
            for i, w in enumerate(weights):
                if w is not None:  # the logit whose sigmoid is the inherited weight
                    w = min(max(float(w), 1e-6), 1 - 1e-6)
                    logits[i] = np.log(w / (1 - w))
                    done["inherited_connections"] += 1
            layer.edge_logits.assign(logits)
    if spec.warm_from is not None:
        done["warm_layers"] = _warm_start(lowered, spec, layers)
    return done


def unchanged_nodes(net: Network, parent: Network) -> list[str]:
    """Nodes defined in the child exactly as in the parent (weights of connections aside)."""
    def key(node) -> dict:
        d = node.model_dump()
        for i in d.get("inputs", []):
            i.pop("weight", None)
        return d
    theirs = {n.name: key(n) for n in parent.nodes}
    return [n.name for n in net.nodes if theirs.get(n.name) == key(n)]


def _warm_start(lowered, spec: TrialSpec, layers: dict) -> int:
    """Copy the parent's trained weights into the child's unchanged nodes, layer by layer
    where the shapes agree; 0 when the parent's weights are not readable here."""
    from ...compiler.passes import LoweringForm
    from .lower import lower

    assert spec.warm_from is not None
    parent_net, weights_path = spec.warm_from
    if not os.path.isfile(weights_path):
        return 0
    parent = lower(parent_net, seed=spec.seed, form=LoweringForm.training())
    parent.model.load_weights(weights_path)
    theirs = {layer.name: layer for layer in parent.model.layers}
    copied = 0
    for node in unchanged_nodes(spec.net, parent_net):
        for name in lowered.node_layers.get(node, []):
            mine, src = layers.get(name), theirs.get(name)
            if mine is None or src is None:
                continue
            values = src.get_weights()
            if [v.shape for v in values] == [tuple(w.shape) for w in mine.weights]:
                mine.set_weights(values)
                copied += 1
    return copied
