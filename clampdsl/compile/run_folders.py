"""Where a plan's run lives in a run store: `<store>/<spec stem>/<plan hash prefix>`.

One home for the naming, which the store (report/store.py) writes by and a graft's donor
spec (compile/donor_specs.py) is found by: the same plan is the same folder, whoever
names it.
"""

from __future__ import annotations

import re
from pathlib import PurePath, PurePosixPath

HASH_PREFIX = 12


def run_folder(file: str, plan_hash: str) -> PurePosixPath:
    """The run directory of the plan of spec `file` with hash `plan_hash`, relative to the
    store: always two levels deep, whatever the spec file is called."""
    return PurePosixPath(folder_name(PurePath(file).stem), plan_hash[:HASH_PREFIX])


def folder_name(stem: str) -> str:
    """A spec's stem as one plain folder name: no separators, no leading dots (the stem of
    `...clamp` is `..`), nothing a shell would trip on."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", stem).lstrip(".") or "spec"
