"""Training and one-shot connectivity search of a lowered network on a video folder.

`prepare_run(net, options, classes, samples)` checks a run and readies its directory;
`train(run)` then fits the model of `lower.build_model` on ``DATA/<class>/<video>``
(`data.make_dataset`), one checkpoint per epoch, and evaluates on the held-out split. Both
take and return IR; the network's text is the caller's.

Run directory (``options.out``), everything a later command needs:

* ``net.asn``: the network as trained (classes taken from the data, command-line overrides
  applied), written by the caller between the two steps (`asn/cli/rundir.py`, only where
  ``run.writes``); ``asnc compile RUN/net.asn --weights RUN/final.weights.h5`` rebuilds the
  model;
* ``final.weights.h5``: the final weights, written by ``model.save_weights`` from the full model
  of ``build_model(net)`` (no optimizer state), read back by ``model.load_weights``. Keras keys
  the file by layer class and position, so it loads into a model built from the same IR:
  a pass that removes or rewires nodes (dead-node elimination, pruning) changes the layout;
* ``labels.txt``: the class names, one per line, in label order;
* ``metrics.json``: configuration, per-epoch history, final evaluation, learned connection
  weights;
* ``metrics.csv`` and ``tensorboard/{train,validation}/`` (`runlog`): the per-epoch metrics
  as a CSV and as ``tf.summary`` events;
* ``checkpoints/`` (`checkpoints`): ``tf.train.Checkpoint`` of model, optimizer and epoch,
  kept by a ``tf.train.CheckpointManager`` (the last two epochs), and ``history.json``;
  ``--resume`` restores the newest.

``final.weights.h5`` carries the header it was trained with (frames, size, classes) in its
HDF5 attributes (`weightsfile.stamp`), so loading it into another network names what differs.

Connection weights: a block with k >= 2 inputs and no given weights owns a trainable length-k
variable of logits in its fusion layer; the weight of input i is ``sigmoid(logit_i)``.
`connection_weights` reads them as Python floats (from the float32 values).

Distribution: ``strategy`` is ``default`` (one device), ``mirrored`` (every GPU, or every logical
CPU when there is no GPU) or ``multiworker`` (``MultiWorkerMirroredStrategy``, cluster from
``TF_CONFIG``; only the chief writes the run directory). ``batch`` is the global batch; every
training batch is whole, and splits evenly across replicas.

Learning rate: constant or cosine decay, after an optional linear warm-up (`schedules`).
Mixed precision (``mixed_float16``): float16 compute, float32 variables and logits, dynamic
loss scaling (``keras.optimizers.LossScaleOptimizer``); the saved weights are float32 and
load into the float32 model that ``asnc compile`` builds.

The loop is a plain ``strategy.run`` step (Adam, mean cross-entropy over the global batch), not
``Model.fit``: Keras 3 ``fit`` fails under a multi-worker strategy (it reduces scalar metrics
over axis 0; tensorflow/tensorflow#72388), and one loop for every strategy is one loop tested.
Evaluation runs on one device, outside the strategy, over every held-out video.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from ...compiler.passes import LoweringForm
from ...dsl.ir import Network, Stem
from ...dsl.outputs import write_file
from ..evaluation import Protocol
from . import data as D
from .checkpoints import CHECKPOINTS, RunCheckpoint, latest, old_format, remove_ours
from .epochbar import EpochProgress, PassProgress
from .layers import SigmoidFusion
from .lower import Lowered, lower
from .runlog import RunLog
from .schedules import SCHEDULES, WarmupSchedule
from .weightsfile import stamp

__all__ = ["TrainOptions", "PreparedRun", "TrainResult", "TrainError", "prepare_run", "train",
           "make_strategy", "Evaluator",
           "connection_weights", "fixed_batch_loss", "STRATEGIES", "FINAL_WEIGHTS",
           "NETWORK_FILE", "LEARNED_FILE", "METRICS_FILE", "LABELS_FILE", "CHECKPOINTS",
           "SCHEDULES", "has_checkpoint"]

STRATEGIES = ("default", "mirrored", "multiworker")
FINAL_WEIGHTS = "final.weights.h5"
NETWORK_FILE = "net.asn"  # written by the caller (the network's text); metrics.json names it
LEARNED_FILE = "learned.asn"  # `asnc search`: net.asn with the learned weights (the caller's)
METRICS_FILE = "metrics.json"
LABELS_FILE = "labels.txt"
# Largest float32 below 1 and smallest above 0: a sigmoid that rounds to 0 or 1 in float32
# still has to print as a valid weight in (0, 1).
_W_MAX = float(np.nextafter(np.float32(1), np.float32(0)))
_W_MIN = float(np.nextafter(np.float32(0), np.float32(1)))


class TrainError(RuntimeError):
    """The run cannot start or continue (bad data folder, run directory in the way, ...)."""


@dataclass
class TrainOptions:
    """Settings of one run; see `asnc train --help` for the meaning of each."""

    data: str
    out: str
    epochs: int = 10
    batch: int = 8
    lr: float = 1e-3
    steps: int | None = None  # steps per epoch; default: one pass over the training split
    val_ratio: float = 0.2
    val_list: str | None = None
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    strategy: str = "default"
    cache: bool = False  # keep decoded videos in memory (small datasets)
    xla: bool = False
    lr_schedule: str = "constant"  # constant | cosine (`schedules`)
    warmup_epochs: float = 0.0  # linear warm-up from 0 over this many epochs
    mixed_precision: bool = False  # keras mixed_float16 policy
    # progress (`epochbar`): 0 silent, 1 live bar and a line per epoch, 2 a line per epoch;
    # auto: 1 on a terminal, else 2
    verbose: int | str = "auto"
    # Called with the lowered model before training starts (not on --resume, whose checkpoint
    # holds the weights): `asnc evolve` starts a child from what it inherits (trial.py).
    initialise: Callable[[Lowered], None] | None = None
    layout: str | None = None  # dataset layout (`datasets.LAYOUTS`); None: detected
    split: int | None = None  # official split of the layout (UCF101/HMDB51: 1..3)
    eval_clips: int = 10  # final evaluation: clips x crops per held-out video (`evaluation`)
    eval_crops: int = 3
    # draw RUN/curves.png (each epoch), the connection pictures and confusion.png; `asnc
    # evolve`'s trials do not (seconds per trial; `asnc plot RUN` draws the curves later)
    pictures: bool = True

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, "
                             f"got {self.strategy!r}")
        for name in ("epochs", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr schedule must be one of {', '.join(SCHEDULES)}, got "
                             f"{self.lr_schedule!r}")
        Protocol(self.eval_clips, self.eval_crops)  # raises ValueError for a bad protocol
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warm-up epochs must be between 0 and the {self.epochs} epochs, "
                             f"got {self.warmup_epochs:g}")


@dataclass
class PreparedRun:
    """A run that `prepare_run` checked and whose directory is ready; `train` runs it."""

    net: Network
    options: TrainOptions
    classes: list[str]
    strategy: tf.distribute.Strategy
    train_samples: list
    val_samples: list
    dir: Path
    checkpoint: dict | None  # the checkpoint a resumed run continues from (`checkpoints.latest`)
    writes: bool  # this worker writes the run directory (the chief)


@dataclass
class TrainResult:
    net: Network  # the network as trained
    model: keras.Model  # the full model of build_model (logits and features)
    lowered: Lowered
    run_dir: Path
    metrics: dict
    connections: dict[str, list[float]] = field(default_factory=dict)


# ----------------------------------------------------------------------- helpers


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy for ``default``, ``mirrored`` or ``multiworker``."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(cpus)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def connection_weights(lowered: Lowered, net: Network) -> dict[str, list[float]]:
    """``{block: [sigmoid(logit_i) for each input]}`` for every block with a sigmoid fusion.

    Values are the float32 results of ``keras.ops.sigmoid`` (what the model multiplies by) as
    Python floats, clamped into the open interval (0, 1).
    """
    layers = {layer.name: layer for layer in lowered.model.layers}
    result = {}
    for block in net.blocks:
        for lname in lowered.node_layers.get(block.name, []):
            layer = layers.get(lname)
            if isinstance(layer, SigmoidFusion):
                values = ops.convert_to_numpy(ops.sigmoid(layer.edge_logits)).astype(np.float32)
                result[block.name] = [min(max(float(v), _W_MIN), _W_MAX) for v in values]
    return result


def _logits_model(model: keras.Model) -> keras.Model:
    """The same layers, only the logits as output (what the loss and metrics see), in
    float32 also under mixed precision (a float16 softmax loses the small classes)."""
    logits = keras.layers.Activation("linear", dtype="float32",
                                     name="logits_float32")(model.output["logits"])
    return keras.Model(model.inputs, logits, name=f"{model.name}_logits")


def fixed_batch_loss(model: keras.Model, video, labels, training: bool = True) -> float:
    """Mean cross-entropy of ``model`` on one batch (batch-norm in training mode by default,
    so the value does not depend on how far the moving statistics have come)."""
    logits = model(video, training=training)["logits"]
    loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return float(ops.convert_to_numpy(ops.mean(loss)))


def _atomic_json(path: Path, value) -> None:
    write_file(str(path), json.dumps(value, indent=1) + "\n")


def _atomic_text(path: Path, text: str) -> None:
    write_file(str(path), text)  # atomic; an OSError is a diagnostic


def _floats(logs: dict | None) -> dict:
    return {k: float(v) for k, v in (logs or {}).items()}


class Evaluator:
    """Loss and accuracy over a whole dataset, every example counted once.

    Runs the model on one device, outside any distribution: a small validation split's
    batches need not split evenly across replicas, and evaluation is cheap next to training.
    """

    def __init__(self, model: keras.Model):
        @tf.function(reduce_retracing=True)
        def step(video, labels):
            logits = tf.cast(model(video, training=False)["logits"], tf.float32)
            loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            hit = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32),
                           tf.cast(labels, tf.int32))
            return tf.reduce_sum(loss), tf.reduce_sum(tf.cast(hit, tf.float32)), tf.size(labels)

        self._step = step

    def __call__(self, ds: tf.data.Dataset) -> dict:
        loss = hits = 0.0
        n = 0
        for video, labels in ds:
            batch_loss, batch_hits, size = self._step(video, labels)
            loss += float(batch_loss)
            hits += float(batch_hits)
            n += int(size)
        if n == 0:
            return {}
        return {"loss": loss / n, "accuracy": hits / n}


class _EpochEnd:
    """After every epoch: validation, the history entry, the logs (`runlog`), the checkpoint
    (`checkpoints`)."""

    def __init__(self, full_model, optimizer, lowered, net, history, checkpoint: RunCheckpoint,
                 log: RunLog, val_ds=None):
        self.full_model, self.opt, self.lowered, self.net = full_model, optimizer, lowered, net
        self.history = history
        self.checkpoint, self.log = checkpoint, log
        self.val_ds = val_ds
        self.evaluate = Evaluator(full_model)

    def __call__(self, n: int, logs: dict, seconds: float) -> dict:
        """Record epoch ``n`` (1-based); returns the logs with the validation metrics."""
        if self.val_ds is not None:
            logs = {**logs, **{f"val_{k}": v for k, v in self.evaluate(self.val_ds).items()}}
        # The rate the next step applies: the schedule at the optimizer's step count.
        rate = float(ops.convert_to_numpy(self.opt.learning_rate))
        entry = {"epoch": n, **_floats(logs), "learning_rate": rate,
                 "time_s": round(seconds, 3),
                 "connections": connection_weights(self.lowered, self.net)}
        self.history.append(entry)
        self.log.epoch(entry, self.history)
        self.checkpoint.save(n, self.history)
        return logs


def _train_step(strategy, model: keras.Model, optimizer, global_batch: int, xla: bool):
    """One distributed step on the next batch of a distributed iterator.

    Each replica's loss is its examples' cross-entropy summed and divided by the global batch;
    the optimizer sums the replicas' gradients, so the update is the global batch mean's.
    Returns the loss sum, correct predictions and example count over all replicas.
    """
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def replica_step(video, labels):
        with tf.GradientTape() as tape:
            logits = model(video, training=True)
            per_example = keras.losses.sparse_categorical_crossentropy(labels, logits,
                                                                       from_logits=True)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            if scaled:  # mixed precision: float16 gradients would underflow unscaled
                loss = optimizer.scale_loss(loss)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        hits = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32),
                        tf.cast(labels, tf.int32))
        return (tf.reduce_sum(per_example), tf.reduce_sum(tf.cast(hits, tf.float32)),
                tf.cast(tf.size(labels), tf.float32))

    if xla:
        replica_step = tf.function(replica_step, jit_compile=True)

    @tf.function
    def step(iterator):
        video, labels = next(iterator)
        out = strategy.run(replica_step, args=(video, labels))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in out]

    return step


def has_checkpoint(run: str | Path) -> bool:
    """Whether ``run`` holds a checkpoint that ``--resume`` continues."""
    return latest(Path(run)) is not None


def _prepare_run_dir(run: Path, options: TrainOptions, write: bool) -> dict | None:
    """Check the run directory against --resume/--overwrite; return the checkpoint to resume
    (whether it is a run of the same network is the caller's check: `RUN/net.asn`)."""
    if old_format(run) and not options.overwrite:
        raise TrainError(f"{run} holds checkpoints of an earlier asnc (epoch-NNN.weights.h5 "
                         "with .optimizer.npz), which cannot be resumed; its final.weights.h5 "
                         "still compiles. Pass --overwrite to start again there, or choose "
                         "another --out")
    ckpt = latest(run)
    if options.resume:
        return ckpt
    if ckpt is not None and not options.overwrite:
        raise TrainError(f"{run} already holds checkpoints (epoch {ckpt['epoch']}); pass "
                         "--resume to continue that run, --overwrite to start again, or "
                         "choose another --out")
    if write:
        remove_ours(run)
    return None


def _datasets(options: TrainOptions, net: Network, train_s, val_s, data_seed: int,
              strategy) -> tuple:
    hdr = net.header
    stats = D.DecodeStats()
    steps = options.steps or max(1, len(train_s) // options.batch)
    # Whole batches only: every step sees the global batch, split evenly across replicas.
    train_ds = D.make_dataset(train_s, hdr.frames, hdr.size, options.batch, training=True,
                              seed=data_seed, cache=options.cache, stats=stats,
                              drop_remainder=True).repeat()
    val_ds = None
    if val_s:
        val_ds = D.make_dataset(val_s, hdr.frames, hdr.size, options.batch, training=False,
                                seed=data_seed, cache=options.cache, stats=stats)
    if strategy.num_replicas_in_sync > 1 or options.strategy == "multiworker":
        opts = tf.data.Options()
        opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_ds = train_ds.with_options(opts)
    return train_ds, val_ds, steps, stats


def _fit_epoch(step, iterator, steps: int, epoch: int, epochs: int, epoch_end: _EpochEnd,
               verbose: int, batch: int = 0) -> None:
    """One epoch of ``steps`` steps, then `_EpochEnd`; progress per `epochbar` (``batch``:
    the global batch, for clips/s)."""
    t0 = time.time()
    loss = hits = count = 0.0
    with EpochProgress(epoch + 1, epochs, steps, batch, verbose) as bar:
        for i in range(steps):
            try:
                batch_loss, batch_hits, batch_count = step(iterator)
            except (StopIteration, tf.errors.OutOfRangeError):
                raise TrainError("no training batch could be read: too many videos failed to "
                                 "decode (see the warnings above)") from None
            loss += float(batch_loss)
            hits += float(batch_hits)
            count += float(batch_count)
            logs = {"loss": loss / count, "accuracy": hits / count}
            bar.update(i + 1, logs)
        train_seconds = bar.train_done()
        logs = epoch_end(epoch + 1, logs, time.time() - t0)
        bar.end(logs, train_seconds, time.time() - t0)


# ------------------------------------------------------------------------- train


def prepare_run(net: Network, options: TrainOptions, classes: list[str],
                samples, val_samples=None) -> PreparedRun:
    """Check a run of ``net`` (whose header already has ``len(classes)`` classes) on
    ``samples`` and ready its directory (created; old checkpoints removed with --overwrite).

    ``classes`` and ``samples`` come from `data.discover` (or `datasets.read_dataset`); the
    split is `data.split` with the options' ratio, list and seed. With ``val_samples`` (an
    official split: `datasets.Dataset.test`), ``samples`` are the training videos and
    ``val_samples`` the held-out ones, as given. Raises TrainError for a run that cannot
    start.
    """
    if any(isinstance(n, Stem) and n.type == "object" for n in net.nodes):
        raise TrainError("object stems need per-frame object maps, which a video folder does "
                         "not provide; training supports rgb and flow stems")
    if net.header.classes != len(classes):
        raise TrainError(f"the network has {net.header.classes} classes but the data "
                         f"{len(classes)}")
    strategy = make_strategy(options.strategy)
    if val_samples is not None:
        train_s, val_s = list(samples), list(val_samples)
    else:
        train_s, val_s = D.split(samples, options.val_ratio, options.seed, options.val_list)
    if len(train_s) < options.batch:
        raise TrainError(f"the training split has {len(train_s)} videos, fewer than the batch "
                         f"size {options.batch}; lower --batch")
    replicas = strategy.num_replicas_in_sync
    if options.batch % replicas:
        raise TrainError(f"the global batch {options.batch} does not split evenly across "
                         f"{replicas} replicas; use a multiple of {replicas}")

    write = _is_chief(strategy)
    run = Path(options.out)
    if write:
        try:
            run.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainError(f"cannot make the run directory `{run}`: "
                             f"{exc.strerror or exc}") from None
    ckpt = _prepare_run_dir(run, options, write)
    return PreparedRun(net, options, list(classes), strategy, train_s, val_s, run, ckpt, write)


def _final_evaluation(model, net: Network, classes: list[str], val_s, options: TrainOptions,
                      run: Path, verbose) -> dict | None:
    """The held-out videos under the evaluation protocol of `asnc eval` (`options.eval_clips`
    x `eval_crops` views, softmax averaged per video); the confusion matrix is drawn into
    ``RUN/confusion.png``/``.svg``. None when no held-out video decodes."""
    from ..plots import draw_confusion
    from .evaluate import KerasLogits, evaluate

    protocol = Protocol(options.eval_clips, options.eval_crops)
    hdr = net.header
    logits = KerasLogits(model, hdr.frames, tuple(hdr.size), hdr.classes, options.batch * 4)
    if verbose:
        print(f"Final evaluation: {protocol.describe()}", flush=True)
    try:
        with PassProgress("Final evaluation", len(val_s), enabled=bool(verbose)) as progress:
            result = evaluate(logits, val_s, classes, protocol, progress)
    except ValueError:
        return None
    s = result.summary
    if options.pictures:
        draw_confusion(s.confusion, classes, run / "confusion",
                       f"{hdr.name}: held-out top-1 {s.top1:.1%}, top-{s.k5} {s.top5:.1%} "
                       f"({s.videos} videos, {protocol.clips}x{protocol.crops} views)")
    if verbose:
        print(f"Final evaluation: top-1 {s.top1:.2%}, top-{s.k5} {s.top5:.2%}, mean per-class "
              f"{s.mean_class_accuracy:.2%} ({s.videos} videos)", flush=True)
    return result.as_dict(predictions=True)


def _learning_rate(options: TrainOptions, steps: int):
    """The optimizer's learning rate: a float, or a `schedules.WarmupSchedule`."""
    warmup = round(options.warmup_epochs * steps)
    if options.lr_schedule == "constant" and not warmup:
        return options.lr
    return WarmupSchedule(options.lr, options.epochs * steps, warmup, options.lr_schedule)


def _flow_in_float32(model: keras.Model) -> None:
    """The Representation Flow layer computes in float32 under mixed precision too: its 255-
    scaled images and iterated divergences lose the flow in float16 (its own casts assume
    float32 constants). Keras casts its input up and the next layer's input down."""
    from .repflow import RepresentationFlow

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, RepresentationFlow):
            layer.dtype_policy = "float32"


@contextlib.contextmanager
def _precision(mixed: bool):
    """The Keras dtype policy while the run builds and trains its model; restored after
    (the policy is process-wide, and a compile in the same process wants float32)."""
    before = keras.mixed_precision.global_policy()
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def train(prepared: PreparedRun) -> TrainResult:
    """Fit the network of a `prepare_run` run; checkpoint each epoch, evaluate at the end.

    Returns the trained model and the metrics also written to the run directory. Raises
    TrainError when no training batch can be read.
    """
    with _precision(prepared.options.mixed_precision):
        return _train(prepared)


def _train(prepared: PreparedRun) -> TrainResult:
    net, options, classes = prepared.net, prepared.options, prepared.classes
    strategy, run, ckpt, write = (prepared.strategy, prepared.dir, prepared.checkpoint,
                                  prepared.writes)
    train_s, val_s = prepared.train_samples, prepared.val_samples
    initial_epoch = ckpt["epoch"] if ckpt else 0
    history: list[dict] = list(ckpt["history"])[:initial_epoch] if ckpt else []
    keras.utils.set_random_seed(options.seed)
    # A resumed run should not replay the first epochs' clip order: shift the data seed.
    train_ds, val_ds, steps, stats = _datasets(options, net, train_s, val_s,
                                               options.seed + initial_epoch, strategy)
    if write:
        _atomic_text(run / LABELS_FILE, "".join(f"{c}\n" for c in classes))

    with strategy.scope():
        lowered = lower(net, seed=options.seed, form=LoweringForm.training())
        model = lowered.model
        if options.mixed_precision:
            _flow_in_float32(model)
        if options.initialise is not None and not ckpt:
            options.initialise(lowered)
        train_model = _logits_model(model)
        optimizer = keras.optimizers.Adam(learning_rate=_learning_rate(options, steps))
        if options.mixed_precision:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(train_model.trainable_variables)
        checkpoint = RunCheckpoint(run, model, optimizer, write)
        if ckpt:
            if checkpoint.restore(ckpt["path"]) != initial_epoch:
                raise TrainError(f"checkpoint {ckpt['path']} does not hold epoch "
                                 f"{initial_epoch}")
            if not isinstance(_learning_rate(options, steps), WarmupSchedule):
                optimizer.learning_rate = options.lr  # the command line's rate wins

    verbose = options.verbose
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    if not write:
        verbose = 0
    log = RunLog(run, write, {b.name: [i.source for i in b.inputs] for b in net.blocks},
                 [n.name for n in net.nodes], net.header.name, pictures=options.pictures)
    epoch_end = _EpochEnd(model, optimizer, lowered, net, history, checkpoint, log, val_ds)
    t0 = time.time()
    try:
        if initial_epoch < options.epochs:
            step = _train_step(strategy, train_model, optimizer, options.batch, options.xla)
            iterator = iter(strategy.experimental_distribute_dataset(train_ds))
            for epoch in range(initial_epoch, options.epochs):
                _fit_epoch(step, iterator, steps, epoch, options.epochs, epoch_end, verbose,
                           options.batch)
    finally:
        log.close()
        checkpoint.close()
    final = None
    if val_ds is not None:
        last = history[-1] if history else {}
        if "val_loss" in last:  # the last epoch's validation ran on these very weights
            final = {k: last[k] for k in ("val_loss", "val_accuracy")}
        else:
            final = {f"val_{k}": v for k, v in epoch_end.evaluate(val_ds).items()} or None
    evaluation = None
    if val_s and write:
        evaluation = _final_evaluation(model, net, classes, val_s, options, run, verbose)
    connections = connection_weights(lowered, net)
    protocol = Protocol(options.eval_clips, options.eval_crops)
    metrics = {
        "network": net.header.name,
        "classes": list(classes),
        "train_videos": len(train_s),
        "val_videos": len(val_s),
        "skipped_videos": stats.skipped_paths,
        "config": {**{k: v for k, v in asdict(options).items()
                      if k not in ("verbose", "initialise")},
                   "steps_per_epoch": steps, "frames": net.header.frames,
                   "size": list(net.header.size), "replicas": strategy.num_replicas_in_sync,
                   "resumed_from_epoch": initial_epoch,
                   "iterations": int(ops.convert_to_numpy(optimizer.iterations))},
        "history": history,
        "final": final,
        "evaluation": evaluation,
        # Which protocol each figure uses: per-epoch validation stays single-clip for speed.
        "protocols": {"history": "val_*: " + Protocol(1, 1).describe(),
                      "final": "val_*: " + Protocol(1, 1).describe() + " (the last epoch's)",
                      "evaluation": protocol.describe()},
        "connections": connections,
        "weights": FINAL_WEIGHTS,
        "network_file": NETWORK_FILE,
        "time_s": round(time.time() - t0, 3),
    }
    if write:
        tmp = run / ".final.tmp.weights.h5"
        model.save_weights(tmp)
        stamp(tmp, net)  # the header it was trained with, for `asnc compile --weights`
        os.replace(tmp, run / FINAL_WEIGHTS)
        _atomic_json(run / METRICS_FILE, metrics)
    return TrainResult(net, model, lowered, run, metrics, connections)
