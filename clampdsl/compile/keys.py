"""A setting's key: the config field it names, its type and its range (compile/settings.py
reads every section through these; a task kind declares its own, clampdsl/tasks/kinds)."""

from __future__ import annotations

import attrs


@attrs.frozen
class Key:
    kind: str  # "int" | "float" | "choice" | "features"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    field: str | None = None  # config attribute, when it differs from the key


# Bounds far beyond any experiment of this kind, so that a number a spec gets wrong by
# orders of magnitude is refused here rather than when the trainer allocates it.
SEED = Key("int", low=0, high=2**32 - 1)
SIZE = 100_000
