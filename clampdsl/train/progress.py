"""The progress measures that the eval's own forward does not give (compile/progress.py):
scores read off the weights, and forwards of their own with clamps added post hoc.

A post-hoc forward evaluates the first eval set as the eval does (train/evaluate.py), with
a clamp state of its own: each run's clamps at this step, as in the eval, and the
measure's clamps besides, in the order the Plan batches the runs (its pass schedule
derived by compile/schedule.py, as for any runs with those clamps). It runs without
gradient and eagerly, after the eval, and changes nothing the training reads: the
weights, the training clamp state and the data are left as they were.

Single-head accuracy (Fig. 4a, Table 2) ablates heads as `ablate` does (kinds/zero.py): for
each head measured, the accuracy with every other head of its layer value-ablated, and with
that head alone ablated.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import attrs
import torch

from clampdsl.analysis import chen
from clampdsl.analysis.progress import COMPOSED, composition_scores, copying_scores
from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import Intervention, Measure, Run, Window
from clampdsl.compile.progress import (
    ALONE,
    DROPPED,
    POST_HOC,
    WEIGHTS,
    as_if_result,
    head_key,
    pair_key,
)
from clampdsl.compile.schedule import schedule_in_order
from clampdsl.compile.selectors import Sites
from clampdsl.kinds.zero import Ablate
from clampdsl.model.clamps import ClampState
from clampdsl.train.evaluate import chunk_sums, evaluate


@attrs.frozen
class Condition:
    """One post-hoc forward: the clamps it adds to every run's but the `excluded`, and the
    record keys it fills, each with the eval's result it takes (`loss` or `acc`; NaN for
    the runs excluded)."""

    clamps: tuple[Intervention, ...]
    keys: tuple[tuple[str, str], ...]
    excluded: tuple[str, ...] = ()


class ProgressMeasures:
    """A group session's progress measures: `runs` in batching order, `eval_set` the first
    eval set's name (the one post-hoc forwards evaluate)."""

    def __init__(self, measures: tuple[Measure, ...], runs: list[Run], model, eval_set: str):
        self.runs, self.model, self.eval_set = runs, model, eval_set
        self.weights = [m for m in measures if m.reads == WEIGHTS]
        heads = model.config.heads
        self.post_hoc = [
            (m, conditions(m, heads, eval_set)) for m in measures if m.reads == POST_HOC
        ]
        self._states: dict[int, ClampState] = {}  # by id of a condition, built on first use

    def __bool__(self) -> bool:
        return bool(self.weights or self.post_hoc)

    @torch.no_grad()
    def evaluate(self, step: int, last: bool, batch) -> dict[str, torch.Tensor]:
        """The measures due at `step` (those `at end` only at the `last` eval), by record
        key; `batch`, the first eval set."""
        results: dict[str, torch.Tensor] = {}
        for measure in self.weights:
            if last or not measure.at_end:
                results |= weight_measure(self.model, measure)
        prepare = _once(self.model.prepare_for)
        for measure, found in self.post_hoc:
            if measure.at_end and not last:
                continue
            for condition in found:
                sums = self._forward(condition, step, batch, prepare)
                left_out = self._left_out(condition)
                for key, what in condition.keys:
                    value = sums[f"{self.eval_set}.{what}"]
                    results[key] = value.masked_fill(left_out.to(value.device), float("nan"))
        return results

    def _left_out(self, condition: Condition) -> torch.Tensor:
        """[R]: True for the runs the condition does not measure."""
        return torch.tensor([run.name in condition.excluded for run in self.runs])

    def _forward(self, condition: Condition, step: int, batch, prepare: Callable) -> dict:
        state = self._state(condition)
        state.set_step(step, "eval")
        sums = partial(chunk_sums, self.model, ())
        return evaluate((sums, sums), prepare, state, {self.eval_set: batch}, ())

    def _state(self, condition: Condition) -> ClampState:
        """The clamp state of every run with the condition's clamps added."""
        if id(condition) not in self._states:
            runs = [
                r
                if r.name in condition.excluded
                else attrs.evolve(r, interventions=(*r.interventions, *condition.clamps))
                for r in self.runs
            ]
            config = self.runs[0].model
            state = ClampState(runs, config, schedule_in_order(runs, config))
            device = next(iter(self.model.parameters())).device
            self._states[id(condition)] = state.to(device)
        return self._states[id(condition)]


def weight_measure(model, measure: Measure) -> dict[str, torch.Tensor]:
    """A measure read off the weights, by record key: `k-composition L2.H3 L1.H1` [R] per
    pair of heads, `copying L2.H3` per head."""
    metric, layer = measure.metric, measure.layer
    if metric in chen.MEASURES:
        return chen.MEASURES[metric](model, layer, measure.heads)
    if metric in COMPOSED:
        scores = composition_scores(model, metric, layer, measure.source_layer)
        return {
            pair_key(metric, layer, h, measure.source_layer, s): scores[:, h, s]
            for h in measure.heads
            for s in measure.source_heads
        }
    scores = copying_scores(model, layer)
    return {head_key(metric, layer, h): scores[:, h] for h in measure.heads}


def conditions(measure: Measure, heads: int, eval_set: str) -> list[Condition]:
    """The post-hoc forwards a measure takes: an as-if measure's one, with its clamps; for
    single-head accuracy, two per head, its layer's other heads ablated and it alone."""
    if measure.clamps:
        keys = ((f"{eval_set}.{measure.name}", as_if_result(measure)),)
        return [Condition(measure.clamps, keys, measure.excluded)]
    found = []
    for head in measure.heads:
        others = tuple(h for h in range(heads) if h != head)
        for key, ablated in ((ALONE, others), (DROPPED, (head,))):
            keys = ((head_key(key, measure.layer, head), "acc"),)
            found.append(Condition(_ablation(measure, ablated), keys))
    return found


def _ablation(measure: Measure, heads: tuple[int, ...]) -> tuple[Intervention, ...]:
    """`ablate` of some heads of the measure's layer, always on (none for no heads)."""
    if not heads:
        return ()
    kind, span = Ablate(), measure.span
    site = kind.lower_site(Sites((measure.layer,), heads, None, span), None, span, Collector())
    text = f"ablate L{measure.layer + 1} heads {list(heads)} (post hoc)"
    return (Intervention(kind.name, measure.layer, heads, site, {}, Window(), None, text, span),)


def _once(prepare: Callable) -> Callable:
    """`prepare` computed once per eval set of this eval, for every forward to share."""
    done: dict = {}

    def prepared(batch):
        if batch.preparation not in done:
            done[batch.preparation] = prepare(batch)
        return done[batch.preparation]

    return prepared
