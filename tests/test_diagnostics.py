"""Bad inputs and the diagnostics they must produce.

Each case of the corpus is a whole input file (`.asn` text, or list-format / JSON-form JSON),
the position the diagnostic must point at, a piece of its message and its code. Every case
runs through the command line (`asnc check FILE`, in process), which must exit 1 (0 when the
case is a warning) and print `file:line:col: error: message [CODE]`, the source line and a
caret under the expected column.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest
from conftest import EXAMPLES

from asn.cli.main import main
from asn.compiler.validation import check
from asn.dsl import textio
from asn.dsl.diagnostics import DiagnosticError, Source, render
from asn.dsl.loader import load_text
from asn.dsl.syntax_errors import SYNTAX_EXAMPLES

H = "network n { frames 4 size 64x64 }\nstem r0 = rgb\n"  # lines 1-2
H2 = H + "stem r1 = rgb\n"  # lines 1-3
B = "block b = bottleneck(level=3, filters=8) <- "  # inputs start at column 45


@dataclass(frozen=True)
class Case:
    id: str
    source: str
    line: int
    col: int
    message: str
    code: str
    severity: str = "error"
    suffix: str = ".asn"
    help: str | None = None


CASES = [
    # --- syntax: each friendly class of dsl/syntax_errors.py, at the depths it occurs ----
    Case("syntax_missing_equals_stem", "network n { }\nstem r0 rgb\n", 2, 9,
         "expected `=` after the node name: unexpected `rgb`", "ASN002"),
    Case("syntax_missing_equals_block", H + "block b1 bottleneck(level=0) <- r0\n", 3, 10,
         "expected `=` after the node name: unexpected `bottleneck`", "ASN002"),
    Case("syntax_missing_comma", H2 + B + "r0 r1\n", 4, 48,
         "expected `,` between inputs: unexpected `r1`", "ASN002",
         help="separate inputs with commas"),
    Case("syntax_missing_comma_after_weights",
         H2 + "stem r2 = rgb\n" + B + "r0 @0.5, r1 @0.25 r2\n",
         5, 63, "expected `,` between inputs: unexpected `r2`", "ASN002"),
    Case("syntax_missing_at", H2 + B + "r0 0.5, r1\n", 4, 48,
         "a connection weight must follow `@`: unexpected `0.5`", "ASN002",
         help="write the weight as `r0 @0.25`"),
    Case("syntax_missing_at_later_input", H2 + B + "r0 @0.5, r1 0.7\n", 4, 57,
         "a connection weight must follow `@`: unexpected `0.7`", "ASN002"),
    Case("syntax_arg_colon", H + "stem r1 = rgb(dilation: 4)\n", 3, 23,
         "arguments are written `name=value`: unexpected character `:`", "ASN002"),
    Case("syntax_arg_space_later_arg", H + "block b = bottleneck(level=3, filters 8) <- r0\n",
         3, 39,
         "arguments are written `name=value`: unexpected `8`", "ASN002"),
    Case("syntax_unclosed_header", "network n { depth 50\nstem r0 = rgb\n" + B + "r0\n", 2, 9,
         "the network header is not closed: unexpected `=`", "ASN002",
         help="close the header with `}`"),
    Case("syntax_unclosed_header_at_end", "network n {\n  frames 4\n", 2, 11,
         "the network header is not closed: unexpected end of input", "ASN002"),
    Case("syntax_missing_arrow", H + "block b = bottleneck(level=3, filters=32) r0\n", 3, 43,
         "expected `<-` before the block's inputs: unexpected `r0`", "ASN002"),
    Case("syntax_empty_weight_at_end", H + B + "r0 @\n", 3, 49,
         "`@` must be followed by a number: unexpected end of input", "ASN002"),
    Case("syntax_empty_weight_before_comma", H2 + B + "r0 @, r1 @0.5\n", 4, 49,
         "`@` must be followed by a number: unexpected `,`", "ASN002"),
    Case("syntax_unclosed_args", H + "block b = bottleneck(level=3, filters=8 <- r0\n", 3, 41,
         "the argument list is not closed: unexpected `<-`, expected one of `)`, `,`", "ASN002"),
    Case("syntax_unclosed_args_at_end", "network n { }\nstem r0 = rgb(dilation=4\n", 2, 25,
         "the argument list is not closed: unexpected end of input", "ASN002"),
    Case("syntax_header_setting_equals", "network n { depth = 50 }\n", 1, 19,
         "header settings are written `name value`: unexpected `=`", "ASN002"),
    Case("syntax_header_setting_colon", "network n {\n  frames 4\n  depth: 50\n}\n", 3, 8,
         "header settings are written `name value`: unexpected character `:`", "ASN002"),
    Case("syntax_unexpected_character", H + B + "r0 $\n", 3, 48,
         "unexpected character `$`, expected one of `,`, `@`", "ASN002"),
    Case("syntax_control_character_escaped", H + B + "r0 \x0c\x01\n", 3, 49,
         "unexpected character `\\x01`", "ASN002"),
    # --- structure of the statements --------------------------------------------------
    Case("header_missing", "stem r0 = rgb\n" + B + "r0\n", 1, 1,
         "missing `network NAME { ... }` header", "ASN010"),
    Case("header_twice", "network n { }\nnetwork m { }\nstem r0 = rgb\n", 2, 1,
         "the network header is declared twice", "ASN010"),
    Case("heads_twice", H + B + "r0\nheads b\nheads b\n", 5, 1, "`heads` is declared twice",
         "ASN010"),
    Case("block_without_inputs", H + "block b = bottleneck(level=3, filters=8)\n", 3, 7,
         "block `b` has no inputs", "ASN011"),
    Case("block_without_filters", H + "block b = bottleneck(level=3) <- r0\n", 3, 11,
         "block `b` needs `filters=...`", "ASN011"),
    Case("weight_not_a_number", H2 + B + "r0 @w, r1 @0.5\n", 4, 49,
         "connection weight must be a number, got `w`", "ASN111"),
    Case("integer_too_long", "network n { frames " + "9" * 5000 + " }\n", 1, 20,
         "integer `99999999999999999999...` is too long (5000 digits)", "ASN012"),
    # --- names ------------------------------------------------------------------------
    Case("unknown_input", "network n { }\nstem rgb0 = rgb\nstem rgb1 = rgb\n" + B + "rgb0, rgb2\n",
         4, 51, "unknown input `rgb2` of block `b`", "ASN101", help="did you mean `rgb0`?"),
    Case("unknown_head", H + "block top = bottleneck(level=3, filters=8) <- r0\nheads tpo\n", 4, 7,
         "unknown head `tpo`", "ASN101", help="did you mean `top`?"),
    Case("duplicate_name", H + "stem r0 = flow\n" + B + "r0\n", 3, 6, "`r0` is declared twice",
         "ASN100"),
    Case("duplicate_input", H + B + "r0, r0\n", 3, 7, "block `b` reads `r0` more than once",
         "ASN101"),
    Case("head_is_a_stem", H + B + "r0\nheads r0\n", 4, 7, "head `r0` is a stem", "ASN130"),
    Case("unknown_setting", "network n { frame 4 }\n", 1, 13, "unknown setting `frame`", "ASN010",
         help="did you mean `frames`?"),
    Case("unknown_block_argument", H + "block b = bottleneck(levl=3, filters=8) <- r0\n", 3, 22,
         "unknown block argument `levl`", "ASN011", help="did you mean `level`?"),
    Case("unknown_stem_argument", H + "stem r1 = rgb(dilaton=2)\n", 3, 15,
         "unknown stem argument `dilaton`", "ASN011", help="did you mean `dilation`?"),
    Case("unknown_stem_type", H + "stem r1 = rbg\n", 3, 11, "unknown stem type `rbg`", "ASN011",
         help="did you mean `rgb`?"),
    Case("unknown_module", H + "block b = bottelneck(level=3, filters=8) <- r0\n", 3, 11,
         "unknown block module `bottelneck`", "ASN120", help="did you mean `bottleneck`?"),
    Case("duplicate_setting", "network n {\n  frames 4\n  frames 8\n}\n", 3, 3,
         "setting `frames` is given twice", "ASN010"),
    Case("duplicate_argument", H + "block b = bottleneck(level=3, level=2, filters=8) <- r0\n",
         3, 31, "argument `level` is given twice", "ASN011"),
    Case("setting_of_wrong_kind", "network n { frames 4.5 }\n", 1, 20,
         "`frames` expects an integer, got `4.5`", "ASN010"),
    Case("setting_out_of_range", "network n { size 0x64 }\n", 1, 18,
         "invalid `size.0`: input should be greater than or equal to 1", "ASN010"),
    # --- the graph --------------------------------------------------------------------
    Case("cycle", H + "block a = bottleneck(level=3, filters=8) <- b\n"
         "block b = bottleneck(level=3, filters=8) <- a\nheads a\n", 3, 7,
         "connections form a cycle: a -> b -> a", "ASN102"),
    Case("list_forward_reference", '{\n "structure": [\n  [-1, 4],\n  [0, [0], 32, 1, 1],\n'
         '  [3, [1, 3], 32, 1, 1],\n  [3, [2], 32, 1, 1]\n ]\n}\n', 5, 11,
         "node 2 reads node 3, which comes later", "ASN103", suffix=".json"),
    Case("list_self_reference", '[\n  [-1, 4],\n  [0, [1], 32, 1, 1],\n  [3, [1], 32, 1, 1]\n]\n',
         3, 8, "node 1 reads itself", "ASN103", suffix=".json"),
    Case("list_negative_reference", '[\n  [-1, 4],\n  [3, [0, -1], 32, 1, 1]\n]\n', 3, 11,
         "node 1 reads node -1", "ASN101", suffix=".json"),
    # --- connection weights -----------------------------------------------------------
    Case("mixed_weighted_inputs", H2 + B + "r0 @0.5, r1\n", 4, 54,
         "block `b` gives weights for 1 of its 2 inputs", "ASN110"),
    Case("weight_above_one", H2 + B + "r0 @1.5, r1 @0.5\n", 4, 49,
         "connection weight 1.5 of `r0` is outside (0, 1)", "ASN111"),
    Case("weight_zero", H2 + B + "r0 @0.5, r1 @0\n", 4, 58,
         "connection weight 0.0 of `r1` is outside (0, 1)", "ASN111"),
    Case("weight_nan", H2 + B + "r0 @nan, r1 @0.5\n", 4, 49,
         "connection weight of `r0` is nan", "ASN111"),
    Case("weight_infinite", H2 + B + "r0 @0.5, r1 @1e999\n", 4, 58,
         "connection weight of `r1` is inf", "ASN111"),
    Case("weight_on_single_input", H + B + "r0 @0.5\n", 3, 49,
         "block `b` has one input; a single input takes no connection weight", "ASN110"),
    Case("list_weights_vs_inputs", '{\n "structure": [[-1, 4], [-2, 1], [3, [0, 1], 32, 1, 1]],\n'
         ' "weights": [[], [], [[0.5]]]\n}\n', 3, 22, "node 2 has 2 inputs but 1 weights",
         "ASN110", suffix=".json"),
    Case("list_weights_vs_nodes", '{\n "structure": [[-1, 4], [-2, 1], [3, [0, 1], 32, 1, 1]],\n'
         ' "weights": [[], []]\n}\n', 3, 13,
         "`weights` has 2 entries but the structure has 3 nodes", "ASN110", suffix=".json"),
    Case("list_weight_nan", '{\n "structure": [[-1, 4], [-2, 1], [3, [0, 1], 32, 1, 1]],\n'
         ' "weights": [[], [], [[0.5, NaN]]]\n}\n', 3, 29, "connection weight of `f1` is nan",
         "ASN111", suffix=".json"),
    Case("list_weight_infinite", '{\n "structure": [[-1, 4], [-2, 1], [3, [0, 1], 32, 1, 1]],\n'
         ' "weights": [[], [], [[-Infinity, 0.5]]]\n}\n', 3, 24,
         "connection weight of `r0` is -inf", "ASN111", suffix=".json"),
    Case("list_weights_on_a_stem", '{\n "structure": [[-1, 4], [3, [0], 32, 1, 1]],\n'
         ' "weights": [[[0.5]], []]\n}\n', 3, 14, "node 0 is a stem and takes no connection "
         "weights", "ASN110", suffix=".json"),
    # --- values -----------------------------------------------------------------------
    Case("filters_three_for_bottleneck",
         H + "block b = bottleneck(level=3, filters=[8, 8, 8]) <- r0\n",
         3, 39, "module `bottleneck` takes one filter count, got `[8, 8, 8]`", "ASN120"),
    Case("filters_one_for_lite", H + "block b = lite(level=3, filters=8) <- r0\n", 3, 33,
         "the lite module needs three filter widths", "ASN120"),
    Case("filters_two", H + "block b = bottleneck(level=3, filters=[8, 8]) <- r0\n", 3, 39,
         "`filters` must be one integer or three", "ASN120"),
    Case("filters_zero", H + "block b = bottleneck(level=3, filters=0) <- r0\n", 3, 39,
         "filters of `b` must be between 1 and 65536", "ASN121"),
    Case("level_out_of_range", H + "block b = bottleneck(level=4, filters=8) <- r0\n", 3, 28,
         "level 4 of `b` is out of range 0..3", "ASN121"),
    Case("stride_out_of_range", H + "block b = bottleneck(level=3, filters=8, stride=5) <- r0\n",
         3, 49, "stride 5 of `b` is out of range 1..4", "ASN121"),
    Case("dilation_zero", H + "block b = bottleneck(level=3, filters=8, dilation=0) <- r0\n",
         3, 51, "temporal dilation 0 of `b` is out of range 1..64", "ASN121"),
    Case("dilation_too_large", H + "block b = bottleneck(level=3, filters=8, dilation=65) <- r0\n",
         3, 51, "temporal dilation 65 of `b` is out of range 1..64", "ASN121"),
    Case("list_level_out_of_range",
         '[\n  [-1, 4],\n  [3, [0], 32, 1, 1],\n  [-1, [0], 32, 1, 1]\n]\n',
         4, 4, "level -1 of `b2` is out of range 0..3", "ASN121", suffix=".json"),
    Case("list_stem_dilation_out_of_range", '[\n  [-1, 5000],\n  [3, [0], 32, 1, 1]\n]\n', 2, 8,
         "invalid `dilation`: input should be less than or equal to 1000", "ASN004",
         suffix=".json"),
    Case("depth_unknown", "network n { depth 51 }\n", 1, 19, "unknown depth 51", "ASN010"),
    Case("depth_list_of_three", "network n { depth [1, 2, 3] }\n", 1, 19,
         "`depth` as a list needs four integers", "ASN010"),
    Case("depth_unit_count_zero", "network n { depth [1, 2, 3, 0] }\n", 1, 19,
         "per-level unit counts must be between 1 and 1000", "ASN010"),
    Case("list_depth_unknown", '{"structure": [[-1, 4], [3, [0], 32, 1, 1]],\n "depth": 51}\n',
         2, 11,
         "unknown depth 51", "ASN010", suffix=".json"),
    # --- shapes and widths ------------------------------------------------------------
    Case("inputs_cannot_be_resized", "network n { size 100x100 }\nstem r0 = rgb\n"
         "block a = bottleneck(level=0, filters=8, stride=4) <- r0\n" + B + "r0, a\n", 4, 45,
         "input `r0` (25x25) cannot be max-pooled to 7x7: a window of 3 gives 9x9", "ASN122"),
    Case("inputs_cannot_be_resized_224", "network n { size 224x224 }\nstem r0 = rgb\n"
         "block a = bottleneck(level=0, filters=8, stride=4) <- r0\n"
         "block c = bottleneck(level=1, filters=8, stride=3) <- a\n" + B + "c, r0\n", 5, 48,
         "input `r0` (56x56) cannot be max-pooled to 5x5: a window of 11 gives 6x6", "ASN122"),
    Case("heads_of_different_widths", H + "block a = bottleneck(level=3, filters=8) <- r0\n"
         "block b = bottleneck(level=3, filters=16) <- r0\n", 4, 39,
         "head `b` has 64 channels but `a` has 32", "ASN123"),
    # --- the network as a whole -------------------------------------------------------
    Case("no_stem", "network n { }\n", 1, 1, "the network has no stem", "ASN130"),
    Case("no_head", H + "block b = bottleneck(level=0, filters=8) <- r0\n", 1, 1,
         "the network has no head", "ASN130", help="add a level-3 block or a `heads NAME`"),
    Case("list_no_head", '{"structure": [[-1, 4], [2, [0], 32, 1, 1]]}\n', 1, 15,
         "the network has no head", "ASN130", suffix=".json"),
    Case("object_stem_without_objects", H + "stem o1 = object\n" + B + "r0, o1\n", 3, 11,
         "object stem `o1` needs the number of object classes", "ASN140",
         help="add e.g. `objects 151`"),
    Case("attention_with_concat", "network n {\n  combine concat\n  attention self\n}\n"
         "stem r0 = rgb\n" + B + "r0\n", 3, 13,
         "attention `self` needs the `sigmoid` combine method", "ASN140"),
    Case("flow_with_one_frame", "network n { frames 1 }\nstem r0 = rgb\nstem f1 = flow\n"
         + B + "r0, f1\n", 1, 20, "flow stems need at least 2 frames", "ASN150"),
    Case("lite_with_two_heads", "network n { variant lite }\nstem r0 = rgb\n"
         "block a = lite(level=3, filters=[8, 8, 8]) <- r0\n"
         "block b = lite(level=3, filters=[8, 8, 8]) <- r0\nheads a, b\n", 5, 1,
         "the lite head reads exactly one node", "ASN140"),
    Case("peer_attention_reads_higher_level", "network n { attention peer }\nstem r0 = rgb\n"
         "block a = bottleneck(level=0, filters=8) <- r0, b\n"
         "block b = bottleneck(level=1, filters=8) <- r0\n"
         "block c = bottleneck(level=3, filters=8) <- a\n", 4, 7,
         "peer attention of `b` needs `a` (a lower level) but that node depends on it", "ASN140"),
    # --- warnings (exit 0) ------------------------------------------------------------
    Case("node_reaches_no_head", "network n { frames 4 size 32x32 }\nstem r0 = rgb\n"
         "stem f1 = flow\n" + B + "r0\n", 3, 6, "`f1` does not reach any head", "ASN131",
         severity="warning"),
    Case("objects_without_object_stem", "network n { objects 10 }\nstem r0 = rgb\n" + B + "r0\n",
         1, 21, "`objects` is set but the network has no object stem", "ASN140",
         severity="warning"),
    # --- list format and JSON: positions in the JSON text -----------------------------
    Case("list_unknown_key", '{\n "structure": [[-1, 4], [3, [0], 32, 1, 1]],\n "depht": 50\n}\n',
         3, 11, "unknown key `depht` in a list-format file", "ASN004", suffix=".json"),
    Case("list_bad_stem_type", '[\n  [-4, 1],\n  [3, [0], 32, 1, 1]\n]\n', 2, 4,
         "node 0: stem type must be -1 (RGB), -2 (flow) or -3 (object), got `-4`", "ASN004",
         suffix=".json"),
    Case("list_node_of_four_items", '[\n  [-1, 1],\n  [3, [0], 32, 1]\n]\n', 3, 3,
         "node 1 must be [stem_type, dilation] or [level, [inputs], filters, dilation, stride]",
         "ASN004", suffix=".json"),
    Case("list_filters_string", '[\n  [-1, 1],\n  [3, [0], "32", 1, 1]\n]\n', 3, 12,
         "node 1: filters must be an integer or three integers, got `32`", "ASN120",
         suffix=".json"),
    Case("list_bad_name",
         '{"structure": [[-1, 4], [3, [0], 32, 1, 1]],\n "names": ["r0", "b 1"]}\n',
         2, 18, "`b 1` is not a valid node name", "ASN004", suffix=".json"),
    Case("list_duplicate_names",
         '{"structure": [[-1, 4], [3, [0], 32, 1, 1]],\n "names": ["r", "r"]}\n',
         1, 25, "`r` is declared twice", "ASN100", suffix=".json"),
    Case("list_unknown_head", '{"structure": [[-1, 4], [3, [0], 32, 1, 1]],\n "heads": ["b2"]}\n',
         2, 12, "unknown head `b2`", "ASN101", suffix=".json", help="did you mean `b1`?"),
    Case("list_number_too_long", "[[-1, 1], [3, [0], " + "1" * 5000 + ", 1, 1]]\n", 1, 20,
         "invalid JSON: number `11111111111111111111...` is too long", "ASN003",
         suffix=".json"),
    Case("json_malformed", '{"structure": [[-1, 4], [3, [0], 32, 1, 1]]\n', 1, 44,
         "invalid JSON: unexpected end of input", "ASN003", suffix=".json"),
    Case("json_too_deep", "[" * 100 + "]" * 100 + "\n", 1, 65,
         "JSON is nested more than 64 levels deep", "ASN003", suffix=".json"),
    Case("json_neither_form", '{"a": 1}\n', 1, 1, "JSON is neither the asnc JSON form", "ASN004",
         suffix=".json"),
    Case("json_form_bad_value", '{"header": {"name": "n", "frames": 0},\n "nodes": [{"kind": '
         '"stem", "name": "r", "type": "rgbb"}]}\n', 2, 50,
         "invalid `nodes.0.type`: input should be 'rgb', 'flow' or 'object'", "ASN012",
         suffix=".json"),
    Case("json_form_source_field", '{"header": {"name": "n", "comments_before": ["x"]},\n'
         ' "nodes": []}\n', 1, 12, "unknown field `comments_before`", "ASN012", suffix=".json"),
]


def _cli(path, capsys, *args) -> tuple[int, list[str]]:
    code = main(["check", *args, str(path)])
    return code, capsys.readouterr().err.splitlines()


def _find(lines: list[str], path, case: Case) -> int:
    head = f"{path}:{case.line}:{case.col}: {case.severity}: "
    for k, line in enumerate(lines):
        if line.startswith(head) and case.message in line and line.endswith(f"[{case.code}]"):
            return k
    raise AssertionError(f"no `{head}...{case.message}... [{case.code}]` in:\n" + "\n".join(lines))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus(case: Case, tmp_path, capsys):
    path = tmp_path / f"net{case.suffix}"
    path.write_text(case.source, encoding="utf-8")
    code, lines = _cli(path, capsys)
    assert code == (1 if case.severity == "error" else 0), "\n".join(lines)
    k = _find(lines, path, case)
    # the source line under a gutter, then a caret under the expected column
    shown, caret = lines[k + 1], lines[k + 2]
    bar = caret.index("| ") + 2
    assert shown[:bar] == f"{case.line:>5} | "
    source_line, col = case.source.split("\n")[case.line - 1], case.col
    if len(source_line) > 200:  # a long line is shown as a 120-character window
        start = max(0, col - 60)
        source_line, col = source_line[start:start + 120], col - start
    assert shown[bar:] == "".join(c if c.isprintable() else " " for c in source_line)
    assert caret[bar:].lstrip(" ").startswith("^")
    assert caret.index("^") - bar + 1 == col
    if case.help:
        helps = [ln for ln in lines[k + 3:] if ln.strip().startswith("= help:")]
        assert helps and case.help in helps[0], "\n".join(lines)



def test_every_block_that_cannot_fuse_is_reported_in_any_order():
    """The shape analysis goes on past a block whose inputs cannot be fused: two such blocks
    that do not feed each other are both reported, whichever is declared first, and a block
    fed by one of them is skipped (it has no input shape), not reported."""
    head = ("network n { size 100x100 }\nstem r0 = rgb\n"
            "block a = bottleneck(level=0, filters=8, stride=4) <- r0\n")
    # r0 is 25x25, a 7x7: a window of 3 gives 9x9 (as `inputs_cannot_be_resized`)
    x = "block x = bottleneck(level=2, filters=8) <- r0, a\n"
    y = "block y = bottleneck(level=3, filters=8) <- a, r0\n"
    z = "block z = bottleneck(level=3, filters=8) <- x\n"
    for text in (head + x + y + z, head + z + y + x):
        found = [(d.code, d.message) for d in check(load_text(text, "n.asn"))]
        assert sorted(found) == [
            ("ASN122", "block `x`: input `r0` (25x25) cannot be max-pooled to 7x7: a window "
                       "of 3 gives 9x9"),
            ("ASN122", "block `y`: input `r0` (25x25) cannot be max-pooled to 7x7: a window "
                       "of 3 gives 9x9")], text

def test_corpus_size_and_coverage():
    assert len(CASES) >= 35
    assert len({c.id for c in CASES}) == len(CASES)
    # every friendly syntax class is hit by some case
    labels = {cls.label for cls in SYNTAX_EXAMPLES}
    hit = {label for label in labels for c in CASES if c.message.startswith(label)}
    assert hit == labels, labels - hit


def test_syntax_examples_are_classified_as_themselves():
    """Each snippet of the example table, alone and after a header, gets its own class."""
    from asn.dsl.parser import parse

    for cls, snippets in SYNTAX_EXAMPLES.items():
        for snippet in snippets:
            for text in (snippet, "network n { frames 4 }\nstem r0 = rgb\n" + snippet):
                if text.count("network") > 1:
                    continue
                with pytest.raises(DiagnosticError) as info:
                    parse(text)
                first = info.value.diagnostics[0]
                assert first.message.startswith(cls.label), (text, first.message)


def test_json_output_has_positions(tmp_path, capsys):
    path = tmp_path / "bad.asn"
    path.write_text(H2 + B + "r0 @1.5, r1 @0.5\n")
    assert main(["check", "--json", str(path)]) == 1
    diags = json.loads(capsys.readouterr().out)
    assert [(d["line"], d["col"], d["code"]) for d in diags] == [(4, 49, "ASN111")]


def test_unclosed_header_does_not_cascade():
    text = "network n { depth 50\nstem r0 = rgb\nstem r1 = rgb\n" + B + "r0\n"
    with pytest.raises(DiagnosticError) as info:
        load_text(text, "t.asn")
    assert len(info.value.diagnostics) == 1


# --- several independent errors at once ----------------------------------------------------

def _codes_at(diags) -> list[tuple[int, int, str]]:
    return [(d.span.line, d.span.col, d.code) for d in diags if d.is_error]


def test_several_syntax_errors_at_once():
    text = (H + "stem r1 rgb\n"  # line 3: missing `=`
            "block a = bottleneck(level=0, filters=8) <- r0 r1\n"  # line 4: missing `,`
            "block b = bottleneck(level=3, filters=8) <- r0\n"  # fine
            "block c = bottleneck(level: 3, filters=8) <- r0\n")  # line 6: `:`
    with pytest.raises(DiagnosticError) as info:
        load_text(text, "t.asn")
    assert _codes_at(info.value.diagnostics) == [(3, 9, "ASN002"), (4, 48, "ASN002"),
                                                 (6, 27, "ASN002")]


def test_several_statement_errors_at_once():
    text = ("network n { frame 4 frames 4 frames 8 }\nstem r0 = rgb(dilaton=2)\n"
            "block a = bottleneck(levl=3, filters=8) <- r0\n"
            "block b = bottleneck(level=3, filters=8, stride=2, stride=1) <- r0\n")
    with pytest.raises(DiagnosticError) as info:
        load_text(text, "t.asn")
    assert _codes_at(info.value.diagnostics) == [
        (1, 13, "ASN010"), (1, 30, "ASN010"), (2, 15, "ASN011"), (3, 22, "ASN011"),
        (3, 11, "ASN011"), (4, 52, "ASN011")]


def test_several_semantic_errors_at_once(tmp_path, capsys):
    text = (H2 + "block a = bottleneck(level=4, filters=8, stride=9) <- r0 @1.5, r1 @0.5\n"
            "block b = bottleneck(level=3, filters=8, dilation=0) <- r0, q\n"
            "block c = lite(level=3, filters=8) <- r0\n")
    net = load_text(text, "t.asn")
    diags = check(net)
    assert sorted(_codes_at(diags)) == [
        (4, 28, "ASN121"), (4, 49, "ASN121"), (4, 59, "ASN111"), (5, 51, "ASN121"),
        (5, 61, "ASN101"), (6, 33, "ASN120")]
    path = tmp_path / "bad.asn"
    path.write_text(text)
    code, lines = _cli(path, capsys)
    assert code == 1 and sum(" error: " in ln for ln in lines) == 6


def test_several_list_format_errors_at_once():
    text = ('{\n "structure": [\n  [-4, 1],\n  [-1, 1],\n  [0, [1, 5], 32, 1, 1],\n'
            '  [3, [1], "x", 1, 1]\n ],\n "bogus": 1\n}\n')
    with pytest.raises(DiagnosticError) as info:
        load_text(text, "t.json")
    assert _codes_at(info.value.diagnostics) == [(8, 11, "ASN004"), (3, 4, "ASN004"),
                                                 (5, 11, "ASN103"), (6, 12, "ASN120")]


# --- files that are not networks at all ----------------------------------------------------

def _check_file(path, capsys, message: str) -> list[str]:
    code, lines = _cli(path, capsys)
    assert code == 1
    assert any(ln.startswith(f"{path}") and f"error: {message}" in ln and "[ASN001]" in ln
               for ln in lines), lines
    return lines


def test_binary_file(tmp_path, capsys):
    path = tmp_path / "net.asn"
    path.write_bytes(b"network\x00\x01\x02 n { }")
    _check_file(path, capsys, "file is binary, not text")


def test_empty_file(tmp_path, capsys):
    path = tmp_path / "net.asn"
    path.write_bytes(b"")
    _check_file(path, capsys, "file is empty")
    path.write_bytes(b"  \n\t\n")
    _check_file(path, capsys, "file is empty")


def test_not_utf8_points_at_the_byte(tmp_path, capsys):
    path = tmp_path / "net.asn"
    path.write_bytes(b"network n { }\n# caf\xe9\n")
    lines = _check_file(path, capsys, "file is not UTF-8 text (invalid byte 0xe9 at offset 19)")
    assert lines[0].startswith(f"{path}:2:6: error:")
    assert lines[2].index("^") - lines[2].index("| ") - 2 == 5


def test_huge_file(tmp_path, capsys):
    path = tmp_path / "huge.asn"
    with open(path, "wb") as fh:  # sparse: no disk used
        fh.truncate(textio.MAX_BYTES + 1)
    _check_file(path, capsys, "file is too large")


def test_huge_file_lower_limit(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(textio, "MAX_BYTES", 1000)
    path = tmp_path / "big.asn"
    path.write_text(H + "# padding\n" * 200)
    _check_file(path, capsys, "file is too large")


def test_deeply_nested_json_is_no_recursion_error(tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    code, lines = _cli(path, capsys)
    assert code == 1
    assert lines[0].startswith(f"{path}:1:65: error: invalid JSON: JSON is nested more than 64")


def test_directory(tmp_path, capsys):
    _check_file(tmp_path, capsys, "is a directory, not a file")


def test_missing_file(tmp_path, capsys):
    _check_file(tmp_path / "nope.asn", capsys, "no such file")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads any file: permissions do not apply")
def test_unreadable_file(tmp_path, capsys):
    path = tmp_path / "secret.asn"
    path.write_text(H)
    path.chmod(0)
    try:
        _check_file(path, capsys, "cannot read file")
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("command", [["fmt"], ["stats"], ["export", "--to", "json"]])
def test_other_commands_exit_1_on_bad_input(command, tmp_path, capsys):
    path = tmp_path / "bad.asn"
    path.write_text(H + "stem r1 rgb\n")
    assert main([*command, str(path)]) == 1
    assert f"{path}:3:9: error: expected `=` after the node name" in capsys.readouterr().err


def test_examples_have_no_diagnostics():
    for p in sorted(EXAMPLES.glob("*.asn")):
        text = p.read_text()
        diags = check(load_text(text, str(p)))
        assert not diags, [render(d, Source(str(p), text)) for d in diags]


def test_an_invalid_required_argument_is_reported_once(tmp_path, capsys):
    # `filters=true` is given, with a wrong value: one error at the value, no "needs filters"
    from asn.cli.main import main

    path = tmp_path / "b.asn"
    path.write_text("network n { frames 4 size 32x32 }\nstem r = rgb\n"
                    "block b = bottleneck(level=3, filters=true) <- r\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "needs `filters" not in err and "3:39: error: `filters` expects" in err
