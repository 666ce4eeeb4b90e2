"""report.md: what was run, the results table, and how to read it."""

from __future__ import annotations

from clampdsl.compile.plan import Plan
from clampdsl.report import paper_form, progress_tables, tables
from clampdsl.report.summary import RunSummary, baseline_runs
from clampdsl.tasks import kinds as task_kinds


def report_markdown(
    plan: Plan,
    summaries: list[RunSummary],
    timing: dict,
    device: str,
    figures: list[str],
) -> str:
    """`timing`: summary.json's `seconds`, `eval_seconds` and `resumed`."""
    first = plan.runs[0]
    baselines = sorted({b.name for b in baseline_runs(plan).values() if b})
    lines = [
        f"# clampdsl report: `{plan.file}`",
        "",
        f"- plan hash `{plan.content_hash()[:12]}`; {len(plan.runs)} experiments in "
        f"{len(plan.groups)} batched group(s); trained on {device} in "
        f"{_timing(timing)}",
        f"- model: {first.model.layers} layers × {first.model.heads} heads, width "
        f"{first.model.d_model}; task: {task_kinds.of(first.task).summary(first.task)}",
        f"- training: {first.train.steps:,} steps × batch {first.train.batch} = "
        f"{first.train.steps * first.train.batch:.2e} sequences, Adam lr {first.train.lr:g}",
        f"- phase change: first eval with `{plan.phase.text}`{_threshold(plan)}; evals "
        f"{paper_form.evals(first.eval, plan.phase)}",
        _speedup_line(baselines),
        "",
        "## Results",
        "",
        "\n\n".join(tables.markdown(t) for t in report_tables(plan, summaries)),
        "",
        _circuit_line(plan)
        + "Losses are clamped losses (clamps stay active in evals, as in the paper); "
        "induction strength reads attention on the first eval set as the model runs in "
        "training (clamps active: a clamped pattern shows its clamp). By estimator: the "
        "rule's first eval; the first eval under 0.9 ln 2 after the plateau; the middle of "
        "the smoothed loss's steepest fall; a fitted sigmoid's midpoint ± half its 10–90% "
        "width (– where no drop completes within the run, or the fit explains under 80% of "
        "the curve's variance).",
    ]
    diverged = [s for s in summaries if s.diverged_at is not None]
    if diverged:
        lines += ["", "## Diverged", ""]
        lines += [
            f"- `{s.name}`: non-finite loss first seen at step {s.diverged_at}; its "
            "numbers after that are not meaningful"
            for s in diverged
        ]
    if figures:
        lines += ["", "## Figures", ""] + [
            f"![{name.removesuffix('.png')}]({name})" for name in figures
        ]
    return "\n".join(lines) + "\n"


def _threshold(plan: Plan) -> str:
    return "" if plan.phase.categorical else f" (threshold {plan.phase.threshold:.3f})"


def _circuit_line(plan: Plan) -> str:
    """What `gives` and `learns` name: the spec's own subcircuits, described as declared."""
    if not plan.subcircuits:
        return ""
    parts = "; ".join(f"{sub.name} = {sub.description}" for sub in plan.subcircuits)
    return f"Gives/learns name the spec's subcircuits: {parts}. "


def report_tables(plan: Plan, summaries: list[RunSummary]) -> list[tables.TableData]:
    found = [*tables.result_tables(plan, summaries), tables.estimators_table(plan, summaries)]
    measured = tables.measures_table(summaries)
    return found + ([measured] if measured else []) + progress_tables.composition_tables(summaries)


def _speedup_line(baselines: list[str]) -> str:
    if not baselines:
        return "- speed-up: no baseline"
    if len(baselines) == 1:
        return f"- speed-up: against `{baselines[0]}`"
    names = ", ".join(f"`{name}`" for name in baselines)
    return f"- speed-up: against the unclamped experiment of the same task ({names})"


def _timing(timing: dict) -> str:
    seconds, evals = timing["seconds"], timing["eval_seconds"]
    text = f"{seconds:.0f} s ({evals:.0f} s of it in evals)"
    # an older summary.json may lack `resumed`
    if timing.get("resumed"):
        text += ", counted from where it resumed: the tries before it are not in it"
    return text
