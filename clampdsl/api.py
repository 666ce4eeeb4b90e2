"""The Python API, for notebooks and scripts: compile, run, and read results.

import clampdsl
plan = clampdsl.compile_file("specs/three_subcircuits.clamp")
result = clampdsl.run("specs/three_subcircuits.clamp")
result.summaries[0].phase_step
clampdsl.load("specs/three_subcircuits.clamp")  # a finished run, read back (or None)

`run` is the driver: it holds the run directory and writes it (the metrics from the groups'
events, the report and summary), while an executor (executors/) trains the groups, here
or elsewhere, and the groups write their own checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import attrs

from clampdsl import executors, failpoints
from clampdsl.compile import compile_source, donor_specs, runnable
from clampdsl.compile.plan import Plan
from clampdsl.compile.resources import COMPILE_CHOICES
from clampdsl.durable import RecoveryWarning, RunError
from clampdsl.executors import Executor
from clampdsl.executors.group import GroupFailed, GroupOutcome, GroupTask
from clampdsl.lang.diagnostics import SpecError
from clampdsl.report.markdown import report_markdown
from clampdsl.report.plots import plot_all
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

    def rows(self) -> list[dict]:
        """One plain dict per run: its summary's fields (phase steps by every estimator,
        gives and learns, final losses and measures flattened to `final.train.loss`, …)."""
        rows = []
        for summary in self.summaries:
            row = summary.to_json()
            final, measures = row.pop("final"), row.pop("measures")
            row.pop("point")
            rows.append(row | {f"final.{k}": v for k, v in final.items()} | measures)
        return rows

    def frame(self):
        """`rows()` as a pandas DataFrame, indexed by run (pandas must be installed)."""
        import pandas

        return pandas.DataFrame(self.rows()).set_index("name")

    def curve(self, run: str, key: str = "train.loss") -> tuple[list[int], list[float]]:
        """(steps, values) of one run's metric over its evals."""
        rows = sorted((r for r in self.records if r["run"] == run), key=lambda r: r["step"])
        return [r["step"] for r in rows], [r.get(key, math.nan) for r in rows]

    def attribution(self):
        """What gates the phase change (analysis/attribution.py), from these runs; None
        where the spec declares no subcircuits."""
        from clampdsl.analysis.attribution import attribute

        return attribute(self.plan, {s.name: s.phase_step for s in self.summaries})


class GroupsFailed(RunError):
    """Groups of a spec that did not finish, each with its reason; the others did, and the
    same command trains what is left."""


@attrs.frozen
class RunFailed:
    """A spec that did not finish: its run directory could not be held or written, or
    groups failed (`error` says which)."""

    plan: Plan
    directory: Path
    error: Exception


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
    executor: str | Executor = "local",
) -> RunResult:
    """Compile and train a spec, write its run directory, and return the summaries.

    A finished run directory for the same plan is reused unless `fresh`; an unfinished
    one resumes from its checkpoints. `compile` is "auto" (compile the train step on CUDA,
    and on CPU for runs long enough to repay it), "on" or "off". A spec over the resource
    guard's budgets (compile/guard.py) is refused with a SpecError unless `allow_large`.
    `executor` trains the groups: "local" (here, one after the other), "ray" (a Ray
    cluster), or one of `clampdsl.executors.choose(…)`. A run that does not finish raises
    its error (GroupsFailed where groups failed).
    """
    options = {"device": device, "fresh": fresh, "compile": compile, "allow_large": allow_large}
    (result,) = run_specs(
        [spec], out, executor=executor, on_group_for=lambda _: on_group, **options
    )
    if isinstance(result, RunFailed):
        raise result.error
    return result


def run_specs(
    specs: list[str | Path],
    out: str | Path = "runs",
    device: str = "auto",
    fresh: bool = False,
    compile: str = "auto",
    allow_large: bool = False,
    executor: str | Executor = "local",
    on_group_for: Callable[[Plan], GroupCallback | None] = lambda plan: None,
    on_finished: Callable[[RunResult | RunFailed], None] = lambda result: None,
) -> list[RunResult | RunFailed]:
    """Trains the groups of every spec on one executor (all at once, where it trains
    several), with `run`'s options; `on_group_for(plan)` gives each spec's progress
    callback, and `on_finished` hears each spec's result as it ends. A spec whose run
    directory cannot be written, or whose groups fail, is a RunFailed; the others go on.
    The donor specs their grafts name are trained first, into the same store (or their
    finished runs reused; `fresh` is not theirs), without progress callbacks; a spec whose
    donor does not finish is a RunFailed."""
    if isinstance(executor, str):
        executor = executors.choose(executor)
    if compile not in COMPILE_CHOICES:
        raise ValueError(f"compile={compile!r} is not one of {', '.join(COMPILE_CHOICES)}")
    check_device(device, executor)
    runs = [_SpecRun(spec, out, allow_large, on_group_for) for spec in specs]
    options = {"device": device, "compile": compile, "allow_large": allow_large}
    _train_donors(runs, out, executor, options)
    with contextlib.ExitStack() as held:
        started = time.perf_counter()
        held.enter_context(executor.opened())
        target = executor.device(device)
        for spec_run in runs:  # torch, mostly; or the connection to a cluster
            spec_run.phases.add("imports", time.perf_counter() - started)
        tasks, owners = [], []
        for spec_run in runs:
            spec_run.hold(held)
            for task in spec_run.begin(fresh, target, compile):
                tasks.append(task)
                owners.append(spec_run)
            if spec_run.result is not None:
                on_finished(spec_run.result)
        if not tasks:  # every spec reused, or failed before training
            return [spec_run.result for spec_run in runs]
        directories = dict.fromkeys(o.store.directory.resolve() for o in owners)
        executor.check_storage(list(directories))

        def on_done(index: int, outcome: GroupOutcome | GroupFailed) -> None:
            if owners[index].done(tasks[index].group, outcome):
                on_finished(owners[index].finish())

        executor.execute(
            tasks, lambda index, event: owners[index].on_event(tasks[index].group, event), on_done
        )
    return [spec_run.result for spec_run in runs]


def check_device(device: str, executor: Executor) -> None:
    """A ValueError, before anything is compiled or written, unless `device` is one this
    machine has, where the executor trains here (a cluster's devices are checked once it
    is reached)."""
    if device in ("auto", "cpu"):
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"{device!r} is not a device") from None
    if device.startswith("cuda") and executor.trains_here and not torch.cuda.is_available():
        raise ValueError("no CUDA device here")


class DonorFailed(RunError):
    """A donor spec that a spec's graft names did not finish (or changed since it was
    compiled): the spec does not train."""


def _train_donors(runs: list[_SpecRun], out, executor: Executor, options: dict) -> None:
    """Every donor spec of the runs trained (or found finished) in the store `out`; a run
    whose donor is not is failed."""
    donors = donor_specs.named([spec_run.plan for spec_run in runs])
    if not donors:
        return
    try:
        results = run_specs([d.file for d in donors.values()], out, executor=executor, **options)
    except (SpecError, OSError) as error:  # a donor spec changed, or went, since it compiled
        results = [error] * len(donors)
    problems = {}
    for (plan_hash, donor), result in zip(donors.items(), results, strict=True):
        if not isinstance(result, RunResult):
            error = result.error if isinstance(result, RunFailed) else result
            problems[plan_hash] = f"its donor spec {donor.file} did not finish: {error}"
        elif result.plan.content_hash() != plan_hash:
            problems[plan_hash] = f"its donor spec {donor.file} changed since it was compiled"
    for spec_run in runs:
        failed = [problems[h] for h in donor_specs.named([spec_run.plan]) if h in problems]
        if failed:
            spec_run.fail(DonorFailed(f"{spec_run.plan.file}: {failed[0]}"))


class _SpecRun:
    """One spec's run directory while its groups train, whichever executor trains them:
    the metrics from the groups' events, then the report and summary once all are done.
    The groups write their checkpoints themselves (executors/group.py); nothing else
    writes a run directory."""

    def __init__(self, spec, out, allow_large: bool, on_group_for):
        self.phases = Phases()
        with self.phases("plan"):
            self.plan, self.store = _plan_and_store(spec, out, guard=not allow_large)
        self.out = Path(out)  # the run store: a graft's donor spec's run is in it too
        self.on_group = on_group_for(self.plan)
        self.records: dict[int, list[dict]] = {}  # by group, what its events told so far
        self.progress: dict[int, Callable[[int, dict], None]] = {}
        self.outcomes: dict[int, GroupOutcome | GroupFailed] = {}
        self.result: RunResult | RunFailed | None = None
        self.started = 0.0  # when its first group started: a spec may wait for a free slot
        self.resumed = False  # whether a group began at a checkpoint: the time is this try's
        self.device = ""

    def hold(self, held: contextlib.ExitStack) -> None:
        """Takes the run directory's lock into `held` (a RunFailed where it cannot); none
        for a run that failed already (its donor did)."""
        if self.result is not None:
            return
        try:
            held.enter_context(self.store.lock())
        except (RunError, OSError) as error:
            self.fail(error)

    def begin(self, fresh: bool, device: str, compile: str) -> list[GroupTask]:
        """The groups to train: none where the run is reused, or failed to begin."""
        if self.result is not None:  # its lock could not be held
            return []
        try:
            if fresh:
                self.store.clear()
            if (payload := self.store.finished()) is not None:
                self.result = attrs.evolve(
                    _load(self.plan, self.store, payload), phases=self.phases.seconds
                )
                return []
            if self.store.summary_path.exists():
                warnings.warn(
                    f"{self.store.summary_path} does not match its metrics: rebuilt from the "
                    "checkpoints",
                    RecoveryWarning,
                    stacklevel=2,
                )
            self.store.prepare()
        except (RunError, OSError) as error:
            self.fail(error)
            return []
        self.device = device
        plan = attrs.evolve(self.plan, file=str(Path(self.plan.file).resolve()))
        checkpoints = str(self.store.checkpoints.resolve())
        store = str(self.out.resolve())
        return [
            GroupTask(plan, i, checkpoints, device, compile, store=store)
            for i in range(len(plan.groups))
        ]

    def on_event(self, group: int, event: dict) -> None:
        self._HANDLERS[event["event"]](self, group, event)

    def _started(self, group: int, event: dict) -> None:
        # The metrics are what the checkpoints hold: what an earlier, killed try wrote
        # beyond its last checkpoint goes (those evals are computed again, never appended
        # twice), and so does a line it tore.
        if not self.records:
            self.started = time.perf_counter()
        self.resumed = self.resumed or event["start"] > 0
        self.records[group] = list(event["records"])
        self.store.write_records(self._in_order(self.records))
        if self.on_group and event["start"] < event["total"]:
            runs, total = tuple(event["runs"]), event["total"]
            self.progress[group] = self.on_group(group, runs, total, event["start"])

    def _recorded(self, group: int, event: dict) -> None:
        self.records[group] += event["records"]
        self.store.append_records(event["records"])

    def _progressed(self, group: int, event: dict) -> None:
        if group in self.progress:
            self.progress[group](event["step"], event["losses"])

    def _warned(self, group: int, event: dict) -> None:
        warnings.warn(event["message"], RecoveryWarning, stacklevel=2)

    _HANDLERS = {
        "start": _started,
        "records": _recorded,
        "progress": _progressed,
        "warning": _warned,
    }

    def done(self, group: int, outcome: GroupOutcome | GroupFailed) -> bool:
        """Whether every group has ended, with this one."""
        self.outcomes[group] = outcome
        if isinstance(outcome, GroupOutcome):
            self.phases.merge(outcome.phases, f"group {group + 1}: ")
        return len(self.outcomes) == len(self.plan.groups)

    def finish(self) -> RunResult | RunFailed:
        failed = [(g, o) for g, o in sorted(self.outcomes.items()) if isinstance(o, GroupFailed)]
        if failed:
            reasons = "; ".join(f"group {g + 1} failed: {o.message}" for g, o in failed)
            self.fail(GroupsFailed(f"{self.plan.file}: {reasons}"))
            return self.result
        seconds = time.perf_counter() - self.started
        outcomes = [self.outcomes[g] for g in range(len(self.plan.groups))]
        eval_seconds = sum(o.phases.get("evals", 0.0) for o in outcomes)
        step = "compiled" if all(o.compiled for o in outcomes) else "eager"
        how = f"{self.device}, train step {step}"
        with self.phases("report"):
            # in plan order, whichever order the groups trained and reported in
            self.store.write_records([r for o in outcomes for r in o.records])
            timing = {"seconds": seconds, "eval_seconds": eval_seconds, "resumed": self.resumed}
            result = _finish(self.plan, self.store, timing, how, self.phases.seconds)
        self.result = attrs.evolve(result, phases=self.phases.seconds)
        return self.result

    def _in_order(self, by_group: dict[int, list[dict]]) -> list[dict]:
        return [r for g in sorted(by_group) for r in by_group[g]]

    def fail(self, error: Exception) -> None:
        self.result = RunFailed(self.plan, self.store.directory, error)


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


def _finish(plan, store: RunStore, timing: dict, device: str, phases: dict) -> RunResult:
    """The report, figures and summary of a run whose groups have all finished; `timing`:
    its wall and eval seconds, and whether it resumed (they are then this try's alone);
    `phases`: where the wall time went until now (plan, imports, each group's build, …)."""
    records = store.read_records()
    summaries = summarize(plan, records)
    figures = [f.name for f in plot_all(plan, records, summaries, store.directory)]
    store.write_text("report.md", report_markdown(plan, summaries, timing, device, figures))
    payload = {
        **timing,
        "phases": phases,
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
