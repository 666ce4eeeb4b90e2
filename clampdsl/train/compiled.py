"""torch.compile with a way back: if compiling fails (no working C++ toolchain, missing
Python headers, an unsupported op), warn once and run the function eagerly.

Compiled with fullgraph=True, so a failure comes before any of the function has run: a
step that mutates weights is never half-applied.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch


class CompiledOrEager:
    def __init__(self, function: Callable, mode: str | None):
        self.function, self.mode = function, mode
        self._compiled = torch.compile(function, mode=mode, fullgraph=True) if mode else None

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
