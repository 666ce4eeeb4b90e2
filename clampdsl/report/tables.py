"""The results table, as Rich (console) and as Markdown (report.md) from the same rows."""

from __future__ import annotations

import math

from clampdsl.compile.plan import Plan
from clampdsl.report.summary import RunSummary

COLUMNS = (
    "experiment",
    "gives",
    "learns",
    "phase step",
    "sequences",
    "speed-up",
    "start loss",
    "final loss",
    "final acc",
    "strongest IH",
)
CONSOLE_COLUMNS = (
    "experiment",
    "gives",
    "learns",
    "phase step",
    "sequences",
    "speed-up",
    "start loss",
    "final loss",
    "strongest IH",
)


def rows(plan: Plan, summaries: list[RunSummary]) -> list[tuple[str, ...]]:
    phase_set = plan.phase.eval_set
    result = []
    for s in summaries:
        if s.diverged_at is not None:
            step, sequences = f"diverged at {s.diverged_at}", "–"
        elif s.phase_step is None:
            step, sequences = "not reached", "–"
        else:
            step, sequences = f"{s.phase_step:,}", f"{s.phase_sequences:.2e}"
        accuracies = " / ".join(f"{s.final[k]:.2f}" for k in s.final if k.endswith(".acc"))
        result.append(
            (
                s.name,
                s.gives,
                s.learns,
                step,
                sequences,
                f"{s.speedup:.1f}×" if s.speedup else "–",
                _number(s.start_loss),
                _number(s.final.get(f"{phase_set}.loss", math.nan)),
                accuracies or "–",
                strongest_head(s.measures),
            )
        )
    return result


def strongest_head(measures: dict[str, float]) -> str:
    strengths = {
        k.split(" ", 1)[1]: v for k, v in measures.items() if k.startswith("induction-strength")
    }
    if not strengths:
        return "–"
    head = max(strengths, key=strengths.get)
    return f"{head} {strengths[head]:.2f}"


def accuracy_sets(plan: Plan) -> str:
    return " / ".join(plan.runs[0].eval.sets)


def markdown(plan: Plan, summaries: list[RunSummary]) -> str:
    header = list(COLUMNS)
    header[COLUMNS.index("final acc")] = f"final acc ({accuracy_sets(plan)})"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(plan, summaries)]
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "nan"
