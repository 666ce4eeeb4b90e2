"""PNG figures: loss curves against sequences seen (the paper's x-axis), the strongest
induction head's strength over training, and what gates the phase change (attribution)."""

from __future__ import annotations

import io
from pathlib import Path

from clampdsl.analysis import predictions
from clampdsl.analysis.phase import phase_step, rule_value
from clampdsl.compile.plan import Plan
from clampdsl.durable import write_atomically
from clampdsl.report.progress_plots import plot_as_if, plot_composition
from clampdsl.report.summary import head_metric
from clampdsl.tasks import kinds as task_kinds


def plot_all(plan: Plan, records: list[dict], summaries, directory: Path) -> list[Path]:
    """Every figure of a run directory that its records make: curves.png; heads.png where
    induction strength is measured; gating.png where the spec declares subcircuits that
    the runs can tell apart; as_if.png and composition.png where it measures those."""
    curves = plot_curves(plan, records, directory / "curves.png")
    heads = plot_heads(plan, records, directory / "heads.png")
    gating = plot_gating(plan, summaries, directory / "gating.png")
    as_if = plot_as_if(plan, records, directory / "as_if.png", _pyplot(), _save)
    composition = plot_composition(plan, records, directory / "composition.png", _pyplot(), _save)
    return [figure for figure in (curves, heads, gating, as_if, composition) if figure]


def plot_heads(plan: Plan, records: list[dict], path: Path) -> Path | None:
    """Each measured head's induction strength over training, a panel per run."""
    measured = sorted({k for r in records for k in r if k.startswith("induction-strength")})
    plt = _pyplot()
    if plt is None or not measured:
        return None
    columns = min(3, len(plan.runs))
    rows_of_panels = -(-len(plan.runs) // columns)
    figure, axes = plt.subplots(
        rows_of_panels, columns, figsize=(4.2 * columns, 3.2 * rows_of_panels), squeeze=False
    )
    for axis, run in zip(axes.flat, plan.runs, strict=False):
        rows = sorted((r for r in records if r["run"] == run.name), key=lambda r: r["step"])
        for key in measured:
            values = [r.get(key) for r in rows]
            axis.plot([r["sequences"] for r in rows], values, label=key.split(" ", 1)[1])
        axis.set(title=run.name, xlabel="sequences seen", ylim=(-0.1, 1.05))
        axis.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    for axis in list(axes.flat)[len(plan.runs) :]:
        axis.set_visible(False)
    axes.flat[0].set_ylabel("induction strength")
    axes.flat[0].legend(fontsize=7, ncol=2)
    return _save(plt, figure, path)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are a nicety; the report stands without them
        return None
    return plt


def plot_gating(plan: Plan, summaries, path: Path) -> Path | None:
    """Per subcircuit, how much sooner the phase change comes where it is given, one bar
    per context measured (analysis/attribution.py), on a log scale around 1×."""
    from clampdsl.analysis.attribution import attribute

    found = attribute(plan, {s.name: s.phase_step for s in summaries})
    plt = _pyplot()
    if plt is None or found is None or not any(e.by_context for e in found.effects):
        return None
    figure, axis = plt.subplots(figsize=(7, 0.6 + 0.5 * len(found.effects)))
    labels, values, colours = [], [], []
    for effect in found.effects:
        for context, factor in effect.by_context:
            labels.append(f"{effect.subcircuit} {context}")
            values.append(factor.typical)
            colours.append("tab:blue" if factor.typical >= 1 else "tab:red")
    # Bars grow from 1× (no effect), right for sooner, left for later, on a log scale.
    widths = [value - 1 for value in values]
    axis.barh(labels[::-1], widths[::-1], color=colours[::-1], left=1)
    axis.set_xscale("log")
    low, high = min(0.8, min(values) / 1.25), max(1.25, max(values) * 1.25)
    ticks = [2.0**k for k in range(-6, 10) if low <= 2.0**k <= high]
    axis.set_xlim(low, high)
    axis.set_xticks(ticks, [f"{t:g}×" for t in ticks])
    axis.minorticks_off()
    axis.axvline(1, color="grey", linewidth=0.8)
    axis.set(
        xlabel="phase change sooner by (×), where the subcircuit is given",
        title="What gates the phase change",
    )
    return _save(plt, figure, path)


def _save(plt, figure, path: Path) -> Path:
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110)
    plt.close(figure)
    write_atomically(path, image.getvalue())
    return path


def _second_curve(plan: Plan):
    """(label, title, values of a record) of the right-hand curves: the strongest measured
    head beside a rule on the loss, or the KL to each in-context strategy where the spec
    measures them; the loss beside a rule on a measure."""
    metric, loss = head_metric(plan), f"{plan.phase.eval_set}.loss"
    if plan.phase.metric == metric or not _shows_loss(plan):
        return loss, "Loss during training", lambda record: {"": record.get(loss)}
    divergences = predictions.divergences(plan.measures)
    if divergences:
        keys = {m: predictions.key(plan.phase.eval_set, m) for m in divergences}
        label = "KL(strategy ‖ model)"
        return (
            label,
            "KL to each in-context strategy",
            lambda r: {m: r.get(k) for m, k in keys.items()},
        )

    def strongest(record):
        heads = (v for k, v in record.items() if k.startswith(f"{metric} L"))
        return {"": max(heads, default=None)}

    label = metric.replace("-", " ")
    return label, f"Strongest measured head ({label})", strongest


def _shows_loss(plan: Plan) -> bool:
    """Whether the left-hand curves are the loss: for a rule on the loss, or on a category
    (`nearest is bigram`, marked on the loss curve)."""
    return plan.phase.metric == "loss" or plan.phase.categorical


def _left_value(plan: Plan):
    if plan.phase.categorical:
        loss = f"{plan.phase.eval_set}.loss"
        return lambda record: record.get(loss)
    return lambda record: rule_value(record, plan.phase)


def _strategy_losses(plan: Plan, records: list[dict]) -> dict[str, float]:
    """The in-context strategies' losses on the rule's eval set (the same at every eval;
    the first run's where runs differ), simplest first."""
    run = plan.runs[0]
    strategies = task_kinds.of(run.task).baselines(run.task)
    last = next((r for r in reversed(records) if r["run"] == run.name), {})
    keys = {s: predictions.baseline_key(plan.phase.eval_set, s) for s in strategies}
    return {s: last[k] for s, k in keys.items() if k in last}


def plot_curves(plan: Plan, records: list[dict], path: Path) -> Path | None:
    plt = _pyplot()
    if plt is None:
        return None
    label, title, second = _second_curve(plan)
    left = _left_value(plan)
    figure, (loss_axis, strength_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = ("-", "--", ":", "-.")
    for run in plan.runs:
        rows = sorted((r for r in records if r["run"] == run.name), key=lambda r: r["step"])
        sequences = [r["sequences"] for r in rows]
        (line,) = loss_axis.plot(sequences, [left(r) for r in rows], label=run.name)
        step = phase_step(rows, plan.phase)
        if step is not None:  # the phase change, marked where the rule saw it
            at = next(r for r in rows if r["step"] == step)
            loss_axis.plot(at["sequences"], left(at), "o", color=line.get_color(), markersize=5)
        curves = [second(r) for r in rows]
        for index, name in enumerate(curves[0] if curves else {}):
            values = [c[name] for c in curves]
            if any(v is not None for v in values):
                strength_axis.plot(
                    sequences,
                    values,
                    styles[index % len(styles)],
                    color=line.get_color(),
                    label=f"{run.name} {name}".strip(),
                )
    loss_shown = loss_axis if _shows_loss(plan) else strength_axis
    for index, (strategy, value) in enumerate(_strategy_losses(plan, records).items()):
        loss_shown.axhline(
            value,
            color="black",
            linestyle=styles[index % len(styles)],
            linewidth=0.7,
            label=f"{strategy} (in context)",
        )
    if not plan.phase.categorical:
        loss_axis.axhline(
            plan.phase.threshold,
            color="grey",
            linestyle="--",
            linewidth=0.8,
            label=f"phase: {plan.phase.text}",
        )
    rule, metric = f"{plan.phase.eval_set}.{plan.phase.metric}", plan.phase.metric
    shown = f"{plan.phase.eval_set}.loss" if plan.phase.categorical else rule
    loss_axis.set(
        xlabel="sequences seen",
        ylabel=shown + " (clamps active)",
        title=f"{'Loss' if _shows_loss(plan) else metric.capitalize()} during training"
        + (f" (●: {plan.phase.text})" if plan.phase.categorical else ""),
    )
    strength_axis.set(xlabel="sequences seen", ylabel=f"{label} (clamps active)", title=title)
    loss_axis.legend(fontsize=8)
    if strength_axis.lines:
        strength_axis.legend(fontsize=8)
    else:
        note = f"no {label} measured"
        strength_axis.text(0.5, 0.5, note, ha="center", transform=strength_axis.transAxes)
    return _save(plt, figure, path)
