"""Checks across the interventions of one experiment: two clamps claiming one site at the
same time, and what each kind refuses to be combined with (kinds/*.check)."""

from __future__ import annotations

from clampdsl import kinds
from clampdsl.compile.configs import ModelConfig
from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import Intervention


def check_experiment(
    interventions: list[Intervention], model: ModelConfig, errors: Collector
) -> None:
    pairs = [(kinds.of(item), item) for item in interventions]
    _one_claim_at_a_time(pairs, model, errors)
    for index, (kind, item) in enumerate(pairs):
        kind.check(item, pairs[:index] + pairs[index + 1 :], model, errors)


def _one_claim_at_a_time(pairs, model, errors) -> None:
    """A site a kind claims (a pattern set whole) takes one such clamp per head at a time;
    in disjoint windows, several."""
    claimed: dict[tuple, list[Intervention]] = {}
    for kind, item in pairs:
        if not kind.claims_site:
            continue
        for write in kind.writes(item, model):
            for head in write.heads:
                earlier = claimed.setdefault((write.layer, write.site, head), [])
                clash = next((e for e in earlier if e.window.overlaps(item.window)), None)
                if clash is not None:
                    errors.error(
                        f"L{item.layer + 1}.H{head}'s {write.site} is already clamped to "
                        f"{clash.kind} (line {clash.span.line})",
                        item.span,
                    )
                earlier.append(item)
