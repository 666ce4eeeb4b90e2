"""A graft's donor: the saved run it takes weights from, found and checked at compile time.

`from "RUN_DIR"` is resolved against the spec file's directory and must stay inside it (a
spec reads nothing else); the directory's plan.json is read as JSON (nothing in it is
executed or unpickled) and must be a plan of this version, with a run (`run NAME`, or its
only one) of this model's shape. The weights are those kept at `at step N` (`train
keep_every`), or the last ones of a finished run. The donor's plan hash and step go into
this run's Plan, so a different donor makes a different run directory; the donor's clamps
on the layers it lends come along, for the whole training, as they were at that step.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from clampdsl import kinds
from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import (
    PLAN_VERSION,
    SNAPSHOTS,
    Donor,
    Intervention,
    Plan,
    Run,
    Window,
    kept_steps,
)
from clampdsl.compile.settings import Settings, steps_of
from clampdsl.kinds import Kind
from clampdsl.lang import ast

PLAN_FILE, FINISHED_FILE = "plan.json", "summary.json"
SHAPE = {  # what the weights' shapes and the sequence layout depend on
    "model": lambda model, task: model,
    "feature dim": lambda model, task: task.features.dim,
    "labels": lambda model, task: task.labels,
    "context": lambda model, task: task.context,
}


def lend(
    kind: Kind,
    item: Intervention,
    args: ast.Arguments,
    settings: Settings,
    folder: Path,
    errors: Collector,
) -> tuple[Donor, list[Intervention]] | None:
    """The donor of `item` (a graft) and the donor's clamps it brings; None after an error."""
    span = item.span
    if len(args.paths) != 1 or len(args.steps) > 1:
        where = args.paths[1].span if len(args.paths) > 1 else span
        where = args.steps[1].span if len(args.steps) > 1 else where
        message = f'{kind.describe()} takes one `from "RUN_DIR"` and at most one `at step`'
        errors.error(message, where)
        return None
    path = args.paths[0]
    directory = _directory(path, folder, errors)
    plan = _plan(directory, path, errors) if directory else None
    run = _run(plan, kind.donor_run(args.words), path, errors) if plan else None
    if run is None or not _same_shape(run, settings, path, errors):
        return None
    group = next(i for i, g in enumerate(plan.groups) if run.name in g.runs)
    step = _step(directory, run, group, args.steps, path, errors)
    if step is None:
        return None
    if run.task != settings.task:
        errors.warn("the donor trained on another task (its task settings differ)", path.span)
    donor = Donor(path.value, run.name, group, step, plan.content_hash())
    brought = _clamps_brought(kind, item, run, donor, errors) if kind.brings_clamps(item) else []
    return donor, brought


def _directory(path: ast.String, folder: Path, errors: Collector) -> Path | None:
    written = Path(path.value)
    if written.is_absolute():
        errors.error("a donor's path is written relative to the spec file", path.span)
        return None
    try:
        root = folder.resolve()
        directory = (root / written).resolve()  # symbolic links followed: they cannot lead out
        if directory.is_relative_to(root):
            directory.is_dir()  # a path the system refuses (too long, a NUL) is refused here
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        errors.error(f"this path is not one this system can read ({reason})", path.span)
        return None
    if not directory.is_relative_to(root):
        errors.error(
            f"{path.value!r} lies outside the spec's directory: a spec reads nothing outside "
            "its own directory tree",
            path.span,
        )
        return None
    return directory


def _plan(directory: Path, path: ast.String, errors: Collector) -> Plan | None:
    file = directory / PLAN_FILE
    if not file.is_file():
        errors.error(f"no saved run at {path.value!r}: it has no {PLAN_FILE}", path.span)
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        version = data.get("version") if isinstance(data, dict) else None
        if version != PLAN_VERSION:
            errors.error(
                f"the donor's plan is of version {version} (this clampdsl reads {PLAN_VERSION}): "
                "run its spec again",
                path.span,
            )
            return None
        return Plan.from_json(data)
    except OSError as error:
        errors.error(f"cannot read the donor's {PLAN_FILE}: {error.strerror or error}", path.span)
        return None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        errors.error(f"the donor's {PLAN_FILE} is not a plan ({error})", path.span)
        return None


def _run(plan: Plan, name: str | None, path: ast.String, errors: Collector) -> Run | None:
    names = [run.name for run in plan.runs]
    if name is None and len(names) == 1:
        return plan.runs[0]
    if name is None:
        errors.error(
            f"the donor directory holds {len(names)} runs: name one with `run NAME`",
            path.span,
            hint=f"its runs: {', '.join(names)}",
        )
        return None
    if name not in names:
        errors.unknown("run of the donor", name, path.span, names)
        return None
    return plan.run(name)


def _same_shape(run: Run, settings: Settings, path: ast.String, errors: Collector) -> bool:
    differ = [
        what
        for what, of in SHAPE.items()
        if of(run.model, run.task) != of(settings.model, settings.task)
    ]
    if differ:
        errors.error(
            f"the donor's {', '.join(differ)} differ from this experiment's: its weights do "
            "not fit",
            path.span,
        )
    return not differ


def _step(directory, run, group, given, path, errors) -> int | None:
    """The step the weights are from: `at step N`, or the end of a finished run."""
    kept = _kept_steps(directory, group)
    if given:
        step = steps_of(given[0], run.train.batch, errors)  # in the donor's batches
        if step is None:
            return None
    elif (directory / FINISHED_FILE).is_file():
        step = run.train.steps
    else:
        errors.error("the donor has not finished: name its weights with `at step N`", path.span)
        step = None
    if step is not None and step not in kept:
        errors.error(
            f"the donor kept no weights at step {step}",
            given[0].span if given else path.span,
            hint=f"it kept steps {', '.join(map(str, kept))}"
            if kept
            else "it kept none: train it with `train keep_every=N`",
        )
        return None
    return step


def _kept_steps(directory: Path, group: int) -> list[int]:
    files = directory / SNAPSHOTS
    try:
        return kept_steps([f.name for f in files.iterdir()], group) if files.is_dir() else []
    except OSError:  # unreadable: as if it kept none
        return []


def _clamps_brought(kind, item, run: Run, donor: Donor, errors) -> list[Intervention]:
    """The donor's clamps on what it lends that were open at its step: for this whole
    training, in their phases. A clamp that also acts beyond what it lends is refused."""
    brought = []
    for other in run.interventions:
        other_kind = kinds.of(other)
        writes = other_kind.writes(other, run.model) + other_kind.first_pass_writes(other)
        inside = [kind.covers(item, write) for write in writes]
        if not any(inside) or not _open_at(other.window, donor.step):
            continue
        if not all(inside):
            errors.error(
                f"the donor's {other.kind} (line {other.span.line} of its spec) acts beyond "
                "what the graft lends, so it cannot come along",
                item.span,
            )
            continue
        window = Window(0, None, other.window.during)
        brought.append(attrs.evolve(other, window=window, donor=donor))
    return brought


def _open_at(window: Window, step: int) -> bool:
    return any(window.is_active(step, phase) for phase in ("train", "eval"))
