"""Phase-change detection on eval records."""

from __future__ import annotations

import math
import operator

from clampdsl.compile.plan import PhaseRule

OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
PLATEAU_EXIT = 0.9 * math.log(2)  # leaving the "random label from context" plateau


def phase_step(records: list[dict], rule: PhaseRule) -> int | None:
    """The first eval step whose value satisfies the rule, or None if none does."""
    key, compare = f"{rule.eval_set}.{rule.metric}", OPERATORS[rule.op]
    for record in sorted(records, key=lambda r: r["step"]):
        value = record.get(key)
        if value is not None and math.isfinite(value) and compare(value, rule.threshold):
            return record["step"]
    return None


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
