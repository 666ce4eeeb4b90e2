"""Groups one after another in this process: `clampdsl run FILE` and `clampdsl.run`.

The plainest executor: events reach the driver as they happen, and whatever stops a group
(an error, Ctrl-C, an exception a callback raises) stops the run there, with the
checkpoints written so far kept for the same command to resume from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial

from clampdsl.executors import Executor, OnDone, OnEvent
from clampdsl.executors.group import GroupTask, run_group


class InProcess(Executor):
    @contextlib.contextmanager
    def opened(self) -> Iterator[Executor]:
        from clampdsl import accel

        accel.enable()  # this process trains: its process-wide workarounds, once
        yield self

    def execute(self, tasks: list[GroupTask], on_event: OnEvent, on_done: OnDone) -> None:
        for index, task in enumerate(tasks):
            on_done(index, run_group(task, partial(on_event, index)))
