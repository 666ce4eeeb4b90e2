"""The Python API, for notebooks and scripts: compile, run, and read results.

import clampdsl
plan = clampdsl.compile_file("specs/three_subcircuits.clamp")
result = clampdsl.run("specs/three_subcircuits.clamp")
result.summaries[0].phase_step
clampdsl.load("specs/three_subcircuits.clamp")  # a finished run, read back (or None)
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import attrs

from clampdsl import failpoints
from clampdsl.compile import compile_source, runnable
from clampdsl.compile.plan import Plan
from clampdsl.durable import RecoveryWarning
from clampdsl.report.markdown import report_markdown
from clampdsl.report.plots import plot_curves
from clampdsl.report.store import RunStore
from clampdsl.report.summary import RunSummary, summarize
from clampdsl.timing import Phases


@attrs.frozen
class RunResult:
    plan: Plan
    directory: Path
    summaries: list[RunSummary]
    records: list[dict]
    reused: bool
    phases: dict[str, float] = attrs.field(factory=dict)  # wall seconds, in order

    def summary(self, name: str) -> RunSummary:
        return next(s for s in self.summaries if s.name == name)


# on_group(group_index, run names, total steps, first step) → on_progress(step, losses)
GroupCallback = Callable[[int, tuple[str, ...], int, int], Callable[[int, dict], None]]


def run(
    spec: str | Path,
    out: str | Path = "runs",
    device: str = "auto",
    fresh: bool = False,
    on_group: GroupCallback | None = None,
    compile: str = "auto",
    allow_large: bool = False,
) -> RunResult:
    """Compile and train a spec, write its run directory, and return the summaries.

    A finished run directory for the same plan is reused unless `fresh`; an unfinished
    one resumes from its checkpoints. `compile` is "auto" (compile the train step on CUDA,
    and on CPU for runs long enough to repay it), "on" or "off". A spec over the resource
    guard's budgets (compile/guard.py) is refused with a SpecError unless `allow_large`.
    """
    phases = Phases()
    with phases("plan"):
        plan, store = _plan_and_store(spec, out, guard=not allow_large)
    with phases("imports"):  # torch, mostly
        from clampdsl import accel
        from clampdsl.train.session import resolve_device

        accel.enable()  # the process-wide workarounds (accel/), once
    with store.lock():
        if fresh:
            store.clear()
        if (payload := store.finished()) is not None:
            return attrs.evolve(_load(plan, store, payload), phases=phases.seconds)
        if store.summary_path.exists():
            warnings.warn(
                f"{store.summary_path} does not match its metrics: rebuilt from the checkpoints",
                RecoveryWarning,
                stacklevel=2,
            )
        store.prepare()
        result = _train(plan, store, resolve_device(device), on_group, compile, phases)
        return attrs.evolve(result, phases=phases.seconds)


def _train(plan: Plan, store: RunStore, target, on_group, compile: str, phases) -> RunResult:
    from clampdsl.train.checkpoint import Checkpointer
    from clampdsl.train.loop import train_group

    checkpointer = Checkpointer(store.checkpoints, plan.content_hash())
    started, compiled, eval_seconds, done = time.perf_counter(), [], 0.0, []
    for index, group in enumerate(plan.groups):
        saved = checkpointer.load(index)
        start = int(saved["step"]) if saved else 0
        # The metrics are what the checkpoints hold: what an earlier, killed try wrote
        # beyond its last checkpoint goes (those evals are computed again, never appended
        # twice), and so does a line it tore.
        store.write_records(done + (saved["records"] if saved else []))
        if start == plan.run(group.runs[0]).train.steps:  # trained to the end before
            done += saved["records"]
            compiled.append(saved["session"].get("compiled", False))
            continue
        progress = (
            on_group(index, group.runs, plan.run(group.runs[0]).train.steps, start)
            if on_group
            else None
        )
        result = train_group(
            plan, index, target, progress, store.append_records, checkpointer, compile, saved
        )
        done += result.records
        compiled.append(result.compiled)
        eval_seconds += result.eval_seconds
        phases.merge(result.phases, f"group {index + 1}: ")
    seconds = time.perf_counter() - started
    how = f"{target}, train step {'compiled' if all(compiled) else 'eager'}"
    with phases("report"):
        return _finish(plan, store, seconds, eval_seconds, how)


def load(spec: str | Path, out: str | Path = "runs") -> RunResult | None:
    """The finished run of a spec, read from its run directory under `out`; None if the
    spec has not been run to the end (nothing trains here)."""
    plan, store = _plan_and_store(spec, out)
    payload = store.finished()
    return _load(plan, store, payload) if payload is not None else None


def _plan_and_store(
    spec: str | Path, out: str | Path, guard: bool = False
) -> tuple[Plan, RunStore]:
    """The spec's plan (through the resource guard with `guard`) and its run store."""
    from clampdsl.lang.source import read_spec  # a regular file of at most 1 MiB, UTF-8

    source = read_spec(spec)
    plan = runnable(compile_source(source, str(spec)))
    if guard:
        from clampdsl.compile import guard as resource_guard

        resource_guard.check(plan, source)
    return plan, RunStore(out, plan, source)


def _finish(plan, store: RunStore, seconds: float, eval_seconds: float, device: str) -> RunResult:
    records = store.read_records()
    summaries = summarize(plan, records)
    figure = plot_curves(plan, records, store.directory / "curves.png")
    store.write_text(
        "report.md",
        report_markdown(
            plan, summaries, seconds, eval_seconds, device, figure.name if figure else None
        ),
    )
    payload = {
        "seconds": seconds,
        "eval_seconds": eval_seconds,
        "device": device,
        "diverged": {s.name: s.diverged_at for s in summaries if s.diverged_at is not None},
        "runs": [s.to_json() for s in summaries],
    }
    failpoints.reach("report")  # between the report and its summary
    store.write_summary(payload)
    return RunResult(plan, store.directory, summaries, records, reused=False)


def _load(plan: Plan, store: RunStore, payload: dict) -> RunResult:
    summaries = [RunSummary.from_json(s) for s in payload["runs"]]
    return RunResult(plan, store.directory, summaries, store.read_records(), reused=True)
