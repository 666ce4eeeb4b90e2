"""The executor seam (clampdsl/executors): a group's task and outcome cross a process or a
cluster as JSON unchanged, a child's progress is thinned but never its evals or records,
a child's recovery warnings reach the driver, and backends are chosen by the table."""

import json
import warnings

import pytest
from conftest import RESUMABLE_IN_TWO_GROUPS

from clampdsl import executors
from clampdsl.compile import compile_source
from clampdsl.durable import RecoveryWarning
from clampdsl.executors.group import (
    GroupOutcome,
    GroupTask,
    relaying_warnings,
    throttled,
)


def test_a_task_and_an_outcome_cross_as_json_unchanged():
    plan = compile_source(RESUMABLE_IN_TWO_GROUPS, "/specs/spec.clamp")
    task = GroupTask(plan, 1, "/runs/spec/0123/checkpoints", "cpu", "auto", threads=1)
    crossed = GroupTask.from_json(json.loads(json.dumps(task.to_json())))
    assert crossed == task
    assert crossed.plan.content_hash() == plan.content_hash()  # its checkpoints' plan
    outcome = GroupOutcome(({"run": "base", "step": 0, "train.loss": 0.5},), True, {"train": 1.0})
    assert GroupOutcome.from_json(json.loads(json.dumps(outcome.to_json()))) == outcome


def test_progress_between_evals_is_thinned_and_nothing_else():
    sent = []
    send = throttled(sent.append)
    steps = [{"event": "progress", "step": step, "losses": {}} for step in range(1, 100)]
    evaluated = {"event": "progress", "step": 100, "losses": {"base": 0.5}}
    records = {"event": "records", "records": [{"run": "base", "step": 100}]}
    for event in [*steps, records, evaluated]:
        send(event)
    assert sent == [steps[0], records, evaluated]  # the steps after the first came too soon


def test_a_recovery_warning_where_a_group_trains_becomes_an_event():
    events = []
    with warnings.catch_warnings(record=True) as shown, relaying_warnings(events.append):
        warnings.simplefilter("always")
        message = "group0.pt: damaged; resuming from the previous one"
        warnings.warn(message, RecoveryWarning, stacklevel=1)
    assert events == [{"event": "warning", "message": message}]
    assert not shown  # not also shown where it trained


def test_backends_come_from_the_table():
    assert executors.choose().concurrent is False  # in this process
    assert executors.choose("local", jobs=2).concurrent
    with pytest.raises(ValueError, match="'slurm' is not one of local, ray"):
        executors.choose("slurm")
