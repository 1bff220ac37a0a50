"""The command line: exit codes, machine-readable output, no TensorFlow in the front end."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import EXAMPLES, REFERENCE

from asn.cli.main import main


def run(*args, capsys=None):
    code = main(list(args))
    return code


def test_check_ok_and_bad(tmp_path, capsys):
    assert run("check", str(EXAMPLES / "tutorial.asn")) == 0
    bad = tmp_path / "bad.asn"
    bad.write_text("network n { }\nstem r0 = rgb\nblock b = bottleneck(level=3, filters=8) <- r1\n")
    assert run("check", str(bad)) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3:45: error: unknown input `r1` of block `b`" in err
    assert "did you mean `r0`?" in err


def test_check_json(tmp_path, capsys):
    bad = tmp_path / "bad.asn"
    bad.write_text("network n { frames 0 }\n")
    assert run("check", "--json", str(bad)) == 1
    diags = json.loads(capsys.readouterr().out)
    frames = next(d for d in diags if "frames" in d["message"])
    assert frames["line"] == 1 and frames["col"] == 20 and frames["severity"] == "error"
    # the header error hides nothing behind it: the file has no stem either
    assert any(d["code"] == "ASN130" and "no stem" in d["message"] for d in diags)


def test_stats_json_keys(capsys, golden):
    assert run("stats", "--json", str(EXAMPLES / "assemblenet50.asn")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["network"] == "assemblenet50"
    assert data["params"] == golden["assemblenet50"]["published_weights"]  # 400 classes
    node = next(n for n in data["nodes"] if n["name"] == "b14")
    assert node["kind"] == "block" and node["shape"] == [32, 7, 7, 2048]
    assert {"name", "kind", "shape", "params", "flops"} <= set(node)


def test_stats_overrides(capsys, golden):
    assert run("stats", "--json", "--frames", "4", "--size", "64", "64", "--classes", "101",
               str(EXAMPLES / "assemblenet50.asn")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == golden["assemblenet50"]["by_num_classes"]["101"]["published_weights"]
    assert next(n for n in data["nodes"] if n["name"] == "b14")["shape"] == [4, 2, 2, 2048]


def test_export_list_and_import(tmp_path, capsys, structures):
    assert run("export", "--to", "list", str(EXAMPLES / "assemblenet50.asn")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["structure"] == structures["assemblenet50"]["structure"]
    src = tmp_path / "an50.json"
    src.write_text(json.dumps(structures["assemblenet50"]))
    out = tmp_path / "an50.asn"
    assert run("import", str(src), "-o", str(out), "--name", "assemblenet50") == 0
    assert out.read_text() == (EXAMPLES / "assemblenet50.asn").read_text()


def test_fmt_check(tmp_path):
    f = tmp_path / "x.asn"
    f.write_text("network x{depth 26}\nstem r=rgb\nblock b=bottleneck(level=3,filters=4)<-r\n")
    assert run("fmt", "--check", str(f)) == 1
    assert run("fmt", "-w", str(f)) == 0
    assert run("fmt", "--check", str(f)) == 0


def test_schema_is_json_schema(capsys):
    assert run("schema") == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["type"] == "object" and "header" in schema["properties"]


def test_usage_error_is_exit_1():
    assert run("export", "--to", "yaml", str(EXAMPLES / "tutorial.asn")) == 1
    assert run("no-such-command") == 1


def test_front_end_does_not_import_tensorflow():
    code = ("import sys; from asn.cli.main import main; "
            f"rc = main(['stats', '--json', r'{EXAMPLES / 'assemblenet50.asn'}']); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_reference_file_needs_pick(capsys):
    assert run("check", str(REFERENCE / "structures.json")) == 1
    assert "--pick assemblenet50" in capsys.readouterr().err


def test_tf_marker_expressions():
    """`-m` expressions under which conftest.py collects no module marked `tf` (so the run
    stays TensorFlow-free) and those under which it must collect them."""
    from conftest import deselects_tf

    for expr in ("not tf", "not tf and not slow", "slow and not tf", "not (tf or slow)"):
        assert deselects_tf(expr), expr
    for expr in ("", "tf", "not slow", "slow", "tf or not tf", "not tf or slow", "tf(x=1)"):
        assert not deselects_tf(expr), expr
