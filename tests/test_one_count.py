"""One count per `-O` level: `asnc opt`, `asnc stats` and the `asnc compile` summary print
the same parameter count for every example, and for AssembleNet-50 at -O1 it is the figure
derived from the Model Garden's (golden.json)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass

import pytest
from conftest import EXAMPLES

from asn.cli.main import main

from asn.compiler.graph import build_graph
from asn.dsl.loader import load

NAMES = sorted(p.stem for p in EXAMPLES.glob("*.asn"))


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def _asnc(*args) -> Run:
    """The command line in-process (as `asnc ARGS`), its exit code and output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return Run(code, out.getvalue(), err.getvalue())


def _opt_total(path, level: int) -> int:
    r = _asnc("opt", path, "-O", level)  # the .asn goes to stdout, the summary to stderr
    assert r.code == 0, r.stderr
    total = re.search(r"total: params [\d,]+ -> ([\d,]+)", r.stderr)
    assert total, r.stderr
    return int(total.group(1).replace(",", ""))


def _stats_total(path, level: int, *options) -> int:
    r = _asnc("stats", path, "-O", level, "--json", *options)
    assert r.code == 0, r.stderr
    return json.loads(r.stdout)["params"]["total"]


def test_assemblenet50_O1_count_from_golden(golden):
    """Every batch norm (2C trainable + 2C moving statistics) becomes C conv biases and the
    fixed connection weights go: 37,355,552 at 400 classes."""
    gold = golden["assemblenet50"]["published_weights"]
    path = EXAMPLES / "assemblenet50.asn"
    edges = sum(1 for _, _, d in build_graph(load(str(path))).edges(data=True)
                if d["weight"] is not None)
    flow = 16
    bn_channels = (gold["non_trainable"] - flow - edges) // 2
    want = gold["total"] - 3 * bn_channels - edges
    assert want == 37_355_552  # the figure the README and the issue quote
    assert _opt_total(path, 1) == _stats_total(path, 1) == want
    assert _stats_total(path, 0) == gold["total"]


@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_opt_and_stats_agree(name, level):
    path = EXAMPLES / f"{name}.asn"
    assert _opt_total(path, level) == _stats_total(path, level)


@pytest.mark.tf
@pytest.mark.parametrize("name", NAMES)
def test_compile_summary_agrees(name, tmp_path):
    """The compile (2 frames of 32x32: counts do not depend on the spatial size; the frames
    decide where `drop-padding-taps` applies) prints the `stats -O1` count at those frames;
    it also checks the built model against it and fails otherwise."""
    path = EXAMPLES / f"{name}.asn"
    r = _asnc("compile", path, "-o", tmp_path / "out", "--frames", 2, "--size", 32, 32,
              "--format", "savedmodel", "--no-verify")
    assert r.code == 0, r.stderr
    line = re.search(r"parameters\s+([\d,]+) \(", r.stdout)
    assert line, r.stdout
    assert int(line.group(1).replace(",", "")) == _stats_total(path, 1, "--frames", 2)
    assert "= asnc stats -O1" in r.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["params"]["count_params"] == report["params"]["savedmodel_floats"]


@pytest.mark.parametrize("frames", [2, 4, 8])
def test_drop_padding_taps_count(frames):
    """At T frames, every (2+1)D block of dilation d >= T keeps one of its 3 temporal taps:
    each temporal conv (units 1, 3, ...: 4F inputs, F outputs) loses 2 * 4F * F weights.
    AssembleNet-50's -O1 count at T frames is its count at 32 frames (no dilation reaches
    32: the pass does not apply) less those, summed by hand from the file."""
    path = EXAMPLES / "assemblenet50.asn"
    net = load(str(path))
    units = net.header.units
    dropped = sum(units[b.level] // 2 * 2 * 4 * b.filters * b.filters
                  for b in net.nodes if b.kind == "block" and b.dilation >= frames)
    assert (dropped > 0) == (frames < 8)  # its largest dilation is 4
    assert max(b.dilation for b in net.nodes if b.kind == "block") < 32
    full = _stats_total(path, 1, "--frames", 32)
    assert _stats_total(path, 1, "--frames", frames) == full - dropped
    assert _stats_total(path, 0, "--frames", frames) == _stats_total(path, 0)  # -O0: as built
