"""The diagnostics an editor shows for a document: those `clampdsl validate` reports for it
(the compiler's errors and warnings, then the resource guard's), each placed in the document.

A diagnostic inside an included file (`use "lib/x.clamp"`) is shown on the document's `use`
line that reads that file in (directly or through other includes), its message led by the
file, line and column, and that place given as related information. The included file,
opened itself, gets its own diagnostics as a spec of its own.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from clampdsl.compile import compile_with_warnings, guard
from clampdsl.lang.diagnostics import Diagnostic, Span, SpecError
from clampdsl.lang.source import MAX_BYTES


@attrs.frozen
class Found:
    """A diagnostic placed in the document: 0-based lines and columns (in characters, as
    the parser counts them), the end exclusive, as LSP ranges."""

    line: int
    column: int
    end_line: int
    end_column: int
    severity: str  # "error" | "warning"
    message: str  # with the hint appended
    elsewhere: Span | None = None  # where it lies, when in an included file


def check(text: str, file: str) -> list[Found]:
    """`text`, the document's contents (saved or not), checked as the spec file `file`:
    a `use` path starts from that file's folder."""
    lines = text.split("\n")  # as the parser counts lines
    return [_placed(d, file, lines) for d in validated(text, file)]


def validated(text: str, file: str) -> list[Diagnostic]:
    """What `clampdsl validate FILE` reports, for the text of FILE."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        message = f"this spec is larger than {MAX_BYTES / 2**20:g} MiB, the most a spec may hold"
        return [Diagnostic(message, Span(file, 1, 1, 1, 2))]
    try:
        plan, warnings = compile_with_warnings(text, file)
    except SpecError as error:
        return error.diagnostics
    try:
        guard.check(plan, text)
    except SpecError as error:
        return warnings + error.diagnostics
    except ValueError as error:  # a budget variable that is no size: validate's usage error
        return warnings + [Diagnostic(str(error), Span(file, 1, 1, 1, 2))]
    return warnings


def _placed(diagnostic: Diagnostic, file: str, lines: list[str]) -> Found:
    span = diagnostic.span
    message = diagnostic.message
    if diagnostic.hint:
        message += f"\nhint: {diagnostic.hint}"
    if span.file == file:
        end = (span.end_line, span.end_column)
        if end <= (span.line, span.column):  # an empty span: its first character
            end = (span.line, span.column + 1)
        start = (span.line - 1, span.column - 1)
        return Found(*start, end[0] - 1, end[1] - 1, diagnostic.severity, message)
    line = _use_line(diagnostic, file)
    code = lines[line - 1].rstrip() if line <= len(lines) else ""
    indent = len(code) - len(code.lstrip())
    message = f"{_shown(span, file)}: {message}"
    return Found(line - 1, indent, line - 1, len(code), diagnostic.severity, message, span)


def _use_line(diagnostic: Diagnostic, file: str) -> int:
    """The 1-based line of the document's `use` that reads in the file a diagnostic lies
    in: the chain of includes its hint ends with (`included from lib/a.clamp:2 ←
    top.clamp:3`) ends at that line."""
    found = re.search(re.escape(f"{file}:") + r"(\d+)$", diagnostic.hint or "")
    return int(found.group(1)) if found else 1


def _shown(span: Span, file: str) -> str:
    """`lib/x.clamp:7:14`: an included file's place, from the document's folder."""
    path = Path(span.file)
    if path.is_relative_to(Path(file).parent):
        path = path.relative_to(Path(file).parent)
    return f"{path}:{span.line}:{span.column}"
