"""The front-end commands: `check`, `fmt`, `import`, `export`, `stats`, `schema`.

None of them imports TensorFlow.
"""

from __future__ import annotations

import enum
import json
import sys
from typing import List, Optional, Tuple

import typer

from ..dsl.diagnostics import CODES, DiagnosticError, Source, to_json
from .app import app
from .common import (EXIT_BAD_INPUT, allow_user_modules, apply_overrides, atomic_write,
                     err_console, load_checked, load_network, out, print_diagnostics)
from .options import ClassesOpt, FramesOpt, ImportModulesOpt, SizeOpt

__all__ = ["check", "fmt", "import_", "export", "stats", "schema"]


class Attention(str, enum.Enum):
    """`--attention` choices: typer refuses any other value with a usage error."""
    none = "none"
    self = "self"
    peer = "peer"


class Form(str, enum.Enum):
    """`export --to` choices: the three surface forms."""
    json = "json"
    list = "list"
    asn = "asn"


@app.command()
def check(
    file: Optional[str] = typer.Argument(None, help="A .asn, JSON-form or list-format file "
                                         "(not needed with --explain)."),
    json_out: bool = typer.Option(False, "--json", help="Print diagnostics as a JSON list."),
    explain: Optional[str] = typer.Option(None, "--explain", metavar="CODE",
                                          help="Explain a code, e.g. ASN101, and exit."),
    import_modules: bool = ImportModulesOpt,
) -> None:
    """Parse and validate; report every problem with its position."""
    from ..compiler.validation import check as run_check
    from ..dsl.textio import read_text

    if explain:
        code = explain.upper()
        if code not in CODES:
            raise typer.BadParameter(f"unknown code `{explain}`; codes are {', '.join(CODES)}",
                                     param_hint="'--explain'")
        out.print(f"{code}: {CODES[code]}")
        return
    if file is None:
        raise typer.BadParameter("give a network file (or --explain CODE)",
                                 param_hint="'FILE'")
    allow_user_modules(import_modules)
    text = ""
    source = None
    try:
        text = read_text(file)
        net = load_network(text, file)
        diags = run_check(net)
    except DiagnosticError as exc:
        diags, source = exc.diagnostics, exc.source
    source = source or Source(file, text)
    if json_out:
        print(to_json(diags, file))
    else:
        print_diagnostics(diags, source)
        if not any(d.is_error for d in diags):
            n_warn = sum(1 for d in diags if d.severity == "warning")
            err_console.print(f"{file}: ok" + (f" ({n_warn} warning{'s' * (n_warn != 1)})"
                                               if n_warn else ""))
    if any(d.is_error for d in diags):
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def fmt(
    files: List[str] = typer.Argument(..., help="Files to format."),
    check_only: bool = typer.Option(False, "--check", help="Exit 1 if a file is not canonical."),
    write: bool = typer.Option(False, "--write", "-w", help="Rewrite the files in place "
                               "(each keeps its form, mode, owner and links)."),
) -> None:
    """Print canonical text (idempotent; comments are kept).

    Each file stays in its own form: `.asn` text as canonical `.asn`, a JSON-form file as
    the canonical JSON form, a list-format file as the canonical list format (what
    `asnc export --to json|list` writes); `--check` compares in that form too.
    """
    from ..dsl.listformat import to_list_as_given
    from ..dsl.loader import surface_form
    from ..dsl.textio import read_text

    unformatted = []
    for file in files:
        text = read_text(file)
        net = load_network(text, file)
        form = surface_form(text, file)
        if form == "list":  # settings the file leaves to `import`'s defaults stay left out
            canonical = json.dumps(to_list_as_given(net, text), indent=1) + "\n"
        else:
            canonical = export_text(net, form)
        if check_only:
            if canonical != text:
                unformatted.append(file)
                err_console.print(f"{file}: would reformat")
        elif write:
            if canonical != text:
                atomic_write(file, canonical)
        else:
            sys.stdout.write(canonical)
    if unformatted:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command("import")
def import_(
    file: str = typer.Argument(..., help="A list-format (or JSON-form) file."),
    output: Optional[str] = typer.Option(None, "-o", "--output", metavar="FILE",
                                         help="Write the .asn here."),
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME",
                                       help="Network name (default: file name)."),
    pick: Optional[str] = typer.Option(None, "--pick", metavar="NAME", help="In a file "
                                       "holding several structures by name (structures.json), "
                                       "the one to import."),
    frames: Optional[int] = FramesOpt,
    size: Optional[Tuple[int, int]] = SizeOpt,
    classes: Optional[int] = ClassesOpt,
    attention: Optional[Attention] = typer.Option(
        None, "--attention", help="Attention mode; default: peer for AssembleNet++ "
        "structures (object stems or lite filters), else none."),
    objects: Optional[int] = typer.Option(None, "--objects", help="Object classes (default 151 "
                                          "when the structure has object stems)."),
    lite: Optional[bool] = typer.Option(None, "--lite/--standard", help="Network variant "
                                        "(default: lite when every block has three filters)."),
) -> None:
    """Convert the official list format to .asn text.

    The defaults below fill in only the settings the file does not give (a file that
    `asnc export --to list` wrote gives them all); the options always apply.
    """
    from ..compiler.validation import check as run_check
    from ..dsl.listformat import with_import_defaults
    from ..dsl.printer import format_network
    from ..dsl.textio import read_text

    text = read_text(file)

    def defaults(net):
        return with_import_defaults(net, text, name, attention.value if attention else None,
                                    objects, lite, pick=pick)

    net = defaults(load_network(text, file, name or pick, pick=pick, adjust=defaults))
    net = apply_overrides(net, frames, size, classes)
    diags = run_check(net, refused_modules="note")
    print_diagnostics(diags, Source(file, text))
    if any(d.is_error for d in diags):
        raise typer.Exit(EXIT_BAD_INPUT)
    result = format_network(net)
    if output:
        atomic_write(output, result)
        err_console.print(f"wrote {output} ({len(net.nodes)} nodes)")
    else:
        sys.stdout.write(result)


@app.command()
def export(
    file: str = typer.Argument(..., help="A .asn (or any accepted) file."),
    to: Form = typer.Option(Form.json, "--to", help="The form to write: the JSON form, the "
                            "official list format or .asn text."),
    output: Optional[str] = typer.Option(None, "-o", "--output", metavar="FILE",
                                         help="Write here, not stdout."),
) -> None:
    """Print the network as the JSON form, the official list format, or .asn text."""
    net, _ = load_checked(file, refused_modules="note")
    text = export_text(net, to.value)
    if output:
        atomic_write(output, text)
    else:
        sys.stdout.write(text)


def export_text(net, to: str) -> str:
    """`net` as `asnc export --to TO` writes it; also `fmt`'s canonical text of a file in
    that form (one writer per form)."""
    from ..dsl.jsonform import to_json_form
    from ..dsl.listformat import to_list
    from ..dsl.printer import format_network

    if to == "json":
        return json.dumps(to_json_form(net), indent=1) + "\n"
    if to == "list":
        return json.dumps(to_list(net), indent=1) + "\n"
    if to == "asn":
        return format_network(net)
    raise typer.BadParameter(f"--to must be json, list or asn, got `{to}`")


@app.command()
def stats(
    file: str = typer.Argument(..., help="A network file."),
    frames: Optional[int] = FramesOpt,
    size: Optional[Tuple[int, int]] = SizeOpt,
    classes: Optional[int] = ClassesOpt,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    level: int = typer.Option(0, "-O", min=0, help="Optimisation level the numbers are for "
                              "(0: as written; 1 and 2: what `asnc compile -O` builds, batch "
                              "norms folded, connection weights folded, edges pruned)."),
    import_modules: bool = ImportModulesOpt,
) -> None:
    """Per-node shapes, parameters and FLOPs, without TensorFlow."""
    from ..compiler.analysis import analyse

    allow_user_modules(import_modules)
    net, _ = load_checked(file, frames, size, classes, warnings=not json_out)
    if level:
        from ..compiler.passes import optimise
        st = optimise(net, level=level).stats()  # what `compile -O` builds
    else:
        st = analyse(net)
    if json_out:
        print(json.dumps(st.to_json(), indent=1))
        return
    from rich.table import Table

    table = Table(title=f"{st.network}: {st.frames} frames at {st.size[0]}x{st.size[1]}, "
                  f"{st.classes} classes", title_justify="left")
    for col in ("node", "kind", "type", "shape (T, H, W, C)", "params", "non-trainable",
                "GFLOPs"):
        table.add_column(col, justify="right" if col in ("params", "non-trainable", "GFLOPs")
                         else "left")
    for n in st.nodes:
        table.add_row(n.name, n.kind, n.type, "x".join(str(v) for v in n.shape),
                      f"{n.params:,}", f"{n.non_trainable:,}", f"{n.flops / 1e9:.3f}")
    table.add_row("total", "", "", "", f"{st.total:,}", f"{st.non_trainable:,}",
                  f"{st.flops / 1e9:.3f}", style="bold")
    out.print(table)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the JSON form."""
    from ..dsl.jsonform import json_schema

    print(json.dumps(json_schema(), indent=1))
