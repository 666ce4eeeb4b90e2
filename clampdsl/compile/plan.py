"""The Plan: the contract between the language half and the runtime half.

Plain frozen data, JSON round-trip, and a stable content hash. Layers and heads here are
0-based tensor indices (the language's `L1` is layer 0); every intervention keeps the span
of the statement it came from so runtime failures can point at the .clamp line.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing
from typing import Any

import attrs

from clampdsl.compile.configs import (  # the Runs' settings, read through the Plan too
    LATER,
    EvalConfig,
    ModelConfig,
    TaskConfig,
    TrainConfig,
    later,
)
from clampdsl.lang.diagnostics import Span

PLAN_VERSION = 3


@attrs.frozen
class Window:
    """Active for start <= step < end (end None: until training stops), in training steps,
    evals, or both (`during`)."""

    start: int = 0
    end: int | None = None
    during: str = "both"  # "train" | "eval" | "both"

    def is_always(self) -> bool:
        """Active at every step of training and in every eval."""
        return self.start == 0 and self.end is None and self.during == "both"

    def is_active(self, step: int, phase: str) -> bool:
        """At `step` of training ("train") or in the eval before it ("eval")."""
        in_phase = self.during in ("both", phase)
        return in_phase and self.start <= step and (self.end is None or step < self.end)

    def overlaps(self, other: Window) -> bool:
        ends = [float("inf") if w.end is None else w.end for w in (self, other)]
        phases = {self.during, other.during}
        return self.start < ends[1] and other.start < ends[0] and phases != {"train", "eval"}


@attrs.frozen
class HeadRef:
    layer: int
    head: int


@attrs.frozen
class Donor:
    """A finished or checkpointed run that lends a graft its weights: its run directory
    (relative to the spec's directory, inside it; or, for a donor spec, `file`, relative
    to the run store), the run's name and group there, the step its weights are from, and
    the hash of its plan."""

    path: str
    run: str
    group: int
    step: int
    plan_hash: str
    file: str = later("")  # `from spec "…"`: the donor's spec, trained first by the runner

    @property
    def in_store(self) -> bool:
        """Whether its run directory is in the run store (a donor spec's), not a path."""
        return bool(self.file)

    def snapshot(self) -> str:
        """The file of its weights, relative to its run directory."""
        return f"{SNAPSHOTS}/{snapshot_name(self.group, self.step)}"


SNAPSHOTS = "checkpoints"  # a run directory's folder of checkpoints and kept weights


def snapshot_name(group: int, step: int) -> str:
    """The file a run directory keeps a group's weights at a step in (`train keep_every`)."""
    return f"group{group}-step{step}.pt"


def kept_steps(names: list[str], group: int) -> list[int]:
    """The steps of a group's kept weights, among file names."""
    found = (re.fullmatch(rf"group{group}-step(\d+)\.pt", name) for name in names)
    return sorted(int(m.group(1)) for m in found if m)


@attrs.frozen
class Intervention:
    """One lowered clamp, of a kind of clampdsl/kinds; heads are 0-based. `donor`: the run
    a graft takes its weights from, or that a clamp comes with (the donor's own clamps on
    the layers it lends)."""

    kind: str
    layer: int | None
    heads: tuple[int, ...]
    site: str
    params: dict[str, float]
    window: Window
    source: HeadRef | None
    text: str
    span: Span
    donor: Donor | None = None


@attrs.frozen
class CircuitSite:
    """A site of a declared subcircuit: a head site of some heads, a layer's `out`, or a
    model site (layer None: `logits`, `embed`); the clamp targets that hand it over (empty:
    any clamp that fixes it); its text as the spec writes it."""

    layer: int | None
    heads: tuple[int, ...]
    site: str
    targets: tuple[str, ...]
    text: str


@attrs.frozen
class Subcircuit:
    """`subcircuit NAME "description" = SITE, …  [feeds OTHER]`: a named part of the
    circuit (compile/subcircuits.py says when a run is handed it)."""

    name: str
    description: str
    sites: tuple[CircuitSite, ...]
    feeds: tuple[str, ...]
    span: Span


@attrs.frozen
class Given:
    """What a run's clamps hand over of a subcircuit: some of its sites, or all (`whole`)."""

    subcircuit: str
    sites: tuple[str, ...]  # their texts
    whole: bool


@attrs.frozen
class Run:
    """One training run: an experiment at one point of its sweeps and seeds (`point`:
    (setting, value) pairs such as ("task.classes", "100"), ("train.seed", "6"), which
    name it: `match[classes=100, seed=6]`)."""

    name: str
    description: str
    interventions: tuple[Intervention, ...]
    gives: tuple[Given, ...]
    model: ModelConfig
    task: TaskConfig
    train: TrainConfig
    eval: EvalConfig
    span: Span
    experiment: str = ""  # the experiment's own name
    point: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class RunPasses:
    """The passes one run takes, and what the final pass may leave out for it."""

    run: str
    first_pass: bool  # the unclamped first pass, for clamps that read it
    bypasses_layer_one: bool  # layer 1's output is replaced in every pass, all along
    logits_from_first_pass: bool  # its logits are the first pass's, all along


@attrs.frozen
class FirstPass:
    """The unclamped first pass: computed for the runs [start, stop) of the batching order
    (a range: its weights are views, whose gradient is dense), layers from_layer to
    layers - 1 (the last of them to its scores only, and at the query row only unless
    `every_row_last`), recording `records`: (layer, site) pairs, of a head's sites q, k, v,
    scores or pattern."""

    start: int
    stop: int
    from_layer: int
    layers: int
    records: tuple[tuple[int, str], ...]
    every_row_last: bool = False


@attrs.frozen
class Schedule:
    """How a group's forward runs: its runs in batching order (those taking the first pass
    last, of those the ones bypassing layer 1 last, of those the ones whose logits the
    first pass gives last of all), the first pass if any, and the final pass's parts: it
    starts at `final_from_layer`, computes layer 1 for the first `layer_one_runs` runs and
    the last layer for the first `last_layer_runs`."""

    runs: tuple[RunPasses, ...]
    first_pass: FirstPass | None
    final_from_layer: int
    layer_one_runs: int
    last_layer_runs: int

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(r.run for r in self.runs)


@attrs.frozen
class Group:
    """Runs that share model shape, task and schedule: trained as one batched model."""

    runs: tuple[str, ...]  # in plan order
    schedule: Schedule


@attrs.frozen
class Measure:
    """A measure of heads (`layer`, `heads`), or of the model's predictions (layer None, no
    heads: analysis/predictions.py) with its `params` (`icl-score`'s positions). `reads`:
    what it is computed from — the eval's own forward on the first eval set ("attention":
    its patterns, or its predictions), the weights alone, with no forward ("weights"), or
    forwards of its own on the first eval set with clamps added to each run's, post hoc,
    never in training ("post-hoc": compile/progress.py). `source_layer` and
    `source_heads`: the writing heads a composition score reads (`from L1.H*`); `clamps`:
    an as-if measure's clamp; `at_end`: computed once, after the last step; `name`: an
    as-if measure's name in the records, as written (`loss as-if L1.H* clamped to
    prev-token`); `excluded`: the runs an as-if clamp cannot join (one of their own claims
    its site), not measured."""

    metric: str
    layer: int | None
    heads: tuple[int, ...]
    span: Span
    reads: str = later("attention")
    source_layer: int | None = later(None)
    source_heads: tuple[int, ...] = later(())
    clamps: tuple[Intervention, ...] = later(())
    at_end: bool = later(False)
    name: str = later("")
    excluded: tuple[str, ...] = later(())
    params: tuple[tuple[str, float], ...] = later(())


# How far from the rule's threshold a run counts as near its phase change: for the paper's
# rule (train.loss < 0.4·ln 2) up to the plateau's exit (0.9·ln 2).
NEAR_FACTOR = 2.25


@attrs.frozen
class PhaseRule:
    """`phase train.loss < 0.4 * ln2`: a comparison with a threshold; or `phase when nearest
    is bigram` (op "is"): the metric names one of its categories (a strategy), whose index
    is `threshold`."""

    eval_set: str
    metric: str
    op: str
    threshold: float
    text: str
    span: Span

    @property
    def key(self) -> str:
        return f"{self.eval_set}.{self.metric}"

    @property
    def categorical(self) -> bool:
        """A rule on a category (`when … is …`): no threshold to draw or to be near."""
        return self.op == "is"

    @property
    def near_band(self) -> tuple[float, float]:
        """The values of a run near its phase change, not yet past it: within a factor
        NEAR_FACTOR of the threshold, on the side the rule starts from."""
        if self.op in ("<", "<="):
            return self.threshold, self.threshold * NEAR_FACTOR
        return self.threshold / NEAR_FACTOR, self.threshold

    def is_near(self, value: float) -> bool:
        low, high = self.near_band
        return low < value < high


@attrs.frozen
class Plan:
    file: str
    runs: tuple[Run, ...]
    groups: tuple[Group, ...]
    measures: tuple[Measure, ...]
    phase: PhaseRule
    reports: tuple[str, ...]
    subcircuits: tuple[Subcircuit, ...] = ()
    warnings: tuple[str, ...] = ()  # rendered diagnostics of what compiled but looks amiss
    version: int = PLAN_VERSION

    def run(self, name: str) -> Run:
        return next(r for r in self.runs if r.name == name)

    def to_json(self) -> dict:
        return attrs.asdict(self, filter=_present)

    @classmethod
    def from_json(cls, data: dict) -> Plan:
        return structure(cls, data)

    def content_hash(self) -> str:
        """Hash of what the plan does, not where it was written: spans and text are left out,
        so editing comments or moving lines does not change a run directory."""
        payload = json.dumps(_strip_positions(self.to_json()), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


POSITIONAL_KEYS = frozenset({"span", "text", "file", "description", "warnings"})


def _present(field: attrs.Attribute, value: Any) -> bool:
    return not (field.metadata.get(LATER) and value == field.default)


def _strip_positions(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _strip_positions(v) for k, v in data.items() if k not in POSITIONAL_KEYS}
    if isinstance(data, (list, tuple)):
        return [_strip_positions(v) for v in data]
    return data


def structure(cls: Any, data: Any) -> Any:
    """Rebuild typed plan data from JSON (a small cattrs): attrs classes, tuples, optionals."""
    if data is None:
        return None
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(cls) if a is not type(None)]
        return structure(options[0], data)
    if origin is tuple:
        (item,) = typing.get_args(cls)[:1]
        return tuple(structure(item, v) for v in data)
    if origin is dict:
        return dict(data)
    if attrs.has(cls):
        hints = typing.get_type_hints(cls)
        return cls(
            **{
                f.name: structure(hints[f.name], data[f.name])
                for f in attrs.fields(cls)
                if f.name in data
            }
        )
    return data
