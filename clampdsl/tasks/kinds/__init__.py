"""The task kinds: one module per kind, found by listing this package (as clampdsl/kinds).

Each module exports `TASK`, an instance of `tasks.base.TaskKind`, and never imports torch;
its sampler lives in a module of its own under clampdsl/tasks.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from clampdsl.tasks.base import ROLE_NOUNS, TaskKind


@cache
def by_name() -> dict[str, TaskKind]:
    found = [
        importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)
    ]
    return {module.TASK.name: module.TASK for module in found}


def of(task) -> TaskKind:
    """The kind of a Plan's TaskConfig."""
    return by_name()[task.kind]


def has_roles(task, roles, reader: str, span, errors) -> bool:
    """Whether the task declares `roles`, which `reader` (a clamp, a measure) reads; an
    error at `span` for each it lacks."""
    kind = of(task)
    missing = [role for role in roles if role not in kind.roles]
    for role in missing:
        errors.error(
            f"{reader} reads {ROLE_NOUNS[role]}, which task {kind.name} does not have",
            span,
            hint=f"task {kind.name} has {', '.join(ROLE_NOUNS[r] for r in sorted(kind.roles))}",
        )
    return not missing
