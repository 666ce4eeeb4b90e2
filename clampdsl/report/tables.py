"""The report's tables as data, rendered by both the console (Rich) and report.md."""

from __future__ import annotations

import math

import attrs

from clampdsl.compile.plan import Plan
from clampdsl.report.summary import RunSummary

LEFT_ALIGNED = ("experiment", "gives", "learns")


@attrs.frozen
class TableData:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def phase_table(plan: Plan, summaries: list[RunSummary]) -> TableData:
    columns = (
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
    loss_key = f"{plan.phase.eval_set}.loss"
    rows = []
    for s in summaries:
        if s.diverged_at is not None:
            step, sequences = f"diverged at {s.diverged_at}", "–"
        elif s.phase_step is None:
            step, sequences = "not reached", "–"
        else:
            step, sequences = f"{s.phase_step:,}", f"{s.phase_sequences:.2e}"
        rows.append(
            (
                s.name,
                s.gives,
                s.learns,
                step,
                sequences,
                f"{s.speedup:.1f}×" if s.speedup else "–",
                _number(s.start_loss),
                _number(s.final.get(loss_key, math.nan)),
                strongest_head(s.measures),
            )
        )
    return TableData("Phase change by experiment", columns, tuple(rows))


def final_table(plan: Plan, summaries: list[RunSummary]) -> TableData:
    sets = plan.runs[0].eval.sets
    rows = tuple(
        (
            s.name,
            *(
                f"{_number(s.final.get(f'{name}.loss', math.nan))} / "
                f"{s.final.get(f'{name}.acc', math.nan):.2f}"
                for name in sets
            ),
        )
        for s in summaries
    )
    return TableData(
        "Final evaluation (loss / accuracy, clamps active)", ("experiment", *sets), rows
    )


def measures_table(summaries: list[RunSummary]) -> TableData | None:
    keys = sorted({key for s in summaries for key in s.measures})
    if not keys:
        return None
    rows = tuple((s.name, *(f"{s.measures.get(k, math.nan):.2f}" for k in keys)) for s in summaries)
    return TableData("Final measures", ("experiment", *keys), rows)


def strongest_head(measures: dict[str, float]) -> str:
    strengths = {
        k.split(" ", 1)[1]: v for k, v in measures.items() if k.startswith("induction-strength")
    }
    if not strengths:
        return "–"
    head = max(strengths, key=strengths.get)
    return f"{head} {strengths[head]:.2f}"


def markdown(table: TableData) -> str:
    lines = [
        f"### {table.title}",
        "",
        "| " + " | ".join(table.columns) + " |",
        "|" + "---|" * len(table.columns),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "nan"
