"""Figures of the progress measures (compile/progress.py), where the spec measures them:
as_if.png, each as-if loss (dashed) beside the run's own eval loss on that set (solid),
Singh et al.'s Fig. 10; composition.png, a panel per run, a line per writing head: its
composition score averaged over the reading heads measured (a line style per kind), so
that the heads whose output the induction heads come to read stand out from the rest."""

from __future__ import annotations

from pathlib import Path

from clampdsl.compile.plan import Plan
from clampdsl.compile.progress import as_if_result, parse_pair

STYLES = ("-", "--", ":")  # q-, k-, v-composition, in the order measured
MAX_PANELS = 9  # runs shown in composition.png


def plot_as_if(plan: Plan, records: list[dict], path: Path, pyplot, save) -> Path | None:
    """as_if.png, or None without as-if losses (`pyplot` and `save`: plots.py's)."""
    measures = [m for m in plan.measures if m.clamps and as_if_result(m) == "loss"]
    if pyplot is None or not measures:
        return None
    eval_set = plan.runs[0].eval.sets[0]
    figure, axis = pyplot.subplots(figsize=(7, 4.5))
    for run in plan.runs:
        rows = _rows(records, run.name)
        sequences = [r["sequences"] for r in rows]
        (line,) = axis.plot(sequences, [r.get(f"{eval_set}.loss") for r in rows], label=run.name)
        for measure in measures:
            key = f"{eval_set}.{measure.name}"
            axis.plot(sequences, [r.get(key) for r in rows], "--", color=line.get_color())
    names = "; ".join(m.name.removeprefix("loss as-if ") for m in measures)
    axis.set(xlabel="sequences seen", ylabel=f"{eval_set}.loss")
    axis.set_title(f"Loss (solid), and as if clamped post hoc (dashed): {names}", fontsize=9)
    axis.legend(fontsize=8)
    return save(pyplot, figure, path)


def plot_composition(plan: Plan, records: list[dict], path: Path, pyplot, save) -> Path | None:
    """composition.png, or None without composition scores."""
    kinds = sorted({pair[0] for r in records for k in r if (pair := parse_pair(k))})
    if pyplot is None or not kinds:
        return None
    runs = plan.runs[:MAX_PANELS]
    columns = min(3, len(runs))
    rows_of_panels = -(-len(runs) // columns)
    figure, axes = pyplot.subplots(
        rows_of_panels, columns, figsize=(4.6 * columns, 3.4 * rows_of_panels), squeeze=False
    )
    for axis, run in zip(axes.flat, runs, strict=False):
        _composition_panel(axis, _rows(records, run.name), kinds)
        axis.set(title=run.name, xlabel="sequences seen")
        axis.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    for axis in list(axes.flat)[len(runs) :]:
        axis.set_visible(False)
    axes.flat[0].set_ylabel("mean score over the reading heads")
    axes.flat[0].legend(fontsize=6, ncol=2)
    return save(pyplot, figure, path)


def _composition_panel(axis, rows: list[dict], kinds: list[str]) -> None:
    """A line per (kind, writing head): its score averaged over the reading heads."""
    colours: dict[str, str] = {}
    if not rows:
        return
    for kind, style in zip(kinds, STYLES, strict=False):
        for writer in sorted({p[2] for k in rows[-1] if (p := parse_pair(k)) and p[0] == kind}):
            means = [_mean_of(r, kind, writer) for r in rows]
            (line,) = axis.plot(
                [r["sequences"] for r in rows],
                means,
                style,
                color=colours.get(writer),
                label=f"{kind[0]} from {writer}",
            )
            colours.setdefault(writer, line.get_color())


def _mean_of(record: dict, kind: str, writer: str) -> float | None:
    scores = [
        v for k, v in record.items() if (p := parse_pair(k)) and p[0] == kind and p[2] == writer
    ]
    return sum(scores) / len(scores) if scores else None


def _rows(records: list[dict], run: str) -> list[dict]:
    return sorted((r for r in records if r["run"] == run), key=lambda r: r["step"])
