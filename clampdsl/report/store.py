"""The run directory: `runs/<spec-stem>/<plan-hash-prefix>/` (compile/run_folders.py).

Holds the spec text, the plan JSON, metrics (JSONL, flushed per eval), checkpoints, the
report and figures. Same spec and seeds ⇒ same directory ⇒ `run` resumes or reuses it.
Whole files are written atomically (durable.py); the metrics are rewritten whole from the
checkpoints when a group starts, so a line torn by a crash never outlives the next try. All
JSON is strict: a non-finite number (a diverged loss) is written as null. A finished run's
summary carries the metrics' SHA-256, and is only reused while they match. One process at
a time writes a run directory (an OS file lock, which a killed holder releases).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from clampdsl import failpoints
from clampdsl.compile.plan import SNAPSHOTS, Plan
from clampdsl.compile.run_folders import run_folder
from clampdsl.durable import RunError, naming, write_atomically

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here, one writer is the user's care
    fcntl = None

LOCK = ".lock"
RECORD_LABELS = ("run", "step", "sequences")  # a record's fields that are not measurements


class RunLocked(RunError):
    """Another process is writing this run directory."""


def run_directory(root: str | Path, plan: Plan) -> Path:
    """Always a folder two levels inside `root`, whatever the spec file is called."""
    return Path(root) / run_folder(plan.file, plan.content_hash())


def strict_json(value, **options) -> str:
    """JSON that every parser reads: non-finite floats become null."""
    return json.dumps(_finite(value), allow_nan=False, **options)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RunStore:
    def __init__(self, root: str | Path, plan: Plan, source: str):
        self.plan, self.source = plan, source
        self.directory = run_directory(root, plan)

    @property
    def metrics_path(self) -> Path:
        return self.directory / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.directory / SNAPSHOTS

    @property
    def summary_path(self) -> Path:
        return self.directory / "summary.json"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Holds the directory for this process, or raises RunLocked naming the holder."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / LOCK, "a+", encoding="utf-8") as handle:
            if fcntl is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.seek(0)
                    raise RunLocked(
                        f"{self.directory} is being written by another clampdsl run "
                        f"({handle.read().strip() or 'a process'}); wait for it to finish, "
                        "or pass another --out"
                    ) from None
            handle.truncate(0)
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
            yield

    def clear(self) -> None:
        """Everything a run wrote here (`--fresh`), but the lock this process holds."""
        for item in self.directory.iterdir():
            if item.name == LOCK:
                continue
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            else:
                item.unlink()

    def finished(self) -> dict | None:
        """The summary of a finished run, if it and the metrics it was computed from are
        whole; None otherwise (never run to the end, or damaged since: run it again)."""
        try:
            payload = json.loads(self.summary_path.read_text(encoding="utf-8"))
            metrics = digest(self.metrics_path.read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(payload, dict) or payload.get("metrics_sha256") != metrics:
            return None
        return payload if payload.pop("sha256", None) == _own_digest(payload) else None

    def write_summary(self, payload: dict) -> None:
        """summary.json: the payload, the SHA-256 of the metrics it was computed from, and
        its own (of its other fields), so that an edit or a flipped bit is noticed."""
        payload = payload | {"metrics_sha256": digest(self.metrics_path.read_bytes())}
        self.write_text(
            "summary.json", strict_json(payload | {"sha256": _own_digest(payload)}, indent=2)
        )

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.write_text("spec.clamp", self.source)
        self.write_text("plan.json", json.dumps(self.plan.to_json(), indent=2))

    def write_text(self, name: str, text: str) -> Path:
        target = self.directory / name
        write_atomically(target, text.encode("utf-8"))
        return target

    def write_records(self, records: list[dict]) -> None:
        self.write_text("metrics.jsonl", "".join(strict_json(r) + "\n" for r in records))

    def append_records(self, records: list[dict]) -> None:
        text = "".join(strict_json(r) + "\n" for r in records)
        with naming(self.metrics_path), self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(text[: len(text) // 2])
            failpoints.reach("append:metrics.jsonl")  # a torn line, for the next try to drop
            handle.write(text[len(text) // 2 :])
            handle.flush()

    def read_records(self) -> list[dict]:
        if not self.metrics_path.is_file():
            return []
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        return [_measured(json.loads(line)) for line in lines if line.strip()]


def _own_digest(payload: dict) -> str:
    return digest(strict_json(payload, sort_keys=True).encode())


def _measured(record: dict) -> dict:
    """A record as read back: null measurements are the non-finite numbers they were."""
    return {
        key: math.nan if value is None and key not in RECORD_LABELS else value
        for key, value in record.items()
    }
