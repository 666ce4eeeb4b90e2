"""Top-level statements other than settings and experiments: header, lets, measures,
the phase rule and reports."""

from __future__ import annotations

import math
import re

import attrs

from clampdsl.compile import numbers, selectors
from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import Measure, ModelConfig, PhaseRule
from clampdsl.compile.settings import EVAL_SETS
from clampdsl.lang import ast

LANGUAGE_VERSION = 1
METRICS = ("induction-strength", "prev-token-strength")
PHASE_METRICS = ("loss", "acc")
CONSTANTS = {"ln2": math.log(2)}
REPORTS = ("subcircuits", "phase", "curves")
DEFAULT_PHASE = PhaseRule("train", "loss", "<", 0.4 * math.log(2), "train.loss < 0.4 * ln2", None)


def check_header(spec: ast.Spec, errors: Collector) -> None:
    if spec.version.value != LANGUAGE_VERSION:
        errors.error(
            f"this is clampdsl {spec.version.text}; only version {LANGUAGE_VERSION} exists",
            spec.version.span,
        )


def collect_lets(spec: ast.Spec, errors: Collector) -> dict[str, ast.Let]:
    lets: dict[str, ast.Let] = {}
    for let in _of_type(spec, ast.Let):
        name = let.name.value
        if name in lets:
            errors.error(f"{name} is already defined (line {lets[name].span.line})", let.name.span)
        elif name in selectors.MODEL_SITES or re.fullmatch(r"L\d+\w*", name):
            errors.error(f"{name!r} cannot be a let name: it reads as a site", let.name.span)
        elif name in CONSTANTS:
            errors.error(f"{name!r} cannot be a let name: it is a constant", let.name.span)
        elif _names_a_later_let(let, lets):
            errors.error(
                f"{let.value.name.value!r} is not defined before this line: a let names a model "
                "site or an earlier let",
                let.value.span,
            )
        else:
            lets[name] = _through(let, lets)
    return lets


def _through(let: ast.Let, earlier: dict[str, ast.Let]) -> ast.Let:
    """A let bound to an earlier let's selector or number is bound to that selector or
    number itself, so that a chain of any length resolves in one step."""
    value = let.value
    if isinstance(value, ast.NameSelector) and value.name.value in earlier:
        return attrs.evolve(let, value=earlier[value.name.value].value)
    return let


def _names_a_later_let(let: ast.Let, earlier: dict[str, ast.Let]) -> bool:
    """Whether a let is bound to a name that is neither a model site nor an earlier let
    (so no chain of lets can loop)."""
    value = let.value
    return (
        isinstance(value, ast.NameSelector)
        and value.name.value not in selectors.MODEL_SITES
        and value.name.value not in earlier
    )


def lower_measures(spec: ast.Spec, model: ModelConfig, lets, errors: Collector):
    measures = []
    for stmt in _of_type(spec, ast.Measure):
        if stmt.metric.value not in METRICS:
            errors.unknown("measure", stmt.metric.value, stmt.metric.span, METRICS)
            continue
        sites = selectors.resolve(stmt.selector, model, lets, errors)
        if sites is None:
            continue
        if not sites.is_heads or sites.site not in (None, "pattern"):
            errors.error(
                f"{stmt.metric.value} is measured on heads, not {sites.describe()}",
                stmt.selector.span,
            )
            continue
        last = model.layers - 1
        if stmt.metric.value == "prev-token-strength" and last in sites.layers:
            errors.error(
                f"prev-token-strength reads every row of a layer's attention, and L{last + 1} "
                "is computed at the query position only (the only one the loss reads)",
                stmt.selector.span,
                hint=(f"measure it in L1-L{last}" if last > 1 else "measure it in L1")
                if last
                else None,
            )
            continue
        measures.extend(
            Measure(stmt.metric.value, layer, sites.heads, stmt.span) for layer in sites.layers
        )
    return tuple(measures)


def lower_phase(spec: ast.Spec, eval_sets: tuple[str, ...], text_of, errors: Collector, lets=None):
    """The phase rule; its factors' numeric lets were read as numbers already
    (compile/numbers.py): a name left is a constant, or an error here."""
    lets = lets or {}
    statements = list(_of_type(spec, ast.PhaseStmt))
    for extra in statements[1:]:
        errors.error(
            f"only one phase rule is allowed (first on line {statements[0].span.line})", extra.span
        )
    if not statements:
        return DEFAULT_PHASE
    stmt = statements[0]
    if stmt.eval_set.value not in EVAL_SETS:
        errors.unknown("eval set", stmt.eval_set.value, stmt.eval_set.span, EVAL_SETS)
    elif stmt.eval_set.value not in eval_sets:
        errors.error(
            f"the phase rule reads {stmt.eval_set.value!r}, which is not evaluated",
            stmt.eval_set.span,
            hint=f"add it to `eval every … on {', '.join(eval_sets)}`",
        )
    if stmt.metric.value not in PHASE_METRICS:
        errors.unknown("metric", stmt.metric.value, stmt.metric.span, PHASE_METRICS)
    threshold = 1.0
    for factor in stmt.factors:
        if isinstance(factor, ast.Number):
            threshold *= factor.value
        elif factor.value in CONSTANTS:
            threshold *= CONSTANTS[factor.value]
        elif factor.value in lets:  # a selector's (numeric lets were read already)
            numbers.not_a_number(factor, lets, "a phase threshold", errors, CONSTANTS)
        else:
            known = [*CONSTANTS, *numbers.numbers(lets)]
            errors.unknown("constant or numeric let", factor.value, factor.span, known)
    return PhaseRule(
        stmt.eval_set.value,
        stmt.metric.value,
        stmt.op,
        threshold,
        text_of(stmt.span).removeprefix("phase").strip(),
        stmt.span,
    )


def lower_reports(spec: ast.Spec, declared, errors: Collector) -> tuple[str, ...]:
    kinds: list[str] = []
    for stmt in _of_type(spec, ast.Report):
        for kind in stmt.kinds:
            if kind.value not in REPORTS:
                errors.unknown("report", kind.value, kind.span, REPORTS)
                continue
            if kind.value == "subcircuits" and not declared:
                errors.warn(
                    "this spec declares no subcircuits: the report cannot say what each "
                    "experiment gives and leaves to learn",
                    kind.span,
                    hint='declare them (subcircuit A "…" = L1.out to shifted-embedding), or '
                    '`use "lib/induction.clamp"` for the paper\'s A, B and C',
                )
            if kind.value not in kinds:
                kinds.append(kind.value)
    return tuple(kinds) or ("phase",)


def _of_type(spec: ast.Spec, kind):
    return (s for s in spec.statements if isinstance(s, kind))
