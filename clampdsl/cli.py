"""`clampdsl validate | plan | fmt | run | lsp` (and `report | export | cache`, in
results_cli.py): thin commands over the stages.

Spec errors print as `file:line:col` diagnostics; never a traceback. Exit codes: 0 done,
1 a run failed, 2 a spec error (or, for `lsp`, the lsp extra missing), 64 a usage error (a
bad option or value), 130 interrupted.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer

from clampdsl.compile import compile_source, runnable
from clampdsl.compile.plan import Plan
from clampdsl.compile.resources import COMPILE_CHOICES
from clampdsl.durable import RecoveryWarning
from clampdsl.executors import BACKENDS
from clampdsl.lang.diagnostics import SpecError
from clampdsl.results_cli import results
from clampdsl.terminal import err, out

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
)
app.add_typer(results)  # report, export, cache: on what runs leave behind
RUN_FAILURE = 1
SPEC_ERROR = 2
STARTED = time.perf_counter()  # this module's import: near the process's start
INTERRUPTED = 130  # as a shell reports a process stopped by Ctrl-C
USAGE_ERROR = 64  # EX_USAGE (sysexits.h): the command line is wrong, not a spec
MISSING_EXTRA = 2  # as a spec error: this install cannot do what was asked
# click's UsageError (bad options and values), from wherever this typer takes click
USAGE_ERRORS = tuple(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
SpecFile = Annotated[Path, typer.Argument(metavar="FILE", help="the .clamp file")]
AllowLarge = Annotated[
    bool,
    typer.Option(
        "--allow-large",
        help="accept a spec over the resource guard's budgets (memory: CLAMPDSL_MEMORY_BUDGET, "
        "8 GiB; work: CLAMPDSL_WORK_BUDGET, 1e16 FLOPs)",
    ),
]


def _compile(path: Path, allow_large: bool = False) -> Plan:
    from clampdsl.lang.source import read_spec  # a regular file of at most 1 MiB, UTF-8

    try:
        source = read_spec(path)
    except OSError as error:
        sys.stderr.write(f"{path}: error: cannot read spec: {error.strerror or error}\n")
        raise typer.Exit(SPEC_ERROR) from None
    plan = compile_source(source, str(path))
    for warning in plan.warnings:
        sys.stderr.write(warning + "\n")
    if not allow_large:
        _guard(plan, source)
    return plan


def _guard(plan: Plan, source: str) -> None:
    """The resource guard (compile/guard.py): a SpecError where a group would take more
    memory or work than the budgets (CLAMPDSL_MEMORY_BUDGET, CLAMPDSL_WORK_BUDGET) allow."""
    from clampdsl.compile import guard

    try:
        memory, work = guard.memory_budget(), guard.work_budget()
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    guard.check(plan, source, memory, work)


def _compile_or_exit(path: Path, allow_large: bool = False) -> Plan:
    try:
        return _compile(path, allow_large)
    except SpecError as error:
        _report_spec_error(error)
        raise typer.Exit(SPEC_ERROR) from None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _report_spec_error(error: SpecError) -> None:
    # Plain text, never re-wrapped: the caret line must stay under the text it points at.
    sys.stderr.write(str(error) + "\n")
    err.print(_count(len(error.diagnostics), "error"), style="bold red")


def _compile_each(files: list[Path], allow_large: bool = False) -> list[Plan | None]:
    """Every spec's plan, or None where it has errors (reported as they are found)."""
    plans = []
    for path in files:
        try:
            plans.append(_compile(path, allow_large))
        except SpecError as error:
            _report_spec_error(error)
            plans.append(None)
        except typer.Exit:
            plans.append(None)
    return plans


def _sizes(plan: Plan) -> str:
    """`6 experiments, 1 batched group`; with sweeps or seeds, `3 experiments, 40 runs, …`."""
    experiments = len({run.experiment for run in plan.runs})
    if not experiments:
        return "no experiments: a library for other specs to use"
    runs = f", {_count(len(plan.runs), 'run')}" if len(plan.runs) != experiments else ""
    groups = _count(len(plan.groups), "batched group")
    return f"{_count(experiments, 'experiment')}{runs}, {groups}"


def _print_version(value: bool) -> None:
    if value:
        from clampdsl import __version__

        out.print(f"clampdsl {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Declarative clamping experiments on small transformers.

    Example: clampdsl run specs/three_subcircuits.clamp
    """


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help=".clamp files to check")],
    allow_large: AllowLarge = False,
) -> None:
    """Check specs against the language and the model; exit 2 if any has errors.

    Example: clampdsl validate specs/*.clamp specs/paper/*.clamp
    """
    plans = _compile_each(files, allow_large)
    for path, plan in zip(files, plans, strict=True):
        if plan is not None:
            sys.stdout.write(f"{path}: ok ({_sizes(plan)})\n")
    if None in plans:
        raise typer.Exit(SPEC_ERROR)


@app.command()
def plan(
    file: SpecFile,
    as_json: Annotated[bool, typer.Option("--json", help="print the Plan as JSON")] = False,
    allow_large: AllowLarge = False,
) -> None:
    """Print the compiled plan: groups, runs and every intervention.

    Example: clampdsl plan specs/three_subcircuits.clamp
    """
    compiled = _compile_or_exit(file, allow_large)
    if as_json:
        sys.stdout.write(json.dumps(compiled.to_json(), indent=2) + "\n")
        return
    from clampdsl.report.console import print_plan

    print_plan(out.console, compiled)


@app.command()
def fmt(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help=".clamp files to format")],
    check: Annotated[
        bool, typer.Option("--check", help="change nothing; exit 1 if any file would change")
    ] = False,
    write: Annotated[bool, typer.Option("--write", help="rewrite the files in place")] = False,
) -> None:
    """Print specs in their canonical form (comments kept), or check or rewrite them.

    Example: clampdsl fmt --check specs/*.clamp
    """
    from clampdsl.durable import write_atomically
    from clampdsl.lang.format import FormatError, format_source

    changed, failed = [], False
    for path in files:
        try:
            source = path.read_text(encoding="utf-8")
            formatted = format_source(source, str(path))
        except SpecError as error:
            _report_spec_error(error)
            failed = True
            continue
        except (OSError, FormatError) as error:
            sys.stderr.write(f"{path}: error: {getattr(error, 'strerror', None) or error}\n")
            failed = True
            continue
        if formatted != source:
            changed.append(path)
            if write:
                write_atomically(path, formatted.encode("utf-8"))
        if not (check or write):
            sys.stdout.write(formatted)
    if check:
        for path in changed:
            sys.stderr.write(f"{path}: would be reformatted\n")
    if failed:
        raise typer.Exit(SPEC_ERROR)
    if check and changed:
        raise typer.Exit(RUN_FAILURE)


@app.command()
def run(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE...", help=".clamp files, each its own run")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="where run directories go")
    ] = Path("runs"),
    device: Annotated[
        str, typer.Option(metavar="DEVICE", help="auto (CUDA if present), cpu or cuda")
    ] = "auto",
    fresh: Annotated[
        bool, typer.Option("--fresh", help="discard an earlier run of this plan")
    ] = False,
    compile: Annotated[
        str,
        typer.Option(
            metavar="MODE",
            callback=lambda value: _one_of(value, COMPILE_CHOICES, "--compile"),
            help="torch.compile the train step: auto (CUDA, or long CPU runs), on, off",
        ),
    ] = "auto",
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="groups to train at once here, each in a child process on an equal share "
            "of the cores",
        ),
    ] = 1,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1, metavar="N", help="torch threads (default: torch's choice; --jobs shares them)"
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            callback=lambda value: _one_of(value, tuple(BACKENDS), "--backend"),
            help="where the groups train: local (this machine) or ray (every group a task on "
            "a Ray cluster; the ray extra)",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            metavar="ADDR",
            help="the Ray cluster to use (default: RAY_ADDRESS, else one started for the run)",
        ),
    ] = None,
    allow_large: AllowLarge = False,
    profile: Annotated[
        bool, typer.Option("--profile", help="print where the wall time went, phase by phase")
    ] = False,
) -> None:
    """Train every experiment of each spec and report when induction heads formed.

    Example: clampdsl run specs/three_subcircuits.clamp --out runs
    """
    from clampdsl import run_cli

    options = {"device": device, "fresh": fresh, "compile": compile, "allow_large": allow_large}
    executor = run_cli.executor_or_exit(backend, jobs, address)
    run_cli.run_files(files, out_dir, options, executor, threads=threads, profile=profile)


def _one_of(value: str, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=option)
    return value


def _compile_all_or_exit(files: list[Path], out_dir: Path, allow_large: bool = False) -> list[Plan]:
    """Every spec compiled before anything trains: errors in any stop them all."""
    from clampdsl.report.store import run_directory

    plans = _compile_each(files, allow_large)
    if None in plans:
        raise typer.Exit(SPEC_ERROR)
    for plan in plans:
        try:
            runnable(plan)
        except SpecError as error:
            _report_spec_error(error)
            raise typer.Exit(SPEC_ERROR) from None
    seen: dict[Path, Path] = {}
    for path, compiled in zip(files, plans, strict=True):
        directory = run_directory(out_dir, compiled)
        if directory in seen:
            sys.stderr.write(f"{path}: error: the same plan as {seen[directory]} (pass it once)\n")
            raise typer.Exit(SPEC_ERROR)
        seen[directory] = path
    return plans


@app.command("lsp")
def language_server() -> None:
    """Serve the language server over stdio, for editors (needs the lsp extra).

    Example: clampdsl lsp   (as an editor starts it; docs/language.md, Editor support)
    """
    from clampdsl import lsp

    if not lsp.serve():
        sys.stderr.write(lsp.NEEDS_EXTRA + "\n")
        raise typer.Exit(MISSING_EXTRA)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A RecoveryWarning as one line of the report; others as Python shows them."""
    if issubclass(category, RecoveryWarning):
        err.print(f"warning: {message}", style="bold yellow", highlight=False, soft_wrap=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main() -> None:
    """The `clampdsl` command: the app, with usage errors told apart from spec errors."""
    warnings.showwarning = _show_warning
    try:
        code = app(prog_name="clampdsl", standalone_mode=False)
    except USAGE_ERRORS as error:
        error.show()
        code = USAGE_ERROR
    except typer.Abort:
        code = INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)
