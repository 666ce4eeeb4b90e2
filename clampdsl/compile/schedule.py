"""The pass schedule of each group: which forward passes its runs need, what the first pass
records for which clamps, and what each pass may leave out. Facts that decide whether
gradients are right, so they are decided here and stored in the Plan (and its hash), and
the runtime only executes them.

The first pass is the reference's unclamped pass, which two-pass clamps read from
(kinds/*.first_pass_read). A run takes it when one of its clamps reads it, unless the
clamp's read is `unless_unchanged` and no other clamp of the run changes what the read
values are computed from: the final pass then computes the same values from the same
weights, with the same gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

from clampdsl import kinds
from clampdsl.compile.configs import ModelConfig
from clampdsl.compile.plan import FirstPass, Intervention, Run, RunPasses, Schedule
from clampdsl.kinds.base import POSITIONS_SITE, Write

# The sites of one layer that its attention scores are computed from.
FEEDS_SCORES = ("in", "q", "k", POSITIONS_SITE)


def schedule(runs: Sequence[Run], model: ModelConfig) -> Schedule:
    """The group's schedule, its runs in batching order."""
    order = sorted(runs, key=lambda run: _batching_key(run_passes(run, model)))
    return schedule_in_order(order, model)


def schedule_in_order(order: Sequence[Run], model: ModelConfig) -> Schedule:
    """The schedule of runs batched in the order given. Any order works: the first pass
    then covers a range that may hold runs that do not read it."""
    passes = [run_passes(run, model) for run in order]
    first = [i for i, p in enumerate(passes) if p.first_pass]
    bypassed = [p.bypasses_layer_one for p in passes]
    return Schedule(
        tuple(passes),
        _first_pass(first, order, passes, model) if first else None,
        1 if all(bypassed) and model.layers > 1 else 0,
        _before_trailing(bypassed),
        _before_trailing([p.logits_from_first_pass for p in passes]),
    )


def run_passes(run: Run, model: ModelConfig) -> RunPasses:
    first = takes_first_pass(run, model)
    return RunPasses(
        run.name,
        first,
        any(kinds.of(i).bypasses_layer_one(i) for i in run.interventions),
        first and any(kinds.of(i).replaces_logits(i) for i in run.interventions),
    )


def takes_first_pass(run: Run, model: ModelConfig) -> bool:
    for item in run.interventions:
        for read in kinds.of(item).first_pass_reads(item, model):
            if not read.unless_unchanged:
                return True
            others = (other for other in run.interventions if other is not item)
            if any(_changes(other, read.layer, model) for other in others):
                return True
    return False


def _changes(item: Intervention, layer: int, model: ModelConfig) -> bool:
    """Whether a clamp changes what the attention scores of `layer` are computed from."""
    return any(_feeds(write, layer) for write in kinds.of(item).writes(item, model))


def _feeds(write: Write, layer: int) -> bool:
    if write.layer is None:
        return write.site == "embed"
    return write.layer < layer or (write.layer == layer and write.site in FEEDS_SCORES)


def _batching_key(passes: RunPasses) -> tuple[bool, bool, bool]:
    return passes.first_pass, passes.bypasses_layer_one, passes.logits_from_first_pass


def _first_pass(first: list[int], order: list[Run], passes, model) -> FirstPass:
    reads = [
        read
        for index in first
        for item in order[index].interventions
        for read in kinds.of(item).first_pass_reads(item, model)
    ]
    layers = max(read.layer for read in reads) + 1
    # Layer 1 need not be computed where every run of the pass replaces its output, unless
    # something reads layer 1 itself.
    skips_layer_one = all(passes[i].bypasses_layer_one for i in first) and all(
        read.layer > 0 for read in reads
    )
    return FirstPass(
        first[0],
        first[-1] + 1,
        1 if skips_layer_one else 0,
        layers,
        tuple(sorted({(read.layer, read.what) for read in reads})),
        any(read.every_row for read in reads if read.layer == layers - 1),
    )


def _before_trailing(left_out: list[bool]) -> int:
    """How many runs come before the trailing ones that are left out."""
    kept = len(left_out)
    while kept and left_out[kept - 1]:
        kept -= 1
    return kept
