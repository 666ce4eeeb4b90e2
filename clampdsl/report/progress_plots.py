"""progress.png: the progress measures over training (compile/progress.py), where the spec
measures them: each as-if loss (dashed) beside the run's own eval loss on that set (solid),
Singh et al.'s Fig. 10; and the strongest composition score of each kind per run."""

from __future__ import annotations

from pathlib import Path

from clampdsl.compile.plan import Plan
from clampdsl.compile.progress import as_if_result, parse_pair


def plot_progress(plan: Plan, records: list[dict], path: Path, pyplot, save) -> Path | None:
    """The figure, or None where the spec measures neither (`pyplot` and `save`: plots.py's)."""
    as_if = [m for m in plan.measures if m.clamps and as_if_result(m) == "loss"]
    kinds = sorted({pair[0] for r in records for k in r if (pair := parse_pair(k))})
    if pyplot is None or not (as_if or kinds):
        return None
    panels = [panel for panel, shown in ((_as_if, as_if), (_composition, kinds)) if shown]
    figure, axes = pyplot.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for axis, panel in zip(axes.flat, panels, strict=True):
        panel(axis, plan, records, as_if if panel is _as_if else kinds)
    return save(pyplot, figure, path)


def _as_if(axis, plan: Plan, records: list[dict], measures) -> None:
    eval_set = plan.runs[0].eval.sets[0]
    for run in plan.runs:
        rows = _rows(records, run.name)
        sequences = [r["sequences"] for r in rows]
        (line,) = axis.plot(sequences, [r.get(f"{eval_set}.loss") for r in rows], label=run.name)
        for measure in measures:
            key = f"{eval_set}.{measure.name}"
            axis.plot(sequences, [r.get(key) for r in rows], "--", color=line.get_color())
    names = "; ".join(m.name.removeprefix("loss as-if ") for m in measures)
    axis.set(
        xlabel="sequences seen",
        ylabel=f"{eval_set}.loss",
        title=f"Loss (solid) and as if clamped post hoc (dashed: {names})",
    )
    axis.title.set_fontsize(9)
    axis.legend(fontsize=8)


def _composition(axis, plan: Plan, records: list[dict], kinds) -> None:
    styles = dict(zip(kinds, ("-", "--", ":"), strict=False))
    for run in plan.runs:
        rows = _rows(records, run.name)
        colour = None
        for kind in kinds:
            (line,) = axis.plot(
                [r["sequences"] for r in rows],
                [_strongest(r, kind) for r in rows],
                styles[kind],
                color=colour,
                label=f"{run.name} {kind}",
            )
            colour = line.get_color()
    axis.set(
        xlabel="sequences seen",
        ylabel="largest score over the head pairs measured",
        title="Composition scores",
    )
    axis.legend(fontsize=7)


def _strongest(record: dict, kind: str) -> float | None:
    """A record's largest composition score of a kind, over the pairs measured."""
    scores = [v for k, v in record.items() if (pair := parse_pair(k)) and pair[0] == kind]
    return max(scores, default=None)


def _rows(records: list[dict], run: str) -> list[dict]:
    return sorted((r for r in records if r["run"] == run), key=lambda r: r["step"])
