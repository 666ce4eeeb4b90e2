"""The report's tables as data, rendered by both the console (Rich) and report.md."""

from __future__ import annotations

import math

import attrs

from clampdsl.analysis import attribution, predictions, scaling
from clampdsl.compile.plan import Plan
from clampdsl.compile.sweeps import SEED_SETTING, run_name
from clampdsl.report import progress_tables
from clampdsl.report.summary import RunSummary, head_metric

LEFT_ALIGNED = ("experiment", "swept", "gives", "learns", "subcircuit", "where measured")


@attrs.frozen
class TableData:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()  # sentences printed under the table


def phase_table(plan: Plan, summaries: list[RunSummary]) -> TableData:
    """One row per run; `gives` and `learns` where the spec declares subcircuits."""
    circuit = ("gives", "learns") if plan.subcircuits else ()
    columns = (
        "experiment",
        *circuit,
        "phase step",
        "sequences",
        "speed-up",
        "start loss",
        "final loss",
        "strongest IH" if head_metric(plan) == "induction-strength" else "strongest head",
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
                *((s.gives, s.learns) if circuit else ()),
                step,
                sequences,
                f"{s.speedup:.1f}×" if s.speedup else "–",
                _number(s.start_loss),
                _number(s.final.get(loss_key, math.nan)),
                strongest_head(s.measures, head_metric(plan)),
            )
        )
    return TableData("Phase change by experiment", columns, tuple(rows), strategy_notes(summaries))


def strategy_notes(summaries: list[RunSummary]) -> tuple[str, ...]:
    """The in-context strategies' losses (analysis/predictions.py), a sentence for each
    distinct set of them (runs whose tasks or eval sets differ have their own)."""
    by_values: dict[tuple, list[str]] = {}
    for s in summaries:
        if s.strategies:
            by_values.setdefault(tuple(s.strategies.items()), []).append(s.name)
    notes = []
    for values, names in by_values.items():
        which = "" if len(by_values) == 1 else f" ({', '.join(names)})"
        losses = ", ".join(f"{name} {_number(loss)}" for name, loss in values)
        notes.append(f"In-context strategies' loss on the first eval set{which}: {losses}.")
    return tuple(notes)


def estimators_table(plan: Plan, summaries: list[RunSummary]) -> TableData:
    """The phase change by each estimator (analysis/phase.py): the spec's rule, the plateau
    exit, the steepest descent of the smoothed loss, a fitted sigmoid's midpoint and width.
    Where they disagree much, the curve has no single sharp drop."""
    columns = ("experiment", "rule", "plateau exit", "steepest descent", "sigmoid", "fit R²")

    def step(value) -> str:
        return "–" if value is None else f"{value:,.0f}"

    rows = tuple(
        (
            s.name,
            step(s.phase_step),
            step(s.plateau_exit_step),
            step(s.steepest_step),
            "–"
            if s.sigmoid_midpoint is None
            else f"{s.sigmoid_midpoint:,.0f} ± {s.sigmoid_width / 2:,.0f}",
            "–" if s.sigmoid_r2 is None else f"{s.sigmoid_r2:.3f}",
        )
        for s in summaries
    )
    return TableData(f"Phase change by estimator ({plan.phase.eval_set} loss)", columns, rows)


def attribution_table(plan: Plan, summaries: list[RunSummary]) -> TableData | None:
    """What gates the phase change (analysis/attribution.py): per declared subcircuit, how
    much sooner the phase change comes where it is given, in each context measured, and a
    sentence per subcircuit and clearly interacting pair. None without subcircuits, or
    where no two runs differ in one (a spec whose experiments hand over nothing)."""
    found = attribution.attribute(plan, {s.name: s.phase_step for s in summaries})
    if found is None or not any(effect.saving for effect in found.effects):
        return None
    rows = tuple(
        (
            e.subcircuit,
            f"{e.saving.typical:.1f}×" if e.saving else "–",
            "; ".join(f"{f.typical:.1f}× {label}" for label, f in e.by_context) or "–",
            str(len(e.saving.values)) if e.saving else "0",
        )
        for e in found.effects
    )
    columns = ("subcircuit", "given: sooner by", "where measured", "pairs of runs")
    return TableData(
        "What gates the phase change", columns, rows, tuple(attribution.sentences(found))
    )


def scaling_table(plan: Plan, summaries: list[RunSummary]) -> TableData | None:
    """How each experiment's phase change scales with each numeric swept setting
    (analysis/scaling.py), and what the fits say the setting slows. None without such
    a sweep."""
    found = scaling.fits(plan, {s.name: s.phase_step for s in summaries})
    if not found:
        return None
    rows = tuple(
        (
            fit.experiment + (f" [{fit.context}]" if fit.context else ""),
            fit.setting,
            _gives(fit),
            "–" if fit.exponent is None else f"{fit.exponent:.2f}",
            "–" if fit.r2 is None else f"{fit.r2:.2f}",
            f"{len(fit.points)} of {len(fit.points) + fit.censored}",
        )
        for fit in found
    )
    columns = ("experiment", "swept", "gives", "exponent", "R²", "made the change")
    return TableData(
        "Phase change against the swept settings (T ∝ value^exponent)",
        columns,
        rows,
        tuple(scaling.sentences(found)),
    )


def _gives(fit: scaling.Fit) -> str:
    whole = "+".join(fit.gives)
    if fit.partial:
        return f"{whole} and part of a subcircuit" if whole else "part of a subcircuit"
    return whole or "–"


def result_tables(plan: Plan, summaries: list[RunSummary]) -> list[TableData]:
    """The tables of every report: phase changes, across seeds where there are several,
    what gates them, how they scale with swept settings, and the final evaluation."""
    optional = (seeds_table, attribution_table, scaling_table)
    found = [table(plan, summaries) for table in optional]
    single_head = progress_tables.single_head_table(summaries)
    return [
        phase_table(plan, summaries),
        *(table for table in found if table is not None),
        final_table(plan, summaries),
        *([single_head] if single_head else []),
    ]


def seeds_table(plan: Plan, summaries: list[RunSummary]) -> TableData | None:
    """Per experiment (at each point of its other sweeps), the phase step across its seeds:
    the median (runs that never reach it count as later than any that do), the range of
    those that reach it, and how many do not (censored: never reported as the last step).
    None where no experiment runs more than one seed."""
    sets: dict[str, list[RunSummary]] = {}
    for s in summaries:
        sets.setdefault(_without_seed(s), []).append(s)
    if all(len(members) < 2 for members in sets.values()):
        return None
    last = max(run.train.steps for run in plan.runs)
    rows = tuple(_seed_row(name, members, last) for name, members in sets.items())
    columns = ("experiment", "seeds", "median phase step", "range", "not reached")
    return TableData("Phase change across seeds", columns, rows)


def _without_seed(s: RunSummary) -> str:
    rest = tuple((key, value) for key, value in s.point if key != SEED_SETTING)
    return run_name(s.experiment or s.name, rest)


def _seed_row(name: str, members: list[RunSummary], last: int) -> tuple[str, ...]:
    reached = sorted(s.phase_step for s in members if s.phase_step is not None)
    censored = len(members) - len(reached)
    # The median of all runs, those not reaching the phase counted as later than any step.
    ordered = reached + [math.inf] * censored
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    shown = f"{median:,.0f}" if math.isfinite(median) else f"not reached by {last:,}"
    spread = f"{reached[0]:,}–{reached[-1]:,}" if reached else "–"
    return (name, str(len(members)), shown, spread, str(censored))


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
    """A column per measured key, but those of a table of their own (progress_tables.py)."""
    found = {key for s in summaries for key in s.measures}
    keys = sorted(key for key in found if not progress_tables.in_own_table(key))
    if not keys:
        return None
    rows = tuple((s.name, *(_measure(s, k) for k in keys)) for s in summaries)
    return TableData("Final measures", ("experiment", *keys), rows)


def _measure(summary: RunSummary, key: str) -> str:
    value = summary.measures.get(key, math.nan)
    metric = key.split(".", 1)[-1]  # a measure of the predictions is `SET.METRIC`
    return predictions.shown(metric, value, tuple(summary.strategies)) or f"{value:.2f}"


def strongest_head(measures: dict[str, float], metric: str) -> str:
    """The head of the highest `metric` at the last eval, and its value."""
    strengths = {k.split(" ", 1)[1]: v for k, v in measures.items() if k.startswith(f"{metric} L")}
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
    lines += ["", *(f"- {note}" for note in table.notes)] if table.notes else []
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "nan"
