"""Text → Lark tree → AST, with syntax errors turned into positioned diagnostics."""

from __future__ import annotations

import math
import re
from pathlib import Path

from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedInput

from clampdsl.lang import ast, syntax_errors
from clampdsl.lang.diagnostics import Diagnostic, Span, SpecError
from clampdsl.lang.grammar import DedentError, TabIndentation, TooManyTokens, parser
from clampdsl.lang.source import read_spec

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
    try:
        tree = parser().parse(text)
    except (UnexpectedInput, DedentError, TooManyTokens, TabIndentation) as error:
        raise SpecError([syntax_errors.diagnostic(error, file, text)], {file: text}) from None
    builder = _ToAst(file)
    spec = builder.transform(tree)
    if builder.problems:
        raise SpecError(builder.problems, {file: text})
    return spec


def parse_file(path: str | Path) -> ast.Spec:
    path = Path(path)
    return parse(read_spec(path), str(path))


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
        argument = next((c for c in rest if isinstance(c, ast.String)), None)
        return ast.Call(name, options, _span(self.file, meta), argument)

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
        near = next((c for c in rest if isinstance(c, ast.StepPoint)), None)
        sets = tuple(c for c in rest if isinstance(c, ast.Name))
        options = tuple(c for c in rest if isinstance(c, ast.Option))
        return ast.EvalStmt(every, sets, options, _span(self.file, meta), near)

    def near_phase(self, meta, children):
        return children[0]

    def constant(self, meta, children):
        return children[0]

    def product(self, meta, children):
        return tuple(children)

    def phase_stmt(self, meta, children):
        eval_set, metric, op, factors = children
        return ast.PhaseStmt(eval_set, metric, str(op), factors, _span(self.file, meta))

    def phase_when(self, meta, children):
        metric, value = children
        return ast.PhaseWhen(metric, value, _span(self.file, meta))

    def let_stmt(self, meta, children):
        name, value = children
        return ast.Let(name, value, _span(self.file, meta))

    def use_stmt(self, meta, children):
        return ast.Use(children[0], _span(self.file, meta))

    def measure_stmt(self, meta, children):
        metric, *rest = children
        options = tuple(c for c in rest if isinstance(c, ast.Option))
        tagged = dict(c for c in rest if isinstance(c, tuple))  # (word, what follows it)
        selector = next((c for c in rest if not isinstance(c, ast.Option | tuple)), None)
        span = _span(self.file, meta)
        source, when = tagged.get("from"), tagged.get("at")
        return ast.Measure(metric, selector, span, source, when, options=options)

    def measure_source(self, meta, children):
        return ("from", children[0])

    def measure_when(self, meta, children):
        return ("at", children[0])

    def measure_as_if(self, meta, children):
        metric, selector, _to, target = children
        span = _span(self.file, meta)
        clamp = ast.Clamp(selector, target, ast.Window(None, None, None), span)
        return ast.Measure(metric, selector, span, as_if=clamp)

    def measure_as_if_action(self, meta, children):
        metric, verb, selector, *args = children
        span = _span(self.file, meta)
        action = ast.Action(
            verb, selector, self._arguments(args), ast.Window(None, None, None), span
        )
        return ast.Measure(metric, selector, span, as_if=action)

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
        if len(children) == 1:
            return children[0]
        word, path = children
        return ast.WordedPath(path.value, path.span, word)

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
