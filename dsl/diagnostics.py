"""Compiler diagnostics: what went wrong, where, and how to fix it.

A `Diagnostic` holds a severity, a stable code, a message that makes sense on its
own, a span, and optional help. `render` prints it the way compilers do:

    net.asn:14:51: error: unknown input `b3` of block `b6` [ASN101]
       14 | block b6 = bottleneck(level=0, filters=32) <- r0, b3
          |                                                   ^^
          = help: did you mean `b4`?
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Literal

from .ir import Span

if TYPE_CHECKING:
    from .partial import PartialNetwork

__all__ = ["Diagnostic", "Diagnostics", "DiagnosticError", "Source", "render", "did_you_mean",
           "Suggester", "to_json", "CODES"]

Severity = Literal["error", "warning", "note"]

# Stable codes with a one-line explanation each (`asnc check --explain CODE`).
CODES: dict[str, str] = {
    "ASN001": "the input is not readable text (binary, not UTF-8, empty or too large)",
    "ASN002": "syntax error: the text does not follow the .asn grammar",
    "ASN003": "the JSON is malformed or too deeply nested",
    "ASN004": "the list-format structure is malformed",
    "ASN005": "an output cannot be written (a directory, no permission, read-only, no space)",
    "ASN010": "a header setting is unknown, repeated or has an invalid value",
    "ASN011": "a block or stem argument is unknown, repeated or has an invalid value",
    "ASN012": "a value has the wrong type, is out of range or is nested too deeply",
    "ASN100": "two nodes have the same name",
    "ASN101": "a name is used that is not declared",
    "ASN102": "the connections form a cycle",
    "ASN103": "a list-format node reads a node that comes later (forward reference)",
    "ASN110": "connection weights do not match the inputs",
    "ASN111": "a connection weight is outside (0, 1), NaN or infinite",
    "ASN120": "filters do not match the block module",
    "ASN121": "level, stride or dilation out of range",
    "ASN122": "the inputs of a block cannot be resized to a common spatial size",
    "ASN123": "channel counts are incompatible (heads of different widths, no fusion target)",
    "ASN130": "the network has no stem or no head",
    "ASN131": "a node does not reach any head",
    "ASN140": "an option does not apply to this network (object stems, attention, lite)",
    "ASN150": "the input size is too small or too short for the network",
}


@dataclass
class Diagnostic:
    severity: Severity
    code: str
    message: str
    span: Span | None = None
    help: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


class Diagnostics(list):
    """A list of diagnostics with helpers to add to it."""

    def error(self, code: str, message: str, span: Span | None = None, help: str | None = None,
              notes: Iterable[str] = ()) -> None:
        self.append(Diagnostic("error", code, message, span, help, list(notes)))

    def warning(self, code: str, message: str, span: Span | None = None,
                help: str | None = None) -> None:
        self.append(Diagnostic("warning", code, message, span, help))

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self)


class DiagnosticError(Exception):
    """Raised by loaders and checkers; carries every diagnostic found, not just the first."""

    def __init__(self, diagnostics: list[Diagnostic], source: "Source | None" = None,
                 partial: "PartialNetwork | None" = None):
        self.diagnostics = list(diagnostics)
        self.source = source
        # what a loader could build despite the errors (`dsl.partial`); the errors of the rest
        # are `compiler.validation.check_partial`'s
        self.partial = partial
        first = next((d for d in self.diagnostics if d.is_error), None)
        super().__init__(first.message if first else "invalid input")

    def render(self) -> str:
        return "\n".join(render(d, self.source) for d in self.diagnostics)


@dataclass
class Source:
    """The text a diagnostic points into."""

    path: str
    text: str
    _lines: list[str] | None = field(default=None, init=False, repr=False, compare=False)

    def line(self, n: int) -> str | None:
        # Lines end at "\n" only, as the parsers count them (str.splitlines also splits at
        # form feeds, "\x85", "\u2028", ... and would show the wrong line under the caret).
        # Split once: a big file with many diagnostics must not be split for each.
        if self._lines is None:
            self._lines = self.text.split("\n")
        lines = self._lines
        return lines[n - 1].rstrip("\r") if 1 <= n <= len(lines) else None


def printable(text: str) -> str:
    """`text` with control and other unprintable characters escaped, so one message stays
    one line and never sends a control sequence to the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _display(line: str) -> str:
    # one column per character, so the caret stays under the right one
    return "".join(c if c.isprintable() else " " for c in line)


# A rendered diagnostic stays a few short lines whatever the input: a message or help quoting
# a huge value is clipped, and of a long (minified) source line only a window around the
# caret is shown. Work per diagnostic is then bounded, not proportional to the line.
MAX_MESSAGE = 300
LINE_WINDOW = 120


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text`, or its start and end around `...` when longer than `limit` characters."""
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]} ... {text[-keep:]}"


def render(d: Diagnostic, source: Source | None) -> str:
    path = printable(clip(source.path if source else "<input>"))
    message = printable(clip(d.message))
    if d.span is not None:
        head = f"{path}:{d.span.line}:{d.span.col}: {d.severity}: {message} [{d.code}]"
    else:
        head = f"{path}: {d.severity}: {message} [{d.code}]"
    out = [head]
    text = source.line(d.span.line) if (source and d.span) else None
    if d.span is not None and text is not None:
        col = d.span.col
        if len(text) > 200:  # never flood the terminal with a minified line
            start = max(0, d.span.col - LINE_WINDOW // 2)
            text = text[start:start + LINE_WINDOW]
            col = d.span.col - start
        text = _display(text)
        width = 1
        if d.span.end_line == d.span.line and d.span.end_col > d.span.col:
            width = d.span.end_col - d.span.col
        width = max(1, min(width, len(text) - col + 1))
        gutter = f"{d.span.line:>5} | "
        out.append(gutter + text)
        out.append(" " * (len(gutter) - 2) + "| " + " " * (col - 1) + "^" * width)
    for note in d.notes:
        out.append(f"      = note: {printable(clip(note))}")
    if d.help:
        out.append(f"      = help: {printable(clip(d.help))}")
    return "\n".join(out)


def to_json(diags: Iterable[Diagnostic], path: str) -> str:
    return json.dumps([
        {
            "file": path,
            "line": d.span.line if d.span else None,
            "col": d.span.col if d.span else None,
            "severity": d.severity,
            "code": d.code,
            "message": d.message,
            **({"help": d.help} if d.help else {}),
        }
        for d in diags
    ], indent=1)


# "Did you mean" is a courtesy and must stay cheap whatever the input: a name longer than
# this is no typo of a declared one, and one Suggester fills at most SUGGEST_BUDGET cells of
# distance tables in all (5,000 unknown names against 5,000 declared ones were 25 million
# distance computations); when the budget is spent, the remaining names get no suggestion.
MAX_SUGGEST_WORD = 64
SUGGEST_BUDGET = 600_000


class Suggester:
    """"did you mean" for any number of words against one set of candidates, in bounded
    time: candidates are bucketed by length (a candidate whose length differs by more than the
    accepted distance cannot be accepted), each distance stops once it exceeds that, and the
    total work is capped by `budget`."""

    def __init__(self, candidates: Iterable[str], budget: int = SUGGEST_BUDGET):
        self._by_len: dict[int, list[str]] = {}
        self._folded: dict[str, str] = {}
        for name in sorted(set(candidates)):
            if len(name) <= MAX_SUGGEST_WORD + MAX_SUGGEST_WORD // 3:
                self._by_len.setdefault(len(name), []).append(name)
                self._folded.setdefault(name.lower(), name)
        self.budget = budget

    def __call__(self, word: str) -> str | None:
        """A "did you mean" help line for `word`, or None when nothing is close."""
        if not word or len(word) > MAX_SUGGEST_WORD:
            return None
        limit = max(1, len(word) // 3)
        best: tuple[int, str] | None = None
        for length in range(len(word) - limit, len(word) + limit + 1):
            for name in self._by_len.get(length, ()):
                bound = limit if best is None else best[0]
                d = self._distance(word, name, bound)
                if d is None:  # budget spent
                    return self._answer(word, best)
                if d <= bound and (best is None or (d, name) < best):
                    best = (d, name)
        return self._answer(word, best)

    def _answer(self, word: str, best: tuple[int, str] | None) -> str | None:
        if best is not None:
            return f"did you mean `{best[1]}`?"
        folded = self._folded.get(word.lower())
        return f"did you mean `{folded}`?" if folded is not None and folded != word else None

    def _distance(self, a: str, b: str, bound: int) -> int | None:
        """Edit distance counting a swap of two neighbours as one edit (optimal string
        alignment), so `rbg` is one edit from `rgb`; `bound + 1` as soon as it must exceed
        `bound`; None when the budget is spent."""
        before: list[int] = []
        prev = list(range(len(b) + 1))
        prev_min = 0
        for i, ca in enumerate(a, 1):
            self.budget -= len(b) + 1
            if self.budget < 0:
                return None
            cur = [i]
            for j, cb in enumerate(b, 1):
                d = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
                if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                    d = min(d, before[j - 2] + 1)
                cur.append(d)
            cur_min = min(cur)
            # a swap reaches back two rows: past the bound only when both rows are
            if cur_min > bound and prev_min > bound:
                return bound + 1
            before, prev, prev_min = prev, cur, cur_min
        return prev[-1]


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean" help line, or None when nothing is close. For many words against the
    same candidates, make one `Suggester` and call it per word."""
    return Suggester(candidates)(word)
