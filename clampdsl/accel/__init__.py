"""Workarounds that reach into torch's private modules or the C library for a measured gain
(docs/performance.md, "Accelerations"), kept together and switched on only by an entry
point: `clampdsl run`, `clampdsl.run` and the benchmark call `enable()`; building a
session never does. Each checks that the torch in use is one it was written for and does
nothing elsewhere; a private module that moved makes it a no-op, never an import error.

`CLAMPDSL_ACCELERATIONS` chooses: unset or `all`, every one; `none`; or a comma-separated
list of names (for measuring each one's gain).
"""

from __future__ import annotations

import importlib
import os

# name → (module, function); each function applies the workaround and says whether it did.
ACCELERATIONS = {
    "inductor-backport": ("inductor_backports", "skip_full_simplify_in_vector_index_analysis"),
    "vec-isa-record": ("vec_isa", "remember_isa_checks"),
    "keep-freed-memory": ("host_memory", "keep_freed_memory"),
    "warm-evals": ("warm_evals", "allow_warming"),
}
# Torch releases these were written for and measured on, [first, last]: elsewhere each is
# left off, whatever it would make of that torch.
WRITTEN_FOR = ((2, 4), (2, 14))

_enabled: dict[str, bool] = {}


def enable(names: list[str] | None = None) -> dict[str, bool]:
    """Switches on the chosen accelerations (once each); {name: whether it applies}."""
    for name in chosen() if names is None else names:
        if name not in _enabled:
            _enabled[name] = _torch_is_known() and _apply(name)
    return dict(_enabled)


def enabled(name: str) -> bool:
    return _enabled.get(name, False)


def chosen() -> list[str]:
    setting = os.environ.get("CLAMPDSL_ACCELERATIONS", "all").strip()
    if setting == "all":
        return list(ACCELERATIONS)
    if setting == "none":
        return []
    return [name for name in setting.split(",") if name.strip() in ACCELERATIONS]


def _apply(name: str) -> bool:
    module, function = ACCELERATIONS[name]
    try:
        apply = getattr(importlib.import_module(f"{__name__}.{module}"), function)
        return bool(apply())
    except (ImportError, AttributeError):  # a private module or name that moved
        return False


def _torch_is_known() -> bool:
    import torch

    release = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    return WRITTEN_FOR[0] <= release <= WRITTEN_FOR[1]
