"""Checkpoints: plain tensors and numbers only, written atomically, read weights-only.

A killed run resumes from its last checkpoint: model, Adam state, the data generator's
state and the eval records so far. Nothing is unpickled beyond what `weights_only` allows.
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

    def save(self, group: int, step: int, model, optimizer, generator, records) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        state = {
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "records": list(records),
        }
        target = self.path(group)
        temporary = target.with_suffix(".tmp")
        torch.save(state, temporary)
        os.replace(temporary, target)

    def _load(self, group: int) -> dict | None:
        target = self.path(group)
        if not target.is_file():
            return None
        return torch.load(target, map_location="cpu", weights_only=True)

    def restore_step(self, group: int) -> int:
        state = self._load(group)
        return int(state["step"]) if state else 0

    def records(self, group: int) -> list:
        state = self._load(group)
        return list(state["records"]) if state else []

    def restore(self, group: int, model, optimizer, generator) -> tuple[int, list]:
        """Loads the group's checkpoint if there is one; returns (step, records so far)."""
        state = self._load(group)
        if state is None:
            return 0, []
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        return int(state["step"]), list(state["records"])
