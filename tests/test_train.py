"""Training: batched equals separate, a killed run resumes exactly, phases are detected."""

import copy
import io
import math
import types
from functools import partial
from pathlib import Path

import pytest
import torch
from rich.console import Console

from clampdsl import api
from clampdsl.analysis.phase import phase_step, plateau_exit_step
from clampdsl.compile import compile_source, resources
from clampdsl.report import console, tables
from clampdsl.report.summary import summarize
from clampdsl.train.checkpoint import read as read_checkpoint
from clampdsl.train.loop import train_group

TINY = """clampdsl 1
model layers=2 heads=2 d_model=16
task classes=10 new_classes=10 features=synthetic(dim=16, correlation=0.5)
train steps=30 batch=8 lr=1e-3
eval every 10 steps on train, relabel, new-classes size=64
measure induction-strength of L2.H*
"""
EXPERIMENTS = {
    "base": "    ablate L2.H1\n",
    "copy": "    clamp logits to scores of L2.H0\n",
    "layer1": "    clamp L1.out to shifted-embedding\n    ablate L2.H1\n",
    "windowed": "    clamp L1.H0 to prev-token strength 0.9 from step 10 until step 20\n",
}


def spec(names) -> str:
    return TINY + "".join(f"experiment {n}:\n{EXPERIMENTS[n]}" for n in names)


def losses(records, run):
    return [r["train.loss"] for r in records if r["run"] == run]


def test_batched_training_equals_separate_training():
    plan = compile_source(spec(EXPERIMENTS))
    together = train_group(plan, 0).records
    for name in EXPERIMENTS:
        alone = train_group(compile_source(spec([name])), 0).records
        assert losses(together, name) == pytest.approx(losses(alone, name), abs=1e-4)
        assert len(losses(alone, name)) == 4  # steps 0, 10, 20, 30


def test_runs_with_different_tasks_train_together_as_they_would_alone():
    experiments = {
        "base": "    ablate L2.H1\n",
        "classes": "    task classes=20 features=synthetic(dim=16, correlation=0.8)\n",
        "seeded": "    train data_seed=4 eval_seed=2\n    clamp L2.H0 to induction\n",
    }
    source = TINY + "".join(f"experiment {n}:\n{body}" for n, body in experiments.items())
    plan = compile_source(source)
    assert len(plan.groups) == 1
    together = train_group(plan, 0).records
    for name, body in experiments.items():
        alone = train_group(compile_source(TINY + f"experiment {name}:\n{body}"), 0).records
        assert losses(together, name) == pytest.approx(losses(alone, name), abs=1e-4)
        relabel = [r["relabel.loss"] for r in alone if r["run"] == name]
        assert relabel == pytest.approx(
            [r["relabel.loss"] for r in together if r["run"] == name], abs=1e-4
        )
    # and the data really differ: the runs do not all see the same losses at step 0
    first = {r["run"]: r["train.loss"] for r in together if r["step"] == 0}
    assert first["classes"] != pytest.approx(first["base"], abs=1e-4)


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path):
    path = tmp_path / "tiny.clamp"
    path.write_text(spec(["base", "copy"]) + "train checkpoint_every=10\n")
    reference = api.run(path, tmp_path / "a", device="cpu").records

    class Killed(Exception):
        pass

    def kill_at_step_25(index, runs, total, start):
        def on_progress(step, losses):
            if step == 25:
                raise Killed

        return on_progress

    with pytest.raises(Killed):
        api.run(path, tmp_path / "b", device="cpu", on_group=kill_at_step_25)
    started = []

    def record_start(index, runs, total, start):
        started.append(start)
        return lambda step, losses: None

    resumed = api.run(path, tmp_path / "b", device="cpu", on_group=record_start)
    assert started == [20]
    assert [(r["run"], r["step"]) for r in resumed.records] == [
        (r["run"], r["step"]) for r in reference
    ]
    for run in ("base", "copy"):
        assert losses(resumed.records, run) == pytest.approx(losses(reference, run), abs=1e-5)
    again = api.run(path, tmp_path / "b", device="cpu")
    assert again.reused and again.summaries == resumed.summaries


def test_a_run_killed_before_its_first_checkpoint_starts_over_without_duplicate_rows(tmp_path):
    path = tmp_path / "tiny.clamp"
    path.write_text(spec(["base"]) + "train checkpoint_every=20\n")
    reference = api.run(path, tmp_path / "a", device="cpu").records

    class Killed(Exception):
        pass

    def kill_at_step_15(index, runs, total, start):
        def on_progress(step, losses):
            if step == 15:  # evals at 0 and 10 are written; no checkpoint yet
                raise Killed

        return on_progress

    with pytest.raises(Killed):
        api.run(path, tmp_path / "b", device="cpu", on_group=kill_at_step_15)
    resumed = api.run(path, tmp_path / "b", device="cpu")
    rows = [(r["run"], r["step"]) for r in resumed.records]
    assert rows == [(r["run"], r["step"]) for r in reference]
    assert losses(resumed.records, "base") == pytest.approx(losses(reference, "base"), abs=1e-6)


def test_checkpoints_load_weights_only(tmp_path):
    path = tmp_path / "tiny.clamp"
    path.write_text(spec(["base"]))
    result = api.run(path, tmp_path, device="cpu")
    files = sorted(p.name for p in (result.directory / "checkpoints").glob("*.pt"))
    assert files == ["group0-step30.pt", "group0.pt"]  # the last weights are kept for grafts
    for name in files:
        state = read_checkpoint(result.directory / "checkpoints" / name, result.plan.content_hash())
        assert state["step"] == 30


def test_phase_step_is_the_first_eval_satisfying_the_rule():
    plan = compile_source(spec(["base"]))
    records = [
        {"run": "base", "step": s, "train.loss": v}
        for s, v in [(0, 2.0), (10, 0.72), (20, 0.70), (30, 0.25), (40, 0.1)]
    ]
    assert phase_step(records, plan.phase) == 30
    assert plateau_exit_step(records) == 30
    assert phase_step(records[:3], plan.phase) is None
    assert phase_step([{"run": "base", "step": 0, "train.loss": math.nan}], plan.phase) is None


def test_report_says_not_reached_diverged_and_speedup():
    plan = compile_source(spec(["base", "copy", "layer1"]))
    records = []
    for step, (a, b, c) in enumerate([(0.7, 0.7, 0.7), (0.7, 0.2, 0.7), (0.2, 0.1, math.nan)]):
        for run, value in zip(("base", "copy", "layer1"), (a, b, c), strict=True):
            records.append(
                {"run": run, "step": step * 10, "sequences": step * 80, "train.loss": value}
            )
    summaries = summarize(plan, records)
    table = tables.phase_table(plan, summaries)
    rows = {row[0]: dict(zip(table.columns, row, strict=True)) for row in table.rows}
    assert rows["base"]["phase step"] == "20" and rows["copy"]["phase step"] == "10"
    assert rows["copy"]["speed-up"] == "2.0×"  # base's phase step 20 / copy's 10
    assert rows["layer1"]["phase step"] == "diverged at 20"
    assert "gives" not in table.columns  # the spec declares no subcircuits
    # the command's warnings (stderr) name the diverged run alone, with its step
    out, warnings = io.StringIO(), io.StringIO()
    result = types.SimpleNamespace(plan=plan, summaries=summaries, directory=Path("d"))
    console.print_outcome(Console(file=out, width=200), Console(file=warnings), result)
    assert warnings.getvalue() == "warning: layer1 diverged (non-finite loss at step 20)\n"
    assert "diverged at 20" in out.getvalue()


def test_speed_ups_compare_with_the_unclamped_run_of_the_same_task():
    more = "    task classes=20\n"
    source = spec(["base", "copy"]) + f"experiment base20:\n{more}"
    source += f"experiment copy20:\n{more}{EXPERIMENTS['copy']}"
    plan = compile_source(source)
    phase = {"base": 40, "copy": 10, "base20": 80, "copy20": 10}
    records = [
        {"run": run, "step": step, "train.loss": 0.1 if step >= phase[run] else 0.7}
        for run in phase
        for step in range(0, 90, 10)
    ]
    speedups = {s.name: s.speedup for s in summarize(plan, records)}
    assert speedups == {"base": 1.0, "copy": 4.0, "base20": 1.0, "copy20": 8.0}


def test_measures_read_attention_with_clamps_active():
    from conftest import clamp_state

    from clampdsl.model.transformer import BatchedTransformer
    from clampdsl.tasks.fewshot import FewShotTask
    from clampdsl.train.evaluate import chunk_sums, evaluate

    plan = compile_source(TINY + "experiment e:\n    clamp L2.H0 to induction strength 0.7\n")
    run = plan.runs[0]
    task = FewShotTask(run.task)
    model = BatchedTransformer(run.model, task.table.shape[-1], run.task.labels, [5])
    probe = {"train": task.sample(32, torch.Generator().manual_seed(0))}
    sums = partial(chunk_sums, model, plan.measures), partial(chunk_sums, model, ())
    clamps = clamp_state([run])
    results = evaluate(sums, model.prepare_for, clamps, probe, plan.measures)
    # The paper's induction strength of a clamped head is 2s - 1.
    assert results["induction-strength L2.H0"].item() == pytest.approx(0.4)
    assert abs(results["induction-strength L2.H1"].item()) < 0.2


def test_evals_in_chunks_give_what_one_forward_gives(monkeypatch):
    from conftest import clamp_state

    from clampdsl.model.transformer import BatchedTransformer
    from clampdsl.tasks.fewshot import FewShotTask
    from clampdsl.train import evaluate as module

    plan = compile_source(spec(["base", "copy"]))
    task = FewShotTask(plan.runs[0].task)
    model = BatchedTransformer(plan.runs[0].model, task.table.shape[-1], 5, [5, 6])
    clamps = clamp_state(plan.runs)
    sets = task.eval_sets(("train", "relabel"), 51, seed=1)
    sums = (
        partial(module.chunk_sums, model, plan.measures),
        partial(module.chunk_sums, model, ()),
    )
    whole = module.evaluate(sums, model.prepare_for, clamps, sets, plan.measures)
    monkeypatch.setattr(resources, "RUN_SEQUENCES_PER_FORWARD", 32)  # 13, 13, 13, 12 sequences
    monkeypatch.setattr(resources, "MIN_SEQUENCES_PER_FORWARD", 1)
    chunked = module.evaluate(sums, model.prepare_for, clamps, sets, plan.measures)
    assert whole.keys() == chunked.keys() and any(k.startswith("induction") for k in whole)
    for key, value in whole.items():
        torch.testing.assert_close(chunked[key], value, atol=1e-5, rtol=1e-5)


def test_eval_sets_split_into_equal_chunks_that_fit_the_group():
    from clampdsl.train.evaluate import chunk_size

    assert [chunk_size(1000, runs) for runs in (1, 6, 32, 64)] == [1000, 500, 200, 200]
    assert chunk_size(1000, 7) == 250  # at most 457 each: 3 chunks, but 1000 splits into 4
    assert chunk_size(997, 6) == 499  # a prime: two chunks, the last one shorter
    assert chunk_size(150, 5000) == 150  # never narrower than the minimum
    assert chunk_size(1000, 64, "cuda") == 1000


def test_checkpoints_load_whatever_order_they_hold_the_runs_in():
    from clampdsl.train.session import GroupSession

    plan = compile_source(spec(EXPERIMENTS))  # "layer1" needs pass 1: it is batched last
    trained = GroupSession(plan, 0)
    for step in range(3):
        trained.train_step(step)
    state = copy.deepcopy(trained.state_dict())  # as saved: not the live tensors
    expected = trained.train_step(3)
    assert state["runs"] == ["base", "copy", "windowed", "layer1"]
    # as a checkpoint from before batching order: no run list, runs in plan order
    plan_order = torch.tensor([0, 1, 3, 2])  # base, copy, layer1, windowed
    old = {
        "model": {name: t[plan_order] for name, t in state["model"].items()},
        "optimizer": {
            "exp_avg": {n: t[plan_order] for n, t in state["optimizer"]["exp_avg"].items()},
            "exp_avg_sq": {n: t[plan_order] for n, t in state["optimizer"]["exp_avg_sq"].items()},
            "count": state["optimizer"]["count"],
        },
    }
    for checkpoint in (state, old):
        resumed = GroupSession(plan, 0)
        resumed.load_state_dict(checkpoint)
        for name, value in resumed.state_dict()["model"].items():
            assert torch.equal(value, state["model"][name]), name
        torch.testing.assert_close(resumed.train_step(3), expected)
