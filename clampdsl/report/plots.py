"""PNG figures: loss curves against sequences seen (the paper's x-axis), and the strongest
induction head's strength over training."""

from __future__ import annotations

import io
from pathlib import Path

from clampdsl.compile.plan import Plan
from clampdsl.durable import write_atomically


def plot_curves(plan: Plan, records: list[dict], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are a nicety; the report stands without them
        return None
    key = f"{plan.phase.eval_set}.{plan.phase.metric}"
    figure, (loss_axis, strength_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in plan.runs:
        rows = sorted((r for r in records if r["run"] == run.name), key=lambda r: r["step"])
        sequences = [r["sequences"] for r in rows]
        loss_axis.plot(sequences, [r.get(key) for r in rows], label=run.name)
        strengths = [
            max((v for k, v in r.items() if k.startswith("induction-strength")), default=None)
            for r in rows
        ]
        if any(s is not None for s in strengths):
            strength_axis.plot(sequences, strengths, label=run.name)
    loss_axis.axhline(
        plan.phase.threshold,
        color="grey",
        linestyle="--",
        linewidth=0.8,
        label=f"phase: {plan.phase.text}",
    )
    loss_axis.set(
        xlabel="sequences seen", ylabel=key + " (clamps active)", title="Loss during training"
    )
    strength_axis.set(
        xlabel="sequences seen",
        ylabel="induction strength (clamps active)",
        title="Strongest measured induction head",
    )
    loss_axis.legend(fontsize=8)
    if strength_axis.lines:
        strength_axis.legend(fontsize=8)
    else:
        note = "no induction strength measured"
        strength_axis.text(0.5, 0.5, note, ha="center", transform=strength_axis.transAxes)
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110)
    plt.close(figure)
    write_atomically(path, image.getvalue())
    return path
