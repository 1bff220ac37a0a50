"""`asnc train`, `asnc search` (one-shot connectivity search) and `asnc connect`.

TensorFlow is imported inside the commands that need it, so the rest of the command line
stays fast. `connect` is a pure source-to-source command and never imports it.
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Tuple

import typer

from .common import EXIT_BAD_INPUT, atomic_write, err_console, load_checked, out
from .main import FramesOpt, SizeOpt, app

__all__ = ["train", "search", "connect"]

# Options shared by `train` and `search` (typer reads them from the signature defaults).
DataOpt = typer.Option(..., "--data", help="Video folder DATA/<class>/<video> (UCF101 layout); "
                       "the class count comes from it.")
EpochsOpt = typer.Option(10, "--epochs", min=1, help="Total epochs (a resumed run counts the "
                         "epochs already done).")
BatchOpt = typer.Option(8, "--batch", min=1, help="Global batch size.")
LrOpt = typer.Option(1e-3, "--lr", min=0.0, help="Adam learning rate.")
StepsOpt = typer.Option(None, "--steps", min=1, help="Steps per epoch (default: one pass over "
                        "the training split).")
ValRatioOpt = typer.Option(0.2, "--val-ratio", min=0.0, max=0.99, help="Per-class share of "
                           "videos held out for validation.")
ValListOpt = typer.Option(None, "--val-list", help="UCF101 testlist-style file: these videos "
                          "are the validation split (overrides --val-ratio).")
SeedOpt = typer.Option(0, "--seed", min=0, help="Seed of initialisation, split and sampling.")
ResumeOpt = typer.Option(False, "--resume", help="Continue from the last checkpoint in the "
                         "run directory (weights and optimizer state).")
OverwriteOpt = typer.Option(False, "--overwrite", help="Start again in a run directory that "
                            "holds checkpoints.")
StrategyOpt = typer.Option("default", "--strategy", help="default | mirrored (all GPUs, or "
                           "all logical CPUs) | multiworker (cluster from TF_CONFIG).")
CacheOpt = typer.Option(False, "--cache", help="Keep decoded videos in memory (small data).")
XlaOpt = typer.Option(False, "--xla", help="Compile the training step with XLA.")
# Also in backends.tensorflow.train; repeated here to refuse a bad name without TensorFlow.
STRATEGIES = ("default", "mirrored", "multiworker")


def _stop(message: str, help: str | None = None) -> typer.Exit:
    err_console.print(f"error: {message}")
    if help:
        err_console.print(f"  = help: {help}")
    return typer.Exit(EXIT_BAD_INPUT)


def _discover(data: str):
    from ..backends.tensorflow.data import discover

    classes, samples = discover(data)
    if len(classes) < 2:
        raise _stop(f"`{data}` has {len(classes)} class folder(s); training needs at least 2",
                    help="lay the videos out as DATA/<class>/<video>")
    empty = [c for i, c in enumerate(classes) if not any(lab == i for _, lab in samples)]
    if empty:
        raise _stop(f"class folder(s) without videos in `{data}`: {', '.join(empty)}")
    return classes, samples


def _check_arguments(data: str, strategy: str, val_list: Optional[str]) -> None:
    """What can be refused before TensorFlow is imported (seconds on a small machine)."""
    if not os.path.isdir(data):
        raise _stop(f"data folder `{data}` does not exist")
    if strategy not in STRATEGIES:
        raise _stop(f"unknown strategy `{strategy}`; choose {', '.join(STRATEGIES)}")
    if val_list is not None and not os.path.isfile(val_list):
        raise _stop(f"validation list `{val_list}` does not exist")


def _load_for_training(file, data, frames, size, relearn=False, search=False):
    """The network as trained: overrides, classes from the data; checked."""
    from ..compiler.connectivity import clear_weights, learnable_blocks
    from ..compiler.validation import check
    from ..dsl.diagnostics import DiagnosticError
    from ..dsl.ir import Stem
    from .common import apply_overrides

    net, source = load_checked(file, frames, size)
    if relearn:
        net = clear_weights(net)
    objects = [s.name for s in net.nodes if isinstance(s, Stem) and s.type == "object"]
    if objects:
        raise _stop(f"object stem `{objects[0]}`: training reads only video, and object stems "
                    "need per-frame object maps", help="train a network of rgb and flow stems")
    if search and net.header.combine != "sigmoid":
        raise _stop(f"network `{net.header.name}` combines inputs by `{net.header.combine}`, "
                    "which has no connection weights to learn",
                    help="use `combine sigmoid` in the header")
    if search and not learnable_blocks(net):
        raise _stop("no block has learnable connection weights (every multi-input block gives "
                    "its weights)", help="pass --relearn to learn them again, or make a search "
                    "space with `asnc connect --all`")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads
    classes, samples = _discover(data)
    net = apply_overrides(net, classes=len(classes))
    diags = check(net)
    if any(d.is_error for d in diags):
        raise DiagnosticError(diags, source)
    return net, classes, samples


def _options(data, out_dir, default_out, epochs, batch, lr, steps, val_ratio, val_list, seed,
             resume, overwrite, strategy, cache, xla):
    from ..backends.tensorflow.train import TrainOptions

    try:
        return TrainOptions(data=data, out=out_dir or default_out, epochs=epochs, batch=batch,
                            lr=lr, steps=steps, val_ratio=val_ratio, val_list=val_list,
                            seed=seed, resume=resume, overwrite=overwrite, strategy=strategy,
                            cache=cache, xla=xla)
    except ValueError as exc:
        raise _stop(str(exc)) from None


def _run(net, options, classes, samples):
    from ..backends.tensorflow.train import CHECKPOINTS, TrainError, train as run_train

    if options.resume and not os.path.exists(os.path.join(options.out, CHECKPOINTS,
                                                          "last.json")):
        err_console.print(f"note: no checkpoint in `{options.out}`; starting at epoch 1")
    try:
        return run_train(net, options, classes, samples)
    except TrainError as exc:
        raise _stop(str(exc)) from None


def _summary(result, learnable: list[str]) -> None:
    from rich.table import Table

    m = result.metrics
    final = m["final"] or {}
    acc = final.get("val_accuracy")
    out.print(f"{m['network']}: {m['train_videos']} training / {m['val_videos']} validation "
              f"videos, {len(m['classes'])} classes (chance {1 / len(m['classes']):.1%})")
    if acc is not None:
        out.print(f"validation: accuracy {acc:.1%}, loss {final['val_loss']:.4f}")
    if m["skipped_videos"]:
        out.print(f"skipped {len(m['skipped_videos'])} unreadable video(s)")
    if learnable and result.connections:
        table = Table(title="learned connection weights (after sigmoid)", title_justify="left")
        table.add_column("block")
        table.add_column("inputs")
        blocks = {b.name: b for b in result.net.blocks}
        for name in learnable:
            ws = result.connections.get(name)
            if ws is None:
                continue
            table.add_row(name, ", ".join(f"{i.source} {w:.3f}"
                                          for i, w in zip(blocks[name].inputs, ws)))
        out.print(table)
    out.print(f"run directory: {result.run_dir} (weights {result.run_dir / m['weights']}, "
              f"network {result.run_dir / m['network_file']})")


@app.command()
def train(
    file: str = typer.Argument(..., help="A network file."),
    data: str = DataOpt,
    epochs: int = EpochsOpt,
    batch: int = BatchOpt,
    lr: float = LrOpt,
    steps: Optional[int] = StepsOpt,
    frames: Optional[int] = FramesOpt,
    size: Optional[Tuple[int, int]] = SizeOpt,
    val_ratio: float = ValRatioOpt,
    val_list: Optional[str] = ValListOpt,
    seed: int = SeedOpt,
    out_dir: Optional[str] = typer.Option(None, "--out", help="Run directory (default: "
                                          "runs/<network name>)."),
    resume: bool = ResumeOpt,
    overwrite: bool = OverwriteOpt,
    strategy: str = StrategyOpt,
    cache: bool = CacheOpt,
    xla: bool = XlaOpt,
) -> None:
    """Train on a video folder; checkpoint each epoch; write final weights and metrics.json."""
    _check_arguments(data, strategy, val_list)
    net, classes, samples = _load_for_training(file, data, frames, size)
    options = _options(data, out_dir, os.path.join("runs", net.header.name), epochs, batch, lr,
                       steps, val_ratio, val_list, seed, resume, overwrite, strategy, cache, xla)
    from ..compiler.connectivity import learnable_blocks

    result = _run(net, options, classes, samples)
    if _chief():
        _summary(result, learnable_blocks(net))


@app.command()
def search(
    file: str = typer.Argument(..., help="A network file (e.g. made by `asnc connect --all`)."),
    output: str = typer.Option(..., "-o", "--output", help="Write the network with the learned "
                               "connection weights here."),
    relearn: bool = typer.Option(False, "--relearn", help="Also learn the weights the source "
                                 "gives (otherwise they stay fixed)."),
    data: str = DataOpt,
    epochs: int = EpochsOpt,
    batch: int = BatchOpt,
    lr: float = LrOpt,
    steps: Optional[int] = StepsOpt,
    frames: Optional[int] = FramesOpt,
    size: Optional[Tuple[int, int]] = SizeOpt,
    val_ratio: float = ValRatioOpt,
    val_list: Optional[str] = ValListOpt,
    seed: int = SeedOpt,
    out_dir: Optional[str] = typer.Option(None, "--out", help="Run directory (default: "
                                          "runs/<network name>-search)."),
    resume: bool = ResumeOpt,
    overwrite: bool = OverwriteOpt,
    strategy: str = StrategyOpt,
    cache: bool = CacheOpt,
    xla: bool = XlaOpt,
) -> None:
    """One-shot connectivity search: train with learnable connection weights, write them into
    the source as `@w` (canonical text, comments kept)."""
    from ..compiler.connectivity import clear_weights, learnable_blocks, with_weights
    from ..compiler.validation import check
    from ..dsl.loader import load_text
    from ..dsl.printer import format_network
    from ..dsl.textio import read_text
    from .common import print_diagnostics

    _check_arguments(data, strategy, val_list)
    net, classes, samples = _load_for_training(file, data, frames, size, relearn, search=True)
    learnable = learnable_blocks(net)
    options = _options(data, out_dir, os.path.join("runs", f"{net.header.name}-search"), epochs,
                       batch, lr, steps, val_ratio, val_list, seed, resume, overwrite, strategy,
                       cache, xla)
    result = _run(net, options, classes, samples)
    # Write into the source as written (its header, its comments), not the overridden copy.
    source_net = load_text(read_text(file), file)
    if relearn:
        source_net = clear_weights(source_net)
    learned = with_weights(source_net, {b: result.connections[b] for b in learnable})
    diags = check(learned)
    if any(d.is_error for d in diags):  # cannot happen for weights in (0, 1); guard anyway
        print_diagnostics(diags, None)
        raise typer.Exit(EXIT_BAD_INPUT)
    if not _chief():  # in a multi-worker run only the chief writes and reports
        return
    atomic_write(output, format_network(learned))
    _summary(result, learnable)
    err_console.print(f"wrote {output} ({sum(len(result.connections[b]) for b in learnable)} "
                      f"learned weights in {len(learnable)} blocks)")


def _chief() -> bool:
    import json

    cfg = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = cfg.get("task") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index", 0) == 0 and \
        "chief" not in (cfg.get("cluster") or {})


@app.command()
def connect(
    file: str = typer.Argument(..., help="A network file."),
    all_: bool = typer.Option(False, "--all", help="Connect every block to every node of a "
                              "lower level (stems are below level 0): the AssembleNet search "
                              "space."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Write the .asn here "
                                         "(default: stdout)."),
) -> None:
    """Make a connectivity search space: add connections, remove every weight (learn them)."""
    from ..compiler.connectivity import connect_all
    from ..compiler.validation import check
    from ..dsl.printer import format_network
    from .common import print_diagnostics

    if not all_:
        raise _stop("say which connections to add", help="`--all` connects every block to "
                    "every node of a lower level")
    net, _ = load_checked(file, warnings=False)
    dense, report = connect_all(net)
    diags = check(dense)
    if any(d.is_error for d in diags):
        err_console.print(f"error: the connected network of `{file}` does not check:")
        print_diagnostics(diags, None)
        raise typer.Exit(EXIT_BAD_INPUT)
    print_diagnostics([d for d in diags if not d.is_error], None)
    text = format_network(dense)
    edges = sum(len(b.inputs) for b in dense.blocks)
    err_console.print(f"{net.header.name}: added {report.edges_added} connection(s) to "
                      f"{len(report.added)} block(s); {edges} in all, every weight learnable")
    for src, dst in report.skipped:
        err_console.print(f"  skipped `{src}` -> `{dst}`: `{dst}` already feeds `{src}`")
    if output:
        atomic_write(output, text)
    else:
        sys.stdout.write(text)

