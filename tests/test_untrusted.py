"""Nothing runs that the user did not ask for, and user text is never read as markup.

- The `./asnc` launcher never imports from the current directory (a `rich.py` beside the
  user's files used to run on every command).
- A user module named in a network is imported (its code run) only by a command given
  `--import-modules`; `export` and `import` convert such a network without importing it;
  whatever an allowed module prints goes to stderr, never into `--json` output.
- Paths with rich markup or emoji codes print as written, in every command that prints one.
- Choice options refuse unknown values as usage errors (rc 1), not tracebacks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import EXAMPLES, REFERENCE, ROOT

from asn.cli.main import main

SHADOWS = ("rich", "typer", "lark", "networkx", "pydantic")


def test_launcher_never_imports_from_the_current_directory(tmp_path):
    for name in SHADOWS:
        (tmp_path / f"{name}.py").write_text(
            f"open({str(tmp_path / 'ran')!r} + '-{name}', 'w').close()\n"
            "raise SystemExit('shadow module imported')\n")
    proc = subprocess.run([str(ROOT / "asnc"), "check", str(EXAMPLES / "tutorial.asn")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "tutorial.asn: ok" in proc.stderr
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("ran")]


MODULE = '''
import os
with open(os.environ["ASNC_TEST_MARKER"], "a") as fh:
    fh.write("imported\\n")
print("hello from the user module")


class Pointwise:
    @staticmethod
    def asn_static(c_in, filters, level, stride, dilation, units, frames, height, width):
        print("describing myself")
        return {"channels": filters, "height": -(-height // stride),
                "width": -(-width // stride), "trainable": c_in * filters,
                "non_trainable": 0, "flops": 0}
'''

NETWORK = """network user { depth [1, 1, 1, 1] frames 2 size 32x32 classes 2 }
stem r = rgb
block a = "asn_untrusted_blocks:Pointwise"(level=0, filters=6, stride=2) <- r
block top = bottleneck(level=3, filters=4, stride=2) <- a
"""


@pytest.fixture
def user_net(tmp_path, monkeypatch):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "asn_untrusted_blocks.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(mods))
    marker = tmp_path / "marker"
    monkeypatch.setenv("ASNC_TEST_MARKER", str(marker))
    monkeypatch.delenv("ASNC_IMPORT_MODULES", raising=False)
    path = tmp_path / "user.asn"
    path.write_text(NETWORK)
    yield str(path), marker
    sys.modules.pop("asn_untrusted_blocks", None)


@pytest.mark.parametrize("command", [["check"], ["check", "--json"], ["stats"],
                                     ["stats", "--json"], ["viz"], ["opt"]])
def test_commands_refuse_user_modules_unless_asked(user_net, capsys, command):
    path, marker = user_net
    assert main([*command, path]) == 1
    captured = capsys.readouterr()
    shown = captured.out if "--json" in command and command[0] == "check" else captured.err
    assert "--import-modules" in shown and "asn_untrusted_blocks:Pointwise" in shown
    assert not marker.exists(), "the user module was imported without being asked for"


@pytest.mark.parametrize("command", [["fmt"], ["export", "--to", "json"],
                                     ["export", "--to", "list"], ["connect", "--all"]])
def test_text_commands_never_import_user_modules(user_net, capsys, command):
    path, marker = user_net
    assert main([*command, path]) == 0, capsys.readouterr().err
    assert not marker.exists()


def test_import_converts_without_importing(user_net, tmp_path, capsys):
    path, marker = user_net
    listed = tmp_path / "user.json"
    assert main(["export", "--to", "list", path, "-o", str(listed)]) == 0
    assert main(["import", str(listed), "-o", str(tmp_path / "back.asn")]) == 0
    assert "asn_untrusted_blocks:Pointwise" in (tmp_path / "back.asn").read_text()
    assert not marker.exists()


def test_allowed_module_output_stays_out_of_json(user_net, capsys):
    path, marker = user_net
    assert main(["check", "--json", "--import-modules", path]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == []
    assert "hello from the user module" in captured.err
    assert marker.read_text() == "imported\n"
    assert main(["stats", "--json", "--import-modules", path]) == 0
    captured = capsys.readouterr()
    stats = json.loads(captured.out)
    by_name = {n["name"]: n for n in stats["nodes"]}
    c_in = by_name["r"]["shape"][3]  # c_in * filters, as the module describes itself
    assert by_name["a"]["breakdown"]["block"] == c_in * 6
    assert "describing myself" in captured.err


def test_environment_variable_allows_imports(user_net, monkeypatch, capsys):
    path, marker = user_net
    monkeypatch.setenv("ASNC_IMPORT_MODULES", "1")
    assert main(["check", path]) == 0
    assert marker.exists()


def test_policy_is_restored_after_a_command(user_net, capsys):
    # in-process callers (the library, tests) keep the library's default: allowed
    from asn.compiler.usermodule import imports_allowed

    path, _ = user_net
    main(["check", path])
    assert imports_allowed()


MARKUP = ["x[/]y", "[bold]b[/bold]", ":smile:", "[link=file:///etc]z[/link]"]


@pytest.mark.parametrize("name", MARKUP)
def test_paths_with_markup_print_as_written(tmp_path, capsys, name):
    folder = tmp_path / "in"
    path = folder / f"{name}.asn"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((EXAMPLES / "tutorial.asn").read_text())
    assert main(["check", str(path)]) == 0
    assert f"{path}: ok" in capsys.readouterr().err
    for command in (["opt", str(path), "-o"], ["import", str(path), "-o"],
                    ["viz", str(path), "-o"], ["export", str(path), "-o"]):
        suffix = "dot" if command[0] == "viz" else "asn"
        target = tmp_path / "out" / f"{name}-{command[0]}.{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        assert main([*command, str(target)]) == 0, capsys.readouterr().err
        assert target.exists()
    missing = tmp_path / f"no{name}.asn"
    assert main(["check", str(missing)]) == 1
    assert f"{missing}: error: no such file" in capsys.readouterr().err


def test_train_reports_paths_with_markup(tmp_path, capsys):
    data = tmp_path / "d[/]ata"
    assert main(["train", str(EXAMPLES / "tutorial.asn"), "--data", str(data)]) == 1
    assert f"data folder `{data}` does not exist" in capsys.readouterr().err


def test_unknown_choice_is_a_usage_error(capsys):
    ref = str(REFERENCE / "structures.json")
    assert main(["import", ref, "--pick", "assemblenet50", "--attention", "bogus"]) == 1
    assert "bogus" in capsys.readouterr().err


def _bytes_name(folder, name: bytes) -> str:
    return os.fsdecode(os.path.join(os.fsencode(folder), name))


@pytest.mark.tf
def test_names_that_are_not_utf8_are_skipped_or_refused(tmp_path, capsys):
    from asn.backends.tensorflow.data import DatasetError, discover

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "v.mp4").write_bytes(b"")
    open(_bytes_name(tmp_path / "a", b"bad\xff.mp4"), "wb").close()
    skipped: list[str] = []
    classes, samples = discover(tmp_path, skipped)
    assert classes == ["a", "b"] and len(samples) == 2
    assert skipped == [f"{tmp_path / 'a'}/bad\\xff.mp4"]
    os.mkdir(_bytes_name(tmp_path, b"c\xfe"))
    with pytest.raises(DatasetError, match=r"c\\xfe"):
        discover(tmp_path)
    assert main(["train", str(EXAMPLES / "tutorial.asn"), "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error: class folder" in err and "not UTF-8" in err and "Traceback" not in err


@pytest.mark.parametrize("option", [["--name", "[/]"], ["--name", "1net"], ["--objects", "0"]])
def test_import_options_are_validated_like_the_header(option, capsys):
    assert main(["import", str(EXAMPLES / "tutorial.asn"), *option]) == 1
    err = capsys.readouterr().err
    assert "error: import option invalid" in err and "Traceback" not in err
