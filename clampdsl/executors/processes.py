"""Groups in child processes on this machine: `clampdsl run … --jobs N`.

Each group trains in a child `python -m clampdsl.executors.processes`, at most N at a time,
the longest first, each child on an equal share of the cores (torch threads). A child reads
its task as a JSON line on stdin and writes its events, then its outcome, as JSON lines on
stdout, which a thread per child hands to the driver's thread; no code or pickles pass
between the processes. A child that fails is reported with what it wrote to stderr, and
the others finish; a child whose driver is gone stops.

Why: on a CPU a batched group's step is many small kernels, which a second core speeds up
little; two groups, one core each, train more run-steps per second than one after the
other on both, and their compiles, mostly single-threaded Python, overlap. Large groups
are the exception: their step gains from both cores' caches, and two side by side train
fewer run-steps per second than one after the other (docs/performance.md, "--jobs").
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable

import attrs

from clampdsl.durable import RunError
from clampdsl.executors import Executor, OnDone, OnEvent
from clampdsl.executors.group import (
    GroupFailed,
    GroupOutcome,
    GroupTask,
    longest_first,
    relaying_warnings,
    run_group,
    throttled,
)

POLL_S = 0.1
INTERRUPTED = 130  # a child stopped by Ctrl-C, as a shell reports it


def threads_each(jobs: int) -> int:
    """Torch threads for each of `jobs` processes at once: an equal share of this one's."""
    import torch

    return max(1, torch.get_num_threads() // jobs)


class Processes(Executor):
    concurrent = True

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.description = (
            f"at most {jobs} groups at a time, each in a child process on an equal share of "
            "the cores"
        )

    def execute(self, tasks: list[GroupTask], on_event: OnEvent, on_done: OnDone) -> None:
        """If this process is interrupted, the children are stopped too (each group resumes
        from its checkpoints when run again)."""
        threads = threads_each(min(self.jobs, len(tasks)))
        events: queue.SimpleQueue = queue.SimpleQueue()
        pending, running = longest_first(tasks), []
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    index = pending.pop(0)
                    task = attrs.evolve(tasks[index], threads=threads)
                    running.append(_Child(index, task, events))
                _deliver(events, on_event)
                for child in [child for child in running if child.finished()]:
                    running.remove(child)
                    outcome = child.outcome()  # its last events are queued by now
                    _deliver(events, on_event)
                    on_done(child.index, outcome)
                time.sleep(POLL_S)
        finally:
            for child in running:
                child.stop()


def _deliver(events: queue.SimpleQueue, on_event: OnEvent) -> None:
    while not events.empty():
        on_event(*events.get())


class _Child:
    """One group's child process; a thread of its own writes its task and reads its
    events into the shared queue."""

    def __init__(self, index: int, task: GroupTask, events: queue.SimpleQueue):
        self.index = index
        self._outcome: GroupOutcome | None = None
        # A file, not a pipe: a child writing much to stderr can never block on it.
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )
        request = json.dumps(task.to_json())
        self._relay = threading.Thread(target=self._talk, args=(request, events), daemon=True)
        self._relay.start()

    def _talk(self, request: str, events: queue.SimpleQueue) -> None:
        # Written here, not by the driver: a child reads its task once its imports are
        # done, and the driver goes on meanwhile. Its stdin stays open: the child stops
        # when it closes, as it does when this process ends, however it ends.
        try:
            self._process.stdin.write(request + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:  # it ended before reading: its exit status and stderr say why
            return
        for event in parse_events(self._process.stdout):
            if event["event"] == "outcome":
                self._outcome = GroupOutcome.from_json(event["outcome"])
            else:
                events.put((self.index, event))

    def _close_stdin(self) -> None:
        with contextlib.suppress(BrokenPipeError):  # a task it never read
            self._process.stdin.close()

    def finished(self) -> bool:
        return self._process.poll() is not None

    def outcome(self) -> GroupOutcome | GroupFailed:
        self._relay.join()
        self._close_stdin()
        self._stderr.seek(0)
        stderr = self._stderr.read().strip()
        self._stderr.close()
        if self._process.returncode == 0 and self._outcome is not None:
            return self._outcome
        return GroupFailed(stderr or f"its process ended with exit {self._process.returncode}")

    def stop(self) -> None:
        self._close_stdin()
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait()
        self._stderr.close()


def parse_events(lines: Iterable[str]) -> Iterable[dict]:
    """The events among a child's lines; lines that are not events (a library printing to
    stdout) are skipped."""
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "event" in event:
            yield event


def emit_line(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main() -> None:
    """The child: its task from stdin, its events and outcome on stdout, a failure in one
    line on stderr (exit 1)."""
    from clampdsl import accel

    task = GroupTask.from_json(json.loads(sys.stdin.readline()))
    threading.Thread(target=_stop_with_the_driver, daemon=True).start()
    accel.enable()  # this process trains
    emit = throttled(emit_line)
    try:
        with relaying_warnings(emit):
            outcome = run_group(task, emit)
    except (RunError, OSError) as error:
        sys.stderr.write(f"{error}\n")
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C reaches the children too; the driver reports it
        sys.exit(INTERRUPTED)
    emit_line({"event": "outcome", "outcome": outcome.to_json()})


def _stop_with_the_driver() -> None:
    """Ends this child once the driver closes its stdin or is gone (killed, say), so that
    no orphan goes on writing a run directory that the next run holds."""
    sys.stdin.read()
    os._exit(INTERRUPTED)


if __name__ == "__main__":
    main()
