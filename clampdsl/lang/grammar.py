"""Finding and loading grammars/clamp.lark, from a checkout or from an installed wheel.

Building the LALR tables takes longer than the rest of `clampdsl validate`, so the built
parser is kept in the user's cache directory as JSON (Lark's own serialized form), keyed by
the grammar text, Lark's version and the options. Nothing read from the cache is unpickled:
Lark's `cache=True` pickles into the shared temporary directory, where another user could
plant a file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
from importlib import resources
from pathlib import Path

import lark
from lark import Lark
from lark.grammar import Rule
from lark.indenter import DedentError, Indenter
from lark.lexer import TerminalDef

from clampdsl import user_cache

GRAMMAR_NAME = "clamp.lark"
# Tokens (words, numbers, symbols, line ends) a spec may hold: parsing takes time in
# proportion, and no spec of this kind comes near (the largest shipped holds under 1,000).
MAX_TOKENS = 50_000
# The words that begin a top-level statement.
STATEMENTS = (
    "clampdsl", "model", "task", "train", "eval", "phase", "let", "experiment", "measure",
    "report", "use", "sweep", "seeds", "subcircuit",
)  # fmt: skip
CODE = re.compile(r'(?:[^#"]|"(?:[^"\\\n]|\\.)*")*')  # a line up to its comment
OPTIONS = {
    "parser": "lalr",
    "lexer": "contextual",
    "propagate_positions": True,
    "maybe_placeholders": False,
}
CACHE_FORMAT = 1  # bumped when what the cache file holds changes
INT_KEYS = "#int-keys"  # marks a dict with int keys, which JSON objects cannot hold


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
    tab_len = 4  # required by Indenter; never used, as a tab in indentation is refused

    def __init__(self) -> None:
        super().__init__()
        self.last_newline = None

    def handle_NL(self, token):  # noqa: N802 (Lark's naming)
        self.last_newline = token
        # The newline token runs to the indentation of the next line of code (blank and
        # comment-only lines before it are part of it, their indentation ignored).
        indentation = token.rsplit("\n", 1)[-1]
        if "\t" in indentation:
            raise TabIndentation(token.end_line, indentation.index("\t") + 1)
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


class TabIndentation(Exception):
    """A line of code indented with a tab: a block's depth would depend on the tab's width
    in the writer's editor, so indentation is spaces only."""

    def __init__(self, line: int, column: int):
        super().__init__(f"a tab in the indentation of line {line}")
        self.line, self.column = line, column


class TooManyTokens(Exception):
    """A spec longer than MAX_TOKENS tokens; `token` is the first beyond."""

    def __init__(self, token):
        super().__init__(f"more than {MAX_TOKENS} tokens")
        self.token = token


@functools.cache
def parser() -> Lark:
    """The spec parser, one per process: read from the user's cache, built where the cache
    has none for this grammar."""
    return cached_parser(user_cache.directory())


def build(text: str | None = None) -> Lark:
    """The parser built from the grammar's text (by default the shipped grammar's)."""
    if text is None:
        text = grammar_path().read_text(encoding="utf-8")
    return Lark(text, postlex=BlockIndenter(), **OPTIONS)


def cached_parser(directory: Path | None) -> Lark:
    """The parser read from `directory`'s cache file for the shipped grammar, or built and
    written there where that file is missing, unreadable or not this grammar's. With no
    usable directory, built."""
    text = grammar_path().read_text(encoding="utf-8")
    if directory is None:
        return build(text)
    key = cache_key(text)
    path = directory / f"parser-{key[:32]}.json"
    loaded = _read(path, key)
    if loaded is not None:
        return loaded
    built = build(text)
    _write(path, key, built)
    return built


def cache_key(text: str) -> str:
    """What the tables depend on: the grammar, the Lark that built them and its options."""
    identity = json.dumps([CACHE_FORMAT, lark.__version__, text, sorted(OPTIONS.items())])
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()


def _read(path: Path, key: str) -> Lark | None:
    """The parser in the cache file, or None where the file is missing, is not JSON of
    this key, or does not deserialize: any of these means building it again."""
    try:
        with open(path, encoding="utf-8") as handle:
            stored = json.load(handle, object_hook=_with_int_keys)
        if stored.get("key") != key:
            return None
        # How the parsers that lark's standalone tool generates load their tables.
        return Lark._load_from_dict(stored["data"], stored["memo"], postlex=BlockIndenter())
    except Exception:  # whatever a damaged file raises, the parser is built instead
        return None


def _write(path: Path, key: str, built: Lark) -> None:
    """The parser as JSON, through a temporary file renamed into place, so that a reader
    (another process of this user's) never sees half a file; other grammars' files are
    removed, so that editing the grammar leaves one file, not one per edit. A cache that
    cannot be written is left unwritten."""
    data, memo = built.memo_serialize([TerminalDef, Rule])
    data["options"] = {k: v for k, v in data["options"].items() if k != "postlex"}
    text = json.dumps({"key": key, "data": _plain(data), "memo": _plain(memo)})
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".parser-", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
        for other in path.parent.glob("parser-*.json"):
            if other != path:
                other.unlink(missing_ok=True)
    except OSError:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def _plain(value):
    """Lark's serialized data as JSON can hold it: the parse tables' dicts keyed by state
    and terminal numbers become marked lists of pairs."""
    if isinstance(value, dict):
        if any(not isinstance(k, str) for k in value):
            return {INT_KEYS: [[k, _plain(v)] for k, v in value.items()]}
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _with_int_keys(value: dict):
    return dict(value[INT_KEYS]) if INT_KEYS in value else value


__all__ = [
    "CODE",
    "MAX_TOKENS",
    "STATEMENTS",
    "DedentError",
    "TabIndentation",
    "TooManyTokens",
    "build",
    "cached_parser",
    "grammar_path",
    "parser",
]
