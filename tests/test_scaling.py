"""Scaling fits over sweeps (analysis/scaling.py): a power law per experiment and swept
setting, and what the setting slows, read off which handed-over subcircuits stop it."""

import pytest

from clampdsl.analysis import scaling
from clampdsl.compile import compile_source
from clampdsl.report import tables
from clampdsl.report.summary import summarize

SPEC = """clampdsl 1
model layers=2 heads=8 d_model=64
train steps=1000
subcircuit A "previous token" = L1.H*.pattern to prev-token, L1.out to shifted-embedding feeds B
subcircuit B "match" = L2.H*.pattern to induction or match
subcircuit C "copy" = logits to scores
sweep task.classes in 50, 100, 200
experiment prev_token:
    clamp L1.H2 to prev-token
experiment noclamp
experiment layer1:
    clamp L1.out to shifted-embedding
experiment match:
    clamp L2.H3 to induction
experiment copy:
    clamp logits to scores of L2.H3
"""
# Sequences to the phase change at 50, 100, 200 classes: what classes slow is the match.
LAWS = {
    "prev_token": lambda x: 500.0,  # part of A given: neither unclamped nor a condition
    "noclamp": lambda x: 600 * (x / 50) ** 0.5,
    "layer1": lambda x: 100 * (x / 50) ** 0.45,
    "match": lambda x: 50 * (x / 50) ** 0.02,
    "copy": lambda x: 60 * (x / 50) ** 0.4,
}


def steps(plan, laws) -> dict[str, int | None]:
    return {
        run.name: laws[run.experiment](float(dict(run.point)["task.classes"])) for run in plan.runs
    }


def test_a_power_law_is_fitted_per_experiment_and_says_what_the_sweep_slows():
    plan = compile_source(SPEC)
    found = {fit.experiment: fit for fit in scaling.fits(plan, steps(plan, LAWS))}
    assert found["noclamp"].exponent == pytest.approx(0.5)
    assert found["noclamp"].r2 == pytest.approx(1.0)
    assert found["match"].gives == ("A", "B") and found["match"].exponent < 0.05
    assert found["prev_token"].partial and not found["noclamp"].partial
    (sentence,) = scaling.sentences(list(found.values()))
    assert sentence.startswith("classes slows the unclamped phase change (T ∝ classes^0.50")
    assert "it slows B (given A+B, T ∝ classes^0.02" in sentence


def test_censored_runs_are_counted_not_fitted_and_too_few_cannot_tell():
    plan = compile_source(SPEC)
    laws = LAWS | {"noclamp": lambda x: None if x > 50 else 600}
    found = {fit.experiment: fit for fit in scaling.fits(plan, steps(plan, laws))}
    assert found["noclamp"].censored == 2 and found["noclamp"].exponent is None
    assert "cannot tell" in scaling.sentences(list(found.values()))[0]


def test_a_flat_unclamped_run_is_no_slowing_and_every_report_has_the_table():
    plan = compile_source(SPEC)
    records = [
        {"run": run.name, "step": step, "sequences": step * 32, "train.loss": loss}
        for run in plan.runs
        for step, loss in ((0, 1.0), (300, 0.1), (1000, 0.05))
    ]
    summaries = summarize(plan, records)
    table = tables.scaling_table(plan, summaries)
    assert table.notes == (
        "classes does not clearly slow the unclamped phase change (T ∝ classes^0.00, R² 1.00).",
    )
    assert table in tables.result_tables(plan, summaries)
    assert [row[:3] for row in table.rows[:2]] == [
        ("prev_token", "task.classes", "part of a subcircuit"),
        ("noclamp", "task.classes", "–"),
    ]
    seeded = compile_source(SPEC.replace("sweep task.classes in 50, 100, 200", "seeds 1..3"))
    assert tables.scaling_table(seeded, summarize(seeded, [])) is None  # seeds: no quantity
