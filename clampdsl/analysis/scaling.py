"""How the phase change scales with a swept quantity, and which subcircuit it slows.

For each experiment swept over a numeric setting (`sweep task.classes in 50, 100, 200`),
at each point of its other sweeps and seeds, the phase-change times T(x) of the runs that
made the change are fitted by a power law, T ∝ x^b: least squares on the log-log scale,
with R² the share of log T's variance the line explains (none from two points, which a line
always fits). Runs that never made the change are counted, not fitted.

A quantity slows what the unclamped experiment still has to learn. Where a condition that
is handed some subcircuits stops scaling (its exponent under a third of the unclamped
run's) and others keep scaling (over two thirds of it), what the quantity slows lies in the
subcircuits every flat condition is given and no scaling one is: for the paper's class
sweep, the match (B) if only the conditions given B stop scaling.
"""

from __future__ import annotations

import math
import statistics

import attrs

from clampdsl.compile.plan import Plan

FLAT, SCALING = 1 / 3, 2 / 3  # an exponent against the unclamped one's
MIN_EXPONENT = 0.2  # an unclamped exponent below this is no clear slowing
MIN_R2 = 0.8  # nor one whose fit explains less than this (from three points on)


@attrs.frozen
class Fit:
    experiment: str
    setting: str  # "task.classes"
    context: str  # the other swept values: "seed=6", or "" where there are none
    gives: tuple[str, ...]  # the subcircuits the experiment hands over whole
    partial: bool  # it hands over part of one too: neither unclamped nor a clean condition
    points: tuple[tuple[float, float], ...]  # (x, T) of the runs that made the change
    censored: int  # runs that did not make it by their last step
    exponent: float | None  # None: fewer than two runs made the change
    r2: float | None  # None from two points

    @property
    def clear(self) -> bool:
        """A slowing the fit supports: a clear exponent, and a good fit where one is told."""
        good = self.r2 is None or self.r2 >= MIN_R2
        return self.exponent is not None and self.exponent >= MIN_EXPONENT and good


def fits(plan: Plan, phase_steps: dict[str, int | None]) -> list[Fit]:
    """One fit per experiment, numeric swept setting and point of its other sweeps."""
    series: dict[tuple, list] = {}
    for run in plan.runs:
        for setting, value in run.point:
            x = _number(value)
            if x is None or x <= 0 or setting.endswith("seed"):  # a seed is no quantity
                continue
            others = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in run.point if k != setting)
            gives = tuple(sorted(g.subcircuit for g in run.gives if g.whole))
            partial = any(not g.whole for g in run.gives)
            key = (run.experiment, setting, others, gives, partial)
            series.setdefault(key, []).append((x, phase_steps.get(run.name)))
    return [_fit(*key, measured) for key, measured in series.items() if len(measured) > 1]


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _fit(experiment, setting, context, gives, partial, measured) -> Fit:
    points = tuple(sorted((x, float(max(t, 1))) for x, t in measured if t is not None))
    censored = len(measured) - len(points)
    exponent = r2 = None
    if len({x for x, _ in points}) >= 2:
        xs = [math.log(x) for x, _ in points]
        ys = [math.log(t) for _, t in points]
        exponent, intercept = statistics.linear_regression(xs, ys)
        if len(points) > 2:
            total = sum((y - statistics.fmean(ys)) ** 2 for y in ys)
            residual = sum((y - intercept - exponent * x) ** 2 for x, y in zip(xs, ys, strict=True))
            r2 = 1 - residual / total if total else 1.0
    return Fit(experiment, setting, context, gives, partial, points, censored, exponent, r2)


def sentences(found: list[Fit]) -> list[str]:
    """Per swept setting and context: what the setting slows, where the fits say so."""
    by_setting: dict[tuple[str, str], list[Fit]] = {}
    for fit in found:
        by_setting.setdefault((fit.setting, fit.context), []).append(fit)
    return [_sentence(setting, context, group) for (setting, context), group in by_setting.items()]


def _sentence(setting: str, context: str, group: list[Fit]) -> str:
    name = setting.rsplit(".", 1)[-1] + (f" ({context})" if context else "")
    clean = [f for f in group if not f.partial]
    base = next((f for f in clean if not f.gives), None)
    if base is None or base.exponent is None:
        return f"{name}: no unclamped experiment made the change at two values; cannot tell."
    if not base.clear:
        return f"{name} does not clearly slow the unclamped phase change ({_law(base)})."
    measured = [f for f in clean if f.gives and f.exponent is not None]
    flat = [f for f in measured if f.exponent < FLAT * base.exponent]
    scaling = [f for f in measured if f.exponent > SCALING * base.exponent]
    slowed = set.intersection(*(set(f.gives) for f in flat)) if flat else set()
    slowed -= {s for f in scaling for s in f.gives}
    head = f"{name} slows the unclamped phase change ({_law(base)})"
    if not flat:
        return f"{head}, and every condition measured: no subcircuit given removes it."
    given = "; ".join(f"given {'+'.join(f.gives)}, {_law(f)}" for f in flat + scaling)
    if not slowed:
        return f"{head}; which subcircuit it slows, the conditions present cannot tell ({given})."
    return f"{head}: it slows {'+'.join(sorted(slowed))} ({given})."


def _law(fit: Fit) -> str:
    quality = "" if fit.r2 is None else f", R² {fit.r2:.2f}"
    return f"T ∝ {fit.setting.rsplit('.', 1)[-1]}^{fit.exponent:.2f}{quality}"
