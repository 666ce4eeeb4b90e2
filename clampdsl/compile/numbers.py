"""Numeric lets: `let LR = 1e-4` read as its number wherever a number is written.

A pass over the syntax tree before anything is lowered: a name that a numeric `let` binds,
written as a setting's value (`train lr=LR`) or a swept one, a seed, a clamp's word or
parameter (`strength S`), a window bound or eval interval (`from step START`, `every N
steps`) or a phase-rule factor (`T * ln2`), becomes that let's number, at the place it
is used. So a spec with lets compiles to the very plan of the spec with the numbers
written out. A name there that is no numeric let (a selector's let, an undefined name)
is an error at that name.
"""

from __future__ import annotations

import attrs

from clampdsl.compile import settings
from clampdsl.compile.errors import Collector
from clampdsl.lang import ast
from clampdsl.lang.diagnostics import did_you_mean, quoted
from clampdsl.lang.parser import arguments

NUMBER_KEYS = ("int", "float")


def numbers(lets: dict[str, ast.Let]) -> dict[str, ast.Let]:
    """The lets bound to a number."""
    return {name: let for name, let in lets.items() if isinstance(let.value, ast.Number)}


def number_at(name: ast.Name, let: ast.Let) -> ast.Number:
    """A let's number, as written in the let, placed where the name is used."""
    value = let.value
    return ast.Number(value.value, value.text, name.span)


def not_a_number(name: ast.Name, lets, what: str, errors: Collector, others=()) -> None:
    """The error for a name written where a number is, that no numeric let binds."""
    let = lets.get(name.value)
    if let is not None:
        errors.error(
            f"{name.value} is bound to a selector (line {let.span.line}), not a number",
            name.span,
            hint=f"{what} takes a number",
        )
        return
    known = [*numbers(lets), *others]
    hint = did_you_mean(name.value, known) or (
        f"known: {', '.join(sorted(known))}"
        if known
        else f"bind it first: `let {name.value} = 0.5`"
    )
    errors.error(f"unknown name {quoted(name.value)}: {what} takes a number", name.span, hint)


def substitute(spec: ast.Spec, lets: dict[str, ast.Let], errors: Collector) -> ast.Spec:
    """The spec with every numeric let's name read as its number (see the module)."""
    pass_ = _Pass(spec.file, lets, errors)
    return attrs.evolve(spec, statements=tuple(map(pass_.statement, spec.statements)))


class _Pass:
    def __init__(self, file: str, lets: dict[str, ast.Let], errors: Collector):
        self.file, self.lets, self.errors = file, lets, errors
        self.numbers = numbers(lets)

    def statement(self, statement):
        if isinstance(statement, ast.Setting):
            return self.setting(statement)
        if isinstance(statement, ast.EvalStmt):
            options = self.options(statement.options, settings.SECTIONS["eval"])
            every = self.point(statement.every)
            near = statement.near_every and self.point(statement.near_every)
            return attrs.evolve(statement, every=every, options=options, near_every=near)
        if isinstance(statement, ast.PhaseStmt):
            return attrs.evolve(statement, factors=tuple(map(self.factor, statement.factors)))
        if isinstance(statement, ast.Experiment):
            return attrs.evolve(statement, body=tuple(map(self.statement, statement.body)))
        if isinstance(statement, ast.Clamp):
            target = statement.target
            target = attrs.evolve(target, args=self.arguments(target.args))
            window = self.window(statement.window)
            return attrs.evolve(statement, target=target, window=window)
        if isinstance(statement, ast.Action):
            args, window = self.arguments(statement.args), self.window(statement.window)
            return attrs.evolve(statement, args=args, window=window)
        if isinstance(statement, ast.Measure) and statement.as_if is not None:
            return attrs.evolve(statement, as_if=self.statement(statement.as_if))
        if isinstance(statement, ast.Sweep):
            return self.sweep(statement)
        if isinstance(statement, ast.Seeds):
            return attrs.evolve(statement, values=tuple(map(self.seed, statement.values)))
        return statement

    def sweep(self, sweep: ast.Sweep) -> ast.Sweep:
        """A sweep's values read as its setting's options would be."""
        keys = settings.SECTIONS.get(sweep.section.value, {})
        options = tuple(ast.Option(sweep.key, value, value.span) for value in sweep.values)
        return attrs.evolve(sweep, values=tuple(o.value for o in self.options(options, keys)))

    def seed(self, value: ast.Number | ast.Name) -> ast.Number | ast.Name:
        """A seed: a name left binds no number (reported here; compile/sweeps.py skips it)."""
        if isinstance(value, ast.Number):
            return value
        if value.value not in self.numbers:
            not_a_number(value, self.lets, "a seed", self.errors)
            return value
        return number_at(value, self.numbers[value.value])

    def setting(self, line: ast.Setting) -> ast.Setting:
        keys = settings.SECTIONS.get(line.section.value, {})
        return attrs.evolve(line, options=self.options(line.options, keys))

    def options(self, options: tuple[ast.Option, ...], keys) -> tuple[ast.Option, ...]:
        """Options with numeric lets read; one whose name binds no number is dropped, its
        error reported here."""
        kept = []
        for option in options:
            key, value = keys.get(option.key.value), option.value
            if key is not None and key.kind == "features" and isinstance(value, ast.Call):
                value = attrs.evolve(
                    value, options=self.options(value.options, settings.FEATURE_KEYS)
                )
            elif key is not None and key.kind in NUMBER_KEYS and isinstance(value, ast.Name):
                if value.value not in self.numbers:
                    not_a_number(value, self.lets, option.key.value, self.errors)
                    continue
                value = number_at(value, self.numbers[value.value])
            kept.append(attrs.evolve(option, value=value))
        return tuple(kept)

    def point(self, point: ast.StepPoint | None) -> ast.StepPoint | None:
        """A step bound: a name that binds no number is left (steps_of reads it as
        unreadable), its error reported here."""
        if point is None or not isinstance(point.value, ast.Name):
            return point
        name = point.value
        if name.value not in self.numbers:
            what = "a step" if point.unit == "steps" else "a count of sequences"
            not_a_number(name, self.lets, what, self.errors)
            return point
        return attrs.evolve(point, value=number_at(name, self.numbers[name.value]))

    def window(self, window: ast.Window) -> ast.Window:
        return attrs.evolve(
            window,
            start=self.point(window.start),
            end=self.point(window.end),
            repeated=tuple(map(self.point, window.repeated)),
        )

    def factor(self, factor):
        if isinstance(factor, ast.Name) and factor.value in self.numbers:
            return number_at(factor, self.numbers[factor.value])
        return factor  # a number, a constant, or an unknown name (lower_phase says so)

    def arguments(self, args: ast.Arguments) -> ast.Arguments:
        """Words that name numeric lets read as numbers, and words and numbers paired into
        parameters again, as the parser pairs them (`strength S` → strength = S's)."""
        steps = tuple(map(self.point, args.steps))
        if not any(isinstance(w, ast.Name) and w.value in self.numbers for w in args.words):
            return attrs.evolve(args, steps=steps)
        items = [*args.words]
        for param in args.params:
            items += [param.name, param.value]
        items.sort(key=lambda item: (item.span.line, item.span.column))
        items = [
            number_at(w, self.numbers[w.value])
            if isinstance(w, ast.Name) and w.value in self.numbers
            else w
            for w in items
        ]
        return arguments([*items, *args.rows, *args.paths, *steps], self.file)
