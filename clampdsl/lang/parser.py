"""Text → Lark tree → AST, with syntax errors turned into positioned diagnostics."""

from __future__ import annotations

import math
import re
from pathlib import Path

from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.parsers.lalr_interactive_parser import InteractiveParser

from clampdsl.lang import ast
from clampdsl.lang.diagnostics import Diagnostic, Span, SpecError, did_you_mean, quoted
from clampdsl.lang.grammar import (
    MAX_TOKENS,
    DedentError,
    TabIndentation,
    TooManyTokens,
    parser,
)
from clampdsl.lang.source import read_spec

# The words that begin a top-level statement.
STATEMENTS = (
    "clampdsl", "model", "task", "train", "eval", "phase", "let", "experiment", "measure",
    "report", "use", "sweep", "seeds", "subcircuit",
)  # fmt: skip
CODE = re.compile(r'(?:[^#"]|"(?:[^"\\\n]|\\.)*")*')  # a line up to its comment

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
SUFFIXES = {"k": 1e3, "K": 1e3, "M": 1e6}


def parse_number(text: str) -> float:
    """`32k`, `2M`, `1e5`, `10_000`, `0.4` → float."""
    digits = text.replace("_", "")
    scale = SUFFIXES.get(digits[-1], 1.0)
    if scale != 1.0:
        digits = digits[:-1]
    return float(digits) * scale


def parse(text: str, file: str = "<string>") -> ast.Spec:
    """Parse .clamp source; raises SpecError with one positioned diagnostic on bad syntax."""
    if not text.endswith("\n"):
        text += "\n"
    lark_parser = parser()
    try:
        tree = lark_parser.parse(text)
    except UnexpectedInput as error:
        raise SpecError([_syntax_diagnostic(error, file, text)], {file: text}) from None
    except DedentError:
        raise SpecError([_dedent_diagnostic(lark_parser, file)], {file: text}) from None
    except TooManyTokens as error:
        raise SpecError([_too_long_diagnostic(error.token, file, text)], {file: text}) from None
    except TabIndentation as error:
        raise SpecError([_tab_diagnostic(error, file)], {file: text}) from None
    builder = _ToAst(file)
    spec = builder.transform(tree)
    if builder.problems:
        raise SpecError(builder.problems, {file: text})
    return spec


def parse_file(path: str | Path) -> ast.Spec:
    path = Path(path)
    return parse(read_spec(path), str(path))


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


def arguments(items: list, file: str) -> ast.Arguments:
    """Words, numbers, row sets, steps and paths, in the order written → Arguments: a word
    followed by a number is a parameter (`strength 0.8`). (The compiler calls it again once
    numeric `let` names among the words are read as their numbers.)"""
    words, params, rows, paths, steps = [], [], [], [], []
    for item in items:
        if isinstance(item, ast.Rows):
            rows.append(item)
        elif isinstance(item, ast.String):
            paths.append(item)
        elif isinstance(item, ast.StepPoint):
            steps.append(item)
        elif isinstance(item, ast.Number) and words and isinstance(words[-1], ast.Name):
            name = words.pop()
            start, end = name.span, item.span
            span = Span(file, start.line, start.column, end.end_line, end.end_column)
            params.append(ast.Param(name, item, span))
        else:
            words.append(item)
    return ast.Arguments(*map(tuple, (words, params, rows, paths, steps)))


def _span(file: str, meta_or_token) -> Span:
    return Span(
        file,
        meta_or_token.line,
        meta_or_token.column,
        meta_or_token.end_line,
        meta_or_token.end_column,
    )


def _text(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value[1:-1])


@v_args(meta=True)
class _ToAst(Transformer):
    """Builds ast nodes bottom-up; every node gets the span of the text it came from."""

    def __init__(self, file: str):
        super().__init__(visit_tokens=True)
        self.file = file
        self.problems: list[Diagnostic] = []  # what is well-formed but unreadable

    # tokens
    def NAME(self, token):  # noqa: N802
        return ast.Name(str(token), _span(self.file, token))

    def STRING(self, token):  # noqa: N802
        return ast.String(_text(str(token)), _span(self.file, token))

    def number(self, meta, children):
        (token,) = children
        value, span = parse_number(str(token)), _span(self.file, token)
        if not math.isfinite(value):
            self.problems.append(Diagnostic("this number is too large to be read", span))
            value = 0.0
        return ast.Number(value, str(token), span)

    # values and settings
    def name_value(self, meta, children):
        return children[0]

    def string_value(self, meta, children):
        return children[0]

    def call(self, meta, children):
        name, *rest = children
        options = tuple(c for c in rest if isinstance(c, ast.Option))
        return ast.Call(name, options, _span(self.file, meta))

    def option(self, meta, children):
        key, value = children
        return ast.Option(key, value, _span(self.file, meta))

    def flag(self, meta, children):
        return children[0]

    def setting(self, meta, children):
        section, *items = children
        return ast.Setting(
            ast.Name(str(section), _span(self.file, section)),
            tuple(i for i in items if isinstance(i, ast.Name)),
            tuple(i for i in items if isinstance(i, ast.Option)),
            _span(self.file, meta),
        )

    # steps and windows
    def at_step(self, meta, children):
        return ast.StepPoint(children[0], "steps", _span(self.file, meta))

    def at_sequences(self, meta, children):
        return ast.StepPoint(children[0], "sequences", _span(self.file, meta))

    def window_from(self, meta, children):
        return ("from", children)

    def window_until(self, meta, children):
        return ("until", children)

    def window(self, meta, children):
        during = next((c for c in children if isinstance(c, ast.Name)), None)
        bounds = [c for c in children if not isinstance(c, ast.Name)]
        starts = [points[0] for kind, points in bounds if kind == "from"]
        ends = [points[-1] for kind, points in bounds if kind == "until" or len(points) > 1]
        span = _span(self.file, meta) if children else None
        repeated = tuple(starts[1:] + ends[1:])
        start, end = starts[0] if starts else None, ends[0] if ends else None
        return ast.Window(start, end, span, repeated, during)

    def during(self, meta, children):
        return children[0]

    # top-level statements
    def header(self, meta, children):
        return children[0]

    def eval_stmt(self, meta, children):
        every, *rest = children
        sets = tuple(c for c in rest if isinstance(c, ast.Name))
        options = tuple(c for c in rest if isinstance(c, ast.Option))
        return ast.EvalStmt(every, sets, options, _span(self.file, meta))

    def constant(self, meta, children):
        return children[0]

    def product(self, meta, children):
        return tuple(children)

    def phase_stmt(self, meta, children):
        eval_set, metric, op, factors = children
        return ast.PhaseStmt(eval_set, metric, str(op), factors, _span(self.file, meta))

    def let_stmt(self, meta, children):
        name, value = children
        return ast.Let(name, value, _span(self.file, meta))

    def use_stmt(self, meta, children):
        return ast.Use(children[0], _span(self.file, meta))

    def measure_stmt(self, meta, children):
        metric, selector = children
        return ast.Measure(metric, selector, _span(self.file, meta))

    def report_stmt(self, meta, children):
        return ast.Report(tuple(children), _span(self.file, meta))

    def sweep_stmt(self, meta, children):
        section, key, *values = children
        section = ast.Name(str(section), _span(self.file, section))
        return ast.Sweep(section, key, tuple(values), _span(self.file, meta))

    def seed_range(self, meta, children):
        return ast.Seeds(tuple(children), True, _span(self.file, meta))

    def seed_list(self, meta, children):
        return ast.Seeds(tuple(children), False, _span(self.file, meta))

    def circuit_site(self, meta, children):
        selector, *rest = children
        targets = tuple(c for c in rest if isinstance(c, ast.Name))
        return ast.CircuitSite(selector, targets, _span(self.file, meta))

    def feeds(self, meta, children):
        return tuple(children)

    def subcircuit_stmt(self, meta, children):
        name, *rest = children
        description = rest[0].value if rest and isinstance(rest[0], ast.String) else ""
        sites = tuple(c for c in rest if isinstance(c, ast.CircuitSite))
        feeds = next((c for c in rest if isinstance(c, tuple)), ())
        return ast.Subcircuit(name, description, sites, feeds, _span(self.file, meta))

    # experiments
    def target(self, meta, children):
        name, *rest = children
        has_source = bool(rest) and isinstance(rest[0], ast.SiteSelector | ast.NameSelector)
        source, args = (rest[0], rest[1:]) if has_source else (None, rest)
        return ast.Target(name, source, self._arguments(args), _span(self.file, meta))

    def word(self, meta, children):
        (word,) = children
        return word if isinstance(word, ast.Name) else ast.Name(str(word), _span(self.file, word))

    def rows(self, meta, children):
        (name,) = children
        return ast.Rows(name, _span(self.file, meta))

    def at_point(self, meta, children):
        return children[0]

    def from_path(self, meta, children):
        return children[0]

    def _arguments(self, items: list) -> ast.Arguments:
        return arguments(items, self.file)

    def clamp_stmt(self, meta, children):
        selector, _to, target, window = children
        return ast.Clamp(selector, target, window, _span(self.file, meta))

    def action_stmt(self, meta, children):
        verb, selector, *args, window = children
        span = _span(self.file, meta)
        return ast.Action(verb, selector, self._arguments(args), window, span)

    def experiment(self, meta, children):
        name, *rest = children
        description = rest[0].value if rest and isinstance(rest[0], ast.String) else ""
        body = tuple(c for c in rest if not isinstance(c, ast.String))
        return ast.Experiment(name, description, body, _span(self.file, meta))

    # selectors
    def site_selector(self, meta, children):
        layer, heads, site, except_heads = str(children[0])[1:], None, None, None
        for child in children[1:]:
            if isinstance(child, ast.Name):
                site = child
            elif isinstance(child, Token):
                heads = str(child)
            else:
                except_heads = child
        return ast.SiteSelector(layer, heads, site, except_heads, _span(self.file, meta))

    def onward_selector(self, meta, children):
        layer = str(children[0])[1:]
        return ast.SiteSelector(layer, None, None, None, _span(self.file, meta), onward=True)

    def except_clause(self, meta, children):
        return str(children[0])

    def name_selector(self, meta, children):
        return ast.NameSelector(children[0], _span(self.file, meta))

    def start(self, meta, children):
        version, *statements = children
        return ast.Spec(self.file, version, tuple(statements), _span(self.file, meta))
