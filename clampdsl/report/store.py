"""The run directory: `runs/<spec-stem>/<plan-hash-prefix>/`.

Holds the spec text, the plan JSON, metrics (JSONL, flushed per eval), checkpoints, the
report and figures. Same spec and seeds ⇒ same directory ⇒ `run` resumes or reuses it.
Whole-file writes are atomic (temp file, then rename).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from clampdsl.compile.plan import SNAPSHOTS, Plan

HASH_PREFIX = 12


def run_directory(root: str | Path, plan: Plan) -> Path:
    """Always a folder two levels inside `root`, whatever the spec file is called."""
    return Path(root) / folder_name(Path(plan.file).stem) / plan.content_hash()[:HASH_PREFIX]


def folder_name(stem: str) -> str:
    """A spec's stem as one plain folder name: no separators, no leading dots (the stem of
    `...clamp` is `..`), nothing a shell would trip on."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", stem).lstrip(".") or "spec"


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

    def is_complete(self) -> bool:
        return self.summary_path.is_file()

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.write_text("spec.clamp", self.source)
        self.write_text("plan.json", json.dumps(self.plan.to_json(), indent=2))

    def write_text(self, name: str, text: str) -> Path:
        target = self.directory / name
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
        return target

    def append_records(self, records: list[dict]) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
            handle.flush()

    def reset_records(self, runs: tuple[str, ...], records: list[dict]) -> None:
        """After a resume: keep other groups' rows, replace these runs' rows by `records`."""
        kept = [r for r in self.read_records() if r["run"] not in runs]
        text = "".join(json.dumps(r) + "\n" for r in kept + list(records))
        self.write_text("metrics.jsonl", text)

    def read_records(self) -> list[dict]:
        if not self.metrics_path.is_file():
            return []
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
