"""A graft's donor: the run it takes weights from, found and checked at compile time.

Two kinds of donor. `from "RUN_DIR"` is a saved run directory, resolved against the spec
file's directory and inside it (a spec reads nothing else); its plan.json is read as JSON
(nothing in it is executed or unpickled) and must be a plan of this version. `from spec
"FILE.clamp"` is a run a spec defines (compile/donor_specs.py): compiled here, its run in
the run store, trained first by the runner where it has not finished. Either way the run
(`run NAME`; or `experiment NAME` and `seed N`; or its only one) must have this model's
shape. The weights are those kept at `at step N` (`train keep_every`), or the last ones of
a finished run. The donor's plan hash and step go into this run's Plan, so a different
donor makes a different run directory; the donor's clamps on the layers it lends come
along, for the whole training, as they were at that step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import attrs

from clampdsl import kinds
from clampdsl.compile import donor_specs
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
from clampdsl.compile.run_folders import run_folder
from clampdsl.compile.settings import Settings, steps_of
from clampdsl.kinds import Kind
from clampdsl.kinds.base import word_text
from clampdsl.lang import ast

PLAN_FILE, FINISHED_FILE = "plan.json", "summary.json"
SHAPE = {  # what the weights' shapes and the sequence layout depend on
    "model": lambda model, task: model,
    "feature dim": lambda model, task: task.features.dim,
    "labels": lambda model, task: task.labels,
    "context": lambda model, task: task.context,
}
CHOOSING = ("run", "experiment")  # the words that name a donor's run, each before a name
FORMS = (
    '`graft L1 from "RUN_DIR" [run NAME] [at step N]` or `graft L1 from spec "FILE.clamp" '
    "[experiment NAME] [seed N] [at step N]`"
)


@attrs.frozen
class Choice:
    """Which run of the donor's plan: `run NAME`, or `experiment NAME` and `seed N`, or
    (none given) its only one."""

    run: ast.Name | None = None
    experiment: ast.Name | None = None
    seed: ast.Param | None = None


@attrs.frozen
class Source:
    """A donor's plan and where its run is: `path` and `file` as the Donor records them;
    `kept(group)`, the steps whose weights it keeps; `finished`, whether its last are."""

    plan: Plan
    path: str
    file: str
    kept: Callable[[int], list[int]]
    finished: bool
    noun: str  # "directory" or "spec", for messages


def choice(args: ast.Arguments, errors: Collector) -> tuple[ast.Arguments, Choice] | None:
    """The arguments without those that choose the donor's run, and that choice; None
    after an error (a choice made twice)."""
    words, chosen, index = [], {}, 0
    while index < len(args.words):
        word, name = args.words[index], args.words[index + 1 : index + 2]
        if word_text(word) in CHOOSING and name and isinstance(name[0], ast.Name):
            chosen.setdefault(word_text(word), []).append(name[0])
            index += 2
        else:
            words.append(word)
            index += 1
    seeds = [p for p in args.params if p.name.value == "seed"]
    params = tuple(p for p in args.params if p.name.value != "seed")
    twice = [given[1] for given in (*chosen.values(), seeds) if len(given) > 1]
    if twice:
        errors.error("the donor's run is chosen twice by this word", twice[0].span)
        return None
    first = {key: given[0] for key, given in chosen.items()}
    made = Choice(first.get("run"), first.get("experiment"), seeds[0] if seeds else None)
    if made.run is not None and (made.experiment or made.seed):
        errors.error(
            "name the donor's run with `run NAME`, or with `experiment NAME` and `seed N`",
            made.run.span,
        )
        return None
    return attrs.evolve(args, words=tuple(words), params=params), made


def lend(
    kind: Kind,
    item: Intervention,
    args: ast.Arguments,
    chosen: Choice,
    settings: Settings,
    folders: tuple[Path, Path],
    errors: Collector,
) -> tuple[Donor, list[Intervention]] | None:
    """The donor of `item` (a graft) and the donor's clamps it brings; None after an error.
    `folders`: the directories of the file that writes it (where its path starts) and of
    the top spec (where the runtime reads a saved run's path from)."""
    span = item.span
    if len(args.paths) != 1 or len(args.steps) > 1:
        where = args.paths[1].span if len(args.paths) > 1 else span
        where = args.steps[1].span if len(args.steps) > 1 else where
        message = (
            f'{kind.describe()} takes one `from "RUN_DIR"` or `from spec "FILE.clamp"`, and '
            "at most one `at step`"
        )
        errors.error(message, where, hint=f"it is written {FORMS}")
        return None
    path = args.paths[0]
    spec = isinstance(path, ast.WordedPath)
    folder, top = folders
    source = _from_spec(path, folder, errors) if spec else _saved(path, folder, top, errors)
    run = _run(source, chosen, path, errors) if source else None
    if run is None or not _same_shape(run, settings, path, errors):
        return None
    group = next(i for i, g in enumerate(source.plan.groups) if run.name in g.runs)
    step = _step(source, run, group, args.steps, path, errors)
    if step is None:
        return None
    if run.task != settings.task:
        errors.warn("the donor trained on another task (its task settings differ)", path.span)
    plan_hash = source.plan.content_hash()
    donor = Donor(source.path, run.name, group, step, plan_hash, source.file)
    brought = _clamps_brought(kind, item, run, donor, errors) if kind.brings_clamps(item) else []
    return donor, brought


def _saved(path: ast.String, folder: Path, top: Path, errors: Collector) -> Source | None:
    """A saved run directory's plan, and what it keeps; its path as the top spec's folder
    reaches it (the runtime's start), whichever file writes it."""
    directory = _directory(path, folder, errors)
    plan = _plan(directory, path, errors) if directory else None
    if plan is None:
        return None
    finished = (directory / FINISHED_FILE).is_file()
    written = path.value
    from_top = written if folder == top else Path(os.path.relpath(folder / written, top)).as_posix()
    return Source(plan, from_top, "", lambda g: _kept_steps(directory, g), finished, "directory")


def _from_spec(path: ast.WordedPath, folder: Path, errors: Collector) -> Source | None:
    """A donor spec's plan, its run directory in the run store, and what it will keep."""
    plan = donor_specs.plan_of(path, folder, errors)
    if plan is None:
        return None
    in_store = run_folder(plan.file, plan.content_hash()).as_posix()
    return Source(plan, in_store, plan.file, lambda g: _planned_steps(plan, g), True, "spec")


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
        plan = Plan.from_json(data)
        problem = _malformed(plan)
        if problem:
            errors.error(f"the donor's {PLAN_FILE} is not a plan ({problem})", path.span)
            return None
        return plan
    except OSError as error:
        errors.error(f"cannot read the donor's {PLAN_FILE}: {error.strerror or error}", path.span)
        return None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        errors.error(f"the donor's {PLAN_FILE} is not a plan ({error})", path.span)
        return None


def _malformed(plan: Plan) -> str:
    """What a saved plan breaks of what the compiler gives every plan, where a lend would
    rely on it ("" where nothing): a run directory may come from anyone."""
    grouped = sorted(name for group in plan.groups for name in group.runs)
    if grouped != sorted(run.name for run in plan.runs):
        return "its groups do not hold its runs"
    if not all(
        type(n) is int and n >= 1 for r in plan.runs for n in (r.train.batch, r.train.steps)
    ):
        return "a run of no steps or batch"
    if not all(type(r.train.keep_every) is int and r.train.keep_every >= 0 for r in plan.runs):
        return "a run keeps weights every no number of steps"
    return ""


def _run(source: Source, chosen: Choice, path: ast.String, errors: Collector) -> Run | None:
    """The run `chosen` names among the donor's runs; None after an error."""
    plan = source.plan
    if chosen.run is not None:
        names = [run.name for run in plan.runs]
        if chosen.run.value not in names:
            errors.unknown("run of the donor", chosen.run.value, chosen.run.span, names)
            return None
        return plan.run(chosen.run.value)
    runs = list(plan.runs)
    if chosen.experiment is not None:
        name, experiments = chosen.experiment.value, dict.fromkeys(r.experiment for r in runs)
        if name not in experiments:
            errors.unknown("experiment of the donor", name, chosen.experiment.span, experiments)
            return None
        runs = [r for r in runs if r.experiment == name]
    if chosen.seed is not None:
        seed, seeds = chosen.seed.value.value, sorted({r.train.seed for r in runs})
        runs = [r for r in runs if r.train.seed == seed]
        if not runs:
            of = f" of experiment {chosen.experiment.value!r}" if chosen.experiment else ""
            errors.error(
                f"the donor {source.noun} has no run{of} at seed {seed:g}",
                chosen.seed.span,
                hint=f"its seeds: {', '.join(map(str, seeds))}",
            )
            return None
    if len(runs) != 1:
        errors.error(
            f"the donor {source.noun} holds {len(runs)} runs: name one with `run NAME`, or "
            "`experiment NAME` and `seed N`",
            path.span,
            hint=f"its runs: {', '.join(r.name for r in runs)}",
        )
        return None
    return runs[0]


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


def _step(source: Source, run: Run, group: int, given, path, errors) -> int | None:
    """The step the weights are from: `at step N`, or the end of a finished run."""
    kept = source.kept(group)
    if given:
        step = steps_of(given[0], run.train.batch, errors)  # in the donor's batches
        if step is None:
            return None
    elif source.finished:
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


def _planned_steps(plan: Plan, group: int) -> list[int]:
    """The steps a group of a plan keeps weights at once trained (train/loop.py): every
    `keep_every` steps, and its last."""
    train = plan.run(plan.groups[group].runs[0]).train
    every = train.keep_every
    return [*(range(every, train.steps, every) if every else ()), train.steps]


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
