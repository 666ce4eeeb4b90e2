"""Finding and loading grammars/clamp.lark, from a checkout or from an installed wheel."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from lark import Lark
from lark.indenter import DedentError, Indenter

GRAMMAR_NAME = "clamp.lark"
# Tokens (words, numbers, symbols, line ends) a spec may hold: parsing takes time in
# proportion, and no spec of this kind comes near (the largest shipped holds under 1,000).
MAX_TOKENS = 50_000


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

    def process(self, stream):
        return super().process(self._counted(stream))

    @staticmethod
    def _counted(stream):
        """The lexer's tokens, up to MAX_TOKENS: TooManyTokens at the one beyond."""
        for count, token in enumerate(stream, 1):
            if count > MAX_TOKENS:
                raise TooManyTokens(token)
            yield token


class TooManyTokens(Exception):
    """A spec longer than MAX_TOKENS tokens; `token` is the first beyond."""

    def __init__(self, token):
        super().__init__(f"more than {MAX_TOKENS} tokens")
        self.token = token


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


__all__ = ["MAX_TOKENS", "DedentError", "TooManyTokens", "grammar_path", "parser"]
