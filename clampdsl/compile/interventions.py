"""`clamp …` and `ablate …` statements → Plan interventions, checked against the model.

TARGETS is the table of what a clamp can set a site to: where it applies, which parameters
it takes, and which Plan kind it lowers to. Gradient and pass semantics of each kind live in
clampdsl.model.clamps and follow shared/reference/icl_dynamics_spec.md §4.
"""

from __future__ import annotations

import attrs

from clampdsl.compile import selectors
from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import HeadRef, Intervention, Window
from clampdsl.compile.selectors import Sites
from clampdsl.compile.settings import Settings, steps_of
from clampdsl.lang import ast


@attrs.frozen
class Param:
    default: float
    low: float
    high: float


@attrs.frozen
class TargetRule:
    kind: str  # the Plan kind
    on: str  # "heads" | "layer-out" | "logits" | "any"
    site: str | None  # the only site it may be written at (None: any but those refused)
    params: dict[str, Param] = {}
    takes_source: bool = False
    rows: tuple[str, ...] = ()  # row sets it may be confined to (`at labels`)


STRENGTH = {"strength": Param(1.0, 0.0, 1.0)}
TARGETS: dict[str, TargetRule] = {
    # pattern rows: s on the previous token, 1-s on itself (`at labels`: label rows only)
    "prev-token": TargetRule("prev-token", "heads", "pattern", STRENGTH, rows=("labels",)),
    # the query row: s on the label(s) matching the query's class, 1-s on the others
    "induction": TargetRule("induction", "heads", "pattern", STRENGTH),
    # layer 1's output := the ideal previous-token input (subcircuit A)
    "shifted-embedding": TargetRule("shifted-embedding", "layer-out", "out"),
    # query logits := a head's pre-softmax scores on the context labels (subcircuit C)
    "scores": TargetRule("copy-scores", "logits", "logits", takes_source=True),
    # any site := 0
    "zero": TargetRule("zero", "any", None),
}
ABLATE_SITES = ("v", "z")
ZERO_HEAD_SITES = ("q", "k", "v", "pattern", "z")


def lower_statement(
    statement: ast.Clamp | ast.Ablate,
    settings: Settings,
    lets: dict[str, ast.Let],
    text: str,
    errors: Collector,
) -> list[Intervention]:
    model = settings.model
    sites = selectors.resolve(statement.selector, model, lets, errors)
    window = _window(statement.window, settings, errors)
    if sites is None or window is None:
        return []
    if isinstance(statement, ast.Ablate):
        return _ablate(statement, sites, window, text, errors)
    return _clamp(statement, sites, window, model, lets, text, errors)


def _ablate(statement, sites: Sites, window, text, errors) -> list[Intervention]:
    if not sites.is_heads or (sites.site is not None and sites.site not in ABLATE_SITES):
        errors.error(
            f"cannot ablate {sites.describe()}: ablation zeroes heads' values",
            statement.selector.span,
            hint="ablate heads, as in `ablate L2.H* except H3`",
        )
        return []
    return [
        Intervention("ablate", layer, sites.heads, "v", {}, window, None, text, statement.span)
        for layer in sites.layers
    ]


def _clamp(statement, sites: Sites, window, model, lets, text, errors) -> list[Intervention]:
    name = statement.target.name
    rule = TARGETS.get(name.value)
    if rule is None:
        errors.unknown("clamp target", name.value, name.span, TARGETS)
        return []
    site = _fit_site(rule, sites, name.value, statement.selector.span, model, errors)
    if site is None:
        return []
    params = _params(rule, statement.target, errors)
    rows = _rows(rule, statement.target, errors)
    source = _source(rule, statement.target, model, lets, errors)
    if params is None or rows is None or (rule.takes_source and source is None):
        return []
    params |= rows
    if not sites.layers:  # a model-level site
        return [
            Intervention(rule.kind, None, (), site, params, window, source, text, statement.span)
        ]
    return [
        Intervention(
            rule.kind, layer, sites.heads, site, params, window, source, text, statement.span
        )
        for layer in sites.layers
    ]


def _fit_site(rule: TargetRule, sites: Sites, target: str, span, model, errors) -> str | None:
    """The site the clamp writes, or None (with an error) where the target means nothing."""
    where = sites.describe()
    if rule.on == "any":
        if not sites.is_heads:
            return sites.site  # a layer's in/out, embed or logits
        if (sites.site or "v") not in ZERO_HEAD_SITES:
            errors.error(
                f"{target} cannot be clamped at .{sites.site}: zeroed scores would "
                "unmask future tokens",
                span,
                hint=f"zero one of .{', .'.join(ZERO_HEAD_SITES)}",
            )
            return None
        return sites.site or "v"
    if rule.on == "heads":
        if not sites.is_heads or (sites.site not in (None, rule.site)):
            errors.error(
                f"{target} is an attention pattern; it cannot be clamped at {where}",
                span,
                hint=f"clamp heads' .{rule.site}, as in `clamp L1.H2 to {target}`",
            )
            return None
        return rule.site
    if rule.on == "layer-out":
        if sites.is_heads or sites.layers != (0,) or sites.site != "out":
            errors.error(f"{target} can only be clamped at L1.out, not {where}", span)
            return None
        if model.layers != 2:
            errors.error(
                f"{target} is defined for 2-layer models (this one has {model.layers})", span
            )
            return None
        return rule.site
    if sites.layers or sites.site != "logits":
        errors.error(
            f"{target} can only be clamped at logits, not {where}",
            span,
            hint=f"write `clamp logits to {target} of L2.H3`",
        )
        return None
    return rule.site


def _params(rule: TargetRule, target: ast.Target, errors: Collector) -> dict[str, float] | None:
    values = {key: spec.default for key, spec in rule.params.items()}
    ok = True
    for param in target.params:
        spec = rule.params.get(param.name.value)
        if spec is None:
            errors.unknown(
                f"parameter of {target.name.value}",
                param.name.value,
                param.name.span,
                rule.params or {"(none)"},
            )
            ok = False
        elif not spec.low <= param.value.value <= spec.high:
            errors.error(
                f"{param.name.value} {param.value.text} is out of range",
                param.value.span,
                hint=f"{param.name.value} lies in [{spec.low:g}, {spec.high:g}]",
            )
            ok = False
        else:
            values[param.name.value] = float(param.value.value)
    return values if ok else None


def _rows(rule: TargetRule, target: ast.Target, errors: Collector) -> dict[str, float] | None:
    """`at labels` → {"at_labels": 1.0}; nothing → {}; None (with an error) if refused."""
    if target.rows is None:
        return {}
    name = target.rows.name
    if not rule.rows:
        errors.error(
            f"{target.name.value} cannot be confined to some rows",
            target.rows.span,
            hint="`at labels` applies to prev-token",
        )
        return None
    if name.value not in rule.rows:
        errors.unknown("row set", name.value, name.span, rule.rows)
        return None
    return {f"at_{name.value}": 1.0}


def _source(rule: TargetRule, target: ast.Target, model, lets, errors) -> HeadRef | None:
    if not rule.takes_source:
        if target.source is not None:
            errors.error(f"{target.name.value} takes no `of` source", target.source.span)
        return None
    if target.source is None:
        errors.error(
            f"{target.name.value} needs a source head: `{target.name.value} of L2.H3`", target.span
        )
        return None
    sites = selectors.resolve(target.source, model, lets, errors)
    if sites is None:
        return None
    if len(sites.layers) != 1 or len(sites.heads) != 1 or sites.site not in (None, "scores"):
        errors.error(
            f"{target.name.value} reads exactly one head, not {sites.describe()}",
            target.source.span,
        )
        return None
    return HeadRef(sites.layers[0], sites.heads[0])


def _window(window: ast.Window, settings: Settings, errors: Collector) -> Window | None:
    batch = settings.train.batch
    start = steps_of(window.start, batch, errors) if window.start else 0
    end = steps_of(window.end, batch, errors) if window.end else None
    if start is None or (window.end is not None and end is None):
        return None
    if end is not None and end <= start:
        errors.error(
            f"this window is empty: it ends (step {end}) before it starts (step {start})",
            window.span,
        )
        return None
    return Window(start, end)
