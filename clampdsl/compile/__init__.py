"""The compiler: a checked AST → Plan. Collects every error before raising one SpecError.

Never imports torch: `clampdsl validate` works without it.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from clampdsl.compile import interventions, rules, schedule, settings, subcircuits, toplevel
from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import Group, Plan, Run
from clampdsl.lang import ast
from clampdsl.lang.diagnostics import SpecError, render
from clampdsl.lang.parser import parse

CODE = re.compile(r'(?:[^#"]|"(?:[^"\\\n]|\\.)*")*')  # a line up to its comment


def compile_source(text: str, file: str = "<string>") -> Plan:
    """Parse and compile .clamp text; raises SpecError listing every problem found."""
    spec = parse(text, file)
    lines = text.splitlines()
    errors = Collector()

    toplevel.check_header(spec, errors)
    lets = toplevel.collect_lets(spec, errors)
    base = _top_settings(spec, errors)
    evaluated = _with_eval(base, spec, errors)
    folder = Path(file).parent  # where paths in the spec start (a donor's)
    runs = tuple(
        _lower_experiment(e, base, spec, lets, lines, folder, errors)
        for e in _of_type(spec, ast.Experiment)
    )
    _check_names(spec, errors)
    _check_shapes(runs, errors)
    measures = toplevel.lower_measures(spec, base.model, lets, errors)
    phase = toplevel.lower_phase(spec, evaluated.eval.sets, lambda s: _line(lines, s), errors)
    reports = toplevel.lower_reports(spec, errors)

    if not runs:
        errors.error(
            "this spec has no experiments",
            spec.span,
            hint='add one: experiment baseline "no clamp":',
        )
    ordered = sorted(errors.diagnostics, key=lambda d: (d.span.line, d.span.column))
    if errors:
        raise SpecError(ordered, {file: text})
    warnings = tuple(render(d, text) for d in ordered)
    return Plan(file, runs, _groups(runs), measures, phase, reports, warnings)


def compile_file(path: str | Path) -> Plan:
    path = Path(path)
    return compile_source(path.read_text(encoding="utf-8"), str(path))


def _top_settings(spec: ast.Spec, errors: Collector) -> settings.Settings:
    resolved = settings.Settings()
    for line in _of_type(spec, ast.Setting):
        resolved = settings.apply_setting(resolved, line, errors)
    return resolved


def _with_eval(resolved: settings.Settings, spec: ast.Spec, errors) -> settings.Settings:
    # Eval intervals in sequences depend on the batch size, so they are read after settings.
    for line in _of_type(spec, ast.EvalStmt):
        resolved = settings.apply_eval(resolved, line, errors)
    return resolved


def _lower_experiment(experiment: ast.Experiment, base, spec, lets, lines, folder, errors) -> Run:
    resolved = base
    for item in experiment.body:
        if isinstance(item, ast.Setting):
            resolved = settings.apply_setting(resolved, item, errors)
    # The eval line was checked (and its errors reported) once at top level; here it is only
    # re-applied because an experiment's own batch size changes what "N sequences" means.
    resolved = _with_eval(resolved, spec, Collector())
    lowered = []
    for item in experiment.body:
        if not isinstance(item, ast.Setting):
            lowered += interventions.lower_statement(
                item, resolved, lets, _line(lines, item.span), folder, errors
            )
    rules.check_experiment(lowered, resolved.model, errors)
    gives = subcircuits.steps_given(tuple(lowered), resolved.model)
    return Run(
        experiment.name.value,
        experiment.description,
        tuple(lowered),
        gives,
        resolved.model,
        resolved.task,
        resolved.train,
        resolved.eval,
        experiment.span,
    )


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


def _groups(runs: tuple[Run, ...]) -> tuple[Group, ...]:
    """Runs share one batched model when its shape and their schedule allow: same model,
    feature and label sizes, steps, batch, learning rate and evals. Tasks (classes, feature
    statistics, splits) and seeds may differ: such runs get their own data streams."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        shape = (run.model, run.task.features.dim, run.task.labels, run.task.context)
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


def _of_type(spec: ast.Spec, kind):
    return (s for s in spec.statements if isinstance(s, kind))


__all__ = ["Plan", "SpecError", "compile_file", "compile_source"]
