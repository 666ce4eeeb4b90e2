"""Rich output: the compiled plan, progress per batched group while training, then the results
table."""

from __future__ import annotations

import math
from contextlib import contextmanager
from functools import partial

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

from clampdsl import kinds
from clampdsl.compile import donor_specs, resources, subcircuits
from clampdsl.compile.plan import Group, Plan, RunPasses, Schedule
from clampdsl.report import paper_form, tables
from clampdsl.report.summary import RunSummary
from clampdsl.tasks import kinds as task_kinds

STATEMENT_WIDTH = 48  # the column `clampdsl plan` aligns tensor indices at, at most


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

    bars = {}  # group → its bar: a group started again (a retried task) keeps its own

    def on_group(index, runs, total, start):
        label = f"{name} group {index + 1}/{len(plan.groups)} ({len(runs)} runs)".lstrip()
        # Until the first step is done: a compiled step takes a minute to build on a CPU,
        # with the bar standing still.
        warming = f"{label} warming up"
        if index in bars:
            progress.update(bars[index], description=warming, completed=start)
        else:
            bars[index] = progress.add_task(warming, total=total, completed=start, losses="")
        task = bars[index]

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
    """The plan in the spec's own words. Every line is printed whole (soft-wrapped): off a
    terminal Rich would fold it at its width, mid-row."""
    say = partial(console.print, soft_wrap=True, highlight=False)
    say(f"[bold]{escape(plan.file)}[/]  plan {plan.content_hash()[:12]}  phase: {plan.phase.text}")
    for donor in donor_specs.named([plan]).values():
        say(
            f"needs {escape(donor.file)} (plan {donor.plan_hash[:12]}): its run in the run "
            f"store, {escape(donor.path)}, trained first where it has not finished"
        )
    estimates = resources.estimate(plan)
    for index, group in enumerate(plan.groups):
        say(f"\n[bold]group {index + 1}[/]: {_group_line(plan, group)}")
        say(f"  resources: {estimates[index].describe()}")
        say(f"  evals: {paper_form.evals(plan.run(group.runs[0]).eval, plan.phase)}")
        tasks = (plan.run(name).task for name in group.runs)
        inputs = [line for line in dict.fromkeys(task_kinds.of(t).inputs(t) for t in tasks) if line]
        if inputs:
            say(f"  {escape('; '.join(inputs))}")
        say(f"  {_graphs(plan, index)}")
        for line in _schedule_lines(group.schedule):
            say(f"  {escape(line)}")
        _print_runs(say, plan, group)
    if plan.measures:
        model = plan.runs[0].model
        measured = (paper_form.measure(m, model) for m in plan.measures)
        say("\nmeasures: " + escape(", ".join(measured)))


def _group_line(plan: Plan, group: Group) -> str:
    first = plan.run(group.runs[0])
    model, train = first.model, first.train
    variant = f" {model.variant()}" if model.variant() else ""
    return (
        f"{_count(len(group.runs), 'run')} batched · "
        f"{model.layers}L×{model.heads}H d={model.d_model}{variant} · {train.steps:,} steps "
        f"× batch {train.batch} ({train.steps * train.batch:,} sequences) · lr {train.lr:g}"
    )


def _graphs(plan: Plan, index: int) -> str:
    """The graphs torch.compile builds for the group: the train step and its evals'
    (compile/resources.py counts them), on a CPU and, where that differs, on CUDA."""
    cpu, cuda = (resources.eval_graphs(plan, index, device) for device in ("cpu", "cuda"))

    def on_cuda(graphs: int) -> str:
        return f" ({graphs} on CUDA)" if cuda != cpu else ""

    line = (
        f"compiles {cpu + 1} graphs{on_cuda(cuda + 1)}: the train step, "
        f"{_count(cpu, 'eval graph')}{on_cuda(cuda)}"
    )
    least = resources.COMPILE_AUTO_MIN_STEPS
    if plan.run(plan.groups[index].runs[0]).train.steps < least:
        line += f"; on a CPU only with --compile on (auto: from {least:,} steps)"
    return line


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _print_runs(say, plan: Plan, group: Group) -> None:
    """Each run with its passes, then its statements, their tensor indices aligned."""
    passes = {p.run: p for p in group.schedule.runs}
    shown = {name: paper_form.statements(plan.run(name)) for name in group.runs}
    longest = max((len(s.spoken) for run in shown.values() for s in run), default=0)
    width = min(STATEMENT_WIDTH, longest)
    for name in group.runs:
        run = plan.run(name)
        described = f" {run.description!r}" if run.description else ""
        gives = subcircuits.describe(run.gives)
        say(
            f"  [cyan]{escape(run.name)}[/]{escape(described)}  gives {escape(gives)}, "
            f"seed {run.train.seed}, {task_kinds.of(run.task).brief(run.task)} · "
            f"{_passes(passes[name])}"
        )
        for statement in shown[name]:
            where = escape(_where(statement, plan))
            say(f"    {escape(statement.spoken.ljust(width))}  [dim]{where}[/]")


def _where(statement: paper_form.Statement, plan: Plan) -> str:
    """A statement's tensor indices, its line (and file, where another's) and donor."""
    item = statement.item
    file = "" if item.span.file == plan.file else f"{item.span.file} "
    parts = [statement.tensor, f"{file}line {item.span.line}", _donor(item)]
    return " · ".join(filter(None, parts))


def _schedule_lines(schedule: Schedule) -> list[str]:
    """The group's pass schedule, as `compile/schedule.py` decided it."""
    order, n = schedule.order, len(schedule.runs)
    lines = [f"batching order: {', '.join(order)}"]
    first = schedule.first_pass
    if first is not None:
        records = ", ".join(f"L{layer + 1} {what}" for layer, what in first.records)
        lines.append(
            f"first pass (unclamped): {_runs(first.start, first.stop)} "
            f"({', '.join(order[first.start : first.stop])}), layers "
            f"{_layer_range(first.from_layer, first.layers)}, records {records}"
        )
    final = [f"from L{schedule.final_from_layer + 1}"]
    if 0 < schedule.layer_one_runs < n:
        final.append(f"L1 for {_runs(0, schedule.layer_one_runs)}")
    if schedule.last_layer_runs < n:
        final.append(f"the last layer for {_runs(0, schedule.last_layer_runs)}")
    return [*lines, f"final pass: {', '.join(final)}"]


def _runs(start: int, stop: int) -> str:
    """Runs start to stop - 1 of the batching order: `run 4`, `runs 0-3`."""
    return f"run {start}" if stop - start == 1 else f"runs {start}-{stop - 1}"


def _layer_range(start: int, stop: int) -> str:
    """Layers start to stop - 1 (0-based) as the paper numbers them: `L2`, `L1-L2`."""
    return f"L{stop}" if stop - start == 1 else f"L{start + 1}-L{stop}"


def _passes(passes: RunPasses) -> str:
    parts = ["first + final pass" if passes.first_pass else "final pass"]
    if passes.bypasses_layer_one:
        parts.append("L1 bypassed")
    if passes.logits_from_first_pass:
        parts.append("logits from the first pass")
    return ", ".join(parts)


def _donor(item) -> str:
    """The plan a graft's weights come from; or, for a clamp the donor brought along, which
    donor (its graft's line says more)."""
    d = item.donor
    if d is None:
        return ""
    if kinds.of(item).takes_donor:
        return f"donor plan {d.plan_hash[:12]}"
    return f"brought by the donor {d.file if d.in_store else d.path} run {d.run}"


def print_results(console: Console, plan: Plan, summaries: list[RunSummary]) -> None:
    for data in tables.result_tables(plan, summaries):
        table = Table(title=data.title, title_justify="left")
        for column in data.columns:
            table.add_column(column, justify="left" if column in tables.LEFT_ALIGNED else "right")
        for row in data.rows:
            table.add_row(*map(escape, row))  # run names hold brackets: match[seed=6]
        console.print(table)
        for note in data.notes:
            console.print(f"  {escape(note)}", highlight=False, soft_wrap=True)
    console.print(
        f"[dim]phase step: first eval with {plan.phase.text}; sequences = steps × batch (the "
        "paper's unit); losses are clamped losses.[/]"
    )


def print_sparklines(console: Console, run) -> None:
    """Each run's loss over training (a run directory read back: rerender.ReadRun), on one
    scale for all, so that their heights compare."""
    from clampdsl.report.rerender import curve_of, sparkline

    key = f"{run.plan.phase.eval_set}.loss"
    curves = {config.name: curve_of(run, config.name, key) for config in run.plan.runs}
    finite = [v for curve in curves.values() for v in curve if math.isfinite(v)]
    if not finite:
        return
    low, high = min(finite), max(finite)
    table = Table(title=f"{key} over training, {high:.3f} to {low:.3f}", title_justify="left")
    for column, justify in (("experiment", "left"), ("curve", "left"), ("evals", "right")):
        table.add_column(column, justify=justify)
    for name, curve in curves.items():
        table.add_row(escape(name), sparkline(curve, low, high), str(len(curve)))
    console.print(table)


def print_outcome(console: Console, warnings: Console, result) -> None:
    """A finished spec's tables, a warning (on `warnings`) for each run that diverged, and
    where its report is."""
    print_results(console, result.plan, result.summaries)
    for summary in result.summaries:
        if summary.diverged_at is not None:
            warnings.print(
                f"warning: {escape(summary.name)} diverged (non-finite loss at step "
                f"{summary.diverged_at})",
                style="bold yellow",
            )
    console.print(f"report: {result.directory / 'report.md'}")


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
