"""torch.compile with a way back: if compiling fails (no working C++ toolchain, missing
Python headers, an unsupported op), warn once and run the function eagerly.

Compiled with fullgraph=True, so a failure comes before any of the function has run: a
step that mutates weights is never half-applied.

Guards. Before every call dynamo checks that the compiled code still fits: the inputs'
tensor metadata, the global state (grad mode, …), and every Python value the trace read
on the way (the model's and the clamps' attributes, dict keys, constants): hundreds of
checks for a group's step, a sizeable share of a small step's time on a CPU
(docs/performance.md). A `CompiledOrEager` is called with the
same Python objects every time (a session's model and clamps; clamp windows are masks
changed in place), so where torch can keep its compiled code apart from every other
`torch.compile` of the same function (its `isolate_recompiles`, in recent torch), only the
tensor and global-state guards are kept: another session's model, with other clamps,
never reaches this one's code.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable

import torch

# Dynamo's guards already check every input's size and stride before a compiled call, so
# the generated code's own checks, dozens of calls per step, are skipped.
OPTIONS = {"size_asserts": False}


def _isolation() -> tuple[dict, dict]:
    """(torch.compile keywords, inductor options) that keep a compiled function's code to
    itself and guarded by tensors and global state alone; nothing on older torch."""
    keep_tensor_guards = getattr(torch.compiler, "keep_portable_guards_unsafe", None)
    if keep_tensor_guards and "isolate_recompiles" in inspect.signature(torch.compile).parameters:
        return {"isolate_recompiles": True}, {"guard_filter_fn": keep_tensor_guards}
    return {}, {}


ISOLATE, GUARD_OPTIONS = _isolation()


def _modes(mode: str) -> dict:
    """torch.compile's `mode`, or the options it stands for with ours added (it takes one
    or the other); the mode alone where inductor no longer lists them."""
    try:
        from torch._inductor import list_mode_options
    except ImportError:
        return {"mode": mode}
    return {"options": list_mode_options(mode) | OPTIONS | GUARD_OPTIONS}


class CompiledOrEager:
    def __init__(self, function: Callable, mode: str | None, dynamic: bool | None = None):
        self.function = function
        self._compiled = (
            torch.compile(function, fullgraph=True, dynamic=dynamic, **_modes(mode), **ISOLATE)
            if mode
            else None
        )

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def __call__(self, *args, **kwargs):
        if self._compiled is None:
            return self.function(*args, **kwargs)
        try:
            return self._compiled(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - any compiler failure means: run eagerly
            warnings.warn(f"torch.compile failed, running eagerly: {error}", stacklevel=2)
            self._compiled = None
            return self.function(*args, **kwargs)
