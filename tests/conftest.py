"""Shared fixtures (the reference data in ../shared/reference, the examples) and the test
markers, registered here and nowhere else.

Markers:

- ``slow``: long-running (full-size networks); the default run leaves them out
  (``addopts`` in pyproject.toml).
- ``tf``: the test imports TensorFlow or Keras, directly or through the backend, or runs a
  command that does. ``pytest -m "not tf"`` then runs without TensorFlow: a module marked
  ``tf`` as a whole (module-level ``pytestmark``) is not even imported, since importing it
  imports TensorFlow, and the run fails at the end if TensorFlow was imported anyway, naming
  the first test after which it was.
"""

from __future__ import annotations

import ast
import functools
import itertools
import json
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(os.environ.get("ASNC_REFERENCE", ROOT.parent / "shared" / "reference"))
EXAMPLES = ROOT / "examples"
PUBLISHED = ("assemblenet50", "assemblenet101", "assemblenet_plus50", "assemblenet_plus_lite")

MARKERS = {
    "slow": "long-running (full-size networks); excluded by default",
    "tf": "imports TensorFlow/Keras (directly, through the backend or in a subprocess)",
}
TF_MODULES = ("tensorflow", "keras")


@pytest.fixture(scope="session")
def structures() -> dict:
    return json.loads((REFERENCE / "structures.json").read_text())


@pytest.fixture(scope="session")
def golden() -> dict:
    return json.loads((REFERENCE / "golden.json").read_text())


# ------------------------------------------------------------------------------------------
# Markers, and a TensorFlow-free `-m "not tf"`
# ------------------------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    if _tf_deselected(config) and getattr(config.option, "dist", "no") != "no":
        # The TensorFlow-free run checks this process's sys.modules at the end; xdist
        # workers' checks could not fail the run. It is quick: run it serially (before
        # xdist's own pytest_configure reads the option).
        config.option.dist = "no"
        config.option.numprocesses = None


@functools.lru_cache(maxsize=None)
def deselects_tf(markexpr: str) -> bool:
    """True when the `-m` expression selects no test marked `tf`, whatever its other marks.

    Every combination of the other marker names in the expression is tried with `tf` set
    (a handful of names: at most 2**8 evaluations). Expressions with marker arguments are
    not analysed (False: collect as usual).
    """
    if not markexpr or "=" in markexpr:
        return False
    from _pytest.mark.expression import Expression  # what `-m` itself evaluates

    try:
        expression = Expression.compile(markexpr)
    except SyntaxError:
        return False  # pytest reports it
    names = sorted(set(re.findall(r"[\w.:+\-\[\]\\/]+", markexpr)) - {"and", "or", "not", "tf"})
    if len(names) > 8:
        return False
    for values in itertools.product((False, True), repeat=len(names)):
        marks = frozenset({"tf", *(n for n, v in zip(names, values) if v)})
        if expression.evaluate(marks.__contains__):  # no marker arguments: called with a name
            return False
    return True


def _tf_deselected(config) -> bool:
    return deselects_tf(config.getoption("markexpr") or "")


@functools.lru_cache(maxsize=None)
def module_marked_tf(path: Path) -> bool:
    """Whether the module's own `pytestmark = ...` (module level) includes `pytest.mark.tf`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets):
            for node in ast.walk(stmt.value):
                if (isinstance(node, ast.Attribute) and node.attr == "tf"
                        and isinstance(node.value, ast.Attribute) and node.value.attr == "mark"):
                    return True
    return False


def pytest_ignore_collect(collection_path: Path, config):
    if (collection_path.suffix == ".py" and collection_path.name.startswith("test_")
            and _tf_deselected(config) and module_marked_tf(collection_path)):
        return True  # collecting it would import TensorFlow; every test in it is deselected
    return None


_first_tf_import: list[str] = []  # where TensorFlow was first seen in sys.modules


def _note_tf_import(where: str) -> None:
    if not _first_tf_import and any(m in sys.modules for m in TF_MODULES):
        _first_tf_import.append(where)


def pytest_collection_finish(session):
    if _tf_deselected(session.config):
        _note_tf_import("collection")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    result = yield
    if _tf_deselected(item.config):
        _note_tf_import(f"test {item.nodeid}")
    return result


def pytest_sessionfinish(session, exitstatus):
    if not _tf_deselected(session.config):
        return
    _note_tf_import("the end of the run")
    if not _first_tf_import:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = (f"-m {session.config.getoption('markexpr')!r} deselects the tests marked `tf`, "
               f"but TensorFlow was imported (first seen after {_first_tf_import[0]}): "
               "mark what imports it `tf` (tests/conftest.py)")
    if reporter is not None:
        reporter.write("\n")
        reporter.write_line(f"ERROR: {message}", red=True, bold=True)
    else:
        print(f"ERROR: {message}", file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
