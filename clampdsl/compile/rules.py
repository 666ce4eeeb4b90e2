"""Checks across the interventions of one experiment: combinations the reference rejects
(or would silently ignore) are errors here."""

from __future__ import annotations

from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import Intervention, ModelConfig

PATTERN_KINDS = ("prev-token", "induction")


def check_experiment(
    interventions: list[Intervention], model: ModelConfig, errors: Collector
) -> None:
    _no_double_pattern(interventions, errors)
    _shifted_embedding_alone(interventions, model, errors)


def _no_double_pattern(interventions, errors) -> None:
    clamped: dict[tuple[int, int], Intervention] = {}
    for item in interventions:
        if item.kind not in PATTERN_KINDS:
            continue
        for head in item.heads:
            earlier = clamped.get((item.layer, head))
            if earlier is not None:
                errors.error(
                    f"L{item.layer + 1}.H{head}'s pattern is already clamped to {earlier.kind} "
                    f"(line {earlier.span.line})",
                    item.span,
                )
            clamped[(item.layer, head)] = item


def _shifted_embedding_alone(interventions, model, errors) -> None:
    # The reference runs shifted-embedding as a separate forward that honours only ablations
    # of the last layer and the copy readout; anything else would be silently dropped there.
    if not any(i.kind == "shifted-embedding" for i in interventions):
        return
    last = model.layers - 1
    for item in interventions:
        allowed = item.kind in ("shifted-embedding", "copy-scores") or (
            item.kind == "ablate" and item.layer == last
        )
        if not allowed:
            errors.error(
                f"{item.kind} cannot be combined with shifted-embedding: layer 1 is bypassed, "
                f"and only L{last + 1} ablations and `clamp logits to scores of …` apply",
                item.span,
            )
