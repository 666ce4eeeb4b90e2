"""Executors: where a spec's batched groups train, chosen by `clampdsl run --backend`.

| backend              | executor                                          | module       |
|----------------------|---------------------------------------------------|--------------|
| `local`              | one group after another, in this process          | inprocess.py |
| `local --jobs N`     | N groups at a time, each in a child process       | processes.py |
| `ray [--address A]`  | every group a Ray task, on a cluster (the extra)  | ray.py       |

Each executor calls the same function for each group, `group.run_group`, which trains the
group from its last checkpoint and writes its checkpoints; the executor hands the group's
events and outcome back to the driver (api.py), which alone writes the rest of the run
directory. So a run directory is the same whichever executor wrote it, and any executor
resumes or reuses it. This module imports neither torch nor ray; an executor's module is
imported when it is chosen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from clampdsl.executors.group import GroupFailed, GroupOutcome, GroupTask

OnEvent = Callable[[int, dict], None]  # (the task's index in the list, an event)
OnDone = Callable[[int, GroupOutcome | GroupFailed], None]


class MissingExtra(Exception):
    """A backend whose extra is not installed; the message says what to install."""


class Executor:
    """What the driver asks of an executor; the defaults are those of this machine's."""

    concurrent = False  # trains several groups at once (specs then share one display)
    trains_here = True  # on this machine's devices, so `--device cuda` needs one here
    description = ""  # how it trains, for the command's first line ("" when plainly here)

    @contextlib.contextmanager
    def opened(self) -> Iterator[Executor]:
        """Holds what the executor needs while the groups train (a Ray connection)."""
        yield self

    def device(self, requested: str) -> str:
        """The device the groups train on for `requested` ("auto", "cpu", "cuda", …)."""
        from clampdsl.train.session import resolve_device

        return str(resolve_device(requested))

    def check_storage(self, directories: list[Path]) -> None:
        """Raises a RunError unless wherever the groups train can write `directories`.
        Here: the run directories were just written by this process."""

    def execute(self, tasks: list[GroupTask], on_event: OnEvent, on_done: OnDone) -> None:
        """Trains every task, calling `on_event` with each event of the task at that index
        and `on_done` with its outcome, in this thread."""
        raise NotImplementedError


def _local(jobs: int, address: str | None) -> Executor:
    if address is not None:
        raise ValueError("--address names a Ray cluster: pass it with --backend ray")
    if jobs == 1:
        from clampdsl.executors.inprocess import InProcess

        return InProcess()
    from clampdsl.executors.processes import Processes

    return Processes(jobs)


def _ray(jobs: int, address: str | None) -> Executor:
    if jobs != 1:
        raise ValueError("--jobs is for --backend local: Ray runs every group as a task at once")
    try:
        from clampdsl.executors.ray import RayExecutor
    except ImportError as error:
        if error.name != "ray":
            raise
        raise MissingExtra(
            "the ray backend needs the ray extra: pip install 'clampdsl[ray]'"
        ) from None
    return RayExecutor(address)


# backend name → the executor for (--jobs, --address); a ValueError for a combination that
# makes no sense
BACKENDS: dict[str, Callable[[int, str | None], Executor]] = {"local": _local, "ray": _ray}


def choose(backend: str = "local", jobs: int = 1, address: str | None = None) -> Executor:
    if backend not in BACKENDS:
        raise ValueError(f"{backend!r} is not one of {', '.join(BACKENDS)}")
    return BACKENDS[backend](jobs, address)
