"""One batched group's training, wherever it runs: the task, its events and its outcome.

`run_group(task, emit)` is the one function every executor calls, in this process, in a
child process or in a Ray worker. It trains the group from its last checkpoint (or step
0), writes the group's checkpoints, and tells `emit` what the driver needs to write the
rest of the run directory: where it started and the records its checkpoint held, its
progress, and each eval's records. Tasks, events and outcomes are plain JSON, so that
they cross a pipe or a cluster as they are.

Events, each a dict with an "event" key:
    start     runs (plan order), total (steps), start (step), records (from the checkpoint)
    progress  step, losses (run → loss; empty between evals)
    records   records (one eval's, one per run)
    warning   message (a RecoveryWarning raised where the group trained)
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs

from clampdsl.compile.plan import Plan
from clampdsl.durable import RecoveryWarning

Emit = Callable[[dict], None]
# Progress between evals goes from a child or a task at most this often: a bar needs no
# more, and a message per step would cost the group a share of its core.
PROGRESS_EVERY_S = 0.25
# A rough cost model for starting the longest groups first: a step's fixed cost is about 2
# runs' share of a batched step on a 2-core CPU, and compiling a group costs about as much
# as training 150,000 run-steps.
STEP_OVERHEAD_RUNS = 2
COMPILE_RUN_STEPS = 150_000


@attrs.frozen
class GroupTask:
    plan: Plan  # its file absolute: a graft's donor is found from any working directory
    group: int  # 0-based, in plan order
    checkpoints: str  # the run directory's checkpoints folder, absolute
    device: str  # "cpu", "cuda", …: resolved by the executor
    compile: str  # "auto", "on" or "off"
    threads: int | None = None  # torch threads; None: leave the process's setting
    store: str = ""  # the run store, absolute: where the runs of grafts' donor specs are

    def to_json(self) -> dict:
        return attrs.asdict(self, recurse=False) | {"plan": self.plan.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> GroupTask:
        return cls(**data | {"plan": Plan.from_json(data["plan"])})

    @property
    def work(self) -> int:
        """Run-steps, roughly, that the group will take: for ordering, not for display."""
        runs = self.plan.groups[self.group].runs
        steps = self.plan.run(runs[0]).train.steps
        return steps * (len(runs) + STEP_OVERHEAD_RUNS) + COMPILE_RUN_STEPS


@attrs.frozen
class GroupOutcome:
    """A group trained to its end: every record (from step 0), how it trained, and its wall
    time by phase (loop.py's PHASES; empty for a group that had finished before)."""

    records: tuple[dict, ...]
    compiled: bool
    phases: dict[str, float]

    def to_json(self) -> dict:
        return attrs.asdict(self) | {"records": list(self.records)}

    @classmethod
    def from_json(cls, data: dict) -> GroupOutcome:
        return cls(tuple(data["records"]), data["compiled"], data["phases"])


@attrs.frozen
class GroupFailed:
    """A group that did not finish, and why, in one line or a few."""

    message: str


def longest_first(tasks: list[GroupTask]) -> list[int]:
    """The tasks' indices, the longest group first: for executors that train several at
    once, so that none starts last and trains alone."""
    return sorted(range(len(tasks)), key=lambda index: -tasks[index].work)


def run_group(task: GroupTask, emit: Emit) -> GroupOutcome:
    """Trains the task's group to its end from its last checkpoint, telling `emit`."""
    import torch

    from clampdsl.train.checkpoint import Checkpointer
    from clampdsl.train.loop import train_group

    if task.threads is not None:
        torch.set_num_threads(task.threads)
    plan, index = task.plan, task.group
    group = plan.groups[index]
    steps = plan.run(group.runs[0]).train.steps

    def on_start(start: int, records: list[dict]) -> None:
        runs = list(group.runs)
        emit({"event": "start", "runs": runs, "total": steps, "start": start, "records": records})

    result = train_group(
        plan,
        index,
        torch.device(task.device),
        lambda step, losses: emit({"event": "progress", "step": step, "losses": losses}),
        lambda records: emit({"event": "records", "records": records}),
        Checkpointer(Path(task.checkpoints), plan.content_hash()),
        task.compile,
        on_start,
        Path(task.store) if task.store else None,
    )
    return GroupOutcome(result.records, result.compiled, result.phases)


def throttled(emit: Emit) -> Emit:
    """`emit`, with progress between evals passed on at most every PROGRESS_EVERY_S (what
    comes between is dropped); every other event at once."""
    sent = -math.inf

    def send(event: dict) -> None:
        nonlocal sent
        if event["event"] == "progress" and not event["losses"]:
            if time.monotonic() - sent < PROGRESS_EVERY_S:
                return
            sent = time.monotonic()
        emit(event)

    return send


@contextlib.contextmanager
def relaying_warnings(emit: Emit) -> Iterator[None]:
    """Where a group trains away from the driver: its RecoveryWarnings (a damaged checkpoint
    set aside) go to the driver as events, to be shown there; other warnings as ever."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, RecoveryWarning):
            emit({"event": "warning", "message": str(message)})
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown
