"""`sweep SECTION.KEY in a, b, c` and `seeds A..B`: an experiment expanded into runs.

Each sweep (and `seeds`, a sweep of `train.seed`) is an axis; an experiment runs at every
point of the cross product of the top-level axes and its own (its own replacing a
top-level one of the same setting). A point is a list of settings lines, applied after the
experiment's own settings, and names the run: `match[classes=100, seed=6]`. An experiment
may not also set what a sweep varies.
"""

from __future__ import annotations

import itertools

import attrs

from clampdsl.compile import settings
from clampdsl.compile.errors import Collector
from clampdsl.lang import ast
from clampdsl.lang.diagnostics import Span

SEED_KEY = ("train", "seed")
SEED_SETTING = ".".join(SEED_KEY)
MAX_POINTS = 1_000  # runs one experiment expands to


@attrs.frozen
class Axis:
    section: str
    key: str
    values: tuple[tuple[str, ast.Setting], ...]  # (the value's text, its settings line)
    span: Span

    @property
    def setting(self) -> str:
        return f"{self.section}.{self.key}"


@attrs.frozen
class Point:
    values: tuple[tuple[str, str], ...]  # (setting, value): ("task.classes", "100")
    settings: tuple[ast.Setting, ...]

    def name(self, experiment: str) -> str:
        return run_name(experiment, self.values)


def run_name(experiment: str, values: tuple[tuple[str, str], ...]) -> str:
    """`match[classes=100, seed=6]`: an experiment at a point, each setting shown by its
    key, or in full (`task.seed`) where two of them share one."""
    if not values:
        return experiment
    keys = [setting.rsplit(".", 1)[-1] for setting, _ in values]
    shown = (
        f"{key if keys.count(key) == 1 else setting}={value}"
        for key, (setting, value) in zip(keys, values, strict=True)
    )
    return f"{experiment}[{', '.join(shown)}]"


def top_axes(spec: ast.Spec, errors: Collector) -> list[Axis]:
    return _axes(spec.statements, errors)


def points(experiment: ast.Experiment, top: list[Axis], errors: Collector) -> list[Point]:
    """The experiment's runs: one per point of its axes' product."""
    own = _axes(experiment.body, errors)
    replaced = {axis.setting for axis in own}
    axes = [axis for axis in top if axis.setting not in replaced] + own
    _check_own_settings(experiment, axes, errors)
    count = 1
    for axis in axes:
        count *= len(axis.values)
    if count > MAX_POINTS:
        errors.error(
            f"experiment {experiment.name.value!r} expands to {count:,} runs, more than "
            f"{MAX_POINTS:,}",
            experiment.name.span,
            hint="sweep fewer values, or split the sweep into several specs",
        )
        return [Point((), ())]
    return [
        Point(
            tuple((axis.setting, text) for axis, (text, _) in zip(axes, values, strict=True)),
            tuple(line for _, line in values),
        )
        for values in itertools.product(*(axis.values for axis in axes))
    ]


def _axes(statements, errors: Collector) -> list[Axis]:
    axes: dict[str, Axis] = {}
    for stmt in statements:
        axis = _sweep(stmt, errors) if isinstance(stmt, ast.Sweep) else None
        axis = _seeds(stmt, errors) if isinstance(stmt, ast.Seeds) else axis
        if axis is None:
            continue
        if axis.setting in axes:
            first = axes[axis.setting].span.line
            errors.error(f"{axis.setting} is swept twice (first on line {first})", stmt.span)
            continue
        axes[axis.setting] = axis
    return list(axes.values())


def _sweep(stmt: ast.Sweep, errors: Collector) -> Axis | None:
    section, key = stmt.section.value, stmt.key.value
    if key not in settings.SECTIONS[section]:
        errors.unknown(f"{section} setting", key, stmt.key.span, settings.SECTIONS[section])
        return None
    values = []
    for value in stmt.values:
        text = _text(value)
        if text in (t for t, _ in values):
            errors.error(f"{section}.{key} = {text} is swept twice", value.span)
            continue
        option = ast.Option(stmt.key, value, value.span)
        values.append((text, ast.Setting(stmt.section, (), (option,), value.span)))
    return Axis(section, key, tuple(values), stmt.span) if values else None


def _seeds(stmt: ast.Seeds, errors: Collector) -> Axis | None:
    """`seeds 5..9` (both ends in) or `seeds 5, 6, 7` → the axis of train.seed."""
    numbers = [v for v in stmt.values if isinstance(v, ast.Number)]
    if len(numbers) < len(stmt.values):
        return None  # a name that binds no number: reported by compile/numbers.py
    if any(n.value != int(n.value) or n.value < 0 for n in numbers):
        bad = next(n for n in numbers if n.value != int(n.value) or n.value < 0)
        errors.error("a seed is a whole, non-negative number", bad.span)
        return None
    seeds = [int(n.value) for n in numbers]
    if stmt.is_range:
        first, last = seeds
        if last < first:
            errors.error(f"seeds {first}..{last} is empty: the range counts up", stmt.span)
            return None
        if last - first >= MAX_POINTS:
            errors.error(f"seeds {first}..{last} is more than {MAX_POINTS:,} seeds", stmt.span)
            return None
        seeds = list(range(first, last + 1))
    section, key = SEED_KEY
    values = []
    for seed in dict.fromkeys(seeds):
        number = ast.Number(float(seed), str(seed), stmt.span)
        option = ast.Option(ast.Name(key, stmt.span), number, stmt.span)
        line = ast.Setting(ast.Name(section, stmt.span), (), (option,), stmt.span)
        values.append((str(seed), line))
    return Axis(section, key, tuple(values), stmt.span)


def _check_own_settings(experiment: ast.Experiment, axes: list[Axis], errors: Collector) -> None:
    swept = {axis.setting: axis for axis in axes}
    for line in experiment.body:
        if not isinstance(line, ast.Setting):
            continue
        for option in line.options:
            axis = swept.get(f"{line.section.value}.{option.key.value}")
            if axis is not None:
                errors.error(
                    f"experiment {experiment.name.value!r} sets {axis.setting}, which the "
                    f"sweep on line {axis.span.line} varies",
                    option.span,
                    hint="drop one of the two",
                )


def _text(value: ast.Value) -> str:
    """A swept value as the run's name shows it."""
    if isinstance(value, ast.Number):
        return value.text
    if isinstance(value, ast.Call):
        inner = ", ".join(f"{o.key.value}={_text(o.value)}" for o in value.options)
        return f"{value.name.value}({inner})"
    return value.value
