"""The Plan back in the language's words, for `clampdsl plan`: heads and layers as the paper
names them (`L2.H* except H3`), each statement once (it lowers to one intervention per
layer), its window in steps and sequences, and beside it the 0-based tensor indices."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from clampdsl import kinds
from clampdsl.analysis import predictions
from clampdsl.compile.configs import EvalConfig, ModelConfig
from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import Intervention, Measure, PhaseRule, Run, Window
from clampdsl.compile.selectors import HEAD_SITES, LAYER_SITES, Sites

FEW = 2  # at most this many heads left out read best as `H* except …`


def heads(chosen: Sequence[int], count: int) -> str:
    """A head set of a layer of `count` heads, as compactly as a selector writes it:
    `H*`, `H3`, `H* except H3`, `H* except H{3,5}`, `H0-2`, `H{0,1,3}`."""
    chosen = sorted(set(chosen))
    left_out = [h for h in range(count) if h not in chosen]
    if len(chosen) == 1:
        return f"H{chosen[0]}"
    if not left_out:
        return "H*"
    if len(left_out) <= FEW and len(left_out) < len(chosen):
        return f"H* except {heads(left_out, count)}"
    if chosen == list(range(chosen[0], chosen[-1] + 1)):
        return f"H{chosen[0]}-{chosen[-1]}"
    return "H{" + ",".join(map(str, chosen)) + "}"


def evals(config: EvalConfig, rule: PhaseRule) -> str:
    """`every 156 steps on train, relabel (1000 sequences each); every 20 steps while a
    run's train.loss is in (0.277, 0.624)`."""
    text = (
        f"every {config.every:,} steps on {', '.join(config.sets)} ({config.size} sequences each)"
    )
    if config.near_every is None:
        return text
    low, high = rule.near_band
    return (
        f"{text}; every {config.near_every:,} steps while a run's {rule.key} is in"
        f" ({low:.3g}, {high:.3g}), near the phase change"
    )


def layers(chosen: Sequence[int], count: int) -> str:
    """Layers (0-based) as a selector names them: `L2`, every one `L*`, or from one on
    `L2..` (the only ways a statement names several)."""
    if len(chosen) == 1:
        return f"L{chosen[0] + 1}"
    return "L*" if len(chosen) == count else f"L{min(chosen) + 1}.."


def window(active: Window, batch: int) -> str:
    """`from step 1,000 (32,000 sequences) until the end`, `during train`; empty when
    always active."""
    if active.is_always():
        return ""
    parts = [f"from {_point(active.start, batch)}"] if active.start else []
    if active.end is not None:
        parts.append(f"until {_point(active.end, batch)}")
    elif active.start:
        parts.append("until the end")
    if active.during != "both":
        parts.append(f"during {active.during}")
    return " ".join(parts)


def _point(step: int, batch: int) -> str:
    return f"step {step:,} ({step * batch:,} sequences)"


@attrs.frozen
class Statement:
    """One statement of a run, as `clampdsl plan` shows it: its words (a statement of the
    language), its window, the tensor indices it lowered to, and its first intervention
    (for its line and donor)."""

    words: str
    window: str
    tensor: str
    item: Intervention

    @property
    def spoken(self) -> str:
        return f"{self.words} {self.window}" if self.window else self.words


def statements(run: Run) -> list[Statement]:
    """The run's statements in spec order: its interventions grouped by the statement
    (and donor) they came from. What a statement asks for besides its own kind (`ablate …
    keeping patterns`' preservation of every pattern) its words say."""
    grouped: dict[tuple, list[Intervention]] = {}
    for item in run.interventions:
        grouped.setdefault((item.span, item.text, item.donor), []).append(item)
    return [_statement(items, run) for items in grouped.values()]


def _statement(items: list[Intervention], run: Run) -> Statement:
    first = items[0]
    own = [item for item in items if item.kind == first.kind]
    named = [item.layer for item in own if item.layer is not None]
    words = kinds.of(first).spoken(first, selector(first, named, run.model))
    return Statement(words, window(first.window, run.train.batch), _tensor(first, named), first)


def selector(item: Intervention, named: list[int], model: ModelConfig) -> str:
    """What the statement names, in paper form: layers, heads and the site where the kind
    would not take it for granted (`L2.H* except H3`, `L1.H2.z`, `L1.out`, `logits`)."""
    if not named:
        return item.site  # embed, logits
    where = layers(named, model.layers)
    if item.heads:
        where += f".{heads(item.heads, model.heads)}"
    return where + (f".{item.site}" if _site_written(item, named, model) else "")


def _site_written(item: Intervention, named: list[int], model: ModelConfig) -> bool:
    """A layer's site is always written; a head's only where the kind, given the heads
    alone, would not choose it (so `ablate`'s values and `prev-token`'s pattern go
    unsaid); a site of the kind's own (a frozen head's weights, a graft's) never is."""
    if item.site in LAYER_SITES:
        return True
    if item.site not in HEAD_SITES:
        return False
    sites = Sites(tuple(named), item.heads, None, item.span)
    return kinds.of(item).lower_site(sites, model, item.span, Collector()) != item.site


def _tensor(item: Intervention, named: list[int]) -> str:
    """The 0-based indices: `tensor layer 1, heads [0, 1, 2]`, and a source head's."""
    parts = []
    if named:
        where = f"layer {named[0]}" if len(named) == 1 else f"layers {named}"
        parts.append(where + (f", heads {list(item.heads)}" if item.heads else ""))
    if item.source is not None:
        parts.append(f"source layer {item.source.layer}, head {item.source.head}")
    return "tensor " + "; ".join(parts) if parts else ""


def measure(item: Measure, model: ModelConfig) -> str:
    """A measure as the language writes it: `induction-strength of L2.H*`, `k-composition of
    L2.H* from L1.H*`, `single-head-accuracy of L2.H* at end`, `icl-score early=10
    late=100`, `loss as-if clamp L1.H* to prev-token strength 1` (the clamp's words,
    defaults written out)."""
    if item.clamps:
        first = item.clamps[0]
        named = [i.layer for i in item.clamps if i.kind == first.kind and i.layer is not None]
        spoken = kinds.of(first).spoken(first, selector(first, named, model))
        return f"{item.metric} {spoken}" + (" at end" if item.at_end else "")
    if item.layer is None:  # of the model's predictions
        return predictions.spoken(item)
    text = f"{item.metric} of L{item.layer + 1}.{heads(item.heads, model.heads)}"
    if item.source_layer is not None:
        text += f" from L{item.source_layer + 1}.{heads(item.source_heads, model.heads)}"
    return text + (" at end" if item.at_end else "")
