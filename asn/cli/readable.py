"""Readable `--help`: metavars as people expect them (`FILE`, `N`, `H W`, `json|list|asn`).

Typer shows a flag as `<bool>`, a value by its Python type (`<int>`, `<text>`) and an
argument in the usage line as `{file}`. The command classes here give every parameter that
declares no `metavar` a readable one (an argument its name in capitals, a flag none, a
choice its choices) and write the usage line as click does (`FILE`, `[FILE]`, `FILE...`).
Options whose value has a better name than its type declare it (`metavar="DIR"`).
"""

from __future__ import annotations

import enum
import typing
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

__all__ = ["ReadableTyper", "ReadableCommand", "ReadableGroup"]

# a value's Python type -> its metavar, for options that declare none
_BY_TYPE = {int: "N", float: "X", str: "TEXT"}


def _annotation(param: Any) -> Any:
    descriptor = getattr(param, "type_descriptor", None)  # typer >= 0.2x keeps the type here
    return getattr(descriptor, "annotation", None)


def _metavar(param: Any) -> str | None:
    if isinstance(param, TyperArgument):
        return (param.name or "arg").upper()
    if getattr(param, "is_flag", False):
        return ""  # a flag takes no value: show none
    kind = _annotation(param)
    if typing.get_origin(kind) in (list, typing.List):  # noqa: UP006 (repeated option)
        kind = typing.get_args(kind)[0]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "|".join(str(m.value) for m in kind)
    if typing.get_origin(kind) is tuple:
        return " ".join(_BY_TYPE.get(a, "TEXT") for a in typing.get_args(kind))
    return _BY_TYPE.get(kind) if isinstance(kind, type) else None


def _name_metavars(params: list) -> list:
    for param in params:
        if param.metavar is None:
            param.metavar = _metavar(param)
        if isinstance(param, TyperArgument):  # its name says it: no `<str>` type column
            param.display_type_rich = _no_type
    return params


def _no_type(ctx: Any) -> None:
    return None


class ReadableCommand(TyperCommand):
    # at help time, not construction: typer adds the help and completion options later
    def get_params(self, ctx: Any) -> list:
        return _name_metavars(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):  # FILE, [FILE], FILE... (not `{file}`)
                name = param.metavar + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class ReadableGroup(TyperGroup):
    def get_params(self, ctx: Any) -> list:
        return _name_metavars(super().get_params(ctx))


class ReadableTyper(typer.Typer):
    """A Typer whose commands are `ReadableCommand`s (unless a command names its class)."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("cls") is None:
            kwargs["cls"] = ReadableCommand
        return super().command(*args, **kwargs)
