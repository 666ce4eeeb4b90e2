"""Hover: what the selector under the cursor selects in the spec's model, resolved as the
compiler resolves it (compile/selectors.py), with the site the statement's kind lowers it to:
`ablate L2.H* except H3` → "L2 heads 0, 1, 2, 4, 5, 6, 7 (tensor layer 1) · site v".

The model is the one the spec's settings give where the selector stands (an experiment's own
settings apply in its block); a `let` name, used or defined, shows what it is bound to.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from clampdsl import kinds
from clampdsl.compile import selectors
from clampdsl.compile.errors import Collector
from clampdsl.compile.selectors import Sites
from clampdsl.lang import ast
from clampdsl.lang.diagnostics import Span
from clampdsl.lsp.document import Reading, read


@attrs.frozen
class Hit:
    """A selector as written at a place: its own span, or a let's name."""

    span: Span
    selector: ast.Selector
    statement: ast.Clamp | ast.Action | None  # whose own selector it is (its site follows)
    experiment: ast.Experiment | None


@attrs.frozen
class Shown:
    span: Span  # what the hover is about
    text: str  # markdown


def hover(text: str, file: str, line: int, column: int) -> Shown | None:
    """What the selector at 0-based `line`, `column` selects, or None where none is."""
    reading = read(text, file)
    if reading.spec is None:
        return None
    here = (line + 1, column + 1)
    hits = (
        hit
        for hit in _hits(reading.spec, None, None)
        if hit.span.file == file
        and (hit.span.line, hit.span.column) <= here < (hit.span.end_line, hit.span.end_column)
    )
    hit = next(hits, None)  # selectors never overlap: one at most
    if hit is None:
        return None
    written = reading.written(hit.span)
    return Shown(hit.span, f"`{written}`: {describe(hit, reading)}")


def describe(hit: Hit, reading: Reading) -> str:
    """What a selector selects, and what is wrong with it, where anything is."""
    model = reading.model(hit.experiment)
    errors = Collector()
    sites = selectors.resolve(hit.selector, model, reading.lets, errors)
    if sites is None:
        return "; ".join(d.message for d in errors.diagnostics)
    site, kind = sites.site, _kind(hit.statement)
    if kind is not None:  # the site the statement writes, which its kind chooses
        site = kind.lower_site(sites, model, hit.selector.span, errors) or site
    return "; ".join([_selected(sites, site), *(d.message for d in errors.diagnostics)])


def _selected(sites: Sites, site: str | None) -> str:
    if not sites.layers:
        return f"{site}, a model-wide site"
    layers = ", ".join(f"L{layer + 1}" for layer in sites.layers)
    heads = f" {_count(sites.heads, 'head')}" if sites.heads else ""
    tensor = _count(sites.layers, "tensor layer")
    return f"{layers}{heads} ({tensor})" + (f" · site {site}" if site else "")


def _count(numbers: tuple[int, ...], noun: str) -> str:
    """`heads 0, 1, 2`, `head 3`."""
    return f"{noun}{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}"


def _kind(statement: ast.Clamp | ast.Action | None) -> kinds.Kind | None:
    if isinstance(statement, ast.Clamp):
        return kinds.targets().get(statement.target.name.value)
    if isinstance(statement, ast.Action):
        return kinds.verbs().get(statement.verb.value)
    return None


def _hits(node, statement, experiment) -> Iterator[Hit]:
    """Every selector in a syntax tree, found through its nodes' fields (so statements of
    any shape are searched), with the statement and experiment it is in."""
    if isinstance(node, ast.SiteSelector | ast.NameSelector):
        yield Hit(node.span, node, statement, experiment)
        return
    if isinstance(node, tuple):
        for child in node:
            yield from _hits(child, statement, experiment)
        return
    if not attrs.has(type(node)) or isinstance(node, Span):
        return
    if isinstance(node, ast.Experiment):
        experiment = node
    if isinstance(node, ast.Let) and not isinstance(node.value, ast.Number):
        yield Hit(node.name.span, node.value, None, experiment)
    for field in attrs.fields(type(node)):
        child = getattr(node, field.name)
        owns = field.name == "selector" and isinstance(node, ast.Clamp | ast.Action)
        yield from _hits(child, node if owns else None, experiment)
