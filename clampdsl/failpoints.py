"""Named points at which a test may kill this process, to prove that a run killed at that
moment resumes exactly (tests/test_kill.py).

`CLAMPDSL_KILL_AT=NAME@N` sends SIGKILL to this process the Nth time it reaches the point
NAME (the first time without `@N`). Unset, as always outside those tests, `reach` returns at
once. The points: `step` (before a train step), `eval` (between an eval and its records),
`write:FILE` (half way through writing FILE's temporary), `append:metrics.jsonl` (half way
through appending a batch of records).

With `CLAMPDSL_KILL_ONCE=FILE` as well, one process only is killed: the first to get
there creates FILE, and while it exists none is (a retried Ray task, say, resumes instead
of dying again at the same point).
"""

from __future__ import annotations

import os
import signal

_ARMED = os.environ.get("CLAMPDSL_KILL_AT")
_ONCE = os.environ.get("CLAMPDSL_KILL_ONCE")
_reached: dict[str, int] = {}


def reach(name: str) -> None:
    if _ARMED is None:
        return
    target, _, nth = _ARMED.rpartition("@") if "@" in _ARMED else (_ARMED, "", "1")
    if name != target:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(nth) and _first_kill():
        os.kill(os.getpid(), signal.SIGKILL)


def _first_kill() -> bool:
    if _ONCE is None:
        return True
    try:
        with open(_ONCE, "x"):  # created by this process, or by another before it
            return True
    except FileExistsError:
        return False
