"""The work of `clampdsl run` (its options are in cli.py): the specs compiled, their donor
specs put in stages before them, and each stage's groups trained on the chosen executor,
one spec after another with its own display, or all at once in one."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from clampdsl import cli, terminal
from clampdsl.compile.plan import Plan
from clampdsl.durable import RunError

if TYPE_CHECKING:
    from rich.console import Console


def run_files(
    files: list[Path], out_dir: Path, options: dict, executor, threads: int | None, profile: bool
) -> None:
    """Trains every spec of `files` (their donors first) with the run `options` (device,
    fresh, compile, allow_large), or exits with the CLI's code for what stopped it."""
    _check_device(options["device"], executor)
    if profile and executor.concurrent and len(files) > 1:
        raise typer.BadParameter("profiles one spec at a time: pass one", param_hint="--profile")
    plans = cli._compile_all_or_exit(files, out_dir, options["allow_large"])
    stages = _with_donors(files, plans, out_dir, options["allow_large"])
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        for stage, (stage_files, stage_plans) in enumerate(stages, 1):
            last = stage == len(stages)
            if not last:  # donors: trained, or found finished, with the usual display
                cli.out.print(f"[dim]donor specs first: {', '.join(map(str, stage_files))}[/]")
            chosen = options if last else options | {"fresh": False}
            if executor.concurrent and len(stage_files) > 1:
                _run_at_once(stage_files, stage_plans, out_dir, chosen, executor)
                continue
            for file, compiled in zip(stage_files, stage_plans, strict=True):
                here = chosen | {"executor": executor}
                _run_here(file, compiled, out_dir, here, profile and last)
    except KeyboardInterrupt as stop:
        step = getattr(stop, "step", None)  # train/loop.py's Interrupted: checkpoint saved
        saved = f" at step {step:,}: checkpoint saved," if step is not None else ";"
        cli.err.print(f"interrupted{saved} the same command resumes", highlight=False)
        raise typer.Exit(cli.INTERRUPTED) from None
    except (RunError, OSError) as error:
        terminal.print_error(terminal.run_failure(error))
        raise typer.Exit(cli.RUN_FAILURE) from None


def executor_or_exit(backend: str, jobs: int, address: str | None):
    """The executor of `--backend`, `--jobs` and `--address` (executors/), or exit 2 where
    its extra is not installed."""
    from clampdsl import executors

    try:
        return executors.choose(backend, jobs, address)
    except executors.MissingExtra as missing:
        sys.stderr.write(f"{missing}\n")
        raise typer.Exit(cli.MISSING_EXTRA) from None
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def _check_device(device: str, executor) -> None:
    """Before anything is compiled or written (api.check_device)."""
    from clampdsl import api

    try:
        api.check_device(device, executor)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--device") from None


def _with_donors(
    files: list[Path], plans: list[Plan], out_dir: Path, allow_large: bool
) -> list[tuple[list[Path], list[Plan]]]:
    """The specs to run, in stages one after the other: the donor specs their grafts name
    (`from spec "…"`, given among them or not; theirs in a stage before them), then the
    other specs."""
    from clampdsl.compile import donor_specs

    named = donor_specs.named(plans)
    if not named:
        return [(files, plans)]
    rest = [(f, p) for f, p in zip(files, plans, strict=True) if p.content_hash() not in named]
    donor_files = [Path(donor.file) for donor in named.values()]
    donor_plans = cli._compile_all_or_exit(donor_files, out_dir, allow_large)
    earlier = _with_donors(donor_files, donor_plans, out_dir, allow_large)
    return [*earlier, ([f for f, _ in rest], [p for _, p in rest])]


def _run_here(file: Path, compiled: Plan, out_dir: Path, options: dict, profile: bool) -> None:
    from rich.markup import escape

    from clampdsl import api
    from clampdsl.report.console import group_progress, print_phases

    how = options["executor"].description
    cli.out.print(
        f"[bold]{escape(str(file))}[/]: {cli._sizes(compiled)}{f' · {how}' if how else ''}"
    )
    started = time.perf_counter()
    with group_progress(cli.out.console, compiled) as on_group:
        result = api.run(file, out_dir, on_group=on_group, **options)
    _print_result(cli.out.console, result)
    if profile:  # what came before the API's run: the interpreter, the CLI, the checks
        print_phases(cli.out.console, {"start-up, checks": started - cli.STARTED} | result.phases)


def _print_result(console: Console, result) -> None:
    from clampdsl.report.console import print_outcome

    if result.reused:
        console.print(f"[dim]reusing the finished run in {result.directory} (--fresh to redo)[/]")
    print_outcome(console, cli.err.console, result)


def _run_at_once(
    files: list[Path], plans: list[Plan], out_dir: Path, options: dict, executor
) -> None:
    """Every spec's groups on one executor at once, in one display; each spec's results as
    it finishes."""
    from rich.markup import escape

    from clampdsl import api
    from clampdsl.report.console import group_bars, progress_bars

    cli.out.print(f"{cli._count(len(files), 'spec')}, {executor.description}", highlight=False)
    names = {compiled.content_hash(): file for file, compiled in zip(files, plans, strict=True)}
    failed = []
    with progress_bars(cli.out.console) as progress:

        def on_finished(result) -> None:
            file = names[result.plan.content_hash()]
            if isinstance(result, api.RunFailed):
                failed.append(file)
                progress.console.print(f"[bold red]{escape(str(file))}: failed[/]")
                terminal.print_error(terminal.run_failure(result.error))
                return
            progress.console.print(f"[bold]{escape(str(file))}[/]")
            _print_result(progress.console, result)

        api.run_specs(
            files,
            out_dir,
            executor=executor,
            on_group_for=lambda plan: group_bars(progress, plan, names[plan.content_hash()].stem),
            on_finished=on_finished,
            **options,
        )
    if failed:
        raise typer.Exit(cli.RUN_FAILURE)
