"""A run directory read back (report/rerender.py): finished or cut short, reported again,
drawn as sparklines, and exported as CSV or TensorBoard event files."""

import csv
import io
import json
from pathlib import Path

import pytest
from conftest import RESUMABLE_IN_TWO_GROUPS, clampdsl

import clampdsl as api
from clampdsl.durable import RunError
from clampdsl.report import rerender


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rerender")
    spec = folder / "spec.clamp"
    spec.write_text(RESUMABLE_IN_TWO_GROUPS)
    return api.run(spec, folder / "runs", device="cpu", compile="off")


def test_a_finished_run_reads_back_as_it_was_reported(finished):
    run = rerender.read_run(finished.directory)
    assert run.finished
    assert list(run.summaries) == list(finished.summaries)
    report = finished.directory / "report.md"
    report.unlink()
    # no heads.png nor gating.png: nothing measured, no subcircuits
    assert rerender.rewrite(run) == [finished.directory / "curves.png", report]
    assert "Phase change by estimator" in report.read_text()


def test_a_run_cut_short_reads_as_far_as_its_metrics_go(finished, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "plan.json").write_bytes((finished.directory / "plan.json").read_bytes())
    lines = (finished.directory / "metrics.jsonl").read_text().splitlines(keepends=True)
    torn = lines[3][: len(lines[3]) // 2]  # the line the trainer is writing
    (partial / "metrics.jsonl").write_text("".join(lines[:3]) + torn)
    run = rerender.read_run(partial)
    assert not run.finished
    assert len(run.records) == 3
    assert rerender.rewrite(run) == [partial / "curves.png"]  # no report.md before the end


def test_a_folder_that_is_no_run_directory_is_said_so(tmp_path):
    with pytest.raises(RunError, match="no plan.json here"):
        rerender.read_run(tmp_path)
    (tmp_path / "plan.json").write_text(json.dumps({"version": 0}))
    with pytest.raises(RunError, match="not a plan this clampdsl reads"):
        rerender.read_run(tmp_path)


def test_csv_has_a_row_per_eval_and_a_column_per_measurement(finished, tmp_path):
    run = rerender.read_run(finished.directory)
    rows = list(
        csv.DictReader(io.StringIO(rerender.write_csv(run, tmp_path / "m.csv").read_text()))
    )
    assert len(rows) == len(run.records)
    first = run.records[0]
    assert rows[0]["run"] == first["run"] and int(rows[0]["step"]) == first["step"]
    assert float(rows[0]["train.loss"]) == pytest.approx(first["train.loss"])


def test_sparklines_share_a_scale_and_fit_their_width():
    assert rerender.sparkline([2.0, 1.0, 0.0], 0.0, 2.0) == "█▅▁"
    assert rerender.sparkline([1.0, 1.0], 0.0, 2.0) == "▅▅"  # half way on the shared scale
    long = rerender.sparkline([float(i) for i in range(500)], 0.0, 499.0, width=40)
    assert len(long) == 40 and long[0] == "▁" and long[-1] == "█"
    assert rerender.sparkline([1.0, float("nan"), 0.0], 0.0, 1.0) == "█ ▁"


def test_tensorboard_event_files_hold_every_measurement(finished, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = rerender.read_run(finished.directory)
    folders = rerender.write_tensorboard(run, tmp_path / "tb")
    assert [f.name for f in folders] == [r.name for r in run.plan.runs]
    events = EventAccumulator(str(folders[0]))
    events.Reload()
    steps = [e.step for e in events.Scalars("train.loss")]
    assert steps == [r["step"] for r in run.records if r["run"] == run.plan.runs[0].name]


def test_the_commands_take_the_spec_or_its_run_directory(finished):
    spec, runs = finished.plan.file, finished.directory.parents[1]
    shown = clampdsl("report", spec, "--out", runs)
    assert shown.returncode == 0, shown.stderr
    assert "Phase change by experiment" in shown.stdout
    assert "over training" in shown.stdout  # the sparklines
    assert f"{finished.directory}: finished" in shown.stdout.replace("\n", "")
    exported = clampdsl("export", finished.directory, "--to", finished.directory / "m.csv")
    assert exported.returncode == 0, exported.stderr
    assert (finished.directory / "m.csv").read_text().startswith("run,step,sequences,")
    wrong = clampdsl("export", finished.directory, "--to", "x", "--format", "parquet")
    assert wrong.returncode == 64 and "is not one of csv, tensorboard" in wrong.stderr
    # each wrong target says what it is, and nothing of resuming (nothing was training)
    missing = clampdsl("report", finished.directory / "nothing")
    assert missing.returncode == 1
    assert (
        missing.stderr
        == f"error: {finished.directory / 'nothing'}: no such run directory or spec\n"
    )
    not_a_run = clampdsl("export", finished.directory.parent, "--to", "x.csv")
    assert not_a_run.returncode == 1 and "no plan.json here" in not_a_run.stderr
    other = Path(spec).with_name("other.clamp")
    other.write_text(Path(spec).read_text() + "experiment other\n")
    not_run = clampdsl("report", other, "--out", runs)
    assert not_run.returncode == 1
    assert "other.clamp, as written now, has no run under" in not_run.stderr
    assert "resumes" not in missing.stderr + not_a_run.stderr + not_run.stderr


def test_each_heads_induction_strength_is_drawn_where_it_is_measured(finished, tmp_path):
    from clampdsl.report.plots import plot_heads

    run = rerender.read_run(finished.directory)
    assert plot_heads(run.plan, list(run.records), tmp_path / "none.png") is None  # unmeasured
    measured = [r | {"induction-strength L2.H0": 0.5} for r in run.records]
    drawn = plot_heads(run.plan, measured, tmp_path / "heads.png")
    assert drawn.read_bytes().startswith(b"\x89PNG")
