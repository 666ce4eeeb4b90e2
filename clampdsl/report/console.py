"""Rich output: progress per batched group while training, then the results table."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from clampdsl.compile import resources, subcircuits
from clampdsl.compile.plan import Plan, RunPasses, Schedule
from clampdsl.report import tables
from clampdsl.report.summary import RunSummary


@contextmanager
def group_progress(console: Console, plan: Plan):
    """Yields an `on_group` callback for clampdsl.api.run that drives one bar per group."""
    with progress_bars(console) as progress:
        yield group_bars(progress, plan)


@contextmanager
def progress_bars(console: Console):
    """The live display that `group_bars` adds bars to (one, for several specs at once)."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[losses]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        yield progress


def group_bars(progress: Progress, plan: Plan, name: str = ""):
    """An `on_group` callback for clampdsl.api.run that adds a bar per group of `plan`
    (labelled with `name` first, where several specs share the display)."""

    def on_group(index, runs, total, start):
        label = f"{name} group {index + 1}/{len(plan.groups)} ({len(runs)} runs)".lstrip()
        # Until the first step is done: a compiled step takes a minute to build on a CPU,
        # with the bar standing still.
        task = progress.add_task(f"{label} warming up", total=total, completed=start, losses="")

        def on_progress(step: int, losses: dict[str, float]) -> None:
            fields = {"description": label} if step > start else {}
            if losses:
                fields["losses"] = "loss " + " ".join(
                    f"{escape(run)}={value:.2f}" for run, value in losses.items()
                )
            progress.update(task, completed=step, **fields)

        return on_progress

    return on_group


def print_plan(console: Console, plan: Plan) -> None:
    console.print(
        f"[bold]{plan.file}[/]  plan {plan.content_hash()[:12]}  phase: {plan.phase.text}"
    )
    estimates = resources.estimate(plan)
    for index, group in enumerate(plan.groups):
        first = plan.run(group.runs[0])
        console.print(
            f"\n[bold]group {index + 1}[/]: {len(group.runs)} runs batched · "
            f"{first.model.layers}L×{first.model.heads}H d={first.model.d_model} · "
            f"{first.train.steps:,} steps × batch {first.train.batch} "
            f"({first.train.steps * first.train.batch:.2e} sequences) · lr {first.train.lr:g}"
        )
        console.print(f"  resources: {estimates[index].describe()}", highlight=False)
        for line in _schedule_lines(group.schedule):
            console.print(f"  {line}", highlight=False)
        passes = {p.run: p for p in group.schedule.runs}
        for name in group.runs:
            run = plan.run(name)
            gives = subcircuits.describe(run.gives)
            console.print(
                f"  [cyan]{escape(run.name)}[/] {escape(repr(run.description))}  gives {gives}, "
                f"seed {run.train.seed}, {run.task.classes} classes · {_passes(passes[name])}"
            )
            for item in run.interventions:
                where = "" if item.span.file == plan.file else f"{item.span.file} "
                console.print(f"    {_describe(item)}   [dim]{where}line {item.span.line}[/]")
    if plan.measures:
        console.print(
            "\nmeasures: "
            + ", ".join(
                f"{m.metric} of L{m.layer + 1}.H{{{','.join(map(str, m.heads))}}}"
                for m in plan.measures
            )
        )


def _schedule_lines(schedule: Schedule) -> list[str]:
    """The group's pass schedule, as `compile/schedule.py` decided it."""
    order, n = schedule.order, len(schedule.runs)
    lines = [f"batching order: {', '.join(order)}"]
    first = schedule.first_pass
    if first is not None:
        records = ", ".join(f"L{layer + 1} {what}" for layer, what in first.records)
        lines.append(
            f"first pass (unclamped): runs {first.start}-{first.stop - 1} "
            f"({', '.join(order[first.start : first.stop])}), layers "
            f"L{first.from_layer + 1}-L{first.layers}, records {records}"
        )
    final = [f"from L{schedule.final_from_layer + 1}"]
    if 0 < schedule.layer_one_runs < n:
        final.append(f"L1 for runs 0-{schedule.layer_one_runs - 1}")
    if schedule.last_layer_runs < n:
        final.append(f"the last layer for runs 0-{schedule.last_layer_runs - 1}")
    return [*lines, f"final pass: {', '.join(final)}"]


def _passes(passes: RunPasses) -> str:
    parts = ["first + final pass" if passes.first_pass else "final pass"]
    if passes.bypasses_layer_one:
        parts.append("L1 bypassed")
    if passes.logits_from_first_pass:
        parts.append("logits from the first pass")
    return ", ".join(parts)


def _describe(item) -> str:
    where = (
        (f"L*.H*.{item.site}" if item.heads else item.site)
        if item.layer is None
        else (
            f"L{item.layer + 1}.{item.site}"
            if not item.heads
            else f"L{item.layer + 1}.H{{{','.join(map(str, item.heads))}}}.{item.site}"
        )
    )
    index = (
        ""
        if item.layer is None
        else f" (tensor layer {item.layer}"
        + (f", heads {list(item.heads)})" if item.heads else ")")
    )
    params = "".join(f" {k}={v:g}" for k, v in item.params.items())
    source = f" of L{item.source.layer + 1}.H{item.source.head}" if item.source else ""
    end = "end" if item.window.end is None else f"step {item.window.end}"
    window = "" if item.window.is_always() else f" [steps {item.window.start}→{end})"
    if item.window.during != "both":
        window += f" during {item.window.during}"
    return f"{item.kind:<17} {where}{source}{params}{window}{index}{_donor(item)}"


def _donor(item) -> str:
    """Where a graft's weights come from, or which donor brought a clamp along."""
    if item.donor is None:
        return ""
    d = item.donor
    return f" · donor {d.path} run {d.run} step {d.step:,} (plan {d.plan_hash[:12]})"


def print_results(console: Console, plan: Plan, summaries: list[RunSummary]) -> None:
    for data in tables.result_tables(plan, summaries):
        table = Table(title=data.title, title_justify="left")
        for column in data.columns:
            table.add_column(column, justify="left" if column in tables.LEFT_ALIGNED else "right")
        for row in data.rows:
            table.add_row(*map(escape, row))  # run names hold brackets: match[seed=6]
        console.print(table)
    console.print(
        f"[dim]phase step: first eval with {plan.phase.text}; sequences = steps × batch (the "
        "paper's unit); losses are clamped losses.[/]"
    )


def print_phases(console: Console, phases: dict[str, float]) -> None:
    """`run --profile`: where the command's wall time went, phase by phase."""
    total = sum(phases.values())
    table = Table(title="Where the time went", title_justify="left")
    for column, justify in (("phase", "left"), ("seconds", "right"), ("share", "right")):
        table.add_column(column, justify=justify)
    for name, seconds in phases.items():
        table.add_row(name, f"{seconds:.2f}", f"{seconds / total:.0%}" if total else "–")
    table.add_row("all", f"{total:.2f}", "100%", style="bold")
    console.print(table)
