"""`clampdsl fmt`: the canonical form of a spec, comments kept.

The house style of the shipped specs, so that they are their own canonical form:
- one space between words; none around `.` and inside parentheses; `key=value`, but
  `let NAME = value`; a space after each comma, in head sets too (`H{0, 1}`);
- the settings keywords padded to one width (`task  fewshot …`, `eval  every …`), and the
  names of consecutive `let` lines padded to the longest;
- experiment bodies indented by four spaces;
- a trailing comment keeps its column where the code leaves room (aligned comments stay
  aligned), else sits two spaces after the code;
- at most one blank line in a row, none at the end, and a final newline.

A line whose parentheses continue on the next one is kept as written. The result is
checked to lex to the same tokens as the input, so formatting never changes what a spec
means (`tests/test_format.py` checks the plan hash too).
"""

from __future__ import annotations

import re

import attrs
from lark.exceptions import LarkError

from clampdsl.lang import parser as clamp_parser
from clampdsl.lang.grammar import parser as lark_parser

PADDED = ("model", "task", "train", "eval", "phase")  # padded to the widest of them
WIDTH = max(map(len, PADDED))
INDENT = " " * 4
TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<comment>\#.*)
  | (?P<heads>H(?:\*|[0-9]+(?:-[0-9]+)?(?![A-Za-z0-9_-])|\{[^}]*\}))
  | (?P<layer>L(?:[0-9]+|\*)(?![A-Za-z0-9_]))
  | (?P<number>-?[0-9][0-9_]*(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[kKM]?(?![A-Za-z0-9_]))
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)
  | (?P<punct><=|>=|\.\.|[<>=*,().:])
  | (?P<space>[ \t\f]+)
  | (?P<other>.)
    """,
    re.VERBOSE,
)
NO_SPACE_BEFORE = {",", ")", ".", "..", ":"}
NO_SPACE_AFTER = {"(", "."}
SPACED_EQUALS = ("let", "subcircuit")  # statements that bind a name: `let X = …`


class FormatError(Exception):
    """The formatter would have changed what the spec means (a bug here): nothing is written."""


@attrs.frozen
class Line:
    indent: bool  # inside an experiment's block
    code: str  # the statement, formatted; "" for a comment or blank line
    comment: str  # "# …", or ""
    comment_column: int  # where the comment began in the input (0-based)
    verbatim: str | None = None  # kept as written (parentheses spanning lines)


def format_source(text: str, file: str = "<spec>") -> str:
    """The canonical form of `text`; a SpecError (with its diagnostics) if it does not parse."""
    clamp_parser.parse(text, file)
    lines = _lines(text.splitlines())
    result = _render(_align_lets(lines))
    if _meaning(result) != _tokens(text):
        raise FormatError(f"{file}: formatting would change the spec; left as it is")
    return result


def _meaning(result: str) -> list[tuple[str, str]] | None:
    """The formatted text's tokens, or None where it no longer lexes (then it cannot mean
    what the spec did)."""
    try:
        return _tokens(result)
    except LarkError:
        return None


def _lines(physical: list[str]) -> list[Line]:
    lines, depth, in_block = [], 0, False
    for raw in physical:
        indented = raw[:1] in (" ", "\t")
        opened_before = depth > 0
        depth += _depth_change(raw)
        if opened_before or depth > 0:  # parentheses across lines: kept as written
            lines.append(Line(indented, "", "", 0, raw.rstrip()))
            continue
        tokens = _words(raw)
        code = [t for t in tokens if t[0] != "comment"]
        comment = next((t for t in tokens if t[0] == "comment"), None)
        if code:  # a block goes on while its lines are indented, from a header's colon
            in_block = indented or (code[0][1] == "experiment" and code[-1][1] == ":")
        lines.append(
            Line(
                indented and (bool(code) or in_block),
                _join(code) if indented else _padded(_join(code)),
                comment[1].rstrip() if comment else "",
                comment[2] if comment else 0,
            )
        )
    return lines


def _words(raw: str) -> list[tuple[str, str, int]]:
    """(kind, text, column) of each token of a physical line, spaces left out."""
    out = []
    for match in TOKEN.finditer(raw):
        kind = match.lastgroup
        if kind != "space":
            out.append((kind, match.group(), match.start()))
    return out


def _depth_change(raw: str) -> int:
    code = [t for t in _words(raw) if t[0] == "punct"]
    return sum(t[1] == "(" for t in code) - sum(t[1] == ")" for t in code)


def _join(tokens: list[tuple[str, str, int]]) -> str:
    if not tokens:
        return ""
    binds = tokens[0][1] in SPACED_EQUALS  # `let X = …`, `subcircuit A = …`
    text, previous, seeds = "", None, tokens[0][1] == "seeds"
    for kind, word, _ in tokens:
        if kind == "heads" and word.startswith("H{"):
            word = "H{" + ", ".join(p.strip() for p in word[2:-1].split(",")) + "}"
        ranged = seeds and previous == ".."  # `seeds 5..9`, not `graft L2.. from`
        if previous is not None and not ranged and _spaced(previous, word, binds):
            text += " "
        text += word
        previous = word
    return text


def _padded(code: str) -> str:
    """A top-level settings line with its keyword padded: `task  fewshot …`."""
    first, _, rest = code.partition(" ")
    return f"{first.ljust(WIDTH)} {rest}" if first in PADDED and rest else code


def _spaced(previous: str, word: str, binds: bool) -> bool:
    if word in NO_SPACE_BEFORE or previous in NO_SPACE_AFTER:
        return False
    if "=" in (previous, word):
        return binds
    return not (word == "(" and previous[-1:].isalnum())  # a call: synthetic(dim=…)


def _align_lets(lines: list[Line]) -> list[Line]:
    """Pads the names of each run of consecutive `let` lines to the longest."""
    out, run = [], []

    def flush():
        width = max((len(line.code.split()[1]) for line in run), default=0)
        for line in run:
            _, name, rest = line.code.split(" ", 2)
            out.append(attrs.evolve(line, code=f"let {name.ljust(width)} {rest}"))
        run.clear()

    for line in lines:
        if line.verbatim is None and not line.indent and line.code.startswith("let "):
            run.append(line)
            continue
        flush()
        out.append(line)
    flush()
    return out


def _render(lines: list[Line]) -> str:
    rendered, blank = [], False
    for line in lines:
        if line.verbatim is not None:
            text = line.verbatim
        else:
            indent = INDENT if line.indent else ""
            code = indent + line.code
            if line.comment and line.code:
                column = max(line.comment_column, len(code) + 2)
                text = code.ljust(column) + line.comment
            else:
                text = code if line.code else indent + line.comment
        if not text.strip():
            blank = bool(rendered)
            continue
        if blank:
            rendered.append("")
            blank = False
        rendered.append(text.rstrip())
    return "\n".join(rendered) + "\n"


def _tokens(text: str) -> list[tuple[str, str]]:
    """What a spec means, token by token: the lexer's stream (indentation included), with
    the whitespace and comments that newline tokens carry, the width of an indentation
    and spaces in head sets left out."""
    unspaced = {
        "_NL": lambda text: "",
        "_INDENT": lambda text: "",
        "HEADS": lambda text: re.sub(r"\s", "", text),
    }
    return [(t.type, unspaced.get(t.type, str)(str(t))) for t in lark_parser().lex(text)]
