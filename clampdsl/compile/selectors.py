"""Selectors (`L2.H* except H3`, `L1.out`, `L2..`, `logits`, a `let` name) → concrete sites.

Layers are written as in the paper (L1 is the first layer) and lowered to 0-based indices;
heads count from 0 in both.
"""

from __future__ import annotations

import re

import attrs

from clampdsl.compile.configs import ModelConfig
from clampdsl.compile.errors import Collector
from clampdsl.lang import ast
from clampdsl.lang.diagnostics import Span, did_you_mean, quoted

HEAD_SITES = ("pattern", "scores", "q", "k", "v", "z")
LAYER_SITES = ("in", "out")
MODEL_SITES = ("embed", "logits")


@attrs.frozen
class Sites:
    """What a selector names: per layer (0-based) a tuple of heads, or a layer/model site."""

    layers: tuple[int, ...]
    heads: tuple[int, ...]  # empty for layer- and model-level sites
    site: str | None  # explicit site, or None to let the target choose
    span: Span
    onward: bool = False  # `L2..`: written as a layer and every later one

    @property
    def is_heads(self) -> bool:
        return bool(self.heads)

    def describe(self) -> str:
        layers = ",".join(f"L{layer + 1}" for layer in self.layers)
        if not self.layers:
            return self.site or "?"
        if self.onward:
            return f"L{self.layers[0] + 1}.."
        heads = ".H{" + ",".join(map(str, self.heads)) + "}" if self.heads else ""
        return f"{layers}{heads}" + (f".{self.site}" if self.site else "")


def resolve(
    selector: ast.Selector, model: ModelConfig, lets: dict[str, ast.Let], errors: Collector
) -> Sites | None:
    while isinstance(selector, ast.NameSelector) and _bound(selector.name.value, lets):
        selector = lets[selector.name.value].value  # a let of a let…: followed, not recursed
    if isinstance(selector, ast.NameSelector):
        name = selector.name.value
        if name in MODEL_SITES:
            return Sites((), (), name, selector.span)
        if name in lets:
            chosen = [n for n, let in lets.items() if not isinstance(let.value, ast.Number)]
            errors.error(
                f"{name} is bound to a number (line {lets[name].span.line}), not a selector",
                selector.name.span,
                hint=did_you_mean(name, chosen + list(MODEL_SITES)),
            )
            return None
        errors.unknown("name", name, selector.name.span, list(lets) + list(MODEL_SITES))
        return None
    layers = _layers(selector, model, errors)
    if layers is None:
        return None
    if selector.onward:
        return Sites(tuple(range(layers[0], model.layers)), (), "out", selector.span, True)
    site = selector.site.value if selector.site else None
    if selector.heads is None:
        if selector.except_heads is not None:
            errors.error("`except` needs heads to take from, as in L2.H* except H3", selector.span)
            return None
        if site is not None and site not in LAYER_SITES:
            hint = "head sites need heads, as in L1.H2.pattern" if site in HEAD_SITES else None
            errors.unknown("layer site", site, selector.site.span, LAYER_SITES)
            if hint:
                errors.diagnostics[-1] = attrs.evolve(errors.diagnostics[-1], hint=hint)
            return None
        return Sites(layers, (), site or "out", selector.span)
    if site is not None and site not in HEAD_SITES:
        errors.unknown("head site", site, selector.site.span, HEAD_SITES)
        return None
    heads = _heads(selector.heads, selector.span, model, errors)
    removed = (
        _heads(selector.except_heads, selector.span, model, errors)
        if selector.except_heads is not None
        else ()
    )
    if heads is None or removed is None:
        return None
    kept = tuple(h for h in heads if h not in removed)
    if not kept:
        errors.error("this selector selects no heads", selector.span)
        return None
    return Sites(layers, kept, site, selector.span)


def _bound(name: str, lets: dict[str, ast.Let]) -> bool:
    """Whether a name is a let bound to a selector (a model site's name never is one)."""
    return name not in MODEL_SITES and name in lets and not isinstance(lets[name].value, ast.Number)


def _layers(selector: ast.SiteSelector, model: ModelConfig, errors: Collector):
    if selector.layer == "*":
        if selector.onward:
            errors.error("`L*..` says no more than `L*`", selector.span, hint="write L*")
            return None
        return tuple(range(model.layers))
    number = _number(selector.layer)
    if 1 <= number <= model.layers:
        return (number - 1,)
    nearest = min(max(number, 1), model.layers)
    layers = f"L1-L{model.layers}" if model.layers > 1 else "L1"
    errors.error(
        f"layer L{_written(number, selector.layer)} does not exist (model has {layers}; "
        "layers count from 1 like the paper)",
        Span(
            selector.span.file,
            selector.span.line,
            selector.span.column,
            selector.span.line,
            selector.span.column + len(selector.layer) + 1,
        ),
        hint=f"did you mean L{nearest}?",
    )
    return None


BIG = 10**18  # what a layer or head number of more digits reads as: beyond every model's


def _number(digits: str) -> int:
    """A layer or head number as written. Longer ones than any model has read as BIG:
    int() refuses digit strings beyond 4,300 (and beyond 18 there is nothing to count)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else BIG


def _written(number: int, digits: str) -> str:
    """How a message names a layer or head number (a long one, cut short)."""
    return str(number) if number < BIG else digits[:18] + "…"


def _heads(text: str, span: Span, model: ModelConfig, errors: Collector):
    body = text[1:]
    if body == "*":
        return tuple(range(model.heads))
    written = re.findall(r"[0-9]+", body) if body.startswith("{") else body.split("-")
    heads = [_number(h) for h in written]  # of a range, its ends: checked before it is made
    if "-" in body and not body.startswith("{"):
        (low, high), shown = heads, [_written(h, w) for h, w in zip(heads, written, strict=True)]
        if low > high:
            errors.error(
                f"head range {quoted(text)[1:-1]} runs backwards",
                span,
                hint=f"write H{shown[1]}-{shown[0]}",
            )
            return None
    missing = [_written(h, w) for h, w in zip(heads, written, strict=True) if h >= model.heads]
    if missing:
        errors.error(
            f"head H{missing[0]} does not exist (each layer has H0-H{model.heads - 1}; "
            "heads count from 0)",
            span,
        )
        return None
    if "-" in body and not body.startswith("{"):
        heads = range(heads[0], heads[1] + 1)
    return tuple(sorted(set(heads)))
