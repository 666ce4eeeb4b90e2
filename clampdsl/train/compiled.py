"""torch.compile with a way back: if compiling fails (no working C++ toolchain, missing
Python headers, an unsupported op), warn once and run the function eagerly.

Compiled with fullgraph=True, so a failure comes before any of the function has run: a
step that mutates weights is never half-applied.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch._inductor import list_mode_options

# Dynamo's guards already check every input's size and stride before a compiled call, so
# the generated code's own checks are skipped: ~50 calls per step, 1-3% of a small group's
# step on a 2-core CPU.
OPTIONS = {"size_asserts": False}


class CompiledOrEager:
    def __init__(self, function: Callable, mode: str | None, dynamic: bool | None = None):
        self.function = function
        options = list_mode_options(mode) | OPTIONS if mode else None
        self._compiled = (
            torch.compile(function, fullgraph=True, dynamic=dynamic, options=options)
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
