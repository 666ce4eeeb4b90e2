"""Checkpoints: plain tensors and numbers only, written atomically, read weights-only.

A killed run resumes from its last checkpoint: weights, Adam state and the eval records
so far (the data stream needs no state: a step's batch depends only on the step). Nothing
is unpickled beyond what `weights_only` allows.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


class Checkpointer:
    def __init__(self, directory: Path, every: int):
        self.directory = Path(directory)
        self.every = every

    def path(self, group: int) -> Path:
        return self.directory / f"group{group}.pt"

    def due(self, step: int, start: int) -> bool:
        return step > start and self.every > 0 and step % self.every == 0

    def save(self, group: int, step: int, session_state: dict, records) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        state = {"step": step, "session": session_state, "records": list(records)}
        target = self.path(group)
        temporary = target.with_suffix(".tmp")
        torch.save(state, temporary)
        os.replace(temporary, target)

    def load(self, group: int) -> dict | None:
        target = self.path(group)
        if not target.is_file():
            return None
        return torch.load(target, map_location="cpu", weights_only=True)
