"""Writing files so that no crash leaves one torn: whole files go to a temporary beside
the target, reach the disk, and are renamed over it (atomic on POSIX)."""

from __future__ import annotations

import os
from pathlib import Path

from clampdsl import failpoints


def write_atomically(target: Path, data: bytes) -> None:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data[: len(data) // 2])
        failpoints.reach(f"write:{target.name}")  # killed here, only the temporary is torn
        handle.write(data[len(data) // 2 :])
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
