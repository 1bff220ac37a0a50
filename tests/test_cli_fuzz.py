"""Fuzzing every front-end command through the command line itself.

tests/test_fuzz.py drives the library; this drives `asnc` the way a user does: each input is
written to a file (under a name full of rich markup, emoji codes and spaces) and every
front-end command runs on it in process. The oracle, for every command and input:

- the exit code is 0 or 1 (2 is an internal error), and stderr holds no traceback;
- an exit code of 1 comes with at least one `...: error: ...` line on stderr;
- the commands agree: `check`, `stats`, `export`, `viz` and `opt` accept exactly the same
  files (they run the same validation);
- machine-readable output is JSON (`check --json`, `stats --json`, `export --to json|list`);
- what a command writes is itself valid: `fmt`'s and `export`'s output checks clean, and
  `import` of the list export gives a network that checks clean with the same parameter
  count as `stats --json` of the original.

Set ASNC_CLI_FUZZ_EXAMPLES for more inputs per strategy (default 60: with a dozen commands
per input, about two thousand command runs); `-m slow` runs ten times as many.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netgen import networks
from test_fuzz import ASN_TEXTS, mutated_asn, time_limit

from asn.cli.main import main

N = int(os.environ.get("ASNC_CLI_FUZZ_EXAMPLES", "60"))
SETTINGS = dict(deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
    HealthCheck.function_scoped_fixture])

# Paths a user may well have: rich markup (`x[/]net` is the folder `x[` and the file `]net`),
# emoji codes, spaces, brackets and globs, unicode.
NAMES = ["x[/]net", "[bold]x[/bold]", ":smile: net", "a b [1]", "n\u00e9t", "plain", "*?"]
ERROR_LINE = re.compile(r": error: ")


def run(*args: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with time_limit(20), contextlib.redirect_stdout(stdout), \
            contextlib.redirect_stderr(stderr):
        rc = main(list(args))
    out, err = stdout.getvalue(), stderr.getvalue()
    assert rc in (0, 1), (args, rc, err[-3000:])
    assert "Traceback" not in err and "internal error" not in err, (args, err[-3000:])
    if rc == 1 and args[:2] == ("check", "--json"):  # the errors are the JSON on stdout
        assert any(d["severity"] == "error" for d in json.loads(out)), (args, out[-2000:])
    elif rc == 1:
        assert ERROR_LINE.search(err), (args, err[-2000:])
    return rc, out, err


def exercise(tmp_path, text: str, name: str, suffix: str, allow: bool = False) -> str:
    """Every front-end command on `text`; returns "valid" or "invalid".

    `allow`: the text names a user module; give `--import-modules` (only for generated
    networks, whose one user module is the test's own `netgen:Pointwise`: fuzzed text may
    name any module).
    """
    path = str(tmp_path / f"{name}{suffix}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    flag = ["--import-modules"] if allow else []
    rc_check, out, _ = run("check", "--json", *flag, path)
    diags = json.loads(out)
    assert isinstance(diags, list)
    # a user module: the text commands do not import it, so they cannot see what its shapes
    # break (nor that it is refused), and may accept what the others do not
    refused = allow or any(d["code"] == "ASN120" for d in diags)
    assert run("check", *flag, path)[0] == rc_check
    rc_stats, out, _ = run("stats", "--json", *flag, path)
    assert rc_stats == rc_check, "check and stats disagree"
    if rc_stats == 0:
        params = json.loads(out)["params"]["total"]
    assert run("stats", *flag, path)[0] == rc_check
    for to in ("json", "list", "asn"):
        rc, out, _ = run("export", "--to", to, path)
        assert rc == rc_check or refused, f"check and export --to {to} disagree"
        if rc == 0 and to != "asn":
            json.loads(out)
        if rc == 0 and not refused:
            exported = str(tmp_path / f"exported.{'asn' if to == 'asn' else 'json'}")
            with open(exported, "w", encoding="utf-8") as fh:
                fh.write(out)
            assert run("check", *flag, exported)[0] == 0, \
                f"export --to {to} wrote an invalid file"
            if to == "list":
                imported = str(tmp_path / "imported.asn")
                assert run("import", exported, "-o", imported)[0] == 0
                rc, out, _ = run("stats", "--json", *flag, imported)
                assert rc == 0 and json.loads(out)["params"]["total"] == params, \
                    "the list round trip changed the parameter count"
    rc_fmt, out, _ = run("fmt", path)
    if rc_fmt == 0:
        canonical = str(tmp_path / "canonical.asn")
        with open(canonical, "w", encoding="utf-8") as fh:
            fh.write(out)
        assert run("fmt", "--check", canonical)[0] == 0, "fmt is not idempotent"
        assert run("check", *flag, canonical)[0] == rc_check, \
            "fmt changed whether the file checks"
    assert run("viz", *flag, path)[0] == rc_check, "check and viz disagree"
    assert run("opt", "-O1", *flag, path)[0] == rc_check, "check and opt disagree"
    run("connect", "--all", path)
    return "valid" if rc_check == 0 else "invalid"


@settings(max_examples=N, **SETTINGS)
@given(mutated_asn(), st.sampled_from(NAMES))
def test_commands_on_mutated_asn(tmp_path, text, name):
    exercise(tmp_path, text, name, ".asn")


@st.composite
def mutated_json(draw):
    """An example's JSON form or list format with a few characters changed."""
    from asn.dsl.jsonform import to_json_form
    from asn.dsl.listformat import to_list
    from asn.dsl.parser import parse

    name, text = draw(st.sampled_from(sorted(ASN_TEXTS.items())))
    form = draw(st.sampled_from([to_json_form, to_list]))
    doc = json.dumps(form(parse(text, name)), indent=draw(st.sampled_from([None, 1])))
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(doc) - 1))
        j = draw(st.integers(i, min(len(doc), i + 8)))
        doc = doc[:i] + draw(st.sampled_from(['"8"', "true", "null", "[", "]", "{", "-1",
                                              "1e400", '"[/]"', "", "0.5"])) + doc[j:]
    return doc


@settings(max_examples=N, **SETTINGS)
@given(mutated_json(), st.sampled_from(NAMES))
def test_commands_on_mutated_json(tmp_path, text, name):
    exercise(tmp_path, text, name, ".json")


@settings(max_examples=N, **SETTINGS)
@given(networks(), st.sampled_from(NAMES), st.sampled_from([".asn", ".json"]))
def test_commands_on_generated_networks(tmp_path, net, name, suffix):
    from asn.compiler.validation import check
    from asn.dsl.jsonform import to_json_form
    from asn.dsl.printer import format_network

    text = format_network(net) if suffix == ".asn" else json.dumps(to_json_form(net))
    expected = "invalid" if check(net).has_errors else "valid"  # shapes that do not fuse
    allow = any(b.is_user_module for b in net.blocks)
    assert exercise(tmp_path, text, name, suffix, allow) == expected


def test_examples_are_valid_under_every_command(tmp_path):
    # the oracle itself must accept the published networks (a fuzz test that rejects
    # everything would pass vacuously)
    for name, text in sorted(ASN_TEXTS.items()):
        stem = name.removesuffix(".asn")
        assert exercise(tmp_path, text, f"x[/]{stem}", ".asn") == "valid", name


@pytest.mark.slow
@settings(max_examples=10 * N, **SETTINGS)
@given(mutated_asn(), st.sampled_from(NAMES))
def test_commands_on_mutated_asn_long(tmp_path, text, name):
    exercise(tmp_path, text, name, ".asn")
