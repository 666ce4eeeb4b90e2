"""`clampdsl validate | plan | run`: thin commands over the stages.

Spec errors print as `file:line:col` diagnostics and exit 2; never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clampdsl.compile import compile_source
from clampdsl.compile.plan import Plan
from clampdsl.lang.diagnostics import SpecError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Declarative clamping experiments on small transformers.",
)
SPEC_ERROR = 2
SpecFile = Annotated[Path, typer.Argument(help="the .clamp file")]
# Off a terminal (CI logs, pipes) Rich would assume 80 columns and fold the results table.
out = Console(width=None if sys.stdout.isatty() else 132)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 132)


def _compile(path: Path) -> Plan:
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as error:
        sys.stderr.write(f"{path}: error: cannot read spec: {error.strerror or error}\n")
        raise typer.Exit(SPEC_ERROR) from None
    return compile_source(source, str(path))


def _compile_or_exit(path: Path) -> Plan:
    try:
        return _compile(path)
    except SpecError as error:
        _report_spec_error(error)
        raise typer.Exit(SPEC_ERROR) from None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _report_spec_error(error: SpecError) -> None:
    # Plain text, never re-wrapped: the caret line must stay under the text it points at.
    sys.stderr.write(str(error) + "\n")
    err.print(_count(len(error.diagnostics), "error"), style="bold red")


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help=".clamp files to check")]) -> None:
    """Check specs against the language and the model; exit 2 if any has errors."""
    failed = False
    for path in files:
        try:
            plan = _compile(path)
        except SpecError as error:
            _report_spec_error(error)
            failed = True
            continue
        except typer.Exit:
            failed = True
            continue
        out.print(
            f"{path}: ok ({_count(len(plan.runs), 'experiment')}, "
            f"{_count(len(plan.groups), 'batched group')})",
            highlight=False,
        )
    if failed:
        raise typer.Exit(SPEC_ERROR)


@app.command()
def plan(
    file: SpecFile,
    as_json: Annotated[bool, typer.Option("--json", help="print the Plan as JSON")] = False,
) -> None:
    """Print the compiled plan: groups, runs and every intervention."""
    compiled = _compile_or_exit(file)
    if as_json:
        sys.stdout.write(json.dumps(compiled.to_json(), indent=2) + "\n")
        return
    from clampdsl.report.console import print_plan

    print_plan(out, compiled)


@app.command()
def run(
    file: SpecFile,
    out_dir: Annotated[Path, typer.Option("--out", help="where run directories go")] = Path("runs"),
    device: Annotated[str, typer.Option(help="auto (CUDA if present), cpu or cuda")] = "auto",
    fresh: Annotated[
        bool, typer.Option("--fresh", help="discard an earlier run of this plan")
    ] = False,
    compile: Annotated[
        str,
        typer.Option(help="torch.compile the train step: auto (CUDA, or long CPU runs), on, off"),
    ] = "auto",
) -> None:
    """Train every experiment of a spec and report when induction heads formed."""
    compiled = _compile_or_exit(file)
    from clampdsl import api
    from clampdsl.report.console import group_progress, print_results

    out.print(
        f"[bold]{file}[/]: {_count(len(compiled.runs), 'experiment')} in "
        f"{_count(len(compiled.groups), 'batched group')}"
    )
    with group_progress(out, compiled) as on_group:
        result = api.run(
            file, out_dir, device=device, fresh=fresh, on_group=on_group, compile=compile
        )
    if result.reused:
        out.print(f"[dim]reusing the finished run in {result.directory} (--fresh to redo)[/]")
    print_results(out, result.plan, result.summaries)
    for summary in result.summaries:
        if summary.diverged_at is not None:
            err.print(
                f"warning: {summary.name} diverged (non-finite loss at step {summary.diverged_at})",
                style="bold yellow",
            )
    out.print(f"report: {result.directory / 'report.md'}")


def main() -> None:  # pragma: no cover
    app()
