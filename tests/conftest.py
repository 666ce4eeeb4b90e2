import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


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
