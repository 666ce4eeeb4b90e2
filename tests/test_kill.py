"""A real `clampdsl run`, killed with SIGKILL at each moment that matters, resumes to the
very metrics and summary an unbroken run writes (clampdsl/failpoints.py names the moments)."""

import os
import signal
import subprocess
import sys

import pytest
from conftest import RESUMABLE_IN_TWO_GROUPS, run_results

SPEC = RESUMABLE_IN_TWO_GROUPS
# Two batched groups of 40 steps each, checkpoints at 15 and 30 and the end of each.
MOMENTS = {
    "before the first checkpoint": "step@5",
    "while a checkpoint is written": "write:group0.pt@1",
    "while metrics are appended": "append:metrics.jsonl@3",
    "between the report and its summary": "report",
}
SLOW_MOMENTS = {
    "in the second group": "step@52",
    "mid-chunk, after a checkpoint": "step@20",
    "during an eval": "eval@3",
    "while the second group's checkpoint is written": "write:group1.pt@2",
    "while kept weights are written": "write:group0-step40.pt@1",
    "while the summary is written": "write:summary.json@1",
    "while the plan is written": "write:plan.json@1",
}


def run(folder, kill_at=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("CLAMPDSL_KILL_AT", None)
    if kill_at:
        env["CLAMPDSL_KILL_AT"] = kill_at
    command = [sys.executable, "-m", "clampdsl", "run", "spec.clamp", "--out", "out"]
    return subprocess.run(
        [*command, "--compile", "off"], cwd=folder, env=env, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unbroken")
    (folder / "spec.clamp").write_text(SPEC)
    assert run(folder).returncode == 0
    return run_results(folder)


def killed_then_resumed(folder, kill_at: str, unbroken) -> None:
    (folder / "spec.clamp").write_text(SPEC)
    killed = run(folder, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr  # the moment was reached
    resumed = run(folder)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    metrics, summary = run_results(folder)
    assert metrics == unbroken[0]  # row for row, value for value, none twice
    assert summary == unbroken[1]
    (directory,) = (folder / "out" / "spec").iterdir()
    assert not list(directory.rglob("*.tmp")) or kill_at.startswith("write:")


@pytest.mark.parametrize("kill_at", MOMENTS.values(), ids=MOMENTS.keys())
def test_a_run_killed_resumes_exactly(tmp_path, kill_at, unbroken):
    killed_then_resumed(tmp_path, kill_at, unbroken)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", SLOW_MOMENTS.values(), ids=SLOW_MOMENTS.keys())
def test_a_run_killed_at_other_moments_resumes_exactly(tmp_path, kill_at, unbroken):
    killed_then_resumed(tmp_path, kill_at, unbroken)


@pytest.mark.slow
def test_a_run_killed_twice_resumes_exactly(tmp_path, unbroken):
    (tmp_path / "spec.clamp").write_text(SPEC)
    assert run(tmp_path, "step@20").returncode == -signal.SIGKILL
    assert run(tmp_path, "append:metrics.jsonl@2").returncode == -signal.SIGKILL
    assert run(tmp_path).returncode == 0
    assert run_results(tmp_path) == unbroken
