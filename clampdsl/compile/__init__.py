"""The compiler: a checked AST → Plan. Collects every error before raising one SpecError.

Never imports torch: `clampdsl validate` works without it.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from clampdsl.compile import (
    includes,
    interventions,
    numbers,
    progress,
    rules,
    schedule,
    settings,
    subcircuits,
    sweeps,
    toplevel,
)
from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import Group, Plan, Run
from clampdsl.lang import ast
from clampdsl.lang.diagnostics import Diagnostic, Span, SpecError, render
from clampdsl.lang.grammar import CODE
from clampdsl.lang.parser import parse
from clampdsl.lang.source import read_spec
from clampdsl.tasks import kinds as task_kinds

# Bounds far beyond any spec of this kind, that keep checking one fast: an experiment's
# clamps are checked against each other, pair by pair.
MAX_EXPERIMENTS = 1_000  # per spec file
MAX_INTERVENTIONS = 128  # per experiment (a statement on several layers: one per layer)
MAX_SPEC_INTERVENTIONS = 10_000  # per spec file
MAX_RUNS = 1_000  # per spec file, its sweeps and seeds expanded
NO_EXPERIMENTS = "this spec has no experiments: other specs can use it, but it runs nothing"
NO_EXPERIMENTS_HINT = 'add one: experiment baseline "no clamp":'


def compile_source(text: str, file: str = "<string>") -> Plan:
    """Parse and compile .clamp text; raises SpecError listing every problem found."""
    return compile_with_warnings(text, file)[0]


def compile_with_warnings(text: str, file: str = "<string>") -> tuple[Plan, list[Diagnostic]]:
    """compile_source, with the Plan's warnings as diagnostics too (for an editor to place)."""
    spec = parse(text, file)
    expanded = includes.expand(spec, text)  # `use "…"` lines read in
    spec, sources = expanded.spec, expanded.sources
    # Lines as the parser counts them (not at \f, \v, \x1c, …), of each file read.
    lines = {name: source.split("\n") for name, source in sources.items()}

    def text_of(span) -> str:
        return _line(lines.get(span.file, []), span)

    def written(span) -> str:
        return _written(lines.get(span.file, []), span)

    errors = Collector()

    toplevel.check_header(spec, errors)
    lets = toplevel.collect_lets(spec, errors)
    spec = numbers.substitute(spec, lets, errors)  # numeric lets read as their numbers
    base = _top_settings(spec, errors)
    evals = tuple(_of_type(spec, ast.EvalStmt))
    evaluated = _with_eval(base, evals, errors)
    declared = subcircuits.lower(spec, base.model, lets, written, errors)
    axes = sweeps.top_axes(spec, errors)
    budget = [MAX_SPEC_INTERVENTIONS]  # what the spec's experiments may still lower
    top = Path(file).parent  # where the plan's paths start (a saved donor run's)
    context = _Context(base, evals, lets, declared, text_of, budget, top, errors)
    runs = tuple(
        _lower_experiment(e, point, context)
        for e in _experiments(spec, errors)
        for point in sweeps.points(e, axes, errors)
    )
    _check_run_count(runs, spec, errors)
    _check_names(spec, errors)
    _check_shapes(runs, errors)
    tasks = tuple(dict.fromkeys(r.task for r in runs)) or (base.task,)
    measures = toplevel.lower_measures(spec, base.model, base.task, lets, errors, tasks)
    measures += progress.lower(spec, evaluated, lets, runs, text_of, top, errors)
    phase = toplevel.lower_phase(
        spec,
        evaluated.eval.sets,
        text_of,
        errors,
        lets,
        measures,
        base.task,
        evaluated.eval.near_every,
    )
    reports = toplevel.lower_reports(spec, declared, errors)

    order = {name: index for index, name in enumerate(sources)}  # the top file's first
    ordered = [
        includes.with_chain(d, expanded.chains)
        for d in sorted(
            dict.fromkeys(errors.diagnostics),  # an experiment's, once for all its runs
            key=lambda d: (order.get(d.span.file, len(order)), d.span.line, d.span.column),
        )
    ]
    if errors:
        raise SpecError(ordered, sources)
    warnings = tuple(render(d, sources.get(d.span.file)) for d in ordered)
    return Plan(file, runs, _groups(runs), measures, phase, reports, declared, warnings), ordered


def compile_file(path: str | Path) -> Plan:
    path = Path(path)
    return compile_source(read_spec(path), str(path))


def _top_settings(spec: ast.Spec, errors: Collector) -> settings.Settings:
    resolved = settings.Settings()
    for line in _of_type(spec, ast.Setting):
        resolved = settings.apply_setting(resolved, line, errors)
    return resolved


def _with_eval(resolved: settings.Settings, evals, errors) -> settings.Settings:
    # Eval intervals in sequences depend on the batch size, so they are read after settings.
    for line in evals:
        resolved = settings.apply_eval(resolved, line, errors)
    return resolved


@attrs.frozen
class _Context:
    """What lowering each experiment reads: the top-level settings, eval lines, lets and
    subcircuits; the source; the spec's intervention budget (budget[0]: what is left); the
    top spec's folder; the collector."""

    base: settings.Settings
    evals: tuple
    lets: dict
    declared: tuple
    text_of: object
    budget: list
    top: Path
    errors: Collector


def _lower_experiment(experiment: ast.Experiment, point: sweeps.Point, context: _Context) -> Run:
    lets, text_of, budget, errors = context.lets, context.text_of, context.budget, context.errors
    folder = Path(experiment.span.file).parent  # where its paths start (a donor's)
    resolved = context.base
    for item in (*experiment.body, *point.settings):
        if isinstance(item, ast.Setting):
            resolved = settings.apply_setting(resolved, item, errors)
    # The eval line was checked (and its errors reported) once at top level; here it is only
    # re-applied because an experiment's own batch size changes what "N sequences" means.
    resolved = _with_eval(resolved, context.evals, Collector())
    lowered = []
    for item in experiment.body:
        if isinstance(item, ast.Clamp | ast.Action):
            if budget[0] < 0:  # the spec is over already, and that was reported
                lowered = []
                break
            lowered += interventions.lower_statement(
                item, resolved, lets, text_of(item.span), folder, context.top, errors
            )
            if not _within_budget(lowered, item, experiment, budget, errors):
                lowered = []  # checked no further: the spec has an error already
                break
    if budget[0] >= 0:
        budget[0] -= len(lowered)
    rules.check_experiment(lowered, resolved.model, errors)
    gives = subcircuits.given(tuple(lowered), context.declared, resolved.model)
    return Run(
        point.name(experiment.name.value),
        experiment.description,
        tuple(lowered),
        gives,
        resolved.model,
        resolved.task,
        resolved.train,
        resolved.eval,
        experiment.span,
        experiment.name.value,
        point.values,
    )


def _experiments(spec: ast.Spec, errors: Collector) -> list[ast.Experiment]:
    """The experiments to lower: the first MAX_EXPERIMENTS (an error at the one beyond)."""
    experiments = list(_of_type(spec, ast.Experiment))
    if len(experiments) > MAX_EXPERIMENTS:
        errors.error(
            f"this spec has more than {MAX_EXPERIMENTS:,} experiments",
            experiments[MAX_EXPERIMENTS].name.span,
            hint="split its experiments into several spec files",
        )
    return experiments[:MAX_EXPERIMENTS]


def _check_run_count(runs: tuple[Run, ...], spec: ast.Spec, errors: Collector) -> None:
    if len(runs) > MAX_RUNS:
        errors.error(
            f"this spec expands to {len(runs):,} runs, more than {MAX_RUNS:,}",
            spec.span,
            hint="sweep fewer values or seeds, or split the spec into several files",
        )


def _within_budget(lowered, statement, experiment, budget: list[int], errors) -> bool:
    """Whether an experiment's interventions so far, up to `statement`, stay within
    MAX_INTERVENTIONS, and the spec's within MAX_SPEC_INTERVENTIONS (budget[0]: what is
    left of it before this experiment); an error at `statement` if not."""
    if len(lowered) > MAX_INTERVENTIONS:
        errors.error(
            f"experiment {experiment.name.value!r} clamps more than {MAX_INTERVENTIONS} times "
            "(a statement counts once for each layer it names)",
            statement.span,
        )
        return False
    if len(lowered) > budget[0]:
        errors.error(
            f"this spec clamps more than {MAX_SPEC_INTERVENTIONS:,} times in all "
            "(a statement counts once for each layer it names)",
            statement.span,
            hint="split its experiments into several spec files",
        )
        budget[0] = -1
        return False
    return True


def _check_names(spec: ast.Spec, errors: Collector) -> None:
    seen: dict[str, ast.Experiment] = {}
    for experiment in _of_type(spec, ast.Experiment):
        name = experiment.name.value
        if name in seen:
            errors.error(
                f"experiment {name!r} is defined twice (first on line {seen[name].span.line})",
                experiment.name.span,
            )
        seen[name] = experiment


def _check_shapes(runs: tuple[Run, ...], errors: Collector) -> None:
    """Each distinct model and task once, at the first experiment that uses it."""
    seen = set()
    for run in runs:
        for config, check in ((run.model, settings.check_model), (run.task, settings.check_task)):
            if config not in seen:
                seen.add(config)
                check(config, run.span, errors)
        kind = task_kinds.of(run.task)
        if run.model.arch not in kind.architectures and (run.model.arch, kind) not in seen:
            seen.add((run.model.arch, kind))
            errors.error(
                f"task {kind.name} does not build a model arch={run.model.arch}",
                run.span,
                hint=f"its models: arch={' or '.join(kind.architectures)}",
            )


def _groups(runs: tuple[Run, ...]) -> tuple[Group, ...]:
    """Runs share one batched model when its shape and their schedule allow: same model,
    task kind and what of the task the model's shape depends on (feature and label sizes;
    vocabulary and length), steps, batch, learning rate and evals. Tasks (classes, feature
    statistics, splits; repeat lengths, loss positions) and seeds may differ: such runs get
    their own data streams."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        shape = (run.model, run.task.kind, *task_kinds.of(run.task).model_shape(run.task))
        timing = attrs.evolve(run.train, seed=0, data_seed=0, eval_seed=0)
        groups.setdefault((shape, timing, run.eval), []).append(run)
    return tuple(
        Group(tuple(r.name for r in members), schedule.schedule(members, members[0].model))
        for members in groups.values()
    )


def _line(lines: list[str], span) -> str:
    """A statement's source text without its trailing comment (a `#` in a string stays)."""
    if not 1 <= span.line <= len(lines):
        return ""
    return CODE.match(lines[span.line - 1]).group(0).strip()


def _written(lines: list[str], span) -> str:
    """The text a span covers on its first line, as written."""
    if not 1 <= span.line <= len(lines):
        return ""
    end = span.end_column if span.end_line == span.line else None
    return lines[span.line - 1][span.column - 1 : None if end is None else end - 1].strip()


def _of_type(spec: ast.Spec, kind):
    return (s for s in spec.statements if isinstance(s, kind))


def runnable(plan: Plan) -> Plan:
    """The plan, if it has runs; a SpecError at its first line if not. (A spec without
    experiments compiles: a library of definitions for other specs to `use`.)"""
    if not plan.runs:
        span = Span(plan.file, 1, 1, 1, 2)
        raise SpecError([Diagnostic(NO_EXPERIMENTS, span, NO_EXPERIMENTS_HINT)], {})
    return plan


__all__ = ["Plan", "SpecError", "compile_file", "compile_source", "runnable"]
