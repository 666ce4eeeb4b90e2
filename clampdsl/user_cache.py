"""The user's cache directory, where clampdsl keeps what it can rebuild but would rather not:
the spec parser's tables (lang/grammar.py) and the answers of inductor's vector-ISA checks
(accel/vec_isa.py). Both are JSON; nothing here is ever unpickled."""

from __future__ import annotations

import os
from pathlib import Path


def directory() -> Path | None:
    """`$XDG_CACHE_HOME/clampdsl` (or `~/.cache/clampdsl`), created private to the user;
    None where it cannot be made or is not the user's own, so that nothing is cached."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG base directory spec: a relative path is invalid and ignored.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    path = root / "clampdsl"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = path.stat()
    except (OSError, RuntimeError):  # RuntimeError: no home directory to be found
        return None
    # A directory that another user owns or may write to could hold their file.
    if status.st_uid != os.getuid() or status.st_mode & 0o022:
        return None
    return path
