"""Fuzzing the front end: whatever comes in, the answer is a network or a diagnostic.

Every input (random text, mutated example networks, random list-format and JSON-form
structures, random bytes) must either load and check, or raise `DiagnosticError` with at
least one error that renders as `file:line:col: error: ...`. Any other exception is a bug,
and so is a hang (each example runs under a 5 s alarm). A network that loads and checks
without errors must also survive `fmt`: its canonical text parses back to the same IR and
formats to itself.

Inputs that once crashed the front end are kept in REGRESSIONS below.
Set ASNC_FUZZ_EXAMPLES to run more examples per strategy (default 400).
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
from contextlib import contextmanager

import pytest
from conftest import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asn.compiler.validation import check
from asn.dsl.diagnostics import CODES, DiagnosticError, Source, render, to_json
from asn.dsl.jsonform import to_json_form
from asn.dsl.loader import load_text
from asn.dsl.parser import parse
from asn.dsl.printer import format_network
from asn.dsl.textio import check_text

N = int(os.environ.get("ASNC_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=N, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
TIME_LIMIT_S = 5

ASN_TEXTS = {p.name: p.read_text() for p in sorted(EXAMPLES.glob("*.asn"))}


# --- the oracle --------------------------------------------------------------------------

class Hang(BaseException):
    """Raised by the alarm; a BaseException so that no `except Exception` swallows it."""


@contextmanager
def time_limit(seconds: int = TIME_LIMIT_S):
    if not hasattr(signal, "SIGALRM"):  # pragma: no cover - not on Windows
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"the front end took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def assert_renders(diags, source: Source | None, path: str) -> None:
    for d in diags:
        assert d.code in CODES, d
        assert d.message, d
        text = render(d, source)
        head = text.split("\n")[0]
        where = f"{path}:{d.span.line}:{d.span.col}" if d.span else path
        assert head.startswith(f"{where}: {d.severity}: "), text
        assert head.endswith(f"[{d.code}]") and head.isprintable(), text
        if d.span is not None and source is not None and source.text:
            lines = source.text.split("\n")
            assert 1 <= d.span.line <= len(lines), (d, len(lines))
            assert d.span.col >= 1, d
            # the caret stays on the line (one past the end marks "end of input")
            assert d.span.col <= len(lines[d.span.line - 1]) + 1, (d, lines[d.span.line - 1])
    json.loads(to_json(diags, path))


def exercise(data: str | bytes, path: str = "fuzz.asn") -> str:
    """Run the front end on `data`; returns "rejected", "invalid" or "valid"."""
    with time_limit():
        try:
            text = check_text(data, path)
            net = load_text(text, path)
        except DiagnosticError as exc:
            assert any(d.is_error for d in exc.diagnostics), exc.diagnostics
            assert_renders(exc.diagnostics, exc.source, path)
            return "rejected"
        source = Source(path, text)
        diags = check(net)
        assert_renders(diags, source, path)
        if diags.has_errors:
            return "invalid"
        canonical = format_network(net)
        again = parse(canonical, "canonical.asn")
        assert again == net, canonical
        assert format_network(again) == canonical
        return "valid"


# --- random text -------------------------------------------------------------------------

VOCAB = [
    "network", "stem", "block", "heads", "n", "r0", "f1", "b2", "rgb", "flow", "object",
    "bottleneck", "bottleneck3d", "lite", '"pkg.mod:Block"', '""', "=", "<-", "<", "-", "@",
    ",", "(", ")", "{", "}", "[", "]", "level", "filters", "dilation", "stride", "depth",
    "frames", "size", "classes", "combine", "attention", "objects", "head_pool", "variant",
    "concat", "peer", "self", "none", "0", "1", "3", "-1", "50", "0.5", "1e-3", ".5", "1.",
    "nan", "inf", "-inf", "1e999", "224x224", "0x0", "99999999999999999999", "#", "# c\n",
    "\n", " ", "\t", "x", ":", ";", "\"", "\u00e9", "\u2028", "\r\n",
]

token_text = st.lists(st.sampled_from(VOCAB), max_size=60).map(" ".join)
any_text = st.text(max_size=300)
grammar_text = st.text(alphabet=st.sampled_from(list("networkstemblocheadsrgbflw=<-@,(){}[]"
                                                     "0123456789.eE+-x_#\" \n\t")),
                       max_size=300)


@FUZZ
@given(st.one_of(token_text, any_text, grammar_text))
def test_random_text(text):
    exercise(text)


@FUZZ
@given(st.sampled_from(VOCAB).flatmap(
    lambda first: st.lists(st.sampled_from(VOCAB), max_size=40).map(
        lambda rest: "network n { frames 4 size 32x32 }\nstem r0 = rgb\n" + first + " "
        + " ".join(rest))))
def test_random_statements_after_a_valid_prefix(text):
    exercise(text)


# --- mutated example networks ------------------------------------------------------------

_TOKEN = re.compile(r'\s+|#[^\n]*|"[^"\n]*"|<-|[A-Za-z_][A-Za-z0-9_]*|'
                    r'[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?(?:x[0-9]+)?|.', re.S)


@st.composite
def mutated_asn(draw) -> str:
    text = draw(st.sampled_from(sorted(ASN_TEXTS.values())))
    level = draw(st.sampled_from(["char", "token"]))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "swap", "replace"]))
        if level == "token":
            toks = _TOKEN.findall(text)
            solid = [k for k, t in enumerate(toks) if not t.isspace()]
            i, j = (solid[draw(st.integers(0, len(solid) - 1))] for _ in range(2))
            if op == "delete":
                del toks[i]
            elif op == "insert":
                toks.insert(i, draw(st.sampled_from(VOCAB)) + " ")
            elif op == "duplicate":
                toks.insert(i, toks[i] + " ")
            elif op == "swap":
                toks[i], toks[j] = toks[j], toks[i]
            else:
                toks[i] = draw(st.sampled_from(VOCAB))
            text = "".join(toks)
        else:
            n = len(text)
            i = draw(st.integers(0, max(0, n - 1)))
            j = draw(st.integers(i, min(n, i + 40)))
            if op == "delete":
                text = text[:i] + text[j:]
            elif op == "insert":
                text = text[:i] + draw(st.sampled_from(VOCAB) | st.characters()) + text[i:]
            elif op == "duplicate":
                text = text[:j] + text[i:j] + text[j:]
            elif op == "swap" and j < n:
                text = text[:i] + text[j] + text[i + 1:j] + text[i] + text[j + 1:]
            else:
                text = text[:i] + draw(st.sampled_from(list("{}()=@,<-#\n0123456789x.")))\
                    + text[i + 1:]
    return text


@FUZZ
@given(mutated_asn())
def test_mutated_examples(text):
    exercise(text)


# --- list-format and JSON-form structures ------------------------------------------------

weird_number = st.one_of(
    st.integers(-4, 8), st.integers(), st.integers(-(10 ** 30), 10 ** 30),
    st.sampled_from([10 ** 19, -(10 ** 19), 2 ** 63, 10 ** 400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1), st.booleans(), st.none(), st.text(max_size=4),
)
json_value = st.recursive(
    weird_number, lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@st.composite
def list_node(draw, index: int):
    kind = draw(st.sampled_from(["stem", "block", "block", "block", "junk"]))
    small = st.integers(-2, 4) | weird_number
    if kind == "stem":
        return [draw(st.sampled_from([-1, -2, -3]) | weird_number), draw(small)]
    if kind == "block":
        lo = -2 if draw(st.booleans()) else 0
        src = st.integers(lo, max(lo, index)) | weird_number
        inputs = draw(st.lists(src, max_size=4) | weird_number)
        filters = draw(st.integers(-1, 64) | st.lists(st.integers(0, 64), max_size=4)
                       | weird_number)
        node = [draw(st.integers(-1, 4) | weird_number), inputs, filters, draw(small),
                draw(small)]
        if draw(st.booleans()):
            node.append(draw(st.just(0) | weird_number))
        return node
    return draw(json_value)


@st.composite
def list_format(draw):
    n = draw(st.integers(0, 8))
    structure = [draw(list_node(i)) for i in range(n)]
    if draw(st.booleans()):
        return structure
    doc: dict = {"structure": structure}
    if draw(st.booleans()):
        weights = []
        for node in structure:
            k = len(node[1]) if isinstance(node, list) and len(node) > 1 and \
                isinstance(node[1], list) else 1
            weights.append(draw(st.just([]) | st.lists(
                st.lists(st.floats(allow_nan=True, allow_infinity=True) | weird_number,
                         min_size=k, max_size=k), min_size=1, max_size=1) | json_value))
        doc["weights"] = draw(st.just(weights) | json_value)
    if draw(st.booleans()):
        doc["depth"] = draw(st.sampled_from([26, 50, 101, 7]) | st.lists(
            st.integers(-1, 5), max_size=5) | weird_number)
    if draw(st.booleans()):
        doc["names"] = draw(st.lists(st.sampled_from(["a", "b", "a", "x y", "", "1a", "_"])
                                     | st.text(max_size=4), min_size=n, max_size=n)
                            | json_value)
    if draw(st.booleans()):
        doc["heads"] = draw(st.lists(st.sampled_from(["b1", "b2", "r0", "zz"]), max_size=3)
                            | json_value)
    if draw(st.booleans()):
        doc["network"] = draw(st.fixed_dictionaries({}, optional={
            "frames": st.integers(-1, 64) | weird_number,
            "size": st.lists(st.integers(-1, 300), max_size=3) | weird_number,
            "classes": weird_number, "attention": st.sampled_from(["none", "self", "peer", "x"]),
            "combine": st.sampled_from(["sigmoid", "concat", 3]),
            "variant": st.sampled_from(["standard", "lite", None]),
            "object_classes": weird_number, "name": st.sampled_from(["n", "1n", "", "a b"]),
            "comments_before": st.just(["# x"]), "bogus": weird_number,
        }) | json_value)
    if draw(st.booleans()):
        doc[draw(st.text(max_size=6))] = draw(json_value)
    return doc


def _dumps(data) -> str:
    return json.dumps(data, allow_nan=True, indent=draw_indent(data))


def draw_indent(data) -> int | None:
    return 1 if len(repr(data)) % 2 else None


@FUZZ
@given(list_format())
def test_random_list_format(doc):
    exercise(_dumps(doc), "fuzz.json")


@FUZZ
@given(json_value)
def test_random_json(value):
    exercise(_dumps(value), "fuzz.json")


@functools.lru_cache(maxsize=1)
def _json_forms() -> list[str]:
    return [json.dumps(to_json_form(parse(t, name))) for name, t in sorted(ASN_TEXTS.items())]


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for k, v in enumerate(value):
            yield from _paths(v, prefix + (k,))


@st.composite
def mutated_json_form(draw):
    doc = json.loads(draw(st.sampled_from(_json_forms())))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["span", "comments_before", "extra", "kind", "weight"]))]\
                = draw(json_value)
        else:
            parent[path[-1]] = draw(json_value)
    return doc


@FUZZ
@given(mutated_json_form())
def test_mutated_json_form(doc):
    exercise(_dumps(doc), "fuzz.json")


@FUZZ
@given(st.integers(1, 400), st.sampled_from(["[", "{\"a\":", "[[", "{\"structure\":["]),
       st.booleans())
def test_deep_nesting(depth, opener, close):
    closer = {"[": "]", "{\"a\":": "}", "[[": "]]", "{\"structure\":[": "]}"}[opener]
    text = opener * depth + "1" + (closer * depth if close else "")
    exercise(text, "deep.json")


# --- random bytes ------------------------------------------------------------------------

@FUZZ
@given(st.one_of(
    st.binary(max_size=400),
    st.tuples(st.sampled_from(sorted(ASN_TEXTS.values())), st.binary(max_size=20),
              st.integers(0, 2000)).map(
        lambda t: t[0].encode()[:t[2]] + t[1] + t[0].encode()[t[2]:]),
))
def test_random_bytes(data):
    exercise(data, "fuzz.asn")


# --- regressions: inputs that once crashed the front end ---------------------------------

_BIG = "9" * 5000  # more digits than Python converts to int by default

REGRESSIONS = {
    # a NEL (U+0085) in the message: str.splitlines broke the rendered line in two
    "nel_in_message": ("fuzz.asn", "\x850"),
    "form_feed_line_count": ("fuzz.asn", "network n { }\x0cstem r0 rgb\n"),
    # pydantic ValidationError escaped from the list-format reader
    "list_stem_dilation_range": ("fuzz.json", '{"structure": [[-1, 1001]]}'),
    "list_bad_names": ("fuzz.json", '{"structure": [[-1, 1], [3, [0], 8, 1, 1]], '
                                    '"names": ["a b", "c"]}'),
    # ValueError (int max str digits) from the JSON reader and lark's VisitError from .asn
    "json_huge_integer": ("fuzz.json", f"[[-1, 1], [0, [0], {_BIG}, 1, 1]]"),
    "asn_huge_integer": ("fuzz.asn", f"network n {{ frames {_BIG} }}"),
    "asn_huge_dims": ("fuzz.asn", f"network n {{ size {_BIG}x2 }}"),
    # the JSON form accepted source-only fields, which `fmt` then printed as text
    "json_form_source_fields": ("fuzz.json", '{"header": {"name": "n", "setting_comments": '
                                '{"depth": [[], "not a comment"]}}, "nodes": []}'),
    # peer attention with a lower level declared after the block that attends to it: the
    # analysis ran in plain topological order and missed the candidate's shape (KeyError)
    "peer_lower_level_declared_later": ("fuzz.asn", (
        "network n { attention peer }\nstem r0 = rgb\n"
        "block a = bottleneck(level=1, filters=8) <- r0\n"
        "block c = bottleneck(level=0, filters=8) <- r0\n"
        "block d = bottleneck(level=3, filters=8) <- a, c\n")),
    # a block with no inputs (only the JSON form can say so) crashed the shape analysis
    "json_form_block_without_inputs": ("fuzz.json", json.dumps({
        "header": {"name": "n"},
        "nodes": [{"kind": "stem", "name": "r", "type": "rgb"},
                  {"kind": "block", "name": "b", "level": 3, "inputs": [], "filters": 8}]})),
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regression(name):
    path, data = REGRESSIONS[name]
    exercise(data, path)


def test_examples_are_valid():
    for name, text in ASN_TEXTS.items():
        assert exercise(text, name) == "valid"


def test_fmt_never_crashes_on_networks_that_do_not_check(tmp_path, capsys):
    """`asnc fmt` formats without checking: an empty module name crashed the printer, and
    a module the grammar cannot read bare must come out quoted."""
    from asn.cli.main import main

    path = tmp_path / "m.asn"
    for module, shown in (('""', '""'), ('"\u00e9t\u00e9"', '"\u00e9t\u00e9"'), ('"1x"', '"1x"'),
                          ("bottleneck", "bottleneck"), ('"a.b:C"', '"a.b:C"')):
        path.write_text(f"network n {{ }}\nstem r = rgb\n"
                        f"block b = {module}(level=3, filters=8) <- r\n")
        assert main(["fmt", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"block b = {shown}(level=3, filters=8) <- r" in out
        assert parse(out) == parse(path.read_text())
    # source-only fields in the JSON form are refused, not printed as comments
    path = tmp_path / "m.json"
    path.write_text('{"header": {"name": "n", "comments_before": ["not a comment"]}, '
                    '"nodes": [{"kind": "stem", "name": "r", "type": "rgb"}]}')
    assert main(["fmt", str(path)]) == 1
    assert "unknown field `comments_before`" in capsys.readouterr().err
