"""Finding and loading grammars/clamp.lark, from a checkout or from an installed wheel."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from lark import Lark
from lark.indenter import DedentError, Indenter

GRAMMAR_NAME = "clamp.lark"


def grammar_path() -> Path:
    # An installed wheel carries the grammar inside the package (see pyproject's
    # force-include); a source checkout keeps it at the top level, beside the package.
    packaged = Path(str(resources.files("clampdsl"))) / "grammars" / GRAMMAR_NAME
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "grammars" / GRAMMAR_NAME


class BlockIndenter(Indenter):
    """Turns leading whitespace into _INDENT/_DEDENT tokens for experiment blocks."""

    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR"]
    CLOSE_PAREN_types = ["RPAR"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 4

    def __init__(self) -> None:
        super().__init__()
        self.last_newline = None

    def handle_NL(self, token):  # noqa: N802 (Lark's naming)
        self.last_newline = token
        yield from super().handle_NL(token)


@functools.cache
def parser() -> Lark:
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        postlex=BlockIndenter(),
        propagate_positions=True,
        maybe_placeholders=False,
    )


__all__ = ["DedentError", "grammar_path", "parser"]
