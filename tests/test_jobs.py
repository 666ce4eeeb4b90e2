"""Several specs at once (`clampdsl run A B --jobs 2`): each in a child process, progress
relayed as JSON lines, results as a one-at-a-time run gives them."""

import io
import json

import pytest
from conftest import ROOT, clampdsl

import clampdsl as api
from clampdsl.jobs import estimated_work, relay_events, report_events


@pytest.fixture
def two_specs(tmp_path, tiny_spec):
    first = tmp_path / "first.clamp"
    first.write_text(tiny_spec.read_text())
    second = tmp_path / "second.clamp"
    second.write_text(tiny_spec.read_text().replace("lr=1e-3", "lr=2e-3"))
    return first, second


def test_progress_events_replay_into_the_same_callbacks():
    calls = []

    def on_group(index, runs, total, start):
        calls.append(("group", index, runs, total, start))
        return lambda step, losses: calls.append(("step", index, step, losses))

    stream = io.StringIO()
    on_progress = report_events(stream)(1, ("a", "b"), 60, 20)
    on_progress(40, {"a": 0.5, "b": 0.25})
    on_progress(41, {})
    lines = ["a library's stray print\n", *stream.getvalue().splitlines(keepends=True)]
    relay_events(lines, on_group)
    assert calls == [
        ("group", 1, ("a", "b"), 60, 20),
        ("step", 1, 40, {"a": 0.5, "b": 0.25}),
        ("step", 1, 41, {}),
    ]


def test_specs_run_at_once_give_what_each_gives_alone(tmp_path, two_specs):
    result = clampdsl("run", *two_specs, "--jobs", "2", "--out", tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    assert "2 specs, 2 at a time" in result.stdout
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


def test_the_longest_specs_start_first():
    paper = sorted((ROOT / "specs" / "paper").glob("*.clamp"))
    order = sorted(paper, key=lambda spec: -estimated_work(api.compile_file(spec)))
    # Measured, one after the other on 2 cores: Fig. 6 300 s, 4b 190, 5b 140, 8 and 3 90.
    assert [spec.stem for spec in order] == ["fig6", "fig4b", "fig5b", "fig8", "fig3"]
