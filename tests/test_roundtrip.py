"""Every surface form keeps every valid network, through the commands, and no form coerces.

For each network `netgen.networks()` draws that checks clean:

- `asnc export --to list` then `load` and `asnc import` give the same IR (names, node
  order, every header setting: the import defaults apply only to what a file does not give,
  and an exported file gives it all) and the same `asnc stats` parameter count;
- `asnc export --to json` then `load` and `asnc import`: the same.

(`.asn` text -> parse is tests/test_properties.py.) Then the cases that were lossy, and
strict types: a string or a boolean where a number goes is a diagnostic naming the field,
in the JSON form, the list format and `.asn` text.

ASNC_ROUNDTRIP_EXAMPLES sets the examples per property (default 150).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings

from asn.cli.main import main
from asn.compiler.analysis import analyse
from asn.compiler.validation import check
from asn.dsl.ir import Network
from asn.dsl.jsonform import to_json_form
from asn.dsl.listformat import to_list
from asn.dsl.loader import load
from asn.dsl.parser import parse
from asn.dsl.printer import format_network

from conftest import EXAMPLES, PUBLISHED, REFERENCE
from netgen import networks

N = int(os.environ.get("ASNC_ROUNDTRIP_EXAMPLES", "150"))
ROUNDTRIP = settings(max_examples=N, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.filter_too_much])


def _asnc(*args: str) -> None:
    assert main(list(args)) == 0, args


def _through(net: Network, form: str) -> tuple[Network, Network]:
    """`net` written as .asn, exported `--to form`: (`load` of the export, `import` of it)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, exported, imported = (os.path.join(tmp, f) for f in ("n.asn", "n.json", "i.asn"))
        Path(src).write_text(format_network(net))
        _asnc("export", "--to", form, src, "-o", exported)
        _asnc("import", exported, "-o", imported)
        return load(exported), load(imported)


def _assert_same(net: Network, *others: Network) -> None:
    total = analyse(net).total
    for other in others:
        assert other == net
        assert analyse(other).total == total


@ROUNDTRIP
@given(networks())
def test_list_format_export_import_is_lossless(net):
    assume(not check(net).has_errors)
    _assert_same(net, *_through(net, "list"))


@ROUNDTRIP
@given(networks())
def test_json_form_export_import_is_lossless(net):
    assume(not check(net).has_errors)
    _assert_same(net, *_through(net, "json"))


# --- the cases that were lossy -------------------------------------------------------------

def test_attention_none_survives_the_list_format():
    """AssembleNet++-50 with `attention none` came back with peer attention (38,255,858 ->
    48,139,782 parameters): a setting at its default was not written, and the import
    default for an AssembleNet++ structure filled it in."""
    net = load(str(EXAMPLES / "assemblenet_plus50.asn"))
    net = net.model_copy(update={"header": net.header.model_copy(update={"attention": "none"})})
    assert analyse(net).total == 38_255_858
    listed, imported = _through(net, "list")
    assert imported.header.attention == "none"
    _assert_same(net, listed, imported)


ALL_LITE = """
network all_lite { depth [1, 1, 1, 1] frames 4 size 32x32 classes 10 }
stem r = rgb
stem f = flow
block a = lite(level=0, filters=[8, 8, 8]) <- r, f
block top = lite(level=3, filters=[16, 16, 16], stride=2) <- a
"""


def test_all_lite_blocks_stay_a_standard_network():
    """A standard network whose blocks are all lite came back as the lite variant (other
    stems, flow and head)."""
    net = parse(ALL_LITE)
    listed, imported = _through(net, "list")
    assert imported.header.variant == "standard"
    _assert_same(net, listed, imported)


LITE_HEAD = """
network lite_head { depth [1, 1, 1, 1] frames 4 size 32x32 classes 10 variant lite }
stem r = rgb
block a = lite(level=3, filters=[8, 8, 8]) <- r, b
block b = lite(level=3, filters=[8, 8, 16]) <- r
"""


def test_lite_default_head_stays_on_its_block():
    """The lite head is the first level-3 block declared; the list format writes `b` before
    `a` (a reads b), and the head moved to `b`: `order` keeps the declaration order."""
    net = parse(LITE_HEAD)
    assert net.head_names() == ["a"]
    assert to_list(net)["order"] == [0, 2, 1]
    listed, imported = _through(net, "list")
    assert imported.head_names() == ["a"] and [n.name for n in imported.nodes] == ["r", "a", "b"]
    _assert_same(net, listed, imported)


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_lists_import_as_before(tmp_path, name):
    """Bare official lists still get the import defaults (peer attention and 151 object
    classes for AssembleNet++, the lite variant for ++lite): the examples were made so."""
    out = tmp_path / f"{name}.asn"
    classes = ["--classes", "157"] if "plus" in name else []
    _asnc("import", str(REFERENCE / "structures.json"), "--pick", name, *classes,
          "-o", str(out))
    assert out.read_text() == (EXAMPLES / f"{name}.asn").read_text()


def test_bare_list_gets_the_import_defaults(tmp_path):
    """A bare list gives no setting: AssembleNet++ defaults for an object stem, the lite
    variant and its unit counts when every block is lite."""
    plus = [[-1, 1], [-3, 1], [3, [0, 1], 8, 1, 1]]
    lite = [[-1, 1], [3, [0], [8, 8, 8], 1, 1]]
    headers = []
    for k, structure in enumerate((plus, lite)):
        src, out = tmp_path / f"s{k}.json", tmp_path / f"s{k}.asn"
        src.write_text(json.dumps(structure))
        _asnc("import", str(src), "-o", str(out))
        headers.append(load(str(out)).header)
    assert (headers[0].attention, headers[0].object_classes, headers[0].variant) == (
        "peer", 151, "standard")
    assert (headers[1].attention, headers[1].variant, headers[1].depth) == (
        "peer", "lite", (3, 5, 11, 7))


@pytest.mark.parametrize("name", PUBLISHED)
def test_fmt_keeps_what_a_list_file_leaves_to_import(tmp_path, name):
    """`fmt -w` of a list file writes no setting the file left out: a bare official list
    stays a bare list, an object keeps only its own settings, and `import` of the
    rewritten file gives what it gave before."""
    doc = json.loads((REFERENCE / "structures.json").read_text())[name]
    forms = {"bare": doc["structure"], "object": {"structure": doc["structure"],
                                                  "network": {"frames": 8}}}
    for form, data in forms.items():
        src = tmp_path / f"{form}.json"
        src.write_text(json.dumps(data))
        before, after = tmp_path / f"{form}-before.asn", tmp_path / f"{form}-after.asn"
        _asnc("import", str(src), "-o", str(before))
        _asnc("fmt", "-w", str(src))
        rewritten = json.loads(src.read_text())
        if form == "bare":
            assert rewritten == doc["structure"]
        else:
            assert rewritten["network"] == {"frames": 8} and "depth" not in rewritten
        _asnc("import", str(src), "-o", str(after))
        assert after.read_text() == before.read_text()
        _asnc("fmt", "--check", str(src))


def test_import_flags_still_override_an_exported_file(tmp_path):
    src = tmp_path / "n.json"
    src.write_text(json.dumps(to_list(parse(ALL_LITE))))
    out = tmp_path / "n.asn"
    _asnc("import", str(src), "--lite", "--attention", "self", "-o", str(out))
    header = load(str(out)).header
    assert (header.variant, header.attention, header.depth) == ("lite", "self", (1, 1, 1, 1))


def test_order_must_be_a_permutation(tmp_path, capsys):
    data = to_list(parse(LITE_HEAD))
    data["order"] = [0, 1, 1]
    src = tmp_path / "n.json"
    src.write_text(json.dumps(data, indent=1))
    assert main(["check", str(src)]) == 1
    assert "`order` must list every structure index once" in capsys.readouterr().err


# --- strict types in every form ------------------------------------------------------------

def _value_at(text: str, key: str, value: str) -> tuple[int, int]:
    """Line and column of `value` after `"key": ` (or the first `value` alone)."""
    m = re.search(re.escape(f'"{key}": {value}') if key else re.escape(value), text)
    assert m is not None, (key, value)
    start = m.end() - len(value)
    line = text.count("\n", 0, start) + 1
    return line, start - (text.rfind("\n", 0, start) + 1) + 1


TUTORIAL = load(str(EXAMPLES / "tutorial.asn"))
_JSON_BLOCK = next(k for k, n in enumerate(TUTORIAL.nodes) if n.kind == "block")


def _json_form(field: str, value) -> dict:
    data = to_json_form(TUTORIAL)
    if field == "depth":
        data["header"]["depth"] = value
    else:
        data["nodes"][_JSON_BLOCK][field] = value
    return data


def _list_format(field: str, value) -> dict:
    data = to_list(TUTORIAL)
    if field == "depth":
        data["depth"] = value
    elif field == "classes":
        data["network"]["classes"] = value
    else:
        node = next(n for n in data["structure"] if len(n) > 2)
        node[2] = value
    return data


@pytest.mark.parametrize("form", [_json_form, _list_format], ids=["json", "list"])
@pytest.mark.parametrize("field,value", [("filters", "8"), ("filters", True),
                                         ("depth", "50"), ("depth", True)])
def test_no_coercion_in_json_forms(tmp_path, capsys, form, field, value):
    text = json.dumps(form(field, value), indent=1)
    src = tmp_path / "n.json"
    src.write_text(text)
    assert main(["check", str(src)]) == 1
    err = capsys.readouterr().err
    shown = json.dumps(value)
    key = field if field == "depth" or form is _json_form else ""
    line, col = _value_at(text, key, shown)
    assert re.search(rf"^{re.escape(str(src))}:{line}:{col}: error: .*\b{field}\b", err,
                     re.M), err
    assert "Traceback" not in err


def test_no_coercion_in_list_format_settings(tmp_path, capsys):
    text = json.dumps(_list_format("classes", "10"), indent=1)
    src = tmp_path / "n.json"
    src.write_text(text)
    assert main(["import", str(src)]) == 1
    line, col = _value_at(text, "classes", '"10"')
    assert f"{src}:{line}:{col}: error: invalid `classes`" in capsys.readouterr().err


@pytest.mark.parametrize("arg,value", [("filters", '"8"'), ("filters", "true"),
                                       ("level", "3.0")])
def test_no_coercion_in_asn_text(tmp_path, capsys, arg, value):
    text = f"network n {{ depth 50 }}\nstem r = rgb\nblock b = bottleneck({arg}={value}" + \
        (", level=3" if arg != "level" else ", filters=8") + ") <- r\n"
    src = tmp_path / "n.asn"
    src.write_text(text)
    assert main(["check", str(src)]) == 1
    col = text.splitlines()[2].index(f"{arg}={value}") + len(arg) + 2
    assert f"{src}:3:{col}: error: `{arg}` expects an integer" in capsys.readouterr().err


def test_builder_models_are_strict():
    """The IR itself refuses to coerce, whatever builds it (a tuple may come as a list)."""
    from pydantic import ValidationError

    from asn.dsl.ir import Block, Header, Input

    for bad in ({"depth": "50"}, {"frames": True}, {"size": ["64", 64]}, {"classes": 1.0}):
        with pytest.raises(ValidationError):
            Header.model_validate({"name": "n", **bad})
    block = {"name": "b", "level": 0, "inputs": [Input(source="r")]}
    with pytest.raises(ValidationError):
        Block.model_validate({**block, "filters": "8"})
    assert Header.model_validate({"name": "n", "size": [64, 32]}).size == (64, 32)
    assert Header.model_validate({"name": "n", "depth": [1, 2, 3, 4]}).depth == (1, 2, 3, 4)
    assert Block.model_validate({**block, "filters": [1, 2, 3]}).module == "lite"
