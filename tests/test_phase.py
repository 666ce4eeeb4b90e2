"""Phase-change estimators (analysis/phase.py) on curves of known shape: a sigmoid drop
from the plateau, a drop with no plateau before it, a run that never leaves the plateau,
noise; and the report's table of them."""

import math
import random

import pytest

from clampdsl.analysis.phase import (
    PLATEAU_EXIT,
    plateau_exit_step,
    sigmoid_fit,
    steepest_descent_step,
)
from clampdsl.compile import compile_source
from clampdsl.report import tables
from clampdsl.report.markdown import report_markdown
from clampdsl.report.summary import RunSummary, summarize

LN2 = math.log(2)


def curve(loss, steps=range(0, 5001, 100), run="r"):
    return [{"run": run, "step": s, "train.loss": loss(s)} for s in steps]


def plateau_then_drop(midpoint, scale, noise=0.0, seed=0):
    """2.0 falling onto the plateau (ln 2) in the first few hundred steps, then a logistic
    drop to 0.02 at `midpoint`."""
    rng = random.Random(seed)

    def loss(step):
        onto = (2.0 - LN2) * math.exp(-step / 80)
        drop = (LN2 - 0.02) / (1 + math.exp((step - midpoint) / scale))
        return 0.02 + drop + onto + rng.gauss(0, noise)

    return loss


def test_a_sigmoid_drop_is_found_by_every_estimator():
    records = curve(plateau_then_drop(3000, 120))
    fit = sigmoid_fit(records)
    assert fit.midpoint == pytest.approx(3000, abs=40)
    assert fit.width == pytest.approx(2 * math.log(9) * 120, rel=0.15)
    assert fit.r2 > 0.99
    assert fit.high == pytest.approx(LN2, abs=0.02)
    assert steepest_descent_step(records) == pytest.approx(3000, abs=100)
    exit_step = plateau_exit_step(records)
    assert 2700 <= exit_step <= 2900  # the first eval 10% of the way down, under 0.9 ln 2


def test_the_early_fall_onto_the_plateau_is_not_taken_for_the_phase_change():
    """The fall from 2.0 to ln 2 is steeper than the drop; the estimators read from the
    plateau on."""
    records = curve(plateau_then_drop(4000, 300))
    assert steepest_descent_step(records) > 3000
    assert sigmoid_fit(records).midpoint == pytest.approx(4000, abs=60)


def test_noise_moves_the_estimates_little():
    records = curve(plateau_then_drop(2500, 150, noise=0.03, seed=3), range(0, 6001, 50))
    assert steepest_descent_step(records) == pytest.approx(2500, abs=200)
    assert sigmoid_fit(records).midpoint == pytest.approx(2500, abs=80)


def test_a_run_that_stays_on_the_plateau_has_no_phase_change_by_any_estimator():
    records = curve(lambda s: LN2 + 0.3 * math.exp(-s / 80) + 0.001 * math.sin(s))
    assert sigmoid_fit(records) is None  # censored, never the last step
    assert plateau_exit_step(records) is None


def test_a_drop_still_under_way_at_the_end_is_censored():
    records = curve(plateau_then_drop(5600, 200))  # halfway down only after the last eval
    assert sigmoid_fit(records) is None


def test_a_drop_with_no_plateau_before_it_is_read_from_the_start():
    records = curve(lambda s: 0.01 + 1.9 / (1 + math.exp((s - 300) / 60)), range(0, 3001, 50))
    assert sigmoid_fit(records).midpoint == pytest.approx(300, abs=20)
    assert steepest_descent_step(records) == pytest.approx(300, abs=60)


def test_too_few_evals_give_no_estimate_and_non_finite_values_are_skipped():
    assert sigmoid_fit(curve(plateau_then_drop(300, 50), range(0, 401, 100))) is None
    records = curve(plateau_then_drop(3000, 120))
    records[10]["train.loss"] = math.nan
    assert sigmoid_fit(records).midpoint == pytest.approx(3000, abs=40)
    assert PLATEAU_EXIT < LN2


SPEC = """clampdsl 1
model layers=2 heads=2 d_model=16
task classes=10 features=synthetic(dim=16)
train steps=5000 batch=8
eval every 100 steps on train size=64
subcircuit A "the first layer's part" = L1.out to shifted-embedding
experiment base
experiment slow:
    train lr=1e-4
"""


def test_the_report_gives_each_estimator_and_the_declared_subcircuits():
    plan = compile_source(SPEC)
    records = curve(plateau_then_drop(3000, 120), run="base")
    records += curve(lambda s: LN2 + 0.01 * math.cos(s), run="slow")
    summaries = summarize(plan, records)
    table = tables.estimators_table(plan, summaries)
    base, slow = table.rows
    assert base[0] == "base" and base[4].startswith("3,0")
    assert slow[1:5] == ("–", "–", slow[3], "–")  # not reached: no step, by rule or fit
    assert RunSummary.from_json(summaries[0].to_json()) == summaries[0]
    text = report_markdown(plan, summaries, {"seconds": 1.0, "eval_seconds": 0.1}, "cpu", [])
    assert "Phase change by estimator" in text
    assert "A = the first layer's part" in text  # what gives/learns name, as declared


def test_a_summary_written_before_the_estimators_still_reads():
    old = {
        "name": "base",
        "description": "",
        "gives": "–",
        "learns": "–",
        "phase_step": 100,
        "phase_sequences": 800,
        "plateau_exit_step": None,
        "start_loss": 2.0,
        "final": {},
        "measures": {},
        "speedup": None,
        "diverged_at": None,
    }
    assert RunSummary.from_json(old).sigmoid_midpoint is None
