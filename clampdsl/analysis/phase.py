"""Phase-change detection on eval records: the spec's rule, and estimators that read the
curve's shape (plateau exit, steepest descent, a fitted sigmoid's midpoint and width), so
that a result does not hang on one threshold. A run that never makes the change has no
step by any of them (censored), never its last step."""

from __future__ import annotations

import math
import operator

import attrs

from clampdsl.compile.plan import PhaseRule

# "is": a measure of categories at one of them (`phase when nearest is bigram`)
OPERATORS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "is": operator.eq,
}
PLATEAU_EXIT = 0.9 * math.log(2)  # leaving the "random label from context" plateau


def phase_step(records: list[dict], rule: PhaseRule) -> int | None:
    """The first eval step whose value satisfies the rule, or None if none does."""
    compare = OPERATORS[rule.op]
    for record in sorted(records, key=lambda r: r["step"]):
        value = rule_value(record, rule)
        if value is not None and math.isfinite(value) and compare(value, rule.threshold):
            return record["step"]
    return None


def rule_value(record: dict, rule: PhaseRule) -> float | None:
    """What the rule compares in an eval record: the set's loss or accuracy, or a measured
    metric's highest value over the heads measured (`prefix-matching L2.H0`, …: measures
    are read on the first eval set, the only one a rule on them may name)."""
    key = f"{rule.eval_set}.{rule.metric}"
    if key in record:
        return record[key]
    heads = [v for k, v in record.items() if k.startswith(f"{rule.metric} L")]
    return max(heads, default=None)


def plateau_exit_step(records: list[dict], eval_set: str = "train") -> int | None:
    """First eval after the loss has been at or above 0.9·ln 2 and then falls below it."""
    key, seen_plateau = f"{eval_set}.loss", False
    for record in sorted(records, key=lambda r: r["step"]):
        value = record.get(key, math.nan)
        if value >= PLATEAU_EXIT:
            seen_plateau = True
        elif seen_plateau and value < PLATEAU_EXIT:
            return record["step"]
    return None


# The plateau's upper edge: the estimators below read the curve from the first eval at or
# under it, so that the early fall onto the plateau (steeper than the phase change, often)
# is not taken for it.
PLATEAU_ENTRY = 1.1 * math.log(2)
SMOOTHING = 5  # evals in the centred moving average the steepest descent is read from
MIN_FIT_R2 = 0.8  # a sigmoid explaining less of the curve's variance is no phase change


@attrs.frozen
class SigmoidFit:
    """loss(step) ≈ low + (high − low) / (1 + exp((step − midpoint) / scale)), fitted by
    least squares to the curve from the plateau on."""

    midpoint: float  # the step halfway down the drop
    scale: float
    high: float  # the plateau
    low: float  # where the drop ends
    r2: float  # the share of the curve's variance the fit explains

    @property
    def width(self) -> float:
        """Steps the drop takes from 10% to 90% of the way down: 2 ln 9 × scale."""
        return 2 * math.log(9) * self.scale


def steepest_descent_step(records: list[dict], key: str = "train.loss") -> int | None:
    """Where the smoothed curve falls fastest, from the plateau on: the step halfway
    between the two evals of its steepest fall; None where it never falls."""
    points = _from_plateau(records, key)
    if len(points) < 3:
        return None
    steps, values = zip(*points, strict=True)
    smooth = _moving_average(values, SMOOTHING)
    slopes = [
        (smooth[i + 1] - smooth[i]) / (steps[i + 1] - steps[i]) for i in range(len(steps) - 1)
    ]
    steepest = min(range(len(slopes)), key=slopes.__getitem__)
    if slopes[steepest] >= 0:
        return None
    return round((steps[steepest] + steps[steepest + 1]) / 2)


def sigmoid_fit(records: list[dict], key: str = "train.loss") -> SigmoidFit | None:
    """The best sigmoid drop through the curve from the plateau on, searched over midpoints
    and scales (coarse, then fine around the best; for each, the plateau and floor by linear
    least squares). None where no drop completes in the run: too few evals, a fit explaining
    under MIN_FIT_R2 of the variance, a midpoint outside the evals, or a drop wider than
    the run (censored, as a rule never reached)."""
    points = _from_plateau(records, key)
    if len(points) < 5:
        return None
    steps = [float(s) for s, _ in points]
    values = [v for _, v in points]
    span = steps[-1] - steps[0]
    ratio = 1.6  # between neighbouring scales of the coarse search
    scales = [span / 2 / ratio**k for k in range(int(math.log(len(steps), ratio)) + 2)]
    coarse = steps[:: max(1, len(steps) // 60)]
    best = min(_fit(steps, values, m, w) for m in coarse for w in scales)
    spacing = span / max(1, len(coarse) - 1)
    fine = [
        _fit(steps, values, best[1] + spacing * i / 8, best[2] * ratio ** (j / 4))
        for i in range(-16, 17)
        for j in range(-4, 5)
    ]
    sse, midpoint, scale, low, drop = min([best, *fine])
    mean = sum(values) / len(values)
    total = sum((v - mean) ** 2 for v in values)
    r2 = 1 - sse / total if total > 0 else 0.0
    fit = SigmoidFit(midpoint, scale, low + drop, low, r2)
    seen = drop > 0 and r2 >= MIN_FIT_R2 and steps[0] < midpoint < steps[-1]
    return fit if seen and fit.width <= span else None


def _from_plateau(records: list[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) of the finite evals, from the first at or under PLATEAU_ENTRY; all of
    them where that one is already past the plateau (the loss fell through it without
    pausing: the whole curve is the drop)."""
    points = [
        (r["step"], r[key])
        for r in sorted(records, key=lambda r: r["step"])
        if math.isfinite(r.get(key, math.nan))
    ]
    start = next((i for i, (_, v) in enumerate(points) if v <= PLATEAU_ENTRY), len(points))
    if start < len(points) and points[start][1] < PLATEAU_EXIT:
        return points
    return points[start:]


def _moving_average(values, window: int) -> list[float]:
    """Centred; narrower towards the ends, where it stays centred (a lopsided window would
    shift a drop at the start of the run)."""
    out = []
    for i in range(len(values)):
        half = min(window // 2, i, len(values) - 1 - i)
        out.append(sum(values[i - half : i + half + 1]) / (2 * half + 1))
    return out


def _fit(steps, values, midpoint: float, scale: float) -> tuple[float, float, float, float, float]:
    """(squared error, midpoint, scale, low, drop) of the least-squares sigmoid with this
    midpoint and scale: value ≈ low + drop · s, s = 1 / (1 + exp((step − midpoint) / scale))."""
    n = len(steps)
    s = [1 / (1 + math.exp(min(60.0, max(-60.0, (t - midpoint) / scale)))) for t in steps]
    sum_s, sum_ss = sum(s), sum(x * x for x in s)
    sum_y, sum_sy = sum(values), sum(x * y for x, y in zip(s, values, strict=True))
    spread = n * sum_ss - sum_s * sum_s
    drop = (n * sum_sy - sum_s * sum_y) / spread if spread > 1e-12 else 0.0
    low = (sum_y - drop * sum_s) / n
    sse = sum((y - low - drop * x) ** 2 for x, y in zip(s, values, strict=True))
    return sse, midpoint, scale, low, drop
