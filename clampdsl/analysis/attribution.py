"""Which subcircuits gate the phase change, identified from the runs (not declared): a
factorial reading of the measured phase-change times.

Each run hands over a set S of the spec's subcircuits whole (compile/subcircuits.py) and
makes the phase change at T(S), or not by its last step (censored). Giving subcircuit X
beside S saves the factor T(S) / T(S + X); wherever the runs hold both S and S + X (of one
task and model, and one seed) that factor is measured, and X's effect is their geometric
mean (a factorial main effect, on the log scale the times vary on), the range over seeds
and contexts its interval. A pair X, Y interacts by
T(S) · T(S + X + Y) / (T(S + X) · T(S + Y)): above 1, each given makes the other's saving
smaller (they relieve the same bottleneck); below 1, together they save more than apart.
A run handing over part of a subcircuit is left out; a censored time makes its factor a
bound ("at least"). Where no two runs differ in X alone, the runs present cannot tell.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable

import attrs

from clampdsl.compile.plan import Plan

CLEAR = 1.5  # a factor this far from 1, either way, is an effect worth a sentence


@attrs.frozen
class Time:
    steps: float  # the phase step; for a censored run, the last step (a lower bound)
    censored: bool


@attrs.frozen
class Factor:
    """A measured factor, with how many of its measurements were bounds."""

    values: tuple[float, ...]
    bounds: int  # measurements where a censored time makes the factor at least its value

    @property
    def typical(self) -> float:
        """The geometric mean: the factorial effect on a log scale."""
        return math.exp(statistics.fmean(math.log(v) for v in self.values))

    @property
    def interval(self) -> tuple[float, float]:
        return min(self.values), max(self.values)


@attrs.frozen
class Effect:
    subcircuit: str
    saving: Factor | None  # T(S) / T(S + X) over every S measured; None: cannot tell
    by_context: tuple[tuple[str, Factor], ...]  # ("alone" | "beside A+C", its factor)


@attrs.frozen
class Interaction:
    pair: tuple[str, str]
    factor: Factor


@attrs.frozen
class Attribution:
    effects: tuple[Effect, ...]
    interactions: tuple[Interaction, ...]
    left_out: tuple[str, ...]  # runs handing over part of a subcircuit


def attribute(plan: Plan, phase_steps: dict[str, int | None]) -> Attribution | None:
    """The attribution for a plan's runs and their phase steps; None where the spec
    declares no subcircuits."""
    names = [sub.name for sub in plan.subcircuits]
    if not names:
        return None
    times, left_out = {}, []
    for run in plan.runs:
        if any(not g.whole for g in run.gives):
            left_out.append(run.name)
            continue
        given = frozenset(g.subcircuit for g in run.gives)
        step = phase_steps.get(run.name)
        time = Time(run.train.steps, True) if step is None else Time(max(step, 1), False)
        times.setdefault(_context(run), {})[given] = time
    effects = tuple(_effect(name, times.values()) for name in names)
    pairs = (_interaction(pair, times.values()) for pair in itertools.combinations(names, 2))
    return Attribution(effects, tuple(p for p in pairs if p), tuple(left_out))


def _context(run) -> tuple:
    """Runs whose times compare: one task, model, optimiser settings and seed."""
    return (run.task, run.model, run.train.lr, run.train.batch, run.train.seed)


def _ratio(slower: Time, faster: Time) -> tuple[float, bool] | None:
    """T(slower) / T(faster), and whether it is a lower bound; None where unknown."""
    if slower.censored and faster.censored:
        return None
    if faster.censored:  # the one given more never got there: an upper bound, unhelpful
        return None
    return slower.steps / faster.steps, slower.censored


def _factor(ratios: Iterable[tuple[float, bool] | None]) -> Factor | None:
    known = [r for r in ratios if r is not None]
    if not known:
        return None
    return Factor(tuple(v for v, _ in known), sum(bound for _, bound in known))


def _effect(name: str, contexts) -> Effect:
    by_context: dict[frozenset, list] = {}
    for times in contexts:
        for given, time in times.items():
            more = times.get(given | {name})
            if name not in given and more is not None:
                by_context.setdefault(given, []).append(_ratio(time, more))
    factors = {given: _factor(ratios) for given, ratios in by_context.items()}
    fewest_first = sorted(factors.items(), key=lambda item: (len(item[0]), sorted(item[0])))
    labelled = tuple((_beside(g), factor) for g, factor in fewest_first if factor is not None)
    return Effect(name, _factor(r for ratios in by_context.values() for r in ratios), labelled)


def _beside(given: frozenset) -> str:
    return "beside " + "+".join(sorted(given)) if given else "alone"


def _interaction(pair: tuple[str, str], contexts) -> Interaction | None:
    x, y = pair
    factors = []
    for times in contexts:
        for given, base in times.items():
            corners = [times.get(given | extra) for extra in ({x}, {y}, {x, y})]
            if x in given or y in given or None in corners or base.censored:
                continue
            with_x, with_y, both = corners
            if with_x.censored or with_y.censored or both.censored:
                continue
            factors.append((base.steps * both.steps / (with_x.steps * with_y.steps), False))
    found = _factor(factors)
    return Interaction(pair, found) if found else None


def sentences(attribution: Attribution) -> list[str]:
    """One sentence per subcircuit, then one per pair that interacts clearly."""
    out = [_effect_sentence(e) for e in attribution.effects]
    for interaction in attribution.interactions:
        x, y = interaction.pair
        factor = interaction.factor.typical
        if factor >= CLEAR:
            out.append(
                f"{x} and {y} relieve the same bottleneck: with either given, the other saves "
                f"{factor:.1f}× less than alone."
            )
        elif factor <= 1 / CLEAR:
            out.append(f"{x} and {y} together save {1 / factor:.1f}× more than each apart.")
    if attribution.left_out:
        out.append(
            f"Left out (they hand over part of a subcircuit): {', '.join(attribution.left_out)}."
        )
    return out


def _effect_sentence(effect: Effect) -> str:
    name, saving = effect.subcircuit, effect.saving
    if saving is None:
        return f"{name}: the runs present cannot tell (no two differ in {name} alone)."
    at_least = "at least " if saving.bounds == len(saving.values) else ""
    where = "; ".join(f"{_x(f.typical)} {label}" for label, f in effect.by_context)
    typical = saving.typical
    if typical >= CLEAR:
        verdict = f"gates the phase change: given, it comes {at_least}{_x(typical)} sooner"
    elif typical <= 1 / CLEAR:
        verdict = f"given, the phase change comes {_x(1 / typical)} later"
    else:
        verdict = f"hardly gates it: given, the phase change comes {_x(typical)} as soon"
    return f"{name} {verdict} ({where})."


def _x(factor: float) -> str:
    return f"{factor:.1f}×" if math.isfinite(factor) else "–"
