"""Hostile output paths lose no data: write errors are diagnostics, in-place rewrites keep the
file (form, mode, links), devices are written through, and a compile's output directory is
replaced only by the compile's own output, even when something appears at OUT mid-compile
or the compile is killed."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import EXAMPLES, ROOT

from asn.backends.tensorflow import outdir
from asn.backends.tensorflow.errors import CompileError
from asn.cli.main import main
from asn.dsl.diagnostics import DiagnosticError
from asn.dsl.outputs import TEMP_PREFIX, write_file

TUTORIAL = str(EXAMPLES / "tutorial.asn")


def _export(tmp_path: Path, to: str) -> Path:
    """tutorial.asn in the JSON form or list format, written compactly (not canonical)."""
    canonical = tmp_path / f"canonical-{to}.json"
    assert main(["export", TUTORIAL, "--to", to, "-o", str(canonical)]) == 0
    compact = tmp_path / f"{to}.json"
    compact.write_text(json.dumps(json.loads(canonical.read_text())))
    return compact


def _cannot_write(capsys, *args: str) -> str:
    assert main(list(args)) == 1
    err = capsys.readouterr().err
    assert "error: cannot write" in err and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------ write errors
def test_write_errors_are_diagnostics(tmp_path, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    assert "is a directory" in _cannot_write(capsys, "export", TUTORIAL, "-o", str(folder))
    _cannot_write(capsys, "import", TUTORIAL, "-o", str(folder))
    _cannot_write(capsys, "opt", TUTORIAL, "-o", "/proc/version")
    dot = tmp_path / "graph.dot"
    dot.mkdir()
    _cannot_write(capsys, "viz", TUTORIAL, "-o", str(dot))
    readonly = tmp_path / "ro.asn"
    readonly.write_text("network ro{depth 26}\nstem r=rgb\nblock b=bottleneck(level=3,"
                        "filters=4)<-r\n")
    before = readonly.read_text()
    readonly.chmod(0o444)
    assert "read-only" in _cannot_write(capsys, "fmt", "-w", str(readonly))
    assert readonly.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["folder", "graph.dot", "ro.asn"]


def test_failed_write_removes_its_temporary_only(tmp_path, monkeypatch):
    target = tmp_path / "out.asn"
    target.write_text("old")
    other = tmp_path / f"{TEMP_PREFIX}not-mine"
    other.write_text("someone else's")

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(DiagnosticError, match="no space left"):
        write_file(str(target), "new")
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == [other.name, "out.asn"]


def test_devices_and_fifos_are_written_through(tmp_path, capsys):
    """`-o /dev/null`, `-o FIFO`: written through, never replaced. Tested on nodes made here
    (a regression must not be able to replace the machine's /dev/null)."""
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except (PermissionError, OSError):
        null = None
    if null is not None:
        assert main(["export", TUTORIAL, "-o", str(null)]) == 0
        assert stat.S_ISCHR(os.lstat(null).st_mode)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo.name)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    assert main(["export", TUTORIAL, "--to", "asn", "-o", str(link)]) == 0
    reader.join(timeout=30)
    assert link.is_symlink() and stat.S_ISFIFO(os.lstat(fifo).st_mode)  # neither replaced
    assert got and b"network tutorial" in got[0]
    assert sorted(os.listdir(tmp_path)) == sorted(["link", "pipe"] + (["null"] if null else []))


def test_stdout_redirected_to_a_file_is_appended_to(tmp_path):
    """`asnc export -o /dev/stdout >> log`: /dev/stdout (-> /proc/self/fd/1) resolves to `log`
    itself, which is written through (not replaced by a new file, not truncated). Tested by
    the /proc path: a regression must not be able to replace the machine's /dev/stdout."""
    log = tmp_path / "log"
    log.write_text("earlier\n")
    inode = log.stat().st_ino
    with open(log, "a") as fh:
        r = subprocess.run([sys.executable, "-m", "asn.cli.main", "export", TUTORIAL, "--to",
                            "asn", "-o", "/proc/self/fd/1"], cwd=ROOT, stdout=fh,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert log.stat().st_ino == inode
    text = log.read_text()
    assert text.startswith("earlier\n") and "network tutorial" in text


# ------------------------------------------------------------------------------- fmt in place
@pytest.mark.parametrize("form", ["json", "list"])
def test_fmt_keeps_the_form(tmp_path, capsys, form):
    compact = _export(tmp_path, form)
    canonical = (tmp_path / f"canonical-{form}.json").read_text()
    assert main(["fmt", "--check", str(tmp_path / f"canonical-{form}.json")]) == 0
    assert main(["fmt", "--check", str(compact)]) == 1
    capsys.readouterr()
    assert main(["fmt", str(compact)]) == 0
    assert capsys.readouterr().out == canonical  # printed in the file's own form
    assert main(["fmt", "-w", str(compact)]) == 0
    assert compact.read_text() == canonical
    assert main(["fmt", "--check", str(compact)]) == 0
    assert main(["check", str(compact)]) == 0


def test_fmt_keeps_mode_symlink_and_hard_link(tmp_path):
    text = "network x{depth 26}\nstem r=rgb\nblock b=bottleneck(level=3,filters=4)<-r\n"
    private = tmp_path / "private.asn"
    private.write_text(text)
    private.chmod(0o600)
    assert main(["fmt", "-w", str(private)]) == 0
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text() != text  # it was rewritten

    target = tmp_path / "target.asn"
    target.write_text(text)
    link = tmp_path / "link.asn"
    link.symlink_to(target.name)
    assert main(["fmt", "-w", str(link)]) == 0
    assert link.is_symlink() and target.read_text() == private.read_text()

    first = tmp_path / "first.asn"
    first.write_text(text)
    second = tmp_path / "second.asn"
    os.link(first, second)
    inode = first.stat().st_ino
    assert main(["fmt", "-w", str(second)]) == 0
    assert first.stat().st_ino == second.stat().st_ino == inode
    assert first.read_text() == private.read_text()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(TEMP_PREFIX)]


# ------------------------------------------------------------------- the compile's OUT (no TF)
def _fake_output(path: str, tag: str) -> None:
    with open(os.path.join(path, outdir.REPORT_NAME), "w") as fh:
        json.dump({"tool": outdir.MARKER, "tag": tag}, fh)


def _tag(path: Path) -> str:
    return json.loads((path / outdir.REPORT_NAME).read_text())["tag"]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-aside"])
def test_directory_appearing_at_out_survives_the_swap(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(outdir, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    with outdir.staged_output(str(out)) as stage:
        _fake_output(stage, "first")
    with outdir.staged_output(str(out)) as stage:  # an earlier output is replaced
        _fake_output(stage, "second")
    assert _tag(out) == "second"
    with pytest.raises(CompileError, match="changed while the compile ran"):
        with outdir.staged_output(str(out)) as stage:
            _fake_output(stage, "third")
            os.rename(out, tmp_path / "aside")  # someone swaps their own folder in
            out.mkdir()
            (out / "keep.txt").write_text("mine")
    assert os.listdir(out) == ["keep.txt"] and _tag(tmp_path / "aside") == "second"
    assert sorted(os.listdir(tmp_path)) == ["aside", "out"]


def test_stale_staging_is_removed_and_nothing_else(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{outdir.STAGING_PREFIX}{dead.pid}-abc"
    stale.mkdir()
    (stale / outdir.OWNER_FILE).write_text(json.dumps({"tool": outdir.MARKER,
                                                       "pid": dead.pid}))
    (stale / "saved_model").mkdir()
    half = tmp_path / f"{outdir.STAGING_PREFIX}{dead.pid}-jkl"  # killed writing its owner file
    half.mkdir()
    (half / outdir.OWNER_FILE).write_text("")
    foreign = tmp_path / f"{outdir.STAGING_PREFIX}{dead.pid}-def"  # our name, not our marker
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    remote = tmp_path / f"{outdir.STAGING_PREFIX}{dead.pid}-mno"  # another machine's pid
    remote.mkdir()
    (remote / outdir.OWNER_FILE).write_text(json.dumps({"tool": outdir.MARKER,
                                                        "pid": dead.pid, "host": "elsewhere"}))
    live = tmp_path / f"{outdir.STAGING_PREFIX}{os.getpid()}-ghi"  # a running compile's
    live.mkdir()
    (live / outdir.OWNER_FILE).write_text(json.dumps({"tool": outdir.MARKER}))
    with outdir.staged_output(str(tmp_path / "out")) as stage:
        _fake_output(stage, "new")
    assert sorted(os.listdir(tmp_path)) == sorted([foreign.name, remote.name, live.name, "out"])


# --------------------------------------------------------------------- the compile's OUT (TF)
_NET = """network tiny {
  depth [1, 1, 1, 1]
  frames 2
  size 32x32
  classes 3
}
stem r = rgb
block a = bottleneck(level=0, filters=4) <- r
block top = bottleneck(level=3, filters=4, stride=2) <- a
"""


@pytest.mark.tf
def test_compile_out_with_glob_characters_and_a_folder_appearing(tmp_path):
    """In one process: `out[1]` compiles (TensorFlow globs paths), and a folder made at OUT
    during the compile is left alone."""
    from asn.backends.tensorflow.compile import CompileOptions, compile_network
    from asn.dsl.loader import load_text

    net = load_text(_NET, "tiny.asn")
    options = CompileOptions(formats=("savedmodel",), verify=False)
    out = tmp_path / "out[1]"

    def intruder(name: str, event: str) -> None:
        if name == "savedmodel" and event == "done":
            out.mkdir()
            (out / "keep.txt").write_text("mine")

    with pytest.raises(CompileError, match="changed while the compile ran"):
        compile_network(net, str(out), options, on_phase=intruder)
    assert os.listdir(out) == ["keep.txt"]
    assert sorted(os.listdir(tmp_path)) == ["out[1]"]
    (out / "keep.txt").unlink()
    result = compile_network(net, str(out), options)
    assert result.report["params"]["savedmodel_floats"] == result.params
    assert sorted(os.listdir(out)) == ["report.json", "saved_model"]
    assert sorted(os.listdir(tmp_path)) == ["out[1]"]


@pytest.mark.tf
def test_kill_mid_compile_leaves_out_and_next_compile_cleans(tmp_path):
    src = tmp_path / "tiny.asn"
    src.write_text(_NET)
    out = tmp_path / "out"
    out.mkdir()
    _fake_output(str(out), "earlier")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "asn.cli.main", "compile", str(src), "-o",
                             str(out), "--format", "savedmodel", "--no-verify"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = f"{outdir.STAGING_PREFIX}{proc.pid}-"
    deadline = time.monotonic() + 300
    try:
        while not any(n.startswith(staging) for n in os.listdir(tmp_path)):
            assert proc.poll() is None and time.monotonic() < deadline, "no staging dir"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    left = [n for n in os.listdir(tmp_path) if n.startswith(staging)]
    assert len(left) == 1
    assert _tag(out) == "earlier" and os.listdir(out) == [outdir.REPORT_NAME]
    # the next compile (here its staging step: a real one is the test above) removes it
    with outdir.staged_output(str(tmp_path / "other")) as stage:
        _fake_output(stage, "next")
    assert sorted(os.listdir(tmp_path)) == ["other", "out", "tiny.asn"]
