"""Writing files so that no crash leaves one torn: whole files go to a temporary beside
the target, reach the disk, and are renamed over it (atomic on POSIX)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from clampdsl import failpoints


class RunError(Exception):
    """A run that cannot go on for a reason outside its spec; the message names the file
    and what to do."""


class RecoveryWarning(UserWarning):
    """Something damaged was found and worked around (a checkpoint set aside, a summary
    rebuilt): the run goes on, and says so."""


def write_atomically(target: Path, data: bytes) -> None:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    with naming(target):
        try:
            with open(temporary, "wb") as handle:
                handle.write(data[: len(data) // 2])
                failpoints.reach(f"write:{target.name}")  # killed here: the temporary is torn
                handle.write(data[len(data) // 2 :])
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except OSError as error:
            temporary.unlink(missing_ok=True)  # a full disk gets its room back
            if error.filename2 is not None:  # the rename: the target is what could not be
                raise OSError(error.errno, error.strerror, str(target)) from error
            raise


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """An OSError from writing `path` names it (a failed `write()` of an open file, as on
    a full disk, does not by itself)."""
    try:
        yield
    except OSError as error:
        if error.filename is not None:
            raise
        raise OSError(error.errno, error.strerror, str(path)) from error
