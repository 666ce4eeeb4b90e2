"""Per-experiment results, computed from eval records: what the report tables show."""

from __future__ import annotations

import math

import attrs

from clampdsl import kinds
from clampdsl.analysis import predictions
from clampdsl.analysis.phase import (
    phase_step,
    plateau_exit_step,
    sigmoid_fit,
    steepest_descent_step,
)
from clampdsl.compile import subcircuits
from clampdsl.compile.plan import Plan, Run
from clampdsl.tasks import kinds as task_kinds


@attrs.frozen
class RunSummary:
    name: str
    description: str
    gives: str
    learns: str
    phase_step: int | None
    phase_sequences: int | None
    plateau_exit_step: int | None
    start_loss: float
    final: dict[str, float]  # "train.loss" → value at the last eval
    measures: dict[str, float]  # "induction-strength L2.H3" → value at the last eval
    speedup: float | None  # baseline phase step / this one
    diverged_at: int | None
    experiment: str = ""  # the experiment it is a run of (its sweeps and seeds expanded)
    point: tuple[tuple[str, str], ...] = ()  # (setting, value) of its sweeps and seeds
    # The phase change read off the loss curve's shape (analysis/phase.py); None: not seen
    steepest_step: int | None = None
    sigmoid_midpoint: float | None = None
    sigmoid_width: float | None = None  # steps from 10% to 90% of the drop
    sigmoid_r2: float | None = None
    # the task's in-context strategies, simplest first: each one's loss on the first eval
    # set (analysis/predictions.py), the reports' reference lines
    strategies: dict[str, float] = attrs.field(factory=dict)

    def to_json(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> RunSummary:
        """As written to summary.json, where a non-finite number is null."""

        def number(value):
            return math.nan if value is None else value

        return cls(
            **data
            | {
                "start_loss": number(data["start_loss"]),
                "final": {k: number(v) for k, v in data["final"].items()},
                "measures": {k: number(v) for k, v in data["measures"].items()},
                "point": tuple(map(tuple, data.get("point", ()))),
                "strategies": {k: number(v) for k, v in data.get("strategies", {}).items()},
            }
        )


def head_metric(plan: Plan) -> str:
    """The head measure the curves show: the phase rule's where it reads one, else
    induction strength."""
    measured = {m.metric for m in plan.measures if m.layer is not None}
    return plan.phase.metric if plan.phase.metric in measured else "induction-strength"


def summarize(plan: Plan, records: list[dict]) -> list[RunSummary]:
    by_run = {run.name: [r for r in records if r["run"] == run.name] for run in plan.runs}
    steps = {name: phase_step(rows, plan.phase) for name, rows in by_run.items()}
    baselines = baseline_runs(plan)
    first_set = plan.runs[0].eval.sets[0] if plan.runs else ""
    of_predictions = {
        predictions.key(first_set, m.metric) for m in plan.measures if m.layer is None
    }
    summaries = []
    for run in plan.runs:
        rows = sorted(by_run[run.name], key=lambda r: r["step"])
        last = rows[-1] if rows else {}
        step = steps[run.name]
        baseline = baselines[run.name]
        base_step = steps[baseline.name] if baseline else None
        speedup = base_step / step if base_step and step else None
        loss = f"{plan.phase.eval_set}.loss"
        fit = sigmoid_fit(rows, loss)
        summaries.append(
            RunSummary(
                run.name,
                run.description,
                subcircuits.describe(run.gives),
                subcircuits.describe(subcircuits.still_to_learn(run.gives, plan.subcircuits)),
                step,
                None if step is None else step * run.train.batch,
                plateau_exit_step(rows, plan.phase.eval_set),
                rows[0].get(loss, math.nan) if rows else math.nan,
                {k: v for k, v in last.items() if k.endswith((".loss", ".acc"))},
                {k: v for k, v in last.items() if " " in k or k in of_predictions},
                speedup,
                diverged_at(rows, loss),
                run.experiment,
                run.point,
                steepest_descent_step(rows, loss),
                *((fit.midpoint, fit.width, fit.r2) if fit else (None, None, None)),
                _strategies(run, last),
            )
        )
    return summaries


def _strategies(run: Run, last: dict) -> dict[str, float]:
    """The run's in-context strategies' losses on its first eval set, from its last eval."""
    strategies = task_kinds.of(run.task).baselines(run.task)
    keys = {s: predictions.baseline_key(run.eval.sets[0], s) for s in strategies}
    return {s: last[key] for s, key in keys.items() if key in last}


def baseline_runs(plan: Plan) -> dict[str, Run | None]:
    """Each experiment's baseline, what its speed-up compares to: the first run of an
    experiment that clamps nothing (ablations allowed) on the same task and seed, else on
    the same task, else the first such run."""
    unclamped = [r for r in plan.runs if all(kinds.of(i).hands_nothing for i in r.interventions)]
    first = unclamped[0] if unclamped else None

    def baseline(run: Run) -> Run | None:
        same_task = [b for b in unclamped if b.task == run.task]
        same_seed = [b for b in same_task if b.train.seed == run.train.seed]
        return next(iter(same_seed or same_task), first)

    return {run.name: baseline(run) for run in plan.runs}


def diverged_at(rows: list[dict], key: str) -> int | None:
    """The first eval step whose loss is not finite: the run diverged (NaN or inf)."""
    return next((r["step"] for r in rows if not math.isfinite(r.get(key, 0.0))), None)
