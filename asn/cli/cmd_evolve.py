"""`asnc evolve`: AssembleNet's evolutionary architecture search, trials on Ray.

The IR side (mutations, aging selection, budgets, Pareto front, journal) is
`compiler/evolution/`; a trial (brief one-shot training, held-out top-1) is
`backends/tensorflow/trial.py`; the loop on Ray is `evolve_loop.py`; the outputs
`evolve_outputs.py` (its picture: `backends/plots/evolution.py`).
"""

from __future__ import annotations

import enum
import json
import os
import sys
from pathlib import Path
from typing import Optional, Tuple

import typer

from .app import app
from .common import EXIT_BAD_INPUT, apply_overrides, err_console, load_checked
from .dataset_args import Layout, LayoutOpt, SplitOpt
from .options import FramesOpt, SizeOpt

__all__ = ["evolve"]

CONFIG_FILE = "evolve.json"
# what a run whose evolve.json predates these settings did: a plain folder's --val-ratio split,
# the fitness from one centred clip per video
LEGACY_SETTINGS = {"layout": "folder", "split": None, "clips": 1, "crops": 1}


class Selection(str, enum.Enum):
    """`--selection`: aging evolution, or the random-search baseline."""
    aging = "aging"
    random = "random"

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


def _stop(message: str, help: str | None = None) -> typer.Exit:
    err_console.print(f"error: {message}")
    if help:
        err_console.print(f"  = help: {help}")
    return typer.Exit(EXIT_BAD_INPUT)


@app.command()
def evolve(
    seed_file: str = typer.Argument(..., metavar="SEED.asn", help="The seed network: the "
                                    "initial population is made of its mutants."),
    data: str = typer.Option(..., "--data", metavar="DIR", help="The dataset: UCF101, "
                             "HMDB51 or Kinetics as distributed (split files: trials train on "
                             "the split's training videos, the fitness is top-1 on its test "
                             "videos), or DATA/<class>/<video> (the fitness is top-1 on the "
                             "videos --val-ratio and --seed hold out)."),
    layout: Optional[Layout] = LayoutOpt,
    split: Optional[int] = SplitOpt,
    population: int = typer.Option(8, "--population", min=1, metavar="N",
                                   help="Population size of the aging evolution."),
    sample: int = typer.Option(3, "--sample", min=1, metavar="S", help="Individuals sampled "
                               "per step; the fittest of them is the parent."),
    trials: int = typer.Option(24, "--trials", min=1, metavar="K", help="Trials in all "
                               "(the initial population included; a resumed run may raise it)."),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Training epochs per trial."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, metavar="M", help="Steps per "
                                        "epoch (default: one pass over the training split)."),
    batch: int = typer.Option(8, "--batch", min=1, help="Batch size of a trial."),
    lr: float = typer.Option(1e-3, "--lr", min=0.0, help="Adam learning rate of a trial."),
    frames: Optional[int] = FramesOpt,
    size: Optional[Tuple[int, int]] = SizeOpt,
    max_gflops: Optional[float] = typer.Option(None, "--max-gflops", min=0.0, metavar="G",
                                               help="Reject (never train) children over this "
                                               "many GFLOPs per clip."),
    max_params: Optional[int] = typer.Option(None, "--max-params", min=1, metavar="P",
                                             help="Reject (never train) children with more "
                                             "parameters."),
    seed: int = typer.Option(0, "--seed", min=0, metavar="X", help="Seed of the search "
                             "(mutations, sampling), the split and the trials' "
                             "initialisation."),
    address: Optional[str] = typer.Option(None, "--address", metavar="RAY", help="Join this "
                                          "Ray cluster (`auto`, `HOST:6379`, "
                                          "`ray://HOST:10001`); default: start a local Ray "
                                          "sized to this machine."),
    cpus_per_trial: float = typer.Option(1.0, "--cpus-per-trial", min=0.0, metavar="C",
                                         help="CPUs Ray reserves for each trial."),
    gpus_per_trial: float = typer.Option(0.0, "--gpus-per-trial", min=0.0, metavar="G",
                                         help="GPUs Ray reserves for each trial."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1, help="Trials at "
                                              "once (default: as many as the cluster's "
                                              "resources fit)."),
    threshold: float = typer.Option(0.2, "--threshold", min=0.0, max=1.0, help="Connection-"
                                    "learning-guided mutation: connections learned weaker "
                                    "than this are removed."),
    initial_mutations: int = typer.Option(2, "--initial-mutations", min=0, help="Mutations "
                                          "applied to the seed for each initial individual."),
    selection: Selection = typer.Option(Selection.aging, "--selection", metavar="SELECTION",
                                        help="aging (regularized evolution) | random (random "
                                        "search: every individual is a fresh mutant of the "
                                        "seed; the baseline)."),
    retries: int = typer.Option(2, "--retries", min=0, help="Retries of a trial whose worker "
                                "died (a trial that fails on its data is not retried)."),
    val_ratio: float = typer.Option(0.2, "--val-ratio", min=0.01, max=0.99, help="Plain "
                                    "folder: per-class share of videos held out for the "
                                    "fitness."),
    clips: int = typer.Option(1, "--clips", min=1, metavar="K", help="Fitness: temporal clips "
                              "per held-out video (the protocol of `asnc eval`; default 1: "
                              "`train`'s 10x3 would cost every trial ~30 evaluation passes)."),
    crops: int = typer.Option(1, "--crops", min=1, max=3, metavar="C", help="Fitness: "
                              "spatial crops per clip, 1 (centre) or 3."),
    cache: bool = typer.Option(False, "--cache", help="Keep decoded videos in memory in each "
                               "trial (small data)."),
    random_init: bool = typer.Option(False, "--random-init", help="Make the initial "
                                     "population (and --selection random's individuals) "
                                     "random networks within the bounds below, with the "
                                     "seed's header and stems, instead of seed mutants."),
    random_blocks: Tuple[int, int] = typer.Option((1, 2), "--random-blocks",
                                                  metavar="MIN MAX", help="--random-init: "
                                                  "blocks per level 0..3."),
    random_filters: str = typer.Option("8,16,32", "--random-filters", metavar="F,F,...",
                                       help="--random-init: block widths to draw from."),
    random_inputs: int = typer.Option(3, "--random-inputs", min=1, help="--random-init: "
                                      "at most this many inputs per block."),
    warm_start: bool = typer.Option(False, "--warm-start", help="Start a child's unchanged "
                                    "stems and blocks from its parent's trained weights "
                                    "(default: from scratch, the paper's setting; needs RUN "
                                    "on a file system every Ray node shares)."),
    out_dir: str = typer.Option(..., "--out", metavar="RUN", help="Run directory: "
                                "journal.jsonl, best.asn, pareto/, evolution.png, trials/."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in RUN without "
                                "repeating its finished trials."),
    json_out: bool = typer.Option(False, "--json", help="Print the run's summary as JSON on "
                                  "stdout."),
) -> None:
    """Evolutionary architecture search (aging evolution with connection-learning-guided
    mutation): each trial trains a network briefly with learnable connection weights and
    scores it by held-out top-1 accuracy; trials run as Ray tasks."""
    from .evolve_loop import EvolveConfig, EvolveError

    if not os.path.isdir(data):
        raise _stop(f"data folder `{data}` does not exist")
    if crops not in (1, 3):
        raise _stop(f"--crops must be 1 (centre) or 3 (along the long side), got {crops}")
    try:
        widths = tuple(int(f) for f in random_filters.split(","))
        if not widths or min(widths) < 1 or max(widths) > 65536:
            raise ValueError
    except ValueError:
        raise _stop(f"--random-filters takes comma-separated widths 1..65536, got "
                    f"`{random_filters}`") from None
    if not 1 <= random_blocks[0] <= random_blocks[1] <= 64:
        raise _stop(f"--random-blocks takes MIN MAX with 1 <= MIN <= MAX <= 64, got "
                    f"{random_blocks[0]} {random_blocks[1]}")
    ds = _read_data(data, layout, split)
    cfg = EvolveConfig(data=os.path.abspath(data), out=os.path.abspath(out_dir),
                       layout=ds.layout, split=ds.split, clips=clips, crops=crops,
                       population=population, sample=sample, trials=trials, epochs=epochs,
                       steps=steps, batch=batch, lr=lr, val_ratio=val_ratio, seed=seed,
                       max_gflops=max_gflops, max_params=max_params, threshold=threshold,
                       initial_mutations=initial_mutations, selection=str(selection),
                       retries=retries, cpus_per_trial=cpus_per_trial,
                       gpus_per_trial=gpus_per_trial, cache=cache, warm_start=warm_start,
                       random_init=random_init,
                       random_blocks=(random_blocks[0], random_blocks[1]),
                       random_filters=widths, random_inputs=random_inputs)
    net = _seed_network(seed_file, frames, size, len(ds.classes))
    run_dir = Path(out_dir)
    _prepare_run_dir(run_dir, cfg, net, resume)
    try:
        result = _run(cfg, net, run_dir, address, concurrency)
    except EvolveError as exc:
        raise _stop(str(exc)) from None
    _report(result, run_dir, json_out)


def _read_data(data: str, layout: Optional[Layout], split: Optional[int]):
    """The dataset as its layout defines it (detected, or --layout), checked for a search:
    two classes or more, and videos to train on and to score the fitness on."""
    from .dataset_args import read_data

    ds = read_data(data, layout, split)
    if len(ds.classes) < 2:
        raise _stop(f"`{data}` has {len(ds.classes)} class(es); a search needs at least 2")
    if ds.official_split:
        if not ds.train or not ds.test:
            raise _stop(f"`{data}`: {ds.describe()}; a search needs training and test videos "
                        "on disk")
        err_console.print(f"data: {ds.describe()}: trials train on the training videos, the "
                          "fitness is top-1 on the test videos")
    return ds


def _seed_network(path: str, frames, size, classes: int):
    from ..compiler.validation import check
    from ..dsl.diagnostics import DiagnosticError
    from ..dsl.ir import Stem

    net, source = load_checked(path, frames, size)
    objects = [s.name for s in net.nodes if isinstance(s, Stem) and s.type == "object"]
    if objects:
        raise _stop(f"object stem `{objects[0]}`: trials train on video only, and object "
                    "stems need per-frame object maps")
    if net.header.combine != "sigmoid":
        raise _stop(f"network `{net.header.name}` combines inputs by `{net.header.combine}`, "
                    "which has no connection weights to learn",
                    help="use `combine sigmoid` in the header")
    net = apply_overrides(net, classes=classes)
    diags = check(net)
    if any(d.is_error for d in diags):
        raise DiagnosticError(diags, source)
    return net


def _prepare_run_dir(run_dir: Path, cfg, net, resume: bool) -> None:
    """Make RUN, or check that --resume continues a run of the same seed and settings."""
    from ..compiler.evolution.journal import Journal
    from ..dsl.loader import load_text
    from ..dsl.printer import format_network
    from .common import atomic_write

    config_path = run_dir / CONFIG_FILE
    if resume:
        try:
            saved = json.loads(config_path.read_text(encoding="utf-8"))
            saved_net = load_text(saved["seed_network"], f"{config_path} (seed_network)")
            saved_cfg = saved["config"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise _stop(f"`{run_dir}` holds no evolution run to resume ({CONFIG_FILE}: "
                        f"{getattr(exc, 'strerror', None) or exc})") from None
        except Exception as exc:  # a DiagnosticError: the saved seed does not load
            raise _stop(f"{config_path}: the saved seed network does not load: {exc}") from None
        if saved_net != net:
            raise _stop(f"`{run_dir}` is a run of another seed network (see {config_path})",
                        help="resume with the seed, --frames and --size of that run")
        now = json.loads(json.dumps(cfg.to_json()))  # as saved: tuples are JSON lists
        saved_cfg = {**LEGACY_SETTINGS, **saved_cfg}
        changed = [k for k, v in now.items()
                   if k not in cfg.RESUMABLE_CHANGES and saved_cfg.get(k) != v]
        if changed:
            k = changed[0]
            raise _stop(f"--resume with another setting: {k} was {saved_cfg.get(k)!r}, now "
                        f"{now[k]!r}", help="repeat the run's options (only "
                        "--trials and --retries may change; the dataset's layout and split "
                        "are part of the run)")
    elif Journal(run_dir).exists():
        raise _stop(f"`{run_dir}` already holds an evolution run", help="pass --resume to "
                    "continue it, or choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _stop(f"cannot make the run directory `{run_dir}`: {exc.strerror or exc}") \
            from None
    atomic_write(str(config_path), json.dumps({"config": cfg.to_json(),
                                               "seed_network": format_network(net)},
                                              indent=2) + "\n")


def _run(cfg, net, run_dir: Path, address: Optional[str], concurrency: Optional[int]) -> dict:
    from ..compiler.evolution.journal import Journal
    from .evolve_loop import Evolution, Progress, RayExecutor
    from .evolve_outputs import write_outputs

    journal = Journal(run_dir)
    progress = Progress(lambda line: err_console.print(line), cfg.trials)
    evolution = None
    if journal.exists():
        done = sum(1 for r in journal.read() if r["status"] in ("done", "failed"))
        err_console.print(f"resuming {run_dir}: {done} of {cfg.trials} trials finished"
                          + (f" ({journal.torn} torn line(s) skipped)" if journal.torn else ""))
    executor = None
    try:
        if sum(1 for r in journal.read() if r["status"] in ("done", "failed")) < cfg.trials:
            executor = RayExecutor(address, cfg.cpus_per_trial, cfg.gpus_per_trial)
            slots = concurrency or executor.slots
            where = f"cluster {address}" if address else "local"
            err_console.print(f"Ray: {executor.resources} ({where}); {slots} trial(s) at once")
            evolution = Evolution(cfg, net, journal, executor, progress, slots)
            try:
                evolution.run()
            except KeyboardInterrupt:
                err_console.print(f"interrupted: {evolution.finished_trials} of {cfg.trials} "
                                  "trials finished; continue with the same command and "
                                  "--resume")
                raise
    finally:
        if executor is not None:
            executor.shutdown()
    records = journal.read()
    resumed_with = evolution.resumed_with if evolution is not None else len(records)
    result = write_outputs(run_dir, records, cfg.to_json(), resumed_with)
    return result


def _report(result: dict, run_dir: Path, json_out: bool) -> None:
    best = result["best"]
    err_console.print(f"{result['trials']} trials: {result['done']} done, {result['failed']} "
                      f"failed, {result['retried']} retried after a worker died, "
                      f"{result['rejected']} rejected over budget")
    if best is not None:
        err_console.print(f"best: trial {best['id']}, held-out top-1 {best['fitness']:.4f}, "
                          f"{best['gflops']:.4f} GFLOPs, {best['params']:,} parameters -> "
                          f"{run_dir / 'best.asn'}")
        err_console.print(f"Pareto front (accuracy vs GFLOPs): trials "
                          f"{', '.join(map(str, result['pareto']))} -> {run_dir / 'pareto'}")
    err_console.print(f"wrote {run_dir / 'evolution.png'}, {run_dir / 'evolution.svg'}, "
                      f"{run_dir / 'journal.jsonl'}")
    if json_out:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    if best is None:
        raise _stop("no trial finished successfully (see the errors in the journal)")
