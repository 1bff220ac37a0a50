"""The loop of `asnc evolve`: aging evolution whose trials run as Ray tasks.

Why Ray core tasks and not Ray Tune: aging evolution is a steady-state loop (each finished
trial adds one individual and frees a slot for one child of the current population), which is
a `ray.wait` loop of a few lines; the run's state is our own journal (`RUN/journal.jsonl`),
so resuming is re-reading it, with no second experiment state (Tune's) to keep consistent
with it; worker deaths come back as `ray.exceptions.WorkerCrashedError` from `ray.get`, so
the retries are ours, bounded and recorded; and `ray` alone installs far less than
`ray[tune]` (pandas, pyarrow, ...).

The loop never imports TensorFlow: the trials do, in the Ray workers (`backends/tensorflow/
trial.py`). `Executor` is what the loop needs of Ray, so the loop also runs on a stand-in.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..backends.tensorflow.trial import WORKER_FILE, TrialSpec
from ..compiler.evolution.budget import Budget, cost
from ..compiler.evolution.journal import TRIAL_STATUSES, Journal
from ..compiler.connectivity import clear_weights
from ..compiler.evolution.mutations import MutationError, inherit, mutate, without_comments
from ..compiler.evolution.random_net import RandomBounds, random_network
from ..compiler.evolution.selection import AgingPopulation, Member
from ..dsl.ir import Network
from ..dsl.loader import load_text
from ..dsl.printer import format_network

__all__ = ["EvolveConfig", "EvolveError", "WorkerDied", "Executor", "RayExecutor", "Evolution",
           "Progress", "TRIALS_DIR", "MAX_REJECTIONS"]

TRIALS_DIR = "trials"
MAX_REJECTIONS = 200  # children over budget in a row before the run gives up


class EvolveError(RuntimeError):
    """The run cannot start or continue (reported as a diagnostic, exit 1)."""


class WorkerDied(RuntimeError):
    """The process (or node) running a trial died: the trial is retried, bounded."""


@dataclass(frozen=True)
class EvolveConfig:
    data: str
    out: str
    # the dataset as read (`backends.datasets`): an official split's training videos train a
    # trial and its test videos are the fitness; a plain folder ("folder", split None) holds
    # out --val-ratio with the run's seed
    layout: str = "folder"
    split: int | None = None
    population: int = 8
    sample: int = 3
    trials: int = 24
    epochs: int = 1
    steps: int | None = None
    batch: int = 8
    lr: float = 1e-3
    val_ratio: float = 0.2
    seed: int = 0
    max_gflops: float | None = None
    max_params: int | None = None
    threshold: float = 0.2
    initial_mutations: int = 2
    selection: str = "aging"  # aging | random (the baseline: every individual from the seed)
    retries: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    cache: bool = False
    warm_start: bool = False
    random_init: bool = False  # the initial population: random networks, not seed mutants
    random_blocks: tuple[int, int] = (1, 2)
    random_filters: tuple[int, ...] = (8, 16, 32)
    random_inputs: int = 3
    clips: int = 1  # the fitness's evaluation protocol (`asnc eval`): clips x crops per video
    crops: int = 1

    # what must match for --resume (the trial count may grow; where it runs may change)
    RESUMABLE_CHANGES = ("trials", "retries", "out")

    def to_json(self) -> dict:
        return asdict(self)


class Executor(Protocol):
    def submit(self, spec: TrialSpec) -> Any: ...

    def wait(self, handles: list, timeout: float) -> list: ...

    def result(self, handle: Any) -> dict: ...


class RayExecutor:
    """Trials as Ray tasks: a local instance sized to the machine, or the cluster at `address`
    (`auto`, `ray://host:10001`, `host:6379`)."""

    def __init__(self, address: str | None, cpus_per_trial: float, gpus_per_trial: float,
                 local_cpus: int | None = None) -> None:
        import os

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import logging

        import ray
        from ray import exceptions

        from ..backends.tensorflow.trial import run_trial

        self._ray, self._exceptions = ray, exceptions
        try:
            ray.init(address=address or "local", num_cpus=local_cpus if not address else None,
                     include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                     configure_logging=True)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = f"the Ray cluster at `{address}`" if address else "a local Ray instance"
            raise EvolveError(f"cannot start or join {where}: {exc}") from None
        _restore_ctrl_c()
        self._remote = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial,
                                  max_retries=0)(run_trial)
        res = ray.cluster_resources()
        slots = [res.get("CPU", 1.0) / cpus_per_trial] if cpus_per_trial else []
        if gpus_per_trial:
            slots.append(res.get("GPU", 0.0) / gpus_per_trial)
        self.slots = max(1, int(min(slots, default=1.0)))
        self.resources = {k: v for k, v in res.items() if k in ("CPU", "GPU")}

    def submit(self, spec: TrialSpec) -> Any:
        return self._remote.remote(spec)

    def wait(self, handles: list, timeout: float) -> list:
        ready, _ = self._ray.wait(handles, num_returns=1, timeout=timeout, fetch_local=False)
        return ready

    def result(self, handle: Any) -> dict:
        ex = self._exceptions
        died = tuple(getattr(ex, n) for n in ("WorkerCrashedError", "NodeDiedError",
                                                "OutOfMemoryError", "ObjectLostError",
                                                "LocalRayletDiedError") if hasattr(ex, n))
        try:
            return self._ray.get(handle)
        except died as exc:
            raise WorkerDied(_first_line(exc)) from None
        except ex.RayTaskError as exc:  # the trial raised (a bug, not bad data): recorded
            return {"status": "failed", "error": f"the trial raised: {_first_line(exc)}",
                    "finished": time.time()}

    def shutdown(self) -> None:
        self._ray.shutdown()


def _restore_ctrl_c() -> None:
    """Put Python's SIGINT handler back: after `ray.init` in a process that imported
    TensorFlow, Ctrl-C no longer reached Python (measured: the loop kept running), although
    `signal.getsignal` still named Python's handler (the native one had been replaced)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        handler = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, handler if callable(handler) else
                      signal.default_int_handler)


def _first_line(exc: BaseException) -> str:
    lines = [s for s in str(exc).splitlines() if s.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:500]


class Progress:
    """One line per trial state on stderr (queued / running / done / failed), with the
    best so far. `print` must not read markup: user text (names) goes through as is."""

    def __init__(self, print_line: Callable[[str], None], trials: int) -> None:
        self.print = print_line
        self.width = len(str(trials))
        self.trials = trials

    def line(self, rec: dict, state: str, detail: str) -> None:
        self.print(f"trial {rec['id']:>{self.width}}  {state:<8} {detail}")


def describe(mutation: list[dict]) -> str:
    parts = []
    for m in mutation:
        p = {k: v for k, v in m.items() if k not in ("kind", "inherited")}
        if m["kind"] == "random":
            parts.append(f"random network ({m['blocks']} blocks)")
        elif m["kind"] == "connections":
            parts.append(f"connections(-{len(p['removed'])} +{len(p['added'])})")
        else:
            parts.append(f"{m['kind']}({', '.join(f'{k}={v}' for k, v in p.items())})")
    return " + ".join(parts) or "seed"


@dataclass
class _Pending:
    draft: dict
    spec: TrialSpec
    attempt: int = 1
    shown_running: bool = False
    failures: list = field(default_factory=list)


class Evolution:
    """The run: journal, population and the trials in flight."""

    def __init__(self, cfg: EvolveConfig, seed_net: Network, journal: Journal,
                 executor: Executor, progress: Progress, concurrency: int) -> None:
        self.cfg, self.seed_net, self.journal = cfg, seed_net, journal
        self.executor, self.progress, self.concurrency = executor, progress, concurrency
        self.budget = Budget(cfg.max_gflops, cfg.max_params)
        self.records = journal.read()
        self.by_id = {r["id"]: r for r in self.records}
        self._nets: dict[int, Network] = {}
        members = [Member(r["id"], r["fitness"]) for r in self.records
                   if r["status"] == "done" and r.get("fitness") is not None]
        self.population = AgingPopulation(cfg.population, members)
        self.next_id = max(self.by_id, default=0) + 1
        self.resumed_with = self.finished_trials

    @property
    def finished_trials(self) -> int:
        return sum(1 for r in self.records if r["status"] in TRIAL_STATUSES)

    def best(self) -> dict | None:
        done = [r for r in self.records if r["status"] == "done"]
        return max(done, key=lambda r: (r["fitness"], -r["gflops"], -r["id"]), default=None)

    def _net(self, rid: int) -> Network:
        if rid not in self._nets:
            self._nets[rid] = load_text(self.by_id[rid]["network"], f"<journal: {rid}>")
        return self._nets[rid]

    def _append(self, record: dict) -> None:
        self.journal.append(record)
        self.records.append(record)
        self.by_id[record["id"]] = record

    # ------------------------------------------------------------------ proposing

    def _propose(self, initial: bool) -> dict:
        """The next child (its draft record), within budget; rejected children recorded."""
        for _ in range(MAX_REJECTIONS):
            rid = self.next_id
            self.next_id += 1
            seed = self.cfg.seed * 1_000_003 + rid  # the child's own stream: reproducible
            rng = random.Random(seed)
            try:
                fresh = initial or self.cfg.selection == "random" or not len(self.population)
                if fresh and self.cfg.random_init:
                    bounds = RandomBounds(self.cfg.random_blocks, self.cfg.random_filters,
                                          self.cfg.random_inputs)
                    parent, net = None, random_network(self.seed_net, rng, bounds)
                    mutation = [{"kind": "random", "blocks": len(net.blocks)}]
                    inherited = {}
                elif fresh:
                    parent, net, mutation = None, self.seed_net, []
                    for _ in range(self.cfg.initial_mutations):
                        net, m = mutate(net, rng, None, self.cfg.threshold)
                        mutation.append(m)
                    if not mutation:  # the seed itself: its connection weights learned again
                        net = without_comments(clear_weights(net))
                    inherited = inherit(self.seed_net, None, net)
                else:
                    member = self.population.select_parent(rng, self.cfg.sample)
                    parent = member.id
                    learned = self.by_id[parent].get("connections")
                    net, m = mutate(self._net(parent), rng, learned, self.cfg.threshold)
                    mutation = [m]
                    inherited = inherit(self._net(parent), learned, net)
            except MutationError as exc:
                raise EvolveError(str(exc)) from None
            c = cost(net)
            draft = {"id": rid, "parent": parent, "mutation": mutation, "seed": seed,
                     "inherited": inherited,
                     "gflops": c.gflops, "params": c.params, "network": format_network(net),
                     "fitness": None}
            reason = self.budget.violation(c)
            if reason is None:
                self._nets[rid] = net
                return draft
            now = time.time()
            self._append({**draft, "status": "rejected", "error": reason, "started": now,
                          "finished": now, "wall_s": 0.0, "attempts": 0})
            self.progress.line(draft, "rejected", reason)
        raise EvolveError(f"{MAX_REJECTIONS} children in a row were over the budget; raise "
                          "--max-gflops / --max-params or start from a smaller seed")

    def _spec(self, draft: dict, attempt: int) -> TrialSpec:
        cfg = self.cfg
        parent = draft["parent"]
        warm = None
        if cfg.warm_start and parent is not None:
            warm = (self._net(parent), str(Path(cfg.out) / TRIALS_DIR / str(parent) /
                                           "final.weights.h5"))
        return TrialSpec(id=draft["id"], net=self._nets[draft["id"]], data=cfg.data,
                         out=str(Path(cfg.out) / TRIALS_DIR / str(draft["id"])),
                         epochs=cfg.epochs, steps=cfg.steps, batch=cfg.batch, lr=cfg.lr,
                         val_ratio=cfg.val_ratio, seed=cfg.seed, layout=cfg.layout,
                         split=cfg.split, clips=cfg.clips, crops=cfg.crops,
                         cpus=max(1, math.ceil(cfg.cpus_per_trial)), attempt=attempt,
                         cache=cfg.cache, inherited=draft["inherited"] or None,
                         warm_from=warm)

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        cfg = self.cfg
        pending: dict[Any, _Pending] = {}
        initial_left = max(0, cfg.population - self.finished_trials)
        while True:
            while len(pending) < self.concurrency and \
                    self.finished_trials + len(pending) < cfg.trials:
                draft = self._propose(initial=initial_left > 0)
                initial_left -= 1
                spec = self._spec(draft, 1)
                pending[self.executor.submit(spec)] = _Pending(draft, spec)
                origin = "random" if self.cfg.random_init else "seed"
                parent = origin if draft["parent"] is None else draft["parent"]
                self.progress.line(draft, "queued", f"parent {parent}  "
                                   f"{describe(draft['mutation'])}  "
                                   f"{draft['gflops']:.4f} GFLOPs  {draft['params']:,} params")
            if not pending:
                return
            ready = self.executor.wait(list(pending), timeout=1.0)
            self._show_running(pending)
            for handle in ready:
                self._finish(pending, handle)

    def _show_running(self, pending: dict[Any, _Pending]) -> None:
        for p in pending.values():
            if p.shown_running:
                continue
            try:
                info = json.loads((Path(p.spec.out) / WORKER_FILE).read_text())
            except (OSError, ValueError):
                continue  # not started yet, or on a node whose disk this is not
            if isinstance(info, dict) and info.get("attempt") == p.attempt:
                p.shown_running = True
                self.progress.line(p.draft, "running", f"pid {info.get('pid')} on "
                                   f"{info.get('host')}" + (f" (attempt {p.attempt})"
                                                           if p.attempt > 1 else ""))

    def _finish(self, pending: dict[Any, _Pending], handle: Any) -> None:
        p = pending.pop(handle)
        try:
            result = self.executor.result(handle)
        except WorkerDied as exc:
            p.failures.append({"attempt": p.attempt, "error": str(exc), "at": time.time()})
            if p.attempt <= self.cfg.retries:
                p.attempt += 1
                p.shown_running = False
                p.spec = self._spec(p.draft, p.attempt)
                pending[self.executor.submit(p.spec)] = p
                self.progress.line(p.draft, "retry", f"worker died ({exc}); attempt "
                                   f"{p.attempt} of {self.cfg.retries + 1}")
                return
            result = {"status": "failed", "finished": time.time(),
                      "error": f"the worker died {p.attempt} times; last: {exc}"}
        record = {**p.draft, **result, "attempts": p.attempt, "worker_failures": p.failures}
        record.setdefault("started", record["finished"])
        record["wall_s"] = round(record["finished"] - record["started"], 3)
        self._append(record)
        if record["status"] == "done":
            self.population.add(Member(record["id"], record["fitness"]))
            best = self.best()
            assert best is not None  # this record is done
            self.progress.line(record, "done", f"fitness {record['fitness']:.3f}  "
                               f"({record['wall_s']:.1f} s)  best {best['fitness']:.3f} "
                               f"(trial {best['id']})  [{self.finished_trials}/"
                               f"{self.cfg.trials}]")
        else:
            self.progress.line(record, "failed", f"{record.get('error')}  "
                               f"[{self.finished_trials}/{self.cfg.trials}]")
