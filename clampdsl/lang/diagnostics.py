"""Source positions, diagnostics, and how they are printed.

Every AST node carries a `Span`; every error the language half raises is a `Diagnostic`
pointing at one, so the CLI can print `file:line:col`, the line, and a caret under the
offending text instead of a traceback.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Sequence

import attrs


@attrs.frozen
class Span:
    """A region of a source file. Lines and columns count from 1, as editors show them."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int  # exclusive

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@attrs.frozen
class Diagnostic:
    message: str
    span: Span
    hint: str | None = None
    severity: str = "error"


class SpecError(Exception):
    """One or more diagnostics about a spec; raised only after collecting all of them."""

    def __init__(self, diagnostics: Sequence[Diagnostic], sources: dict[str, str] | None = None):
        self.diagnostics = list(diagnostics)
        self.sources = dict(sources or {})
        super().__init__(render_all(self.diagnostics, self.sources))


def quoted(word: str, limit: int = 40) -> str:
    """A word as a message quotes it: its repr, cut at `limit` characters (…), so that a
    message stays short whatever the file holds."""
    return repr(word if len(word) <= limit else word[:limit] + "…")


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean X?' hint when a near miss exists."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else None


def render(diagnostic: Diagnostic, source: str | None) -> str:
    span = diagnostic.span
    text = f"{span}: {diagnostic.severity}: {diagnostic.message}"
    lines = _lines(source) if source is not None else ()
    if 1 <= span.line <= len(lines):
        line = lines[span.line - 1]
        width = (
            span.end_column - span.column
            if span.end_line == span.line and span.end_column > span.column
            else max(1, len(line) - span.column + 1)
        )
        line, column, width = _shown(line, span.column, width)
        gutter = f"{span.line:>5} | "
        # The caret's padding keeps the line's tabs, so that it lines up at any tab width.
        pad = "".join("\t" if c == "\t" else " " for c in line[: column - 1])
        text += f"\n{gutter}{line}\n{' ' * (len(gutter) - 2)}| {pad}"
        text += "^" * max(1, width)
    if diagnostic.hint:
        text += f"\n      = hint: {diagnostic.hint}"
    return text


SHOWN = 160  # at most this much of a long line is shown, around the column
# Control characters (a NUL, an escape sequence) are shown as �, one column each as the
# parser counts them, never sent to the terminal; a tab stays.
CONTROLS = {c: "\ufffd" for c in (*range(0x20), *range(0x7F, 0xA0)) if c != 0x09}


def _shown(line: str, column: int, width: int) -> tuple[str, int, int]:
    """A long line cut to a window around the column (… where cut), with the column and
    caret width in it: a diagnostic stays short whatever the line's length."""
    line = line.translate(CONTROLS)
    if len(line) <= SHOWN:
        return line, column, width
    start = max(0, min(column - 1 - SHOWN // 4, len(line) - SHOWN))
    left, right = "…" if start else "", "…" if start + SHOWN < len(line) else ""
    shown = left + line[start : start + SHOWN] + right
    column = column - start + len(left)
    return shown, column, min(width, len(shown) - len(right) - column + 1)


@functools.lru_cache(maxsize=4)
def _lines(source: str) -> tuple[str, ...]:
    """A file's lines as the parser counts them (at line feeds only, not at form feeds
    as str.splitlines), split once for all its diagnostics: a spec of many errors must
    not take quadratic time."""
    return tuple(line.removesuffix("\r") for line in source.split("\n"))


def render_all(diagnostics: Sequence[Diagnostic], sources: dict[str, str]) -> str:
    return "\n".join(render(d, sources.get(d.span.file)) for d in diagnostics)
