import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
# A short run that checkpoints twice (at 15 and 30) before it ends, for the tests that
# break, damage or kill it and resume it.
RESUMABLE = """clampdsl 1
model layers=2 heads=2 d_model=16
task classes=10 new_classes=10 features=synthetic(dim=16, correlation=0.5)
train steps=40 batch=8 lr=1e-3 checkpoint_every=15
eval every 10 steps on train size=64
experiment base:
    ablate L2.H1
"""
RESUMABLE_IN_TWO_GROUPS = RESUMABLE + "experiment faster:\n    train lr=2e-3\n"
# summary.json's fields that differ between two runs of the same plan, one of them resumed
# (its own SHA-256 covers the timings)
TIMINGS = ("seconds", "eval_seconds", "resumed", "phases", "sha256")


def run_results(folder: Path) -> tuple[str, dict]:
    """The metrics and timing-free summary of the one run of `spec.clamp` under `folder/out`."""
    (directory,) = (folder / "out" / "spec").iterdir()
    summary = json.loads((directory / "summary.json").read_text())
    return (directory / "metrics.jsonl").read_text(), {
        k: v for k, v in summary.items() if k not in TIMINGS
    }


def fenced(page: Path, language: str) -> list[str]:
    """The bodies of a Markdown page's ```LANGUAGE blocks, in order."""
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), flags=re.S)


def run_example(code: str, page: str) -> None:
    """A page's Python example, executed as a script would run it (tracebacks name the page)."""
    exec(compile(code, page, "exec"), {})


@pytest.fixture
def tiny_spec() -> Path:
    return FIXTURES / "tiny.clamp"


def clampdsl(*args, cwd=None) -> subprocess.CompletedProcess:
    """The command line, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "clampdsl", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


HEADER = "clampdsl 1\n"


def spec(body: str) -> str:
    """A spec with the version header and a given body (dedented by the caller)."""
    return HEADER + body


def clamp_state(runs):
    """The clamps of runs batched in the order given, with their schedule."""
    from clampdsl.compile.schedule import schedule_in_order
    from clampdsl.model.clamps import ClampState

    return ClampState(runs, runs[0].model, schedule_in_order(runs, runs[0].model))


def computing_everything(clamps):
    """The same clamps with a schedule that leaves nothing out: every layer for every run
    in each pass (the first pass for the runs that take it). The yardstick for skipping."""
    import attrs

    schedule, n = clamps.schedule, clamps.n_runs
    first = schedule.first_pass and attrs.evolve(schedule.first_pass, from_layer=0)
    everything = attrs.evolve(
        schedule, first_pass=first, final_from_layer=0, layer_one_runs=n, last_layer_runs=n
    )
    clamps.schedule = everything
    return clamps
