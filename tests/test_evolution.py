"""`asnc evolve`'s IR side, without TensorFlow or Ray: each mutation with fixed learned weights,
aging selection, budgets, the Pareto front, the journal, and the loop on a stand-in executor
(retries of a dead worker, resume without repeating a trial). The end-to-end run on Ray is
test_evolve_e2e.py."""

from __future__ import annotations

import json
import random

import pytest

from asn.cli.evolve_loop import EvolveConfig, Evolution, Progress, WorkerDied
from asn.compiler.analysis import analyse
from asn.compiler.evolution.budget import Budget, Cost, cost
from asn.compiler.evolution.journal import Journal
from asn.compiler.evolution.mutations import (DILATIONS, MUTATIONS, Redraw, change_dilation,
                                              change_filters, connection_mutation, inherit,
                                              is_valid, merge_blocks, move_level, mutate,
                                              split_block)
from asn.compiler.evolution.pareto import pareto_front
from asn.compiler.evolution.selection import AgingPopulation, Member
from asn.compiler.graph import node_level
from asn.compiler.validation import check
from asn.dsl.ir import Block
from asn.dsl.loader import load_text

NET = """\
network evo {
  depth [1, 1, 1, 1]
  frames 4
  size 32x32
  classes 3
}
stem rgb = rgb
stem motion = flow
block a = bottleneck(level=0, filters=8) <- rgb, motion
block b = bottleneck(level=0, filters=8) <- rgb
block c = bottleneck(level=1, filters=8, stride=2) <- a, b, motion
block d = bottleneck(level=3, filters=16, stride=2) <- c, a
"""


@pytest.fixture
def net():
    return load_text(NET)


def _inputs(n, block):
    return [i.source for i in n.node_map()[block].inputs]


# ------------------------------------------------------------------------ mutations


def test_connection_mutation_removes_exactly_the_weak_and_adds_lower_level(net):
    learned = {"a": [0.9, 0.1], "c": [0.15, 0.5, 0.19], "d": [0.6, 0.21]}
    child, p = connection_mutation(net, random.Random(3), learned, threshold=0.2)
    # exactly the connections under 0.2 go (hand-picked): motion->a, a->c, motion->c
    assert sorted(map(tuple, (r[:2] for r in p["removed"]))) == \
        [("a", "c"), ("motion", "a"), ("motion", "c")]
    assert 1 <= len(p["added"]) <= 2
    nodes = child.node_map()
    for src, dst in p["added"]:
        assert node_level(nodes[src]) < node_level(nodes[dst])
        assert src in _inputs(child, dst)
    kept = {"a": ["rgb"], "c": ["b"], "d": ["c", "a"], "b": ["rgb"]}
    for block, sources in kept.items():
        added = [s for s, d in p["added"] if d == block]
        assert _inputs(child, block) == sources + added
    assert all(i.weight is None for b in child.blocks for i in b.inputs)  # learned again
    assert is_valid(child)


def test_connection_mutation_keeps_a_blocks_strongest_input(net):
    child, p = connection_mutation(net, random.Random(0), {"a": [0.05, 0.1]}, threshold=0.2)
    assert _inputs(child, "a")[0] == "motion"  # 0.1 > 0.05: kept although under 0.2
    assert ["rgb", "a", 0.05] in p["removed"]


def test_inherit_maps_parent_weights_onto_kept_connections(net):
    learned = {"c": [0.3, 0.6, 0.9], "d": [0.7, 0.4]}
    child, p = connection_mutation(net, random.Random(1), learned, threshold=0.5)
    got = inherit(net, learned, child)
    for block, ws in got.items():
        parent = dict(zip(_inputs(net, block), learned.get(block, [])))
        assert ws == [parent.get(s) for s in _inputs(child, block)]
    assert got["c"][:2] == [0.6, 0.9]  # a->c (0.3) went


def test_split_keeps_inputs_halves_filters_and_feeds_readers(net):
    rng = random.Random(0)
    for _ in range(20):
        child, p = split_block(net, rng)
        name, twin = p["block"], p["new"]
        old = net.node_map()[name]
        a, b = child.node_map()[name], child.node_map()[twin]
        assert isinstance(a, Block) and isinstance(b, Block) and isinstance(old, Block)
        assert _inputs(child, name) == _inputs(child, twin) == _inputs(net, name)
        assert a.filters == b.filters == old.filters // 2  # type: ignore[operator]
        for reader in net.blocks:
            if name in _inputs(net, reader.name):
                srcs = _inputs(child, reader.name)
                assert srcs[srcs.index(name) + 1] == twin


def test_merge_unions_inputs_sums_filters_and_rewires(net):
    child, p = merge_blocks(net, random.Random(0))
    assert (p["into"], p["removed"]) == ("a", "b")  # the only unconnected pair of a level
    merged = child.node_map()["a"]
    assert isinstance(merged, Block) and merged.filters == 16
    assert _inputs(child, "a") == ["rgb", "motion"]
    assert "b" not in child.node_map()
    assert _inputs(child, "c") == ["a", "motion"]  # a and b were both read: once now
    assert is_valid(child)


def test_dilation_filters_level_record_their_change(net):
    rng = random.Random(5)
    child, p = change_dilation(net, rng)
    assert p["to"] in DILATIONS and p["to"] != p["from"]
    assert child.node_map()[p["block"]].dilation == p["to"]  # type: ignore[union-attr]
    child, p = change_filters(net, rng)
    assert p["to"] in (p["from"] * 2, p["from"] // 2)
    child, p = move_level(net, rng)
    assert abs(p["to"] - p["from"]) == 1 and 0 <= p["to"] <= 3


def test_redraw_when_nothing_applies():
    single = load_text("network one { depth [1, 1, 1, 1] size 32x32 }\nstem r = rgb\n"
                       "block x = bottleneck(level=3, filters=1) <- r\n")
    with pytest.raises(Redraw):
        merge_blocks(single, random.Random(0))
    with pytest.raises(Redraw):
        split_block(single, random.Random(0))


def test_every_child_checks_and_every_kind_is_drawn(net):
    rng = random.Random(11)
    kinds = set()
    for _ in range(80):
        child, m = mutate(net, rng, {"c": [0.1, 0.5, 0.9]})
        kinds.add(m["kind"])
        assert not [d for d in check(child) if d.is_error]
        assert not child.comments_before
    assert kinds == set(MUTATIONS)


def test_invalid_children_are_redrawn(net):
    seen = []

    def only_splits(child):  # a stand-in check that refuses everything but a split
        seen.append(child)
        return len(child.blocks) > len(net.blocks)

    child, m = mutate(net, random.Random(2), valid=only_splits)
    assert m["kind"] == "split" and len(seen) >= 1


# ------------------------------------------------------------------------ selection


def test_aging_removes_the_oldest_whatever_its_fitness():
    pop = AgingPopulation(3)
    assert pop.add(Member(1, 0.99)) is None
    pop.add(Member(2, 0.1))
    pop.add(Member(3, 0.2))
    assert pop.add(Member(4, 0.3)) == Member(1, 0.99)  # the best, but the oldest
    assert [m.id for m in pop.members] == [2, 3, 4]


def test_parent_is_the_fittest_of_the_sample():
    pop = AgingPopulation(10, [Member(i, f) for i, f in enumerate([0.5, 0.9, 0.1, 0.7, 0.3])])
    for seed in range(30):
        rng = random.Random(seed)
        drawn = random.Random(seed).sample(range(5), 3)  # what select_parent draws
        expected = max(drawn, key=lambda k: [0.5, 0.9, 0.1, 0.7, 0.3][k])
        assert pop.select_parent(rng, 3).id == expected
    assert pop.select_parent(random.Random(0), 5).id == 1  # the whole population: the best
    assert pop.select_parent(random.Random(0), 99).id == 1  # S > N samples everyone


# ------------------------------------------------------------------------ budget, Pareto


def test_budget_uses_the_exact_static_counts(net):
    c = cost(net)
    stats = analyse(net)
    assert c.params == stats.total and c.gflops == stats.flops / 1e9
    assert Budget().violation(c) is None
    assert Budget(max_params=c.params).violation(c) is None
    assert "parameters" in (Budget(max_params=c.params - 1).violation(c) or "")
    assert "GFLOPs" in (Budget(max_gflops=c.gflops * 0.99).violation(c) or "")
    assert Budget(max_gflops=1.0, max_params=10).violation(Cost(2.0, 5)) is not None


def test_pareto_front_hand_checked():
    pts = [(1, 0.5, 1.0), (2, 0.6, 2.0), (3, 0.55, 2.5), (4, 0.6, 2.0), (5, 0.9, 5.0),
           (6, 0.4, 0.5), (7, 0.9, 6.0)]
    assert pareto_front(pts) == [6, 1, 2, 5]


# ------------------------------------------------------------------------ journal


def test_journal_skips_a_torn_line_and_appends_after_it(tmp_path):
    j = Journal(tmp_path)
    j.append({"id": 1, "status": "done"})
    with open(j.path, "ab") as f:
        f.write(b'{"id": 2, "sta')  # a crash mid-append
    j.append({"id": 3, "status": "failed"})
    assert [r["id"] for r in j.read()] == [1, 3] and j.torn == 1


# ------------------------------------------------------------------------ the loop


class FakeExecutor:
    """Runs trials at once: fitness from the network's size; `die` lists trial ids whose
    worker dies on the first attempt; `limit` stops after that many results (a killed run)."""

    def __init__(self, die=(), limit=None):
        self.die, self.limit = set(die), limit
        self.specs, self.handed = [], 0

    def submit(self, spec):
        self.specs.append(spec)
        return len(self.specs) - 1

    def wait(self, handles, timeout):
        if self.limit is not None and self.handed >= self.limit:
            raise KeyboardInterrupt  # the run is killed with trials in flight
        return handles[:1]

    def result(self, handle):
        spec = self.specs[handle]
        self.handed += 1
        if spec.id in self.die and spec.attempt == 1:
            raise WorkerDied("worker crashed")
        n = len(spec.net.blocks)
        return {"status": "done", "fitness": 1 / n, "connections": {}, "started": 100.0 + n,
                "finished": 101.0 + n}


def _evolution(tmp_path, net, executor, trials=8):
    cfg = EvolveConfig(data=str(tmp_path), out=str(tmp_path), population=4, sample=2,
                       trials=trials, seed=1, retries=1)
    return Evolution(cfg, net, Journal(tmp_path), executor, Progress(lambda s: None, trials),
                     concurrency=2)


def test_loop_retries_a_dead_worker_and_records_every_individual(tmp_path, net):
    ex = FakeExecutor(die={3})
    _evolution(tmp_path, net, ex).run()
    records = Journal(tmp_path).read()
    assert [r["id"] for r in records if r["status"] == "done"] and len(records) == 8
    third = next(r for r in records if r["id"] == 3)
    assert third["status"] == "done" and third["attempts"] == 2
    assert third["worker_failures"][0]["error"] == "worker crashed"
    assert [r["parent"] for r in records[:4]] == [None] * 4  # the initial population
    assert all(r["parent"] is not None for r in records[4:])
    for r in records:  # every record names its network, mutation and cost
        assert {"status", "fitness", "started", "finished", "parent", "mutation", "gflops",
                "params", "seed", "network"} <= set(r)


def test_loop_gives_up_after_bounded_retries(tmp_path, net):
    class AlwaysDies(FakeExecutor):
        def result(self, handle):
            self.handed += 1
            raise WorkerDied("killed")

    ev = _evolution(tmp_path, net, AlwaysDies(), trials=2)
    ev.run()
    records = Journal(tmp_path).read()
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert all(r["attempts"] == 2 and "died 2 times" in r["error"] for r in records)


def test_resume_runs_only_the_remaining_trials(tmp_path, net):
    with pytest.raises(KeyboardInterrupt):
        _evolution(tmp_path, net, FakeExecutor(limit=3)).run()
    assert len(Journal(tmp_path).read()) == 3
    ex = FakeExecutor()
    ev = _evolution(tmp_path, net, ex)
    assert ev.resumed_with == 3 and len(ev.population) == 3
    ev.run()
    records = Journal(tmp_path).read()
    assert len(ex.specs) == 5 and len(records) == 8
    assert len({r["id"] for r in records}) == 8
    assert json.dumps(records)  # plain JSON throughout


def test_random_networks_stay_within_the_bounds_and_check(net):
    from asn.compiler.evolution.random_net import RandomBounds, random_network

    bounds = RandomBounds(blocks_per_level=(1, 3), filters=(4, 8), max_inputs=2)
    rng = random.Random(0)
    shapes = set()
    for _ in range(15):
        r = random_network(net, rng, bounds)
        assert r.header == net.header and r.stems == net.stems
        assert not [d for d in check(r) if d.is_error]
        levels = [b.level for b in r.blocks]
        assert all(1 <= levels.count(k) <= 3 for k in range(4))
        assert {b.filters for b in r.blocks} <= {4, 8}
        assert len({b.filters for b in r.blocks if b.level == 3}) == 1  # one head width
        nodes = r.node_map()
        for b in r.blocks:
            assert 1 <= len(b.inputs) <= 2
            assert all(node_level(nodes[i.source]) < b.level for i in b.inputs)
        shapes.add(tuple(levels))
    assert len(shapes) > 1  # drawn, not fixed


def test_children_over_budget_are_recorded_and_never_trained(tmp_path, net):
    limit = cost(net).params  # the seed's own size: any child that grows is over it
    ex = FakeExecutor()
    cfg = EvolveConfig(data=str(tmp_path), out=str(tmp_path), population=2, sample=2,
                       trials=6, seed=4, max_params=limit)
    Evolution(cfg, net, Journal(tmp_path), ex, Progress(lambda s: None, 6), 2).run()
    records = Journal(tmp_path).read()
    rejected = [r for r in records if r["status"] == "rejected"]
    trained = {s.id for s in ex.specs}
    assert rejected and all("parameters" in r["error"] and r["params"] > limit
                            for r in rejected)
    assert trained.isdisjoint(r["id"] for r in rejected)
    assert len(trained) == 6 and all(r["params"] <= limit for r in records
                                     if r["status"] == "done")


def test_warm_start_reuses_exactly_the_unchanged_nodes(net):
    from asn.backends.tensorflow.trial import unchanged_nodes  # TF-free at import

    child, p = change_dilation(net, random.Random(0))
    names = [n.name for n in net.nodes]
    assert unchanged_nodes(child, net) == [n for n in names if n != p["block"]]
    child, p = split_block(net, random.Random(0))
    changed = {p["block"], p["new"]} | {b.name for b in net.blocks
                                       if p["block"] in _inputs(net, b.name)}
    assert unchanged_nodes(child, net) == [n for n in names if n not in changed]


# ------------------------------------------------------------- the command's dataset


def test_evolve_on_an_official_split_records_it_and_resume_checks_it(tmp_path, monkeypatch,
                                                                      capsys):
    """`--layout`/`--split` as `train` takes them: the run's settings and every trial (spec
    and journal record) carry the detected layout and the split; --resume with another split
    is refused. The trials run on a stand-in executor (what they train on: the e2e tests)."""
    import asn.cli.evolve_loop as loop
    from asn.cli.main import main
    from test_datasets import make_ucf

    pytest.importorskip("av")
    data = make_ucf(tmp_path / "ucf")
    seed = tmp_path / "evo.asn"
    seed.write_text(NET)
    executors: list[FakeExecutor] = []

    class Stand_in(FakeExecutor):
        def __init__(self, address, cpus, gpus):
            super().__init__()
            self.slots, self.resources = 1, {"CPU": 1.0}
            executors.append(self)

        def shutdown(self):
            pass

    monkeypatch.setattr(loop, "RayExecutor", Stand_in)
    run = tmp_path / "run"
    args = ["evolve", str(seed), "--data", str(data), "--population", "2", "--sample", "2",
            "--trials", "3", "--out", str(run), "--split", "2"]
    assert main(args) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "ucf101 layout (split 2): 10 classes, 4 training and 6 test videos" in err
    config = json.loads((run / "evolve.json").read_text())["config"]
    assert (config["layout"], config["split"], config["clips"], config["crops"]) == \
        ("ucf101", 2, 1, 1)
    specs = executors[0].specs
    assert len(specs) == 3
    assert all((s.layout, s.split, s.clips, s.crops) == ("ucf101", 2, 1, 1) for s in specs)
    assert all(s.net.header.classes == 10 for s in specs)  # classInd.txt's classes
    assert json.loads((run / "summary.json").read_text())["config"]["split"] == 2

    assert main(args + ["--trials", "4", "--resume", "--split", "1"]) == 1
    assert "split was 2, now 1" in capsys.readouterr().err
    assert main(args + ["--trials", "4", "--resume", "--layout", "folder"]) == 1
    assert "plain <class>/<video> folder" in capsys.readouterr().err  # and --split: refused
    assert main(args + ["--trials", "4", "--resume"]) == 0, capsys.readouterr().err
    assert len(Journal(run).read()) == 4 and executors[-1].specs[0].split == 2


def test_evolve_takes_the_fitness_protocol_as_eval_does(tmp_path, capsys):
    from asn.cli.main import main

    (tmp_path / "data").mkdir()
    seed = tmp_path / "evo.asn"
    seed.write_text(NET)
    assert main(["evolve", str(seed), "--data", str(tmp_path / "data"), "--crops", "2",
                 "--out", str(tmp_path / "run")]) == 1
    assert "--crops must be 1 (centre) or 3" in capsys.readouterr().err
