"""`clampdsl report | export | cache`: commands on what runs leave behind (run
directories, compiled graphs), merged into the `clampdsl` command (cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clampdsl import terminal

results = typer.Typer()
cache = typer.Typer(
    no_args_is_help=True,
    help="Compiled graphs as one portable file, for another machine or CI to start warm.",
)
results.add_typer(cache, name="cache")
EXPORT_FORMATS = ("csv", "tensorboard")
RunDirOrSpec = Annotated[
    Path, typer.Argument(metavar="RUN_DIR|SPEC", help="a run directory, or the spec that made it")
]
OutDir = Annotated[
    Path, typer.Option("--out", metavar="DIR", help="where a spec's run directories are")
]


@results.command()
def report(target: RunDirOrSpec, out_dir: OutDir = Path("runs")) -> None:
    """Report a run again: finished, stopped, or still training.

    Prints the tables and each run's loss as a sparkline, and rewrites curves.png (and,
    once the run has finished, report.md) in its run directory.

    Example: clampdsl report specs/three_subcircuits.clamp
    """
    from clampdsl import cli
    from clampdsl.report import rerender
    from clampdsl.report.console import print_results, print_sparklines

    run = _read_or_exit(target, out_dir)
    if not run.records:
        cli.out.print(f"{run.directory}: no evals written yet", highlight=False)
        return
    print_results(cli.out.console, run.plan, list(run.summaries))
    print_sparklines(cli.out.console, run)
    written = _or_exit(lambda: rerender.rewrite(run))
    state = "finished" if run.finished else "not finished: the tables stand at its last eval"
    cli.out.print(f"{run.directory}: {state}; wrote {', '.join(p.name for p in written)}")


@results.command()
def export(
    target: RunDirOrSpec,
    to: Annotated[
        Path, typer.Option("--to", metavar="PATH", help="the CSV file, or TensorBoard's folder")
    ],
    format: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="csv or tensorboard")
    ] = "csv",
    out_dir: OutDir = Path("runs"),
) -> None:
    """Write a run's metrics for other tools: a CSV table, or TensorBoard event files.

    TensorBoard's files (which W&B and Aim import too) need the tensorboard extra.

    Example: clampdsl export specs/three_subcircuits.clamp --format tensorboard --to tb
    """
    from clampdsl import cli
    from clampdsl.report import rerender

    cli._one_of(format, EXPORT_FORMATS, "--format")
    run = _read_or_exit(target, out_dir)
    if format == "csv":
        written = [_or_exit(lambda: rerender.write_csv(run, to))]
    else:
        written = _or_exit(lambda: rerender.write_tensorboard(run, to))
    cli.out.print(f"{len(run.records)} evals → {', '.join(map(str, written))}", highlight=False)


@cache.command("export")
def cache_export(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help=".clamp files")],
    to: Annotated[Path, typer.Option("--to", metavar="FILE", help="the cache file to write")],
    device: Annotated[str, typer.Option(metavar="DEVICE", help="as for run")] = "auto",
    compile: Annotated[
        str, typer.Option(metavar="MODE", help="as for run: the groups it compiles are exported")
    ] = "auto",
) -> None:
    """Write the graphs the specs' runs compile to one file, for `cache import`.

    Each group compiles its graphs (or finds them in the cache) as `run` would, and trains
    nothing. The file serves machines with the same torch, CPU and thread count.

    Example: clampdsl cache export specs/three_subcircuits.clamp --to graphs.bin
    """
    from clampdsl import accel, cli
    from clampdsl.compile.resources import COMPILE_CHOICES
    from clampdsl.durable import write_atomically
    from clampdsl.train import graph_cache

    cli._one_of(compile, COMPILE_CHOICES, "--compile")
    store = Path("runs")  # where `run` keeps runs by default: a graft's donor spec's run
    plans = cli._compile_all_or_exit(files, store)
    accel.enable()  # the code `run` generates, so that the cache keys are `run`'s
    data, graphs = _or_exit(lambda: graph_cache.export(plans, device, compile, store.resolve()))
    _or_exit(lambda: write_atomically(to, data))
    cli.out.print(f"{to}: {cli._count(graphs, 'graph')}, {len(data) / 2**20:.1f} MiB")
    if not graphs:
        cli.err.print(
            f"warning: no group compiles with --compile {compile} here (short runs train "
            "eagerly on a CPU); --compile on exports their graphs",
            style="bold yellow",
            highlight=False,
        )


@cache.command("import")
def cache_import(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="a file of `cache export`")],
) -> None:
    """Load a file of `cache export` into this machine's compile caches.

    A cache file holds generated code: import only files from someone you trust.

    Example: clampdsl cache import graphs.bin
    """
    import torch

    from clampdsl import cli
    from clampdsl.train import graph_cache

    graphs, threads = _or_exit(lambda: graph_cache.import_file(file))
    cli.out.print(f"{file}: {cli._count(graphs, 'graph')} loaded", highlight=False)
    if threads != torch.get_num_threads():
        cli.err.print(
            f"warning: compiled for {threads} torch threads, and this machine runs "
            f"{torch.get_num_threads()}: runs here find them with `--threads {threads}`",
            style="bold yellow",
            highlight=False,
        )


def _read_or_exit(target: Path, out_dir: Path):
    """The run directory `target` is, or the one its spec's plan ran in."""
    from clampdsl import cli
    from clampdsl.report import rerender
    from clampdsl.report.store import run_directory

    if not target.exists():
        _exit(f"{target}: no such run directory or spec")
    if target.is_file():
        directory = run_directory(out_dir, cli._compile_or_exit(target, allow_large=True))
        if not directory.exists():
            _exit(
                f"{target}, as written now, has no run under {out_dir} (no {directory}): run "
                "it, or name the folder it ran under with --out"
            )
        target = directory
    return _or_exit(lambda: rerender.read_run(target))


def _exit(message: str):
    from clampdsl import cli

    terminal.print_error(message)
    raise typer.Exit(cli.RUN_FAILURE)


def _or_exit(action):
    """`action()`, or its failure (a RunError, a cache file refused, an OSError) printed as
    one line and exit 1."""
    from clampdsl.durable import RunError

    try:
        return action()
    except (RunError, OSError, ValueError) as error:
        _exit(terminal.failure(error))
