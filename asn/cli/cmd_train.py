"""`asnc train`, `asnc search` (one-shot connectivity search) and `asnc connect`.

TensorFlow is imported inside the commands that need it, so the rest of the command line
stays fast. `connect` is a pure source-to-source command and never imports it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import os
import sys
import typing
from typing import Optional, Tuple

import typer

from .app import app
from .common import (EXIT_BAD_INPUT, allow_user_modules, apply_overrides, atomic_write,
                     err_console, load_checked, out, print_diagnostics)
from .dataset_args import Layout, LayoutOpt, SplitOpt, read_data
from .options import FramesOpt, ImportModulesOpt, SizeOpt, Strategy, StrategyOpt

__all__ = ["train", "search", "connect", "RunArgs"]

# Also in backends.tensorflow.train; repeated here to refuse a bad name without TensorFlow.
STRATEGIES = ("default", "mirrored", "multiworker")


class LrSchedule(str, enum.Enum):
    """`--lr-schedule` (backends.tensorflow.schedules.SCHEDULES; typer refuses others)."""
    constant = "constant"
    cosine = "cosine"

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


def _option(option) -> typing.Any:
    """A `RunArgs` field declared on the command line by the typer `option`."""
    return dataclasses.field(metadata={"option": option})


@dataclasses.dataclass(frozen=True)
class RunArgs:
    """The options `train` and `search` share, in their --help order (`_with_run_options`)."""

    data: str = _option(typer.Option(..., "--data", help="The dataset: UCF101, HMDB51 or "
                                     "Kinetics as distributed (split files), or "
                                     "DATA/<class>/<video>; the class count comes from it."))
    layout: Optional[Layout] = _option(LayoutOpt)
    split: Optional[int] = _option(SplitOpt)
    epochs: int = _option(typer.Option(10, "--epochs", min=1, help="Total epochs (a resumed run "
                                       "counts the epochs already done)."))
    batch: int = _option(typer.Option(8, "--batch", min=1, help="Global batch size."))
    lr: float = _option(typer.Option(1e-3, "--lr", min=0.0, help="Adam learning rate."))
    steps: Optional[int] = _option(typer.Option(None, "--steps", min=1, help="Steps per epoch "
                                                "(default: one pass over the training split)."))
    frames: Optional[int] = _option(FramesOpt)
    size: Optional[Tuple[int, int]] = _option(SizeOpt)
    val_ratio: float = _option(typer.Option(0.2, "--val-ratio", min=0.0, max=0.99,
                                            help="Per-class share of videos held out for "
                                            "validation."))
    val_list: Optional[str] = _option(typer.Option(None, "--val-list", help="UCF101 "
                                                   "testlist-style file: these videos are the "
                                                   "validation split (overrides --val-ratio)."))
    seed: int = _option(typer.Option(0, "--seed", min=0, help="Seed of initialisation, split "
                                     "and sampling."))
    out_dir: Optional[str] = _option(None)  # per command: the default run directory differs
    resume: bool = _option(typer.Option(False, "--resume", help="Continue from the last "
                                        "checkpoint in the run directory (weights and optimizer "
                                        "state)."))
    overwrite: bool = _option(typer.Option(False, "--overwrite", help="Start again in a run "
                                           "directory that holds checkpoints."))
    strategy: Strategy = _option(StrategyOpt)
    cache: bool = _option(typer.Option(False, "--cache", help="Keep decoded videos in memory "
                                       "(small data)."))
    xla: bool = _option(typer.Option(False, "--xla", help="Compile the training step with XLA."))
    lr_schedule: LrSchedule = _option(typer.Option(LrSchedule.constant, "--lr-schedule",
                                                   metavar="SCHEDULE", help="constant | cosine "
                                                   "(decay to 0 at the last step, as the Model "
                                                   "Garden's video configs)."))
    warmup_epochs: float = _option(typer.Option(0.0, "--warmup-epochs", min=0.0, metavar="E",
                                                help="Linear "
                                                "learning-rate warm-up from 0 over this many "
                                                "epochs (fractions allowed)."))
    mixed_precision: bool = _option(typer.Option(False, "--mixed-precision", help="Keras "
                                                 "mixed_float16 policy (float16 compute, "
                                                 "float32 variables and logits; loss "
                                                 "scaling)."))
    clips: int = _option(typer.Option(10, "--clips", min=1, metavar="K", help="Final "
                                      "evaluation: temporal clips per held-out video (as "
                                      "`asnc eval`)."))
    crops: int = _option(typer.Option(3, "--crops", min=1, max=3, metavar="C", help="Final "
                                      "evaluation: spatial crops per clip, 1 or 3."))
    quiet: bool = _option(typer.Option(False, "--quiet", "-q", help="No progress: only the "
                                       "final summary."))
    as_json: bool = _option(typer.Option(False, "--json", help="Print the run's results as "
                                         "JSON on stdout (no progress)."))
    import_modules: bool = _option(ImportModulesOpt)


def _with_run_options(default_out: str):
    """Add the `RunArgs` options to a command, after its own parameters; the command takes
    them as one keyword-only `args: RunArgs`. `default_out` is the default run directory
    that `--out`'s help names.

    Typer reads a command's options from its signature, so the wrapper carries the joined
    signature (and annotations) and regroups the values before calling the command.
    """
    out_opt = typer.Option(None, "--out", help=f"Run directory (default: {default_out}).")
    hints = typing.get_type_hints(RunArgs)
    fields = dataclasses.fields(RunArgs)
    shared = [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                default=out_opt if f.metadata["option"] is None
                                else f.metadata["option"],
                                annotation=hints[f.name]) for f in fields]

    def decorate(command):
        own = inspect.signature(command, eval_str=True)
        params = [p for p in own.parameters.values() if p.name != "args"] + shared

        @functools.wraps(command)
        def wrapper(**values):
            args = RunArgs(**{f.name: values.pop(f.name) for f in fields})
            return command(**values, args=args)

        wrapper.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate


def _stop(message: str, help: str | None = None) -> typer.Exit:
    err_console.print(f"error: {message}")
    if help:
        err_console.print(f"  = help: {help}")
    return typer.Exit(EXIT_BAD_INPUT)


def _discover(args: "RunArgs"):
    """Classes, training videos and the held-out videos of an official split (None for a
    plain folder: `--val-ratio`/`--val-list` choose them)."""
    ds = read_data(args.data, args.layout, args.split)
    data = args.data
    if len(ds.classes) < 2:
        raise _stop(f"`{data}` has {len(ds.classes)} class folder(s); training needs at least 2",
                    help="lay the videos out as DATA/<class>/<video>")
    if ds.official_split:
        if not ds.train:
            raise _stop(f"`{data}`: no training video of {ds.describe()} is on disk")
        if not args.quiet and not args.as_json:
            err_console.print(f"data: {ds.describe()}")
        return ds.classes, ds.train, ds.test, ds
    empty = [c for i, c in enumerate(ds.classes) if not any(lab == i for _, lab in ds.train)]
    if empty:
        raise _stop(f"class folder(s) without videos in `{data}`: {', '.join(empty)}")
    return ds.classes, ds.train, None, ds


def _check_arguments(args: RunArgs) -> None:
    """What can be refused before TensorFlow is imported (seconds on a small machine)."""
    if not os.path.isdir(args.data):
        raise _stop(f"data folder `{args.data}` does not exist")
    if args.strategy not in STRATEGIES:
        raise _stop(f"unknown strategy `{args.strategy}`; choose {', '.join(STRATEGIES)}")
    if args.warmup_epochs > args.epochs:
        raise _stop(f"--warmup-epochs {args.warmup_epochs:g} is longer than the "
                    f"{args.epochs} epochs of the run")
    if args.val_list is not None and not os.path.isfile(args.val_list):
        raise _stop(f"validation list `{args.val_list}` does not exist")
    if args.crops not in (1, 3):
        raise _stop(f"--crops must be 1 (centre) or 3 (along the long side), got {args.crops}")


def _load_for_training(file: str, args: RunArgs, relearn: bool = False, search: bool = False):
    """The network as trained: overrides, classes from the data; checked."""
    from ..compiler.connectivity import clear_weights, learnable_blocks
    from ..compiler.validation import check
    from ..dsl.diagnostics import DiagnosticError
    from ..dsl.ir import Stem

    allow_user_modules(args.import_modules)
    net, source = load_checked(file, args.frames, args.size)
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
    classes, samples, held_out, ds = _discover(args)
    if held_out is not None and args.val_list is not None:
        raise _stop("--val-list chooses held-out videos of a plain folder; this dataset's "
                    "split files already do", help="drop --val-list, or pick --split N")
    net = apply_overrides(net, classes=len(classes))
    diags = check(net)
    if any(d.is_error for d in diags):
        raise DiagnosticError(diags, source)
    return net, classes, (samples, held_out, ds.layout, ds.split)


def _options(args: RunArgs, default_out: str):
    from ..backends.tensorflow.train import TrainOptions

    try:
        return TrainOptions(data=args.data, out=args.out_dir or default_out, epochs=args.epochs,
                            batch=args.batch, lr=args.lr, steps=args.steps,
                            val_ratio=args.val_ratio, val_list=args.val_list, seed=args.seed,
                            resume=args.resume, overwrite=args.overwrite,
                            strategy=args.strategy, cache=args.cache, xla=args.xla,
                            lr_schedule=str(args.lr_schedule),
                            warmup_epochs=args.warmup_epochs,
                            mixed_precision=args.mixed_precision,
                            layout=str(args.layout) if args.layout is not None else None,
                            split=args.split, eval_clips=args.clips, eval_crops=args.crops,
                            verbose=0 if args.quiet or args.as_json else "auto")
    except ValueError as exc:
        raise _stop(str(exc)) from None


def _run(net, options, classes, data):
    """Prepare the run, write `RUN/net.asn` (the chief), train. `data`: the training videos
    and the held-out ones of an official split (None: split by `--val-ratio`)."""
    from ..backends.tensorflow.train import TrainError, prepare_run
    from ..backends.tensorflow.train import train as run_train
    from .rundir import resume_blocker, write_network

    try:
        samples, held_out, layout, split = data
        options = dataclasses.replace(options, layout=layout, split=split)  # as read
        run = prepare_run(net, options, classes, samples, held_out)
        if options.resume and run.checkpoint is None:
            err_console.print(f"note: no checkpoint in `{options.out}`; starting at epoch 1")
        blocker = resume_blocker(run.dir, net) if run.checkpoint is not None else None
        if blocker:
            raise _stop(blocker)
        if run.writes:
            write_network(run.dir, net)
        return run_train(run)
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
        out.print(f"validation (last epoch, 1 centred clip): accuracy {acc:.1%}, loss "
                  f"{final['val_loss']:.4f}")
    ev = m.get("evaluation")
    if ev:
        p = ev["protocol"]
        out.print(f"final evaluation ({p['clips']} clip(s) x {p['crops']} crop(s), "
                  f"{ev['videos']} videos): top-1 {ev['top1']:.1%}, top-{ev['top5_k']} "
                  f"{ev['top5']:.1%}, "
                  f"mean per-class {ev['mean_class_accuracy']:.1%}")
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


def _report(result, learnable: list[str], args: RunArgs, learned: str | None = None) -> None:
    """The summary (text), or with --json the run's results on stdout: metrics.json less the
    per-epoch history and per-video predictions, plus where the files are."""
    if not args.as_json:
        _summary(result, learnable)
        return
    import json

    m = dict(result.metrics)
    m.pop("history", None)
    if m.get("evaluation"):
        m["evaluation"] = {k: v for k, v in m["evaluation"].items() if k != "predictions"}
    m["run_dir"] = str(result.run_dir)
    if learned is not None:
        m["learned"] = learned
    sys.stdout.write(json.dumps(m, indent=1) + "\n")


@app.command()
@_with_run_options("runs/<network name>")
def train(file: str = typer.Argument(..., help="A network file."), *, args: RunArgs) -> None:
    """Train on a video folder; checkpoint each epoch; write final weights and metrics.json."""
    _check_arguments(args)
    net, classes, samples = _load_for_training(file, args)
    options = _options(args, os.path.join("runs", net.header.name))
    from ..compiler.connectivity import learnable_blocks

    result = _run(net, options, classes, samples)
    if _chief():
        _report(result, learnable_blocks(net), args)


@app.command()
@_with_run_options("runs/<network name>-search")
def search(
    file: str = typer.Argument(..., help="A network file (e.g. made by `asnc connect --all`)."),
    output: str = typer.Option(..., "-o", "--output", help="Write the network with the learned "
                               "connection weights here."),
    relearn: bool = typer.Option(False, "--relearn", help="Also learn the weights the source "
                                 "gives (otherwise they stay fixed)."),
    *,
    args: RunArgs,
) -> None:
    """One-shot connectivity search: train with learnable connection weights, write them into
    the network as `@w` (header as trained, comments kept); `asnc compile OUTPUT --weights
    RUN/final.weights.h5` then needs no other flag."""
    from ..compiler.connectivity import learnable_blocks, rounded_weight, with_weights
    from ..compiler.validation import check
    from ..dsl.printer import format_network

    _check_arguments(args)
    net, classes, samples = _load_for_training(file, args, relearn, search=True)
    learnable = learnable_blocks(net)
    options = _options(args, os.path.join("runs", f"{net.header.name}-search"))
    result = _run(net, options, classes, samples)
    # The network as trained (frames, size and classes of the run; the source's comments),
    # so the file fits the weights beside it. Learned weights to 6 significant digits:
    # compiled without --weights they change the logits by far less than 1e-4.
    learned = with_weights(result.net, {b: [rounded_weight(w) for w in result.connections[b]]
                                        for b in learnable})
    diags = check(learned)
    if any(d.is_error for d in diags):  # cannot happen for weights in (0, 1); guard anyway
        print_diagnostics(diags, None)
        raise typer.Exit(EXIT_BAD_INPUT)
    if not _chief():  # in a multi-worker run only the chief writes and reports
        return
    from .rundir import write_learned

    text = format_network(learned)
    write_learned(result.run_dir, text)
    atomic_write(output, text)
    _draw_learned(learned, result.run_dir)
    _report(result, learnable, args, output)
    if not args.as_json:
        err_console.print(f"wrote {output} ({sum(len(result.connections[b]) for b in learnable)} "
                      f"learned weights in {len(learnable)} blocks; also "
                      f"{result.run_dir / 'learned.asn'})")


def _draw_learned(net, run_dir) -> None:
    """`RUN/learned.svg`: the learned network as `asnc viz` draws it (edge width = weight);
    without Graphviz's `dot`, the `.dot` text."""
    from ..backends.graphviz import ExecutableNotFound, RenderError, render, to_graph

    graph = to_graph(net)
    try:
        atomic_write(str(run_dir / "learned.svg"), render(graph, "svg"))
    except ExecutableNotFound:
        atomic_write(str(run_dir / "learned.dot"), graph.source)
    except RenderError as exc:
        err_console.print(f"warning: could not draw the learned network: {exc}")


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

    if not all_:
        raise _stop("say which connections to add", help="`--all` connects every block to "
                    "every node of a lower level")
    net, _ = load_checked(file, warnings=False, refused_modules="note")
    dense, report = connect_all(net)
    diags = check(dense, refused_modules="note")
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

