"""Groups in child processes (`clampdsl run A B --jobs 2`, executors/processes.py): each
group in a child process, its events relayed as JSON lines, results as a one-at-a-time
run gives them."""

import json
import math
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, clampdsl

import clampdsl as api
from clampdsl.executors.group import GroupTask, longest_first
from clampdsl.executors.processes import parse_events


@pytest.fixture
def two_specs(tmp_path, tiny_spec):
    first = tmp_path / "first.clamp"
    first.write_text(tiny_spec.read_text())
    second = tmp_path / "second.clamp"
    second.write_text(tiny_spec.read_text().replace("lr=1e-3", "lr=2e-3"))
    return first, second


def test_a_childs_events_are_read_back_and_other_lines_skipped():
    event = {"event": "progress", "step": 40, "losses": {"a": 0.5, "b": math.nan}}
    lines = ["a library's stray print\n", json.dumps(event) + "\n", "[1, 2]\n", "{}\n"]
    (read,) = parse_events(lines)
    assert read["step"] == 40 and read["losses"]["a"] == 0.5 and math.isnan(read["losses"]["b"])


def test_specs_run_at_once_give_what_each_gives_alone(tmp_path, two_specs):
    result = clampdsl("run", *two_specs, "--jobs", "2", "--out", tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    assert "2 specs, at most 2 groups at a time, each in a child process" in result.stdout
    for spec in two_specs:
        assert f"{spec.stem} group 1/1 (4 runs)" in result.stdout
        assert str(spec) in result.stdout
        together = api.load(spec, tmp_path / "runs")
        alone = api.run(spec, tmp_path / "alone")
        assert together.directory.name == alone.directory.name
        for a, b in zip(together.records, alone.records, strict=True):
            assert a["run"] == b["run"] and a["step"] == b["step"]
            assert a["train.loss"] == pytest.approx(b["train.loss"], rel=1e-5)
    first, second = (api.load(spec, tmp_path / "runs") for spec in two_specs)
    assert first.records[-1]["train.loss"] != second.records[-1]["train.loss"]  # own specs
    again = clampdsl("run", *two_specs, "--jobs", "2", "--out", tmp_path / "runs")
    assert again.returncode == 0, again.stderr  # nothing left to train: every run reused
    assert again.stdout.count("reusing the finished run") == 2


def test_without_jobs_the_specs_run_one_after_the_other_here(tmp_path, two_specs):
    result = clampdsl("run", *two_specs, "--out", tmp_path / "runs", "--threads", "1")
    assert result.returncode == 0, result.stderr
    first, second = (result.stdout.index(f"{spec}: 4 experiments") for spec in two_specs)
    assert first < result.stdout.index("report:", first) < second  # in the order given
    assert all(api.load(spec, tmp_path / "runs") for spec in two_specs)


def test_a_wrong_spec_stops_every_spec_before_training(tmp_path, two_specs):
    bad = tmp_path / "bad.clamp"
    bad.write_text("clampdsl 1\nexperiment e:\n    clamp L3.H2 to prev-token\n")
    result = clampdsl("run", *two_specs, bad, "--jobs", "2", "--out", tmp_path / "runs")
    assert result.returncode == 2
    assert f"{bad}:3:11: error: layer L3 does not exist" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_the_same_plan_twice_is_refused(tmp_path, two_specs):
    first, _ = two_specs
    result = clampdsl("run", first, first, "--jobs", "2", "--out", tmp_path / "runs")
    assert result.returncode == 2
    assert "the same plan as" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_failing_spec_is_reported_and_the_others_finish(tmp_path, two_specs):
    first, second = two_specs
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / second.stem).write_text("a file where the run directory would go")
    result = clampdsl("run", first, second, "--jobs", "2", "--out", runs)
    assert result.returncode == 1
    assert f"{second}: failed" in result.stdout
    assert "Not a directory" in result.stderr  # the child's own one-line report, passed on
    assert "Traceback" not in result.stderr
    assert api.load(first, runs) is not None
    summary = json.loads((api.load(first, runs).directory / "summary.json").read_text())
    assert summary["runs"]


def test_the_longest_groups_start_first():
    measured = ("fig3", "fig4b", "fig5b", "fig6", "fig8_live")
    paper = [ROOT / "specs" / "paper" / f"{stem}.clamp" for stem in measured]
    tasks = [
        GroupTask(plan, group, "checkpoints", "cpu", "auto")
        for plan in map(api.compile_file, paper)
        for group in range(len(plan.groups))
    ]
    work = {spec.stem: sum(t.work for t in tasks if t.plan.file == str(spec)) for spec in paper}
    # Measured, one spec after the other on 2 cores: Fig. 6 300 s, 4b 190, 5b 140, 8 and 3 90.
    assert sorted(work, key=lambda stem: -work[stem]) == [
        "fig6",
        "fig4b",
        "fig5b",
        "fig8_live",
        "fig3",
    ]
    order = [tasks[index].work for index in longest_first(tasks)]
    assert order == sorted(order, reverse=True)


def test_children_stop_when_their_driver_is_killed(tmp_path, two_specs):
    long = tmp_path / "long.clamp"
    long.write_text(two_specs[0].read_text().replace("steps=60", "steps=100000"))
    command = [sys.executable, "-m", "clampdsl", "run", long, two_specs[1], "--jobs", "2"]
    driver = subprocess.Popen([*command, "--out", tmp_path / "runs"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(children := _children(driver.pid)) < 2:
        assert time.monotonic() < deadline and driver.poll() is None
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 30
    while any(_alive(child) for child in children):
        assert time.monotonic() < deadline, "an orphan goes on training"
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in found.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
