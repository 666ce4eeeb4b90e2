"""The training loop: one batched model per group of runs, executing the Plan.

A group's runs share model shape, task and schedule; they see the same data batches
(common random numbers) and each starts from its own init seed (the same seed by default,
as the paper). Evaluation happens before the step it is labelled with (the reference's
`eval_iter`), plus once at the end. Nothing in the step loop waits for the device: losses
are read at evals only.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import torch

from clampdsl import failpoints
from clampdsl.compile.plan import Plan, Run
from clampdsl.timing import Phases
from clampdsl.train.checkpoint import Checkpointer
from clampdsl.train.session import GroupSession

Record = dict  # one eval of one run: {"run", "step", "sequences", "train.loss", …}
PHASES = ("build", "first step", "train", "evals", "checkpoints")  # a group's wall time


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training: the group's checkpoint at `step` was saved first."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


@attrs.frozen
class GroupResult:
    runs: tuple[str, ...]
    records: tuple[Record, ...]
    compiled: bool  # whether the train step ran compiled
    phases: dict[str, float]  # wall seconds of each of PHASES

    @property
    def eval_seconds(self) -> float:
        return self.phases.get("evals", 0.0)


def train_group(
    plan: Plan,
    group_index: int,
    device: torch.device | str = "cpu",
    on_progress: Callable[[int, dict[str, float]], None] | None = None,
    on_records: Callable[[list[Record]], None] | None = None,
    checkpointer: Checkpointer | None = None,
    compile: str = "off",
    on_start: Callable[[int, list[Record]], None] | None = None,
    store: Path | None = None,
) -> GroupResult:
    """Trains a group from its last checkpoint in `checkpointer` (the one place a group
    resumes), or from step 0; `on_start(step, records)` hears where it starts and the
    records the checkpoint holds. A group trained to the end before returns those records
    without building anything. The first step is timed apart from the others: it is where
    the step compiles. `store`: the run store, where the runs of grafts' donor specs are."""
    saved = checkpointer.load(group_index) if checkpointer is not None else None
    start, records = (int(saved["step"]), list(saved["records"])) if saved else (0, [])
    if on_start:
        on_start(start, records)
    if start == plan.run(plan.groups[group_index].runs[0]).train.steps:
        order = plan.groups[group_index].schedule.order
        compiled = saved["session"].get("compiled", False)  # older checkpoints: eager
        return GroupResult(tuple(order), tuple(records), compiled, {})
    phases, started = Phases(), time.perf_counter()
    with phases("build"):  # model, clamps, data and eval sets
        session = GroupSession(plan, group_index, device, compile, store)
        if saved is not None:
            session.load_state_dict(saved["session"])
    if start == 0:
        # Fresh groups only: a resumed group compiles its evals itself, so that its next
        # evals are the compiled ones an unbroken run computes (no eager eval in between).
        session.compile_evals_in_background()
    steps, every = session.config.train.steps, session.config.eval.every
    due = _evals_due(plan, session.config.eval, records)
    keep_every = session.config.train.keep_every
    checkpoint_every = session.config.train.checkpoint_every

    def run_eval(step: int) -> None:
        if session.device.type == "cuda":
            torch.cuda.synchronize(session.device)  # steps still queued are not the eval's
        with phases("evals"):
            new = _records(session.runs, step, session.evaluate(step))  # copies out: in sync
        failpoints.reach("eval")
        key = _first_loss(new[0])
        records.extend(new)
        if on_records:
            on_records(new)
        if on_progress:
            on_progress(step, {r["run"]: r[key] for r in new})

    with _deferred_interrupt() as interrupted:
        for step in range(start, steps):
            if due(step) and not (step == start and records):
                run_eval(step)
            if checkpointer is not None and (
                checkpointer.due(step, start, checkpoint_every) or interrupted.is_set()
            ):
                with phases("checkpoints"):
                    checkpointer.save(group_index, step, session.state_dict(), records)
            if interrupted.is_set():
                raise Interrupted(step)
            if checkpointer is not None and keep_every and step % keep_every == 0 and step:
                with phases("checkpoints"):
                    checkpointer.keep(group_index, step, session.state_dict())
            failpoints.reach("step")
            if step == start:
                with phases("first step"):
                    session.train_step(step).sum().item()  # in sync: it includes compiling
            else:
                session.train_step(step)
            if on_progress and (step + 1) % every:
                on_progress(step + 1, {})
    if not records or records[-1]["step"] != steps:
        run_eval(steps)
    if checkpointer is not None:
        with phases("checkpoints"):
            checkpointer.save(group_index, steps, session.state_dict(), records)
            checkpointer.keep(group_index, steps, session.state_dict())
    # The other steps: the rest of the wall time (timing each step would wait for the device).
    phases.add("train", time.perf_counter() - started - sum(phases.seconds.values()))
    runs = tuple(r.name for r in session.runs)
    ordered = {name: phases.seconds[name] for name in PHASES if name in phases.seconds}
    return GroupResult(runs, tuple(records), session.compiled, ordered)


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[threading.Event]:
    """A first Ctrl-C sets the event, for the loop to checkpoint between steps (a step cut
    short would leave the weights half updated); a second one interrupts at once. Outside
    the main thread, where no handler can be set, Ctrl-C acts as ever."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def on_interrupt(signum, frame):
        if event.is_set():
            raise KeyboardInterrupt
        event.set()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


def _records(runs: list[Run], step: int, results: dict[str, torch.Tensor]) -> list[Record]:
    values = {key: tensor.detach().float().cpu().tolist() for key, tensor in results.items()}
    return [
        {"run": run.name, "step": step, "sequences": step * run.train.batch}
        | {key: column[r] for key, column in values.items()}
        for r, run in enumerate(runs)
    ]


def _evals_due(plan: Plan, evals, records: list[Record]) -> Callable[[int], bool]:
    """Whether an eval is due at a step: every `evals.every` steps, and every
    `evals.near_every` while a run of the group is near its phase change at the latest eval
    (PhaseRule.near_band). Read off the records, so a resumed group evaluates where an
    unbroken one does."""
    if evals.near_every is None:
        return lambda step: step % evals.every == 0
    rule, seen = plan.phase, {"records": -1, "near": False}

    def near() -> bool:  # at the latest eval; looked at again only after a new one
        if seen["records"] != len(records):
            latest = [r for r in records if r["step"] == records[-1]["step"]] if records else []
            seen["near"] = any(rule.is_near(r.get(rule.key, math.nan)) for r in latest)
            seen["records"] = len(records)
        return seen["near"]

    return lambda step: step % evals.every == 0 or (step % evals.near_every == 0 and near())


def _first_loss(record: Record) -> str:
    return next(key for key in record if key.endswith(".loss"))
