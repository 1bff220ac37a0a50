"""`asnc evolve` end to end on a local Ray (2 trials at once, 1 CPU each): population 4, 8
trials of one training step on generated moving-shapes video (4 frames of 32x32).

One run, in its own process session: the worker of trial 1 is killed mid-trial (SIGKILL, by
the pid the trial writes), then the whole run is killed once a few trials have finished;
`--resume` finishes it. Checked from the journal: trials overlapped in time, the killed trial
was retried and is done, every individual is recorded once, the resumed run ran only the
remaining trials, every trial was scored 1x1 on the folder's held-out videos and drew no
pictures; then `best.asn` compiles with the best trial's weights. A trial on an official
UCF101 split trains on the split's training videos and is scored on its test videos.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asn.cli.main import main
from test_connectivity import TINY

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.tf  # the trials (and the compile) run TensorFlow

pytest.importorskip("ray")
pytest.importorskip("av")

TIMEOUT = 480  # a hung run fails the test instead of hanging CI (a loaded 2-core machine: 285 s)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("moving_shapes",
                                                  ROOT / "examples" / "moving_shapes.py")
    assert spec is not None and spec.loader is not None
    ms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ms)
    root = tmp_path_factory.mktemp("shapes")
    ms.generate_dataset(root, classes=3, per_class=4, frames=4, size=32, seed=0)
    return root


def _command(seed: Path, data: Path, run: Path) -> list[str]:
    return [sys.executable, "-m", "asn", "evolve", str(seed), "--data", str(data),
            "--population", "4", "--sample", "2", "--trials", "8", "--epochs", "1",
            "--steps", "1", "--batch", "4", "--val-ratio", "0.25", "--concurrency", "2",
            "--cpus-per-trial", "1", "--retries", "2", "--seed", "3", "--out", str(run)]


def _trials(run: Path) -> list[dict]:
    path = run / "journal.jsonl"
    if not path.exists():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["status"] != "rejected"]


def _wait(what, proc: subprocess.Popen, deadline: float):
    while time.time() < deadline:
        got = what()
        if got:
            return got
        if proc.poll() is not None:
            pytest.fail(f"the run ended ({proc.returncode}) before the test could act")
        time.sleep(0.2)
    pytest.fail("timed out")


def test_evolve_on_ray_survives_a_killed_worker_and_a_killed_run(data_dir, tmp_path):
    seed = tmp_path / "tiny.asn"
    seed.write_text(TINY)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(_command(seed, data_dir, run), stdout=log, stderr=log, env=env,
                             start_new_session=True)  # its own group: Ray goes with it
    deadline = time.time() + TIMEOUT
    try:
        marker = run / "trials" / "1" / "worker.json"

        def worker_of_trial_1():
            try:
                info = json.loads(marker.read_text())
            except (OSError, ValueError):
                return None
            return info if info["attempt"] == 1 else None

        info = _wait(worker_of_trial_1, first, deadline)
        os.kill(info["pid"], signal.SIGKILL)  # the Ray worker running trial 1, mid-trial
        _wait(lambda: any(r["id"] == 1 for r in _trials(run)) and len(_trials(run)) >= 3,
              first, deadline)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the run (driver, Ray, workers) dies at once
        first.wait()
        log.close()
    before = _trials(run)
    assert 3 <= len(before) < 8, (tmp_path / "first.log").read_text()

    second = subprocess.run(_command(seed, data_dir, run) + ["--resume", "--json"], env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert second.returncode == 0, second.stderr
    assert f"resuming {run}: {len(before)} of 8 trials finished" in second.stderr

    records = _trials(run)
    assert records[:len(before)] == before  # the journal is only appended to
    assert len(records) == 8 and sorted(r["id"] for r in records) == \
        sorted({r["id"] for r in records})  # every individual once
    # the resumed run ran exactly the remaining trials: no id of the first run again
    assert {r["id"] for r in records[len(before):]}.isdisjoint(r["id"] for r in before)
    killed = next(r for r in records if r["id"] == 1)
    assert killed["status"] == "done" and killed["attempts"] == 2, killed
    assert killed["worker_failures"][0]["attempt"] == 1
    assert all(r["status"] == "done" for r in records), [r.get("error") for r in records]
    # concurrency: some two trials of one run overlapped in time
    spans = sorted((r["started"], r["finished"]) for r in records)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), spans
    for r in records:
        assert {"status", "fitness", "started", "finished", "parent", "mutation", "gflops",
                "params"} <= set(r)
        assert r["started"] <= r["finished"] and 0 <= r["fitness"] <= 1
        # a plain folder: --val-ratio 0.25 of 3 classes x 4 videos held out, scored 1x1
        assert (r["layout"], r["split"], r["train_videos"], r["val_videos"]) == \
            ("folder", None, 9, 3)
        assert r["fitness_protocol"].startswith("1 centred clip x 1 centre crop")
    assert not list(run.glob("trials/*/*.png"))  # the trials draw no pictures
    assert [r["parent"] for r in records].count(None) >= 4  # the initial population

    summary = json.loads(second.stdout)
    assert summary["trials"] == 8 and summary["retried"] >= 1
    best = max(records, key=lambda r: (r["fitness"], -r["gflops"], -r["id"]))
    assert summary["best"]["id"] == best["id"]
    for name in ("best.asn", "best.svg", "evolution.png", "evolution.svg", "summary.json",
                 "pareto/pareto.json"):
        assert (run / name).stat().st_size > 0, name
    front = json.loads((run / "pareto" / "pareto.json").read_text())
    assert best["id"] in [p["id"] for p in front]

    weights = run / "trials" / str(best["id"]) / "final.weights.h5"
    assert main(["compile", str(run / "best.asn"), "-o", str(tmp_path / "best"), "-O0",
                 "--format", "savedmodel", "--no-verify", "--weights", str(weights)]) == 0
    assert (tmp_path / "best" / "saved_model" / "saved_model.pb").exists()


@pytest.mark.filterwarnings("ignore:skipping unreadable video:RuntimeWarning")
def test_a_trial_on_bad_data_is_a_failed_result_with_its_error(tmp_path):
    from asn.backends.tensorflow.trial import WORKER_FILE, TrialSpec, run_trial
    from asn.cli.common import apply_overrides
    from asn.dsl.loader import load_text

    for c in ("left", "right"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "data" / c / f"v{i}.mp4").write_bytes(b"not a video" * 10)
    net = apply_overrides(load_text(TINY), classes=2)
    out = tmp_path / "trial"
    result = run_trial(TrialSpec(id=1, net=net, data=str(tmp_path / "data"), out=str(out),
                                 epochs=1, steps=1, batch=2, lr=1e-3, val_ratio=0.34, seed=0,
                                 cpus=1))
    assert result["status"] == "failed"
    assert "no training batch could be read" in result["error"]
    assert result["started"] <= result["finished"]
    assert json.loads((out / WORKER_FILE).read_text())["pid"] == os.getpid()


def test_a_run_directory_is_never_overwritten_and_resume_checks_the_settings(
        data_dir, tmp_path, capsys):
    seed = tmp_path / "tiny.asn"
    seed.write_text(TINY)
    run = tmp_path / "run"
    run.mkdir()
    (run / "journal.jsonl").write_text('{"id": 1, "status": "done"}\n')
    args = ["evolve", str(seed), "--data", str(data_dir), "--out", str(run)]
    assert main(args) == 1
    assert "already holds an evolution run" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 1
    assert "holds no evolution run to resume" in capsys.readouterr().err
    (run / "evolve.json").write_text(json.dumps({
        "config": {"population": 5}, "seed_network": TINY}))
    assert main(args + ["--resume"]) == 1
    assert "another seed network" in capsys.readouterr().err  # TINY has 7 classes, data 3
    from asn.cli.common import apply_overrides
    from asn.dsl.loader import load_text
    from asn.dsl.printer import format_network

    from asn.cli.evolve_loop import EvolveConfig

    net = apply_overrides(load_text(TINY), classes=3)
    saved = EvolveConfig(data=os.path.abspath(data_dir), out=os.path.abspath(run),
                         population=5)
    (run / "evolve.json").write_text(json.dumps({
        "config": saved.to_json(), "seed_network": format_network(net)}))
    assert main(args + ["--resume"]) == 1
    assert "population was 5, now 8" in capsys.readouterr().err
    # a run saved before --layout/--split/--clips/--crops: the folder split and 1x1 it used
    # (`layout` is checked before `population`, so only the population is named)
    legacy = {k: v for k, v in saved.to_json().items()
              if k not in ("layout", "split", "clips", "crops")}
    (run / "evolve.json").write_text(json.dumps({
        "config": legacy, "seed_network": format_network(net)}))
    assert main(args + ["--resume"]) == 1
    assert "population was 5, now 8" in capsys.readouterr().err
    assert main(args + ["--resume", "--population", "5", "--clips", "2"]) == 1
    assert "clips was 1, now 2" in capsys.readouterr().err


def test_a_trial_on_an_official_split_trains_on_its_train_videos(tmp_path):
    """UCF101 split 1 (the official files' first lines): the trial trains on trainlist01's 6
    videos, its fitness is the 1x1-view top-1 over exactly testlist01's 4 videos, and it
    draws no pictures."""
    from asn.backends.tensorflow.trial import TrialSpec, run_trial
    from asn.cli.common import apply_overrides
    from asn.dsl.loader import load_text
    from test_datasets import UCF_TESTLIST01, make_ucf

    data = make_ucf(tmp_path / "ucf")
    net = apply_overrides(load_text(TINY), classes=10)  # classInd.txt's 10 classes
    out = tmp_path / "trial"
    result = run_trial(TrialSpec(id=1, net=net, data=str(data), out=str(out), epochs=1,
                                 steps=1, batch=2, lr=1e-3, val_ratio=0.5, seed=0, cpus=1,
                                 layout="ucf101", split=1))
    assert result["status"] == "done", result.get("error")
    assert (result["layout"], result["split"]) == ("ucf101", 1)
    assert (result["train_videos"], result["val_videos"]) == (6, 4)
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["config"]["layout"], metrics["config"]["split"]) == ("ucf101", 1)
    predictions = metrics["evaluation"]["predictions"]
    assert sorted(Path(p["video"]).relative_to(data / "UCF-101").as_posix()
                  for p in predictions) == sorted(UCF_TESTLIST01.split())
    assert metrics["evaluation"]["protocol"]["clips"] == 1 == \
        metrics["evaluation"]["protocol"]["crops"]
    assert result["fitness"] == sum(p["correct"] for p in predictions) / 4
    assert not list(out.glob("*.png")) and not list(out.glob("*.svg"))  # no pictures drawn
