"""The clamp kinds: one module per kind (or small family), found by listing this package.

Each module exports `KINDS`, instances of `base.Kind`. Adding a kind adds its module here,
its test and its entry in docs/language.md; nothing else names it.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from clampdsl.kinds.base import Kind

__all__ = ["Kind", "all_kinds", "by_name", "of", "targets", "verbs"]


@cache
def all_kinds() -> tuple[Kind, ...]:
    found = []
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        found += getattr(importlib.import_module(f"{__name__}.{module}"), "KINDS", ())
    return tuple(found)


@cache
def by_name() -> dict[str, Kind]:
    return {kind.name: kind for kind in all_kinds()}


@cache
def targets() -> dict[str, Kind]:
    """`clamp SEL to TARGET`: target word → kind."""
    return {kind.target: kind for kind in all_kinds() if kind.target is not None}


@cache
def verbs() -> dict[str, Kind]:
    """Kinds with a statement of their own (`ablate SEL`): verb → kind."""
    return {kind.statement: kind for kind in all_kinds() if kind.statement not in (None, "clamp")}


def of(item) -> Kind:
    """The kind of a Plan intervention."""
    return by_name()[item.kind]
