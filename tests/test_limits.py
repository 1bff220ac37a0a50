"""Hostile input never takes the machine down: reads are bounded and never block, diagnostics
are capped and linear in the input, nesting is bounded.

Each test that could hang or run for minutes on a regression runs under `time_limit`, so it
fails instead. The sizes are chosen so that the code before these limits took far longer
than the deadline (minutes), and the code now takes a second or two.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT
from test_fuzz import time_limit

from asn.cli.main import main
from asn.compiler import analysis
from asn.dsl import diagnostics, textio
from asn.dsl.diagnostics import Diagnostic, Source, Suggester, render
from asn.dsl.ir import Span

HDR = "network n {\n  frames 8\n  size 64x64\n  classes 10\n}\nstem r0 = rgb\n"


def _check(capsys, *args) -> tuple[int, str]:
    code = main(["check", *map(str, args)])
    return code, capsys.readouterr().err


# ------------------------------------------------------------------------- bounded reads

def _limit_memory() -> None:
    # an unbounded read of /dev/zero fails here (MemoryError) instead of taking the machine
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def test_dev_zero_is_refused_at_once():
    proc = subprocess.run([sys.executable, "-m", "asn.cli.main", "check", "/dev/zero"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          preexec_fn=_limit_memory)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("/dev/zero: error: is a character device, not a regular "
                                  "file [ASN001]")


def test_fifo_without_writer_times_out(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(textio, "PIPE_TIMEOUT_S", 0.3, raising=False)
    fifo = tmp_path / "net.asn"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with time_limit(10):
        code, err = _check(capsys, fifo)
    assert code == 1
    assert f"{fifo}: error: no data arrived within 0.3 s" in err
    assert time.monotonic() - t0 < 5


def test_fifo_with_writer_is_read(tmp_path, capsys):
    fifo = tmp_path / "net.asn"
    os.mkfifo(fifo)
    text = HDR + "block b = bottleneck(level=3, filters=8) <- r0\n"

    def write():
        with open(fifo, "w") as fh:  # blocks until the reader opens it
            fh.write(text)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with time_limit(20):
        code, err = _check(capsys, fifo)
        writer.join()
    assert code == 0, err


def test_pipe_is_read_with_the_size_bound(monkeypatch):
    monkeypatch.setattr(textio, "MAX_BYTES", 1000)
    r, w = os.pipe()
    try:
        os.write(w, b"#" * 5000)  # fits in the pipe buffer: the writer never blocks
        with time_limit(10), pytest.raises(diagnostics.DiagnosticError) as exc:
            textio.read_text(f"/proc/self/fd/{r}")
    finally:
        os.close(r)
        os.close(w)
    assert "file is too large (more than 1000 bytes" in exc.value.diagnostics[0].message


def test_regular_file_problem(tmp_path):
    good = tmp_path / "w.weights.h5"
    good.write_bytes(b"\x89HDF")
    fifo = tmp_path / "f.weights.h5"
    os.mkfifo(fifo)
    assert textio.regular_file_problem(str(good)) is None
    assert textio.regular_file_problem("/dev/zero") == "is a character device, not a regular file"
    assert textio.regular_file_problem(str(fifo)) == "is a pipe (FIFO), not a regular file"
    assert textio.regular_file_problem(str(tmp_path)) == "is a directory, not a file"
    assert textio.regular_file_problem(str(tmp_path / "nope")) == "no such file"


# ------------------------------------------------------------------ capped, linear diagnostics

def _unknown_inputs(n: int) -> str:
    return HDR + "".join(f"block b{i} = bottleneck(level=3, filters=8) <- r0, zz{i}\n"
                         for i in range(n))


def test_diagnostics_are_capped_and_json_keeps_all(tmp_path, capsys):
    path = tmp_path / "net.asn"
    path.write_text(_unknown_inputs(120))
    code, err = _check(capsys, path)
    assert code == 1
    assert err.count(": error: unknown input") == 50
    assert err.rstrip().endswith("... and 70 more errors (not shown; `asnc check --json` "
                                 "lists every one)")
    assert main(["check", "--json", str(path)]) == 1
    assert len(json.loads(capsys.readouterr().out)) == 120


def test_many_unknown_inputs_bounded_suggestion_work(tmp_path, capsys, monkeypatch):
    calls = 0
    distance = Suggester._distance

    def counted(self, a, b, bound):
        nonlocal calls
        calls += 1
        return distance(self, a, b, bound)

    monkeypatch.setattr(Suggester, "_distance", counted)
    path = tmp_path / "net.asn"
    path.write_text(_unknown_inputs(3000))  # was 9 million distances, minutes
    with time_limit(60):
        code, err = _check(capsys, path)
    assert code == 1 and "and 2950 more errors" in err
    assert calls <= diagnostics.SUGGEST_BUDGET // 2  # each call fills two cells or more


def test_one_long_line_of_unknown_inputs(tmp_path, capsys):
    names = ", ".join(f"x{i}" for i in range(30_000))  # one 250 KB line
    path = tmp_path / "net.asn"
    path.write_text(HDR + f"block b = bottleneck(level=3, filters=8) <- {names}, x7\n")
    with time_limit(60):  # duplicate detection was quadratic in a block's inputs
        code, err = _check(capsys, path)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) < 50 * 4 + 2
    # of the long line, only a window around the caret is shown
    assert max(len(ln) for ln in lines if " | " in ln) < 200
    assert "reads `x7` more than once" in err or "more errors" in err


def test_huge_misspelt_name(tmp_path, capsys):
    path = tmp_path / "net.asn"
    path.write_text(HDR + "block b = bottleneck(level=3, filters=8) <- r" + "0" * 100_000 + "\n")
    with time_limit(30):
        code, err = _check(capsys, path)
    assert code == 1
    assert "unknown input `r000" in err and "did you mean" not in err
    assert len(err) < 2000  # the message quoting the name is clipped


def test_suggestions_still_work():
    assert Suggester(["rgb", "flow"])("rbg") == "did you mean `rgb`?"
    assert Suggester(["b4", "r0"])("b3") == "did you mean `b4`?"
    assert Suggester(["rgb"])("RGB") == "did you mean `rgb`?"
    assert Suggester(["rgb"])("x" * 65) is None
    names = [f"b{i}" for i in range(20_000)]
    assert Suggester(names)("b1999x") is not None  # one typo among 20,000 names


def test_render_window_on_a_long_line():
    line = "x" * 1_000_000
    d = Diagnostic("error", "ASN101", "m", Span(1, 500_000, 1, 500_003))
    out = render(d, Source("f.asn", line)).splitlines()
    assert len(out[1]) < 140 and out[2].endswith("^^^")
    # the caret stays under character 500,000: the 60th of the window
    assert out[2].index("^") - (out[1].index("| ") + 2) == 59


def test_viz_peer_network_is_linear(monkeypatch):
    # peer candidates were sorted once per block: O(N^2 log N) node_level calls
    import importlib.util
    spec = importlib.util.spec_from_file_location("frontend_bench",
                                                  ROOT / "benchmarks" / "frontend_bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    from asn.backends.graphviz import to_dot
    from asn.dsl.parser import parse

    calls = 0
    level = analysis.node_level

    def counted(node):
        nonlocal calls
        calls += 1
        return level(node)

    net = parse(bench.generate(2000, "peer"), "gen.asn")
    monkeypatch.setattr(analysis, "node_level", counted)
    with time_limit(60):
        dot = to_dot(net)
    assert "peer attention:" in dot
    assert calls < 20 * 2000


# --------------------------------------------------------------------------------- depth

@pytest.mark.parametrize("text, line, col", [
    ("network n {\n depth " + "[" * 500 + "1" + "]" * 500 + "\n}\n", 2, 8 + 64),
    (HDR + "block b = bottleneck(level=3, filters=" + "[" * 500 + "8" + "]" * 500 +
     ") <- r0\n", 7, 39 + 64),
])
def test_deep_asn_value_is_a_diagnostic(tmp_path, capsys, text, line, col):
    path = tmp_path / "deep.asn"
    path.write_text(text)
    code, err = _check(capsys, path)
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"{path}:{line}:{col}: error: value is nested more than 64 levels "
                          "deep [ASN012]")


def test_very_deep_asn_value(tmp_path, capsys):
    path = tmp_path / "deep.asn"
    path.write_text(HDR + "block b = bottleneck(level=3, filters=" + "[" * 100_000 + "8" +
                    "]" * 100_000 + ") <- r0\n")
    with time_limit(60):
        code, err = _check(capsys, path)
    assert code == 1 and "nested more than 64 levels deep" in err


def test_deep_json_is_a_diagnostic(tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_text('{"header": {"name": "n"}, "nodes": ' + "[" * 500 + "]" * 500 + "}")
    code, err = _check(capsys, path)
    assert code == 1 and "Traceback" not in err
    assert "JSON is nested more than 64 levels deep [ASN003]" in err


def test_duplicate_json_keys_are_refused(tmp_path, capsys):
    # json.loads keeps the last of two equal keys without a word; a file that says two
    # things must not be read as one of them
    path = tmp_path / "dup.json"
    path.write_text('{"header": {"name": "n"},\n "header": {"name": "m"}, "nodes": []}')
    code, err = _check(capsys, path)
    assert code == 1 and "2:2: error: invalid JSON: duplicate key `header`" in err
