"""Top-level statements other than settings and experiments: header, lets, measures,
the phase rule and reports."""

from __future__ import annotations

import math
import re

import attrs

from clampdsl.analysis import predictions
from clampdsl.compile import numbers, progress, selectors
from clampdsl.compile.configs import ModelConfig, TaskConfig
from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import Measure, PhaseRule
from clampdsl.compile.settings import EVAL_SETS
from clampdsl.lang import ast
from clampdsl.tasks import kinds as task_kinds

LANGUAGE_VERSION = 1
# Measures of heads, by the task roles they read (clampdsl/tasks/base.py)
METRICS = {
    "induction-strength": ("labels",),
    "prev-token-strength": ("previous",),
    "prefix-matching": ("repeats",),
}
PHASE_METRICS = ("loss", "acc")  # and any metric the spec measures
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
        elif name in selectors.MODEL_SITES or re.fullmatch(r"L[0-9]+\w*", name):
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


def lower_measures(
    spec: ast.Spec, model: ModelConfig, task: TaskConfig, lets, errors: Collector, tasks=()
):
    """Measures of heads (METRICS), and of the model's predictions (analysis/predictions.py),
    which are checked against each of `tasks` (the runs'; the top level's by default)."""
    measures = []
    for stmt in _of_type(spec, ast.Measure):
        if progress.lowers(stmt):  # read off the weights, or post hoc (compile/progress.py)
            continue
        metric = stmt.metric.value
        if predictions.known(metric):
            measure = predictions.lower(stmt, tasks or (task,), errors)
            measures += [measure] if measure else []
            continue
        if metric not in METRICS:
            known = [*METRICS, *predictions.names(task)]
            errors.unknown("measure", metric, stmt.metric.span, known)
            continue
        if not task_kinds.has_roles(task, METRICS[metric], metric, stmt.metric.span, errors):
            continue
        if stmt.selector is None or stmt.options:
            errors.error(
                f"{metric} is measured on heads, and takes no options",
                stmt.span,
                hint=f"measure {metric} of L2.H*",
            )
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
        every_row = task_kinds.of(task).every_position
        if metric == "prev-token-strength" and last in sites.layers and not every_row:
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


def lower_phase(
    spec: ast.Spec,
    eval_sets: tuple[str, ...],
    text_of,
    errors: Collector,
    lets=None,
    measures=(),
    task: TaskConfig | None = None,
    near_every: int | None = None,
):
    """The phase rule; its factors' numeric lets were read as numbers already
    (compile/numbers.py): a name left is a constant, or an error here. Its metric is the
    loss, the accuracy, or a metric of `measures` (the highest over the heads measured);
    or, in `phase when M is C`, a measure of categories (of `task`'s) at one of them."""
    lets = lets or {}
    statements = list(_of_type(spec, ast.PhaseStmt | ast.PhaseWhen))
    for extra in statements[1:]:
        errors.error(
            f"only one phase rule is allowed (first on line {statements[0].span.line})", extra.span
        )
    if not statements:
        return DEFAULT_PHASE
    stmt = statements[0]
    if isinstance(stmt, ast.PhaseWhen):
        return _lower_when(stmt, eval_sets, measures, task, errors, near_every) or DEFAULT_PHASE
    if stmt.eval_set.value not in EVAL_SETS:
        errors.unknown("eval set", stmt.eval_set.value, stmt.eval_set.span, EVAL_SETS)
    elif stmt.eval_set.value not in eval_sets:
        errors.error(
            f"the phase rule reads {stmt.eval_set.value!r}, which is not evaluated",
            stmt.eval_set.span,
            hint=f"add it to `eval every … on {', '.join(eval_sets)}`",
        )
    _check_phase_metric(stmt, eval_sets, measures, errors)
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


def _lower_when(stmt: ast.PhaseWhen, eval_sets, measures, task, errors, near_every):
    """`phase when nearest is bigram`: the first eval set's (where measures are read) value
    of a measured measure of categories, at one of them (its index, as recorded)."""
    metric = stmt.metric.value
    if not predictions.categorical(metric):
        errors.error(
            f"`phase when {metric} is …` reads a measure of categories, which {metric} is not",
            stmt.metric.span,
            hint="phase when nearest is bigram; or a comparison: phase train.loss < 0.5",
        )
        return None
    if metric not in {m.metric for m in measures}:
        errors.error(
            f"the phase rule reads {metric}, which the spec does not measure",
            stmt.metric.span,
            hint=f"add `measure {metric}`",
        )
        return None
    choices = predictions.categories(metric, task)
    if stmt.value.value not in choices:
        errors.unknown(f"{metric} value", stmt.value.value, stmt.value.span, choices)
        return None
    if near_every is not None:
        errors.error(
            "`every N steps near phase` reads how far the rule's value is from its threshold,"
            f" and `when {metric} is …` has none",
            stmt.span,
        )
    text = f"{metric} is {stmt.value.value}"
    index = float(choices.index(stmt.value.value))
    return PhaseRule(eval_sets[0], metric, "is", index, text, stmt.span)


def _check_phase_metric(stmt: ast.PhaseStmt, eval_sets, measures, errors: Collector) -> None:
    """A loss or accuracy of any eval set, or a measured number of the first (where
    measures are read, train/evaluate.py)."""
    metric = stmt.metric.value
    measured = {m.metric: m for m in progress.attention_measures(measures)}  # rules read these
    of_predictions = predictions.known(metric)
    if metric in PHASE_METRICS:
        return
    if (metric in METRICS or of_predictions) and metric not in measured:
        errors.error(
            f"the phase rule reads {metric}, which the spec does not measure",
            stmt.metric.span,
            hint=f"add `measure {metric}`"
            if of_predictions
            else f"add `measure {metric} of L2.H*` (or the heads it reads)",
        )
    elif not (metric in METRICS or of_predictions):
        errors.unknown("metric", metric, stmt.metric.span, [*PHASE_METRICS, *measured])
    elif predictions.categorical(metric):
        errors.error(
            f"{metric} names a strategy, not a number",
            stmt.metric.span,
            hint=f"phase when {metric} is bigram",
        )
    elif eval_sets and stmt.eval_set.value != eval_sets[0]:
        errors.error(
            f"{metric} is measured on {eval_sets[0]!r}, the first eval set, only",
            stmt.eval_set.span,
            hint=f"phase {eval_sets[0]}.{metric} …",
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
