"""Syntax errors said in words: what Lark refused, turned into a positioned diagnostic
that names the cause (a missing `:`, an unknown statement, a tab in indentation) or lists
only what the parser would accept at that place."""

from __future__ import annotations

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.parsers.lalr_interactive_parser import InteractiveParser

from clampdsl.lang.diagnostics import Diagnostic, Span, did_you_mean, quoted
from clampdsl.lang.grammar import (
    CODE,
    MAX_TOKENS,
    STATEMENTS,
    DedentError,
    TabIndentation,
    TooManyTokens,
    parser,
)

# The words that begin a statement in an experiment's block, beside the clamp kinds' verbs.
BLOCK_STATEMENTS = ("clamp", "model", "task", "train", "sweep", "seeds")
EXPECTED_SHOWN = 8  # an "expected …" list names at most this many, then "…"
# How expected terminals are named in "expected ..." messages.
TERMINAL_WORDS = {
    "_NL": "end of line",
    "_INDENT": "an indented statement",
    "_DEDENT": "end of the block",
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": 'a quoted "string"',
    "LAYER": "a layer like L1",
    "HEADS": "heads like H3, H*, H0-2 or H{0,1}",
    "SECTION": ("'model'", "'task'", "'train'"),
    "COMPARE": "a comparison (<, <=, >, >=)",
    "LPAR": "'('",
    "RPAR": "')'",
    "$END": "end of file",
}


def diagnostic(error: Exception, file: str, text: str) -> Diagnostic:
    """The diagnostic for what parsing `text` raised: a Lark error, a dedent to no
    enclosing block, too many tokens, or a tab in indentation."""
    if isinstance(error, DedentError):
        return _dedent_diagnostic(parser(), file)
    if isinstance(error, TooManyTokens):
        return _too_long_diagnostic(error.token, file, text)
    if isinstance(error, TabIndentation):
        return _tab_diagnostic(error, file)
    return _syntax_diagnostic(error, file, text)


def _describe(terminal: str, lark_parser) -> tuple[str, ...]:
    """A terminal in the words of a message: `'to'` for a keyword or symbol, a class of
    words (`a name`) for the others."""
    words = TERMINAL_WORDS.get(terminal)
    if words is not None:
        return (words,) if isinstance(words, str) else words
    try:
        pattern = lark_parser.get_terminal(terminal).pattern
    except KeyError:
        return (terminal,)
    return (f"'{pattern.value}'",) if pattern.type == "str" else (terminal.lower(),)


def _expected(names, lark_parser) -> str:
    """`'a', 'b' or a name`: sorted, quoted words first, at most EXPECTED_SHOWN of them."""
    words = sorted({word for name in names for word in _describe(name, lark_parser)})
    if len(words) > EXPECTED_SHOWN:
        return ", ".join(words[:EXPECTED_SHOWN]) + ", …"
    return " or ".join(filter(None, (", ".join(words[:-1]), words[-1])))


def _syntax_diagnostic(error: UnexpectedInput, file: str, text: str) -> Diagnostic:
    lark_parser = parser()
    if isinstance(error, UnexpectedToken) and not isinstance(error, UnexpectedEOF):
        token = error.token
        if (explained := _explained(token, file, text)) is not None:
            return explained
        before = _parser_before(token, text)
        unknown = _unknown_statement(before.parser_state.value_stack, token, file, text)
        if unknown is not None:
            return unknown
        if token.type == "_INDENT":
            message = "unexpected indentation"
        elif token.type in ("_NL", "_DEDENT", "$END"):
            message = "unexpected end of line"
        else:
            message = f"unexpected {quoted(token.value)}"
        line, column = _token_start(token, text)
        width = len(token.value) if token.type not in ("_NL", "_INDENT", "_DEDENT") else 1
        span = Span(file, line, column, line, column + width)
        return Diagnostic(f"{message}; expected {_expected(before.accepts(), lark_parser)}", span)
    if isinstance(error, UnexpectedCharacters):
        span = Span(file, error.line, error.column, error.line, error.column + 1)
        if error.char == '"':
            return Diagnostic("unterminated string: it needs a closing '\"' on its line", span)
        return Diagnostic(f"unexpected character {error.char!r}", span)
    line = text.count("\n")
    span = Span(file, max(1, line), 1, max(1, line), 2)
    return Diagnostic(
        f"unexpected end of file; expected {_expected(error.expected, lark_parser)}", span
    )


def _parser_before(refused: Token, text: str) -> InteractiveParser:
    """The parser as it stood just before the token it refused, parsing `text` again.
    Lark's error state is later than that: the refused token has set off the reductions it
    allowed before failing, and what was legal before them (`L1.H2` may go on with `.` or
    `except`) is no longer legal after them."""
    interactive = parser().parse_interactive(text)
    try:
        for token in interactive.lexer_thread.lex(interactive.parser_state):
            if (token.type, token.start_pos) == (refused.type, refused.start_pos):
                trial = interactive.copy(deepcopy_values=False)
                try:
                    trial.feed_token(token)
                except UnexpectedToken:
                    break
            interactive.feed_token(token)
    except UnexpectedInput:
        pass  # the lexer refused it: nothing of it was fed
    return interactive


def _unknown_statement(values: list, token: Token, file: str, text: str) -> Diagnostic | None:
    """An error in a statement of an experiment's block whose first word is not a
    statement (`seed 1..3`): said of that word, with the statements a block may hold. (A
    statement led by any word parses as long as its selector does, and the compiler names
    the word; this is where it does not parse.)"""
    if not any(isinstance(v, Token) and v.type == "_INDENT" for v in values):
        return None  # not in a block
    if any(isinstance(v, Token) and v.type == "LPAR" for v in values):
        return None  # inside a setting's parentheses, not at a statement's start
    word = _first_value_on(values, _token_start(token, text)[0])
    if not (isinstance(word, Token) and word.type == "NAME") or word is token:
        return None
    if text.split("\n")[word.line - 1][: word.column - 1].strip() or word in _block_statements():
        return None  # not the line's first word, or a statement's own
    span = Span(file, word.line, word.column, word.line, word.column + len(word))
    choices = sorted(_block_statements())
    hint = did_you_mean(word, choices) or f"known: {', '.join(choices)}"
    return Diagnostic(f"unknown statement {quoted(str(word))}", span, hint)


def _first_value_on(values: list, line: int):
    """The first of the parser's values (tokens and finished subtrees) that starts on
    `line`, or None."""
    for value in values:
        start = value.line if isinstance(value, Token) else getattr(value.meta, "line", None)
        if start == line:
            return value
    return None


def _block_statements() -> tuple[str, ...]:
    from clampdsl import kinds  # the verbs are the kinds' to say

    return (*BLOCK_STATEMENTS, *kinds.verbs())


def _explained(token: Token, file: str, text: str) -> Diagnostic | None:
    """The usual slips said in words, where the parser's "expected …" would list the
    grammar: a block under a header without its colon, an unknown statement word."""
    line, column = _token_start(token, text)
    if token.type == "_INDENT":
        header = _code_before(text, line)
        if header is not None and header[1].startswith("experiment ") and header[1][-1] != ":":
            number, code = header
            span = Span(file, number, len(code) + 1, number, len(code) + 2)
            return Diagnostic(
                "this experiment's header needs a ':' before its indented block",
                span,
                hint=f"write `{code}:`",
            )
    if token.type == "NAME" and column == 1:
        word = str(token)
        hint = did_you_mean(word, STATEMENTS) or (
            "a statement of an experiment is indented under its header"
        )
        span = Span(file, line, column, line, column + len(word))
        return Diagnostic(f"{quoted(word)} cannot begin a top-level statement", span, hint)
    return None


def _code_before(text: str, line: int) -> tuple[int, str] | None:
    """The line number and code (comment and spaces stripped) of the last line with code
    before `line`."""
    lines = text.split("\n")
    for number in range(min(line, len(lines) + 1) - 1, 0, -1):
        code = CODE.match(lines[number - 1]).group(0).strip()
        if code:
            return number, code
    return None


def _token_start(token: Token, text: str) -> tuple[int, int]:
    # Indentation tokens borrow the newline's position: point where the indented text starts.
    if token.type in ("_INDENT", "_DEDENT") and token.end_line is not None:
        return token.end_line, token.end_column
    # Newline tokens start at the end of the line they close: point just past its text.
    if token.type == "_NL" and token.start_pos is not None:
        before = text[: token.start_pos]
        line = before.count("\n") + 1
        return line, len(before) - (before.rfind("\n") + 1) + 1
    if token.line is None:
        return 1, 1
    return token.line, token.column


def _dedent_diagnostic(lark_parser, file: str) -> Diagnostic:
    newline = lark_parser.options.postlex.last_newline
    line = (newline.end_line or 1) if newline is not None else 1
    indent = len(newline.value.rsplit("\n", 1)[-1]) if newline is not None else 0
    span = Span(file, line, 1, line, indent + 2)
    return Diagnostic("indentation does not match any enclosing block", span)


def _tab_diagnostic(error: TabIndentation, file: str) -> Diagnostic:
    span = Span(file, error.line, error.column, error.line, error.column + 1)
    return Diagnostic("indentation uses a tab: indent with spaces (4 per level)", span)


def _too_long_diagnostic(token: Token, file: str, text: str) -> Diagnostic:
    line, column = _token_start(token, text)
    return Diagnostic(
        f"this spec is too long: it holds more than {MAX_TOKENS:,} words, numbers and symbols",
        Span(file, line, column, line, column + 1),
        hint="split its experiments into several spec files",
    )
