"""Checkpoints: plain tensors and numbers only, written atomically, read weights-only.

A killed run resumes from its last checkpoint: weights, Adam state and the eval records
so far (the data stream needs no state: a step's batch depends only on the step). Nothing
is unpickled beyond what `weights_only` allows. Kept weights (`train keep_every`, and the
last step's) stay beside them, for grafts to take.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from clampdsl.compile.plan import Donor, snapshot_name


class Checkpointer:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path(self, group: int) -> Path:
        return self.directory / f"group{group}.pt"

    @staticmethod
    def due(step: int, start: int, every: int) -> bool:
        return step > start and step % every == 0

    def save(self, group: int, step: int, session_state: dict, records) -> None:
        state = {"step": step, "session": session_state, "records": list(records)}
        _write(self.path(group), state)

    def keep(self, group: int, step: int, session_state: dict) -> None:
        """The weights at `step`, kept for good (a graft's donor)."""
        state = {"step": step, "runs": session_state["runs"], "model": session_state["model"]}
        _write(self.directory / snapshot_name(group, step), state)

    def load(self, group: int) -> dict | None:
        target = self.path(group)
        if not target.is_file():
            return None
        return torch.load(target, map_location="cpu", weights_only=True)


def donor_weights(run_directory: Path, donor: Donor) -> dict[str, torch.Tensor]:
    """The donor run's weights at its step, by the model's names (`qkv0`)."""
    file = Path(run_directory) / donor.snapshot()
    if not file.is_file():
        raise FileNotFoundError(f"the donor's weights are gone: {file}")
    state = torch.load(file, map_location="cpu", weights_only=True)
    if int(state["step"]) != donor.step or donor.run not in state["runs"]:
        raise ValueError(f"{file} holds other weights than the donor's at step {donor.step}")
    index = state["runs"].index(donor.run)
    return {name.removeprefix("weights."): w[index] for name, w in state["model"].items()}


def _write(target: Path, state: dict) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, target)
