"""The house: a wheel that installs and works outside the tree, imports that every static
reader resolves, lint, and one registry where every backend pass has both its parts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT

from asn.compiler.passes import backend_pass_names, get_backend_pass

PY = sys.executable
IGNORE = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                ".pytest_cache", ".hypothesis", "out")


def _run(*cmd, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.tf
def test_wheel_installs_and_compiles_outside_the_tree(tmp_path):
    """`pip wheel .` of a clean copy, installed (not editable) into a fresh venv, runs
    `asnc check` and a tiny `asnc compile` from a directory outside the tree.

    The fresh venv gets its third-party packages from this environment's site-packages (a
    `.pth` line: its own `.pth` files, among them the editable install's finder, are not
    run from there), so `asn` can only come from the wheel; `pip install .` with
    dependencies is the same install plus downloads.
    """
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=IGNORE)
    r = _run(PY, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
             tmp_path / "dist", src)
    assert r.returncode == 0, r.stderr
    wheel = next((tmp_path / "dist").glob("asnc-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    for module in ("asn/backends/tensorflow/layers/blocks.py", "asn/dsl/grammar.lark",
                   "asn/backends/tensorflow/rewrites/fold_batchnorm.py",
                   "asn/compiler/passes/registry.py", "asn/cli/main.py"):
        assert module in names, module
    venv = tmp_path / "venv"
    assert _run(PY, "-m", "venv", "--without-pip", venv).returncode == 0
    vpy = venv / "bin" / "python"
    site = Path(_run(vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                .stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = _run(PY, "-m", "pip", "--python", vpy, "install", "--no-deps", "-q", wheel)
    assert r.returncode == 0, r.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run(vpy, "-c", "import asn.backends.tensorflow.layers as m; print(m.__file__)",
                 cwd=work)
    assert where.stdout.strip().startswith(str(site)), where
    asnc = venv / "bin" / "asnc"
    r = _run(asnc, "check", EXAMPLES / "tutorial.asn", cwd=work)
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    r = _run(asnc, "compile", EXAMPLES / "tutorial.asn", "-o", "out", "--frames", "2",
             "--size", "32", "32", cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    report = json.loads((work / "out" / "report.json").read_text())
    assert report["parity"]["ok"] and (work / "out" / "model.onnx").is_file()


def test_mypy_resolves_every_import():
    """mypy over `dsl/` and `compiler/` (as `asn.dsl`, `asn.compiler`: pyproject's
    `files`) finds every module it is asked to follow: no import error of any kind."""
    r = _run(PY, "-m", "mypy", "--no-incremental", cwd=ROOT)
    import_errors = [line for line in r.stdout.splitlines()
                     if "[import-not-found]" in line or "[import-untyped]" in line
                     or "[import]" in line or "Cannot find implementation" in line]
    assert import_errors == [], "\n".join(import_errors)
    assert "error: " not in r.stdout, r.stdout[-3000:]


def test_pyright_resolves_every_import():
    """pyright over `asn/`, `dsl/`, `compiler/`, `backends/`, `tests/`, `benchmarks/` and
    `examples/` (pyproject's `include`) reports no unresolved import."""
    r = _run(PY, "-m", "pyright", "--outputjson", cwd=ROOT, timeout=900)
    data = json.loads(r.stdout)
    unresolved = [f"{d['file']}:{d['range']['start']['line'] + 1}: {d['message']}"
                  for d in data["generalDiagnostics"]
                  if d.get("rule") in ("reportMissingImports", "reportMissingModuleSource",
                                       "reportAttributeAccessIssue")
                  and "import" in d["message"].lower()]
    assert unresolved == [], "\n".join(unresolved)
    real = sum(1 for folder in ("asn/cli", "dsl", "compiler", "backends", "tests", "benchmarks",
                                "examples") for _ in (ROOT / folder).rglob("*.py"))
    assert data["summary"]["filesAnalyzed"] >= real  # every file read (some twice, via asn/)


def test_ruff_is_clean():
    r = _run(PY, "-m", "ruff", "check", "--no-cache", ".", cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:]


def test_the_front_end_never_imports_tensorflow_or_the_backend():
    """Data flows one way: `dsl/` imports nothing of `compiler/` or `backends/`, and
    `compiler/` nothing of `backends/` (nor TensorFlow); read from the source, so a lazy
    import inside a function counts too."""
    import ast

    def imported(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names.add("." * node.level + (node.module or ""))
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
        return sorted(f"{p.relative_to(ROOT)}: {name}" for p in (ROOT / folder).rglob("*.py")
                      for name in imported(p)
                      if any(name.lstrip(".").split(".")[0] == f or
                             (name.startswith("..") and name.lstrip(".").startswith(f))
                             for f in forbidden))

    assert offenders("dsl", ("compiler", "backends", "tensorflow", "keras")) == []
    assert offenders("compiler", ("backends", "tensorflow", "keras")) == []


@pytest.mark.parametrize("name", backend_pass_names())
def test_every_backend_pass_has_both_parts(name):
    """The TF-free part is registered (blocker, counting); the rewrite is found by name."""
    p = get_backend_pass(name)
    assert callable(p.blocker) and callable(p.counting) and p.info.description
    module = ROOT / "backends" / "tensorflow" / "rewrites" / f"{name.replace('-', '_')}.py"
    assert module.is_file(), f"backend pass `{name}` has no rewrite module {module}"
    assert "\ndef rewrite(step: RewriteStep)" in module.read_text()
