"""The command line as people expect it: --version, -h, `python -m asn`, readable --help,
choices refused as usage errors, progress when piped, and every independent error at once."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from importlib.metadata import version

import pytest
from conftest import EXAMPLES, ROOT
from rich.console import Console

from asn.cli.main import main

TUTORIAL = str(EXAMPLES / "tutorial.asn")


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"asnc {version('asnc')}"


@pytest.mark.parametrize("args", [["-h"], ["check", "-h"], ["compile", "-h"], ["train", "-h"]])
def test_dash_h_is_help(args, capsys):
    assert main(args) == 0
    assert "Usage: asnc" in capsys.readouterr().out


def test_python_dash_m_asn():
    # run from tests/: the package is found installed, not through the cwd
    r = subprocess.run([sys.executable, "-m", "asn", "--help"], capture_output=True,
                       text=True, cwd=ROOT / "tests", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Usage: asnc" in r.stdout and "compile" in r.stdout


def test_completion_is_offered(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--install-completion" in out and "--show-completion" in out


def test_check_explain_needs_no_file(capsys):
    assert main(["check", "--explain", "asn101"]) == 0
    assert capsys.readouterr().out.startswith("ASN101: ")
    assert main(["check", "--explain", "ASN999"]) == 1
    assert "unknown code" in capsys.readouterr().err
    assert main(["check"]) == 1  # neither a file nor --explain
    assert "give a network file" in capsys.readouterr().err


def test_opt_list_passes_needs_no_file(capsys):
    assert main(["opt", "--list-passes"]) == 0
    assert "dead-node-elimination" in capsys.readouterr().out


@pytest.mark.parametrize("args, choices", [
    (["export", "--to", "yaml", TUTORIAL], ("json", "list", "asn")),
    (["import", "--attention", "both", TUTORIAL], ("none", "self", "peer")),
    (["train", TUTORIAL, "--data", ".", "--strategy", "tpu"],
     ("default", "mirrored", "multiworker")),
    (["search", TUTORIAL, "-o", "x.asn", "--data", ".", "--strategy", "tpu"],
     ("default", "mirrored", "multiworker")),
    (["compile", TUTORIAL, "-o", "out", "--format", "savedmodel,coreml"],
     ("savedmodel", "onnx", "tflite")),
    (["compile", TUTORIAL, "-o", "out", "--format", ","], ("savedmodel", "onnx", "tflite")),
    (["compile", TUTORIAL, "-o", "out", "--quantize", "int4"], ("int8",)),
    (["compile", TUTORIAL, "-o", "out", "--calibrate-method", "mean"],
     ("minmax", "entropy", "percentile")),
    (["compile", TUTORIAL, "-o", "out", "--verify-with", "tensorrt"], ("openvino",)),
])
def test_a_choice_outside_the_list_is_a_usage_error(args, choices, capsys):
    assert main(args) == 1  # refused while parsing: nothing ran, TensorFlow not loaded
    err = capsys.readouterr().err
    assert "Usage: asnc" in err and "Invalid value" in err
    assert all(c in err for c in choices), err


def test_format_list_is_still_accepted():
    """`--format savedmodel,onnx` (any order, spaces, case) passes the parse."""
    from asn.cli.cmd_compile import _artifact_formats

    assert _artifact_formats("savedmodel,onnx") == "savedmodel,onnx"
    assert _artifact_formats(" ONNX , savedmodel,onnx") == "onnx,savedmodel"


def _help(capsys, *command) -> str:
    assert main([*command, "--help"]) == 0
    return capsys.readouterr().out


def test_help_metavars_are_readable(capsys):
    text = _help(capsys, "import")
    assert "Usage: asnc import [OPTIONS] FILE" in text
    assert "{file}" not in text and "<bool>" not in text and "<str>" not in text
    assert "H W" in text and "none|self|peer" in text
    assert "Usage: asnc fmt [OPTIONS] FILES..." in _help(capsys, "fmt")
    assert "Usage: asnc check [OPTIONS] [FILE]" in _help(capsys, "check")
    for command in ("compile", "train", "export", "opt", "stats"):
        text = _help(capsys, command)
        assert "<bool>" not in text and "{file}" not in text, command
    assert "json|list|asn" in _help(capsys, "export")
    assert "<bool>" not in _help(capsys)


class _Pipe(io.StringIO):
    """A non-terminal stream that records what had been written at each flush."""

    def __init__(self):
        super().__init__()
        self.flushed: list[str] = []

    def flush(self):
        self.flushed.append(self.getvalue())


def test_compile_progress_piped_is_a_flushed_line_per_phase_start_and_end():
    from asn.cli.cmd_compile import _Progress

    pipe = _Pipe()
    progress = _Progress(Console(file=pipe, force_terminal=False, markup=False))
    assert not progress.live
    with progress:
        progress.phase("build", "start")
        assert pipe.flushed and pipe.flushed[-1].endswith("lower to Keras ...\n")
        progress.phase("build", "end")
        assert "lower to Keras: done (" in pipe.flushed[-1]
        progress.phase("onnx", "start")
        assert pipe.flushed[-1].endswith("ONNX ...\n")
    lines = pipe.getvalue().splitlines()
    assert lines[0] == "lower to Keras ..." and lines[1].startswith("lower to Keras: done (")
    assert len(lines) == 3


# --- every independent error in one run ----------------------------------------------------

def _errors(path, capsys) -> list[tuple[int, int, str, str]]:
    assert main(["check", "--json", str(path)]) == 1
    return [(d["line"], d["col"], d["code"], d["message"])
            for d in json.loads(capsys.readouterr().out) if d["severity"] == "error"]


def _at(text: str, line: int, needle: str) -> tuple[int, int]:
    return line, text.split("\n")[line - 1].index(needle) + 1


ASN = """network n { frames 0 }
stem r0 = rgb
block b0 = bottleneck(level=0, filters=32) <- r0, nope
block b1 = bottleneck(level=7, filters=64) <- b0
"""

JSON_FORM = """{"header": {"name": "n", "frames": 0},
 "nodes": [
  {"kind": "stem", "name": "r0", "type": "rgb"},
  {"kind": "block", "name": "b0", "level": 0, "filters": 32,
   "inputs": [{"source": "r0"}, {"source": "nope"}]},
  {"kind": "block", "name": "b1", "level": 7, "filters": 64, "inputs": [{"source": "b0"}]}
 ]}
"""

LIST = """{"structure": [
  [-1, 1],
  [7, [0], 32, 1, 1],
  [3, [1, 0], 64, 1, 1]
 ],
 "weights": [[], [], [[0.5, 1.5]]],
 "network": {"frames": 0}
}
"""


@pytest.mark.parametrize("name, text, expected", [
    ("net.asn", ASN, [(_at(ASN, 1, "0 }"), "ASN010"), (_at(ASN, 3, "nope"), "ASN101"),
                      (_at(ASN, 4, "7"), "ASN121")]),
    ("net.json", JSON_FORM, [(_at(JSON_FORM, 1, "0}"), "ASN012"),
                             (_at(JSON_FORM, 5, '"nope"'), "ASN101"),
                             (_at(JSON_FORM, 6, "7"), "ASN121")]),
    ("list.json", LIST, [(_at(LIST, 3, "7"), "ASN121"), (_at(LIST, 6, "1.5"), "ASN111"),
                         (_at(LIST, 7, "0}"), "ASN010")]),
])
def test_a_header_error_hides_no_block_error(tmp_path, capsys, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    found = _errors(path, capsys)
    assert [((line, col), code) for line, col, code, _ in found] == expected, found
    assert "frames" in next(m for *_, code, m in found if code in ("ASN010", "ASN012"))
    # the text report shows the same three, in source order
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    heads = [line for line in err.splitlines() if ": error: " in line]
    assert [h.split(": error:")[0] for h in heads] == [f"{path}:{line}:{col}"
                                                       for (line, col), _ in expected]


@pytest.mark.parametrize("text", [
    # a placeholder `objects` would make the object stem "need the number of object classes"
    "network n { objects 0 }\nstem o0 = object\nstem r0 = rgb\n"
    "block b = bottleneck(level=3, filters=8) <- r0, o0\n",
    # a placeholder `frames` hides the flow stem's "at least 2 frames"
    "network n { frames 0 }\nstem f0 = flow\nblock b = bottleneck(level=3, filters=8) <- f0\n",
    # a wrongly written value is a placeholder too
    "network n { objects none }\nstem o0 = object\nstem r0 = rgb\n"
    "block b = bottleneck(level=3, filters=8) <- r0, o0\n",
    # attention placeholder: concat + peer is not reported against the default
    "network n { combine concat attention nope }\nstem r0 = rgb\n"
    "block b = bottleneck(level=3, filters=8) <- r0\n",
])
def test_no_error_comes_from_a_placeholder(tmp_path, capsys, text):
    path = tmp_path / "net.asn"
    path.write_text(text)
    found = _errors(path, capsys)
    assert len(found) == 1 and found[0][0] == 1 and found[0][2] == "ASN010", found


def test_a_node_that_did_not_load_is_no_unknown_name(tmp_path, capsys):
    """`b0` does not load (no `filters`): `b1` reading it is no "unknown input", a missing
    head no "no head"; the independent unknown input of `b1` is reported."""
    path = tmp_path / "net.asn"
    path.write_text("network n { frames 0 }\nstem r0 = rgb\n"
                    "block b0 = bottleneck(level=3) <- r0\n"
                    "block b1 = bottleneck(level=0, filters=8) <- b0, r9\n")
    found = _errors(path, capsys)
    assert [(line, code) for line, _, code, _ in found] == [(1, "ASN010"), (3, "ASN011"),
                                                             (4, "ASN101")], found
    assert "`r9`" in found[2][3]


def test_list_and_json_forms_locate_check_errors(tmp_path, capsys):
    """A JSON-form file that loads points its check errors into the document."""
    path = tmp_path / "net.json"
    path.write_text(JSON_FORM.replace('"frames": 0', '"frames": 4'))
    found = _errors(path, capsys)
    assert [(line, col) for line, col, *_ in found] == [_at(JSON_FORM, 5, '"nope"'),
                                                       _at(JSON_FORM, 6, "7")]
