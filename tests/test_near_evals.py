"""`eval every N steps, every M steps near phase`: extra evals while a run of the group is
near its phase change, and nowhere else; training itself is untouched, a resumed group
evaluates where an unbroken one does, and a spec without the clause keeps its plan hash."""

import json

import pytest

from clampdsl.compile import compile_source
from clampdsl.lang.diagnostics import SpecError
from clampdsl.train.checkpoint import Checkpointer
from clampdsl.train.loop import train_group

# The tiny model's loss falls from 1.76 through 0.99 (step 100) and 0.81 (200) to ~0.73:
# with the rule `train.loss < 0.4` it is near (0.4 < loss < 0.9) from the eval at 200 on.
SPEC = """clampdsl 1
model layers=2 heads=2 d_model=16
task classes=20 features=synthetic(dim=16, correlation=0.5)
train steps=300 batch=16 lr=3e-3 seed=1 checkpoint_every=250
eval every 100 steps{near} on train size=64
phase train.loss < 0.4
experiment base
"""
NEAR = ", every 10 steps near phase"


def steps_and_losses(records) -> dict[int, float]:
    return {r["step"]: r["train.loss"] for r in records}


@pytest.fixture(scope="module")
def sparse():
    return steps_and_losses(train_group(compile_source(SPEC.format(near="")), 0).records)


@pytest.fixture(scope="module")
def unbroken():
    return train_group(compile_source(SPEC.format(near=NEAR)), 0).records


def test_evals_are_denser_only_while_a_run_is_near_its_phase(sparse, unbroken):
    plan = compile_source(SPEC.format(near=NEAR))
    dense = steps_and_losses(unbroken)
    assert list(sparse) == [0, 100, 200, 300]
    assert {step: dense[step] for step in sparse} == sparse  # training is the same
    extra = sorted(set(dense) - set(sparse))
    assert extra[0] == 210 and all(step % 10 == 0 for step in extra)  # after 200's eval
    for step in extra:  # each follows an eval that was near the phase change
        latest = max(s for s in dense if s < step)
        assert plan.phase.is_near(dense[latest])


def test_a_resumed_group_evaluates_where_an_unbroken_one_does(tmp_path, unbroken):
    plan = compile_source(SPEC.format(near=NEAR))

    class Killed(Exception):
        pass

    def kill_after_the_checkpoint(step, losses):
        if step == 260:
            raise Killed

    checkpointer = Checkpointer(tmp_path, plan.content_hash())
    with pytest.raises(Killed):
        train_group(plan, 0, on_progress=kill_after_the_checkpoint, checkpointer=checkpointer)
    resumed = train_group(plan, 0, checkpointer=checkpointer).records
    assert [r["step"] for r in resumed] == [r["step"] for r in unbroken]
    assert steps_and_losses(resumed) == pytest.approx(steps_and_losses(unbroken), abs=1e-5)


def test_a_spec_without_the_clause_keeps_its_plan_hash():
    plan = compile_source(SPEC.format(near=""))
    assert "near_every" not in json.dumps(plan.to_json())  # nor so in its hash
    assert plan.content_hash() != compile_source(SPEC.format(near=NEAR)).content_hash()
    near = compile_source(SPEC.format(near=NEAR))
    assert type(near).from_json(near.to_json()) == near


@pytest.mark.parametrize("near", ["every 100 steps", "every 0 steps", "every 200 steps"])
def test_the_near_interval_is_under_the_regular_one(near):
    with pytest.raises(SpecError, match="under the regular one"):
        compile_source(SPEC.format(near=f", {near} near phase"))
