"""What the fuzz tests share (tests/test_fuzz.py, test_fuzz_mutations.py): hypothesis's
settings for a quick and a long run, and the oracle every input goes through. The only
outcomes allowed: a plan, or a SpecError whose diagnostics all lie inside the file; what
compiles trains a step on the CPU."""

import json

import attrs
from hypothesis import HealthCheck, settings
from oracle import assert_located

from clampdsl.compile import compile_source
from clampdsl.compile.plan import Plan
from clampdsl.lang.diagnostics import SpecError

FILE = "no-such-folder/fuzz.clamp"  # where donor paths start: they lead to no saved run
QUICK = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
LONG = settings(QUICK, max_examples=5000)
TRAINED = settings(QUICK, max_examples=10)  # those that compile train a step each
TRAINED_LONG = settings(QUICK, max_examples=150)


def outcome(text: str, file: str = FILE) -> Plan | None:
    """The plan of `text`, or None after a SpecError that is well located; any other
    exception propagates (and fails the test)."""
    try:
        plan = compile_source(text, file)
    except SpecError as error:
        assert_located(error, text, file)
        return None
    json.dumps(plan.to_json())  # a plan is plain data, whatever was written
    plan.content_hash()
    return plan


def train_a_step(plan: Plan) -> None:
    """Every group of the plan, shrunk to one step of a small batch, trains and evaluates
    on the CPU, eagerly; a plan too large to build in a test, or grafting from a donor spec
    (whose weights only a trained donor run gives: tests/test_graft_by_spec.py), is left at
    compiling."""
    import torch

    from clampdsl.compile import donor_specs
    from clampdsl.train.session import GroupSession

    if not all(_small(run) for run in plan.runs) or donor_specs.named([plan]):
        return
    runs = tuple(
        attrs.evolve(
            run,
            train=attrs.evolve(run.train, steps=1, batch=2),
            eval=attrs.evolve(run.eval, every=1, size=8),
        )
        for run in plan.runs
    )
    small = attrs.evolve(plan, runs=runs)
    for index in range(len(small.groups)):
        session = GroupSession(small, index, "cpu", compile="off")
        losses = session.train_step(0)
        assert losses.shape == (len(small.groups[index].runs),)
        metrics = session.evaluate(1)
        assert all(isinstance(value, torch.Tensor) for value in metrics.values())


def _small(run) -> bool:
    model, task = run.model, run.task
    return (
        model.layers <= 4
        and model.heads * model.layers <= 32
        and model.d_model <= 128
        and task.features.dim <= 512
        and task.classes + task.new_classes <= 2000
        and task.labels <= 1000
    )
