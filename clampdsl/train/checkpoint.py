"""Checkpoints: plain tensors and numbers only, checksummed, written atomically, read
weights-only.

A killed run resumes from its last checkpoint: weights, Adam state and the eval records
so far (the data stream needs no state: a step's batch depends only on the step). Kept
weights (`train keep_every`, and the last step's) stay beside them, for grafts to take.

A file is a JSON header line, then the `torch.save` bytes. The header names the plan the
file belongs to, the step, and the payload's length and SHA-256, so that a truncated,
flipped or foreign file is refused before a byte of it is unpickled (and nothing is
unpickled beyond what `weights_only` allows). Each save keeps the one before it as
`groupG.prev.pt`: a damaged checkpoint falls back to the previous good one.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path

import torch

from clampdsl.compile.plan import Donor, snapshot_name
from clampdsl.durable import RecoveryWarning, RunError, write_atomically

MAGIC = "clampdsl-checkpoint"
FORMAT = 1


class CheckpointError(RunError):
    """A checkpoint that cannot be used, with the file and what to do about it."""


class Checkpointer:
    def __init__(self, directory: Path, plan_hash: str):
        self.directory = Path(directory)
        self.plan_hash = plan_hash

    def path(self, group: int) -> Path:
        return self.directory / f"group{group}.pt"

    def previous(self, group: int) -> Path:
        return self.directory / f"group{group}.prev.pt"

    @staticmethod
    def due(step: int, start: int, every: int) -> bool:
        return step > start and step % every == 0

    def save(self, group: int, step: int, session_state: dict, records) -> None:
        state = {"step": step, "session": session_state, "records": list(records)}
        current = self.path(group)
        data = encode(state, self.plan_hash, step)
        if current.is_file():
            current.replace(self.previous(group))
        write_atomically(current, data)

    def keep(self, group: int, step: int, session_state: dict) -> None:
        """The weights at `step`, kept for good (a graft's donor)."""
        state = {"step": step, "runs": session_state["runs"], "model": session_state["model"]}
        target = self.directory / snapshot_name(group, step)
        write_atomically(target, encode(state, self.plan_hash, step))

    def load(self, group: int) -> dict | None:
        """The group's last good checkpoint, or None if it has none yet. A damaged last one
        is set aside (`.damaged`, kept for a look) when the previous one is good."""
        current, previous = self.path(group), self.previous(group)
        if not current.is_file():
            return read(previous, self.plan_hash) if previous.is_file() else None
        try:
            return read(current, self.plan_hash)
        except CheckpointError as error:
            state = self._good_or_none(previous)
            if state is None:
                raise CheckpointError(
                    f"{error}; no earlier good checkpoint of this group is left: delete it to "
                    "train the group again from step 0, or rerun with --fresh"
                ) from None
            current.replace(current.with_name(current.name + ".damaged"))
            warnings.warn(
                f"{error}; resuming from the previous checkpoint, at step {state['step']:,}",
                RecoveryWarning,
                stacklevel=2,
            )
            return state

    def _good_or_none(self, file: Path) -> dict | None:
        try:
            return read(file, self.plan_hash) if file.is_file() else None
        except CheckpointError:
            return None


def encode(state: dict, plan_hash: str, step: int) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    header = {
        "format": MAGIC,
        "version": FORMAT,
        "plan": plan_hash,
        "step": step,
        "bytes": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    return json.dumps(header).encode() + b"\n" + payload


def read(file: Path, plan_hash: str) -> dict:
    """A checkpoint's state, once its header, length and checksum say it is whole and the
    plan's own; otherwise a CheckpointError naming the file and what is wrong."""
    try:
        data = file.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{file}: cannot be read ({error.strerror or error})") from None
    head, _, payload = data.partition(b"\n")
    header = _header(head)
    if header is None:
        raise CheckpointError(f"{file}: not a clampdsl checkpoint (or its header is damaged)")
    if header.get("version") != FORMAT:
        version = header.get("version")
        raise CheckpointError(f"{file}: written by another clampdsl (format {version})")
    if header.get("plan") != plan_hash:
        raise CheckpointError(f"{file}: belongs to another plan than this run's")
    whole = len(payload) == header.get("bytes")
    if not whole or hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise CheckpointError(f"{file}: damaged (truncated, or its checksum does not match)")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:  # a whole file of the right checksum that torch refuses
        raise CheckpointError(f"{file}: unreadable ({error})") from None


def _header(line: bytes) -> dict | None:
    try:
        header = json.loads(line)
    except ValueError:
        return None
    return header if isinstance(header, dict) and header.get("format") == MAGIC else None


def donor_weights(run_directory: Path, donor: Donor) -> dict[str, torch.Tensor]:
    """The donor run's weights at its step, by the model's names (`qkv0`)."""
    file = Path(run_directory) / donor.snapshot()
    if not file.is_file():
        raise CheckpointError(f"the donor's weights are gone: {file}")
    state = read(file, donor.plan_hash)
    if not _holds_weights(state) or state["step"] != donor.step or donor.run not in state["runs"]:
        raise CheckpointError(f"{file} holds other weights than the donor's at step {donor.step}")
    index = state["runs"].index(donor.run)
    return {name.removeprefix("weights."): w[index] for name, w in state["model"].items()}


def _holds_weights(state) -> bool:
    """Whether a kept-weights file's state is one `keep` writes: its step, its runs' names
    and a tensor per weight, one slice a run. Its header's checksum is the writer's word
    only, and a donor's run directory may come from anyone."""
    if not isinstance(state, dict) or type(state.get("step")) is not int:
        return False
    runs, model = state.get("runs"), state.get("model")
    if not isinstance(runs, list) or not all(isinstance(run, str) for run in runs):
        return False
    return isinstance(model, dict) and all(
        isinstance(name, str) and isinstance(w, torch.Tensor) and w.dim() and len(w) == len(runs)
        for name, w in model.items()
    )
