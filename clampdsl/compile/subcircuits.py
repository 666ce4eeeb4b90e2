"""Which steps of the induction circuit a set of clamps hands to the model for free.

Steps follow shared/reference/icl_dynamics_spec.md §5: 1 = the previous-token head attends,
2 = it copies the exemplar into the label token, 3qk = the induction head reads it by
K-composition, 4 = the query matches the right label, 3v = label identity in the induction
head's values, 5 = value → logit. Subcircuits: A = 1+2, B = 3qk+4, C = 3v+5.
"""

from __future__ import annotations

from clampdsl import kinds
from clampdsl.compile.plan import Intervention, ModelConfig

STEPS = ("1", "2", "3qk", "4", "3v", "5")
SUBCIRCUITS = {"A": ("1", "2"), "B": ("3qk", "4"), "C": ("3v", "5")}


def steps_given(interventions: tuple[Intervention, ...], model: ModelConfig) -> tuple[str, ...]:
    """The steps the run's clamps hand over, each kind saying which (`Kind.gives`)."""
    given = {step for item in interventions for step in kinds.of(item).gives(item, model)}
    return tuple(step for step in STEPS if step in given)


def describe(steps: tuple[str, ...]) -> str:
    """('1','2','3v','5') → 'A+C'; ('2','3qk','4','3v','5') → '2+B+C'; () → '–'.

    Loose steps come first, as in the reference's table of runs."""
    whole = [name for name, members in SUBCIRCUITS.items() if all(m in steps for m in members)]
    covered = {m for name in whole for m in SUBCIRCUITS[name]}
    parts = [s for s in steps if s not in covered] + whole
    return "+".join(parts) if parts else "–"


def still_to_learn(steps: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(step for step in STEPS if step not in steps)
