"""Every group a Ray task: `clampdsl run … --backend ray [--address ADDR]` (the ray extra).

Connects to the cluster at `--address` (else `RAY_ADDRESS`, else the cluster `ray start`
last started on this machine), or starts a local one for the run. Each group is a plain
Ray task sized from the group (`task_resources`), retried by Ray when its worker or node
dies (it resumes from the group's last checkpoint), never when it raises: an error in the
group is reported as its failure and the other groups finish. The tasks send their events
to an actor that the driver polls, so every group's progress reaches the one display. The
run directory must be on storage every node sees at the same path; `check_storage` has a
task on each node write a file there that the driver reads back. The driver's
`CLAMPDSL_*` settings go to the workers with the tasks (docs/cluster.md).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from clampdsl.compile import resources
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

# Retries of a task whose worker or node died: a few, since each resumes from the group's
# last checkpoint; past them the group is reported as failed.
MAX_RETRIES = 3
POLL_S = 0.2  # how often the driver collects events and finished tasks
# A batched group's CPU step gains little from a second core below this many runs
# (docs/performance.md, "--jobs"): one CPU each, two from here on.
LARGE_GROUP_RUNS = 32
# A GPU's share for a group: its estimated peak memory against a GPU of GPU_BYTES, but at
# least MIN_GPU_SHARE (the paper's groups are launch-bound: four share a GPU well).
GPU_BYTES = 16 * 2**30
MIN_GPU_SHARE = 0.25


class RayExecutor(Executor):
    concurrent = True
    trains_here = False  # on the cluster's devices: `--device cuda` asks the cluster

    def __init__(self, address: str | None):
        self.address = address
        where = address or os.environ.get("RAY_ADDRESS") or "a Ray cluster"
        self.description = f"every group a Ray task on {where}"

    @contextlib.contextmanager
    def opened(self) -> Iterator[Executor]:
        settings = {key: value for key, value in os.environ.items() if key.startswith("CLAMPDSL_")}
        try:
            ray.init(
                address=self.address,
                logging_level=logging.ERROR,
                log_to_driver=False,  # worker output would tear the progress display
                runtime_env={"env_vars": settings} if settings else None,
            )
        except ConnectionError as error:
            raise RunError(f"cannot connect to the Ray cluster: {error}") from None
        try:
            yield self
        finally:
            ray.shutdown()

    def device(self, requested: str) -> str:
        """CUDA where the cluster has GPUs (Ray gives each task its own: `cuda`)."""
        gpus = ray.cluster_resources().get("GPU", 0)
        if requested == "auto":
            return "cuda" if gpus else "cpu"
        if requested.startswith("cuda") and not gpus:
            raise RunError("the Ray cluster has no GPU: pass --device cpu, or add GPU nodes")
        return "cuda" if requested.startswith("cuda") else requested

    def check_storage(self, directories: list[Path]) -> None:
        """A probe task on every node writes a file in each directory; the driver must read
        each back."""
        token = uuid.uuid4().hex
        probes = [
            (node["NodeManagerHostname"], directory, _probe_on(node["NodeID"], directory, token))
            for node in ray.nodes()
            if node["Alive"]
            for directory in directories
        ]
        for host, directory, probe in probes:
            _check_probe(host, directory, probe, token)

    def execute(self, tasks: list[GroupTask], on_event: OnEvent, on_done: OnDone) -> None:
        """If this process is interrupted, the tasks are cancelled (each group resumes from
        its checkpoints when run again)."""
        events = _Events.remote()
        cpus = max(node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"])
        running = {}
        for index in longest_first(tasks):
            options = task_resources(tasks[index], int(cpus))
            task = attrs.evolve(tasks[index], threads=options["num_cpus"])
            train = _train.options(**options, max_retries=MAX_RETRIES, retry_exceptions=False)
            running[train.remote(task.to_json(), events, index)] = index
        relay = _Relay(on_event)
        try:
            while running:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
                relay.deliver(ray.get(events.take.remote()))
                for reference in ready:
                    index = running.pop(reference)
                    relay.close(index)
                    on_done(index, _outcome(reference))
        finally:
            for reference in running:
                ray.cancel(reference, force=True)


def task_resources(task: GroupTask, node_cpus: int) -> dict:
    """A group's Ray resources: CPUs by its size (at most a node's), and on CUDA a share of
    a GPU by its estimated peak memory, in hundredths."""
    runs = len(task.plan.groups[task.group].runs)
    cpus = max(1, min(node_cpus, 2 if runs >= LARGE_GROUP_RUNS else 1))
    if task.device == "cpu":
        return {"num_cpus": cpus}
    peak = resources.estimate(task.plan)[task.group].peak
    share = min(1.0, max(MIN_GPU_SHARE, peak / GPU_BYTES))
    return {"num_cpus": 1, "num_gpus": math.ceil(share * 100) / 100}


@ray.remote
def _train(task: dict, events, index: int) -> dict:
    """One group, on a worker: its events to `events`, its outcome returned. What it raises
    comes back as a RayTaskError, which is not retried."""
    from clampdsl import accel

    accel.enable()  # this worker trains
    sender = _Sender(events, index)
    send = throttled(sender)
    with relaying_warnings(send):
        outcome = run_group(GroupTask.from_json(task), send)
    sender.wait()  # before the outcome: the driver takes events, then outcomes
    return outcome.to_json()


@ray.remote(num_cpus=0)
class _Events:
    """The tasks' events until the driver takes them."""

    def __init__(self):
        self._events: list = []

    def put(self, events: list) -> None:
        self._events.extend(events)

    def take(self) -> list:
        events, self._events = self._events, []
        return events


class _Sender:
    """A task's events to the actor, each tagged with the task's index and its attempt."""

    def __init__(self, events, index: int):
        self.events, self.index = events, index
        self.attempt = uuid.uuid4().hex  # a retried task is another attempt

    def __call__(self, event: dict) -> None:
        self.events.put.remote([(self.index, self.attempt, event)])

    def wait(self) -> None:
        """Returns once every event sent is with the actor (one caller's calls to an actor
        run in order)."""
        ray.get(self.events.put.remote([]))


class _Relay:
    """Events to the driver: a task's latest attempt's only (a retried task starts again
    with a start event; what a dead attempt sent late is stale), none once its outcome
    is in."""

    def __init__(self, on_event: OnEvent):
        self.on_event = on_event
        self.attempts: dict[int, str] = {}
        self.closed: set[int] = set()

    def deliver(self, batch: list) -> None:
        for index, attempt, event in batch:
            if index in self.closed:
                continue
            if event["event"] == "start":
                self.attempts[index] = attempt
            if self.attempts.get(index) == attempt:
                self.on_event(index, event)

    def close(self, index: int) -> None:
        self.closed.add(index)


def _outcome(reference) -> GroupOutcome | GroupFailed:
    try:
        return GroupOutcome.from_json(ray.get(reference))
    except ray.exceptions.RayTaskError as error:  # the group raised: a spec or data reason
        cause = error.cause
        if isinstance(cause, RunError | OSError):
            return GroupFailed(str(cause))
        return GroupFailed(f"{type(cause).__name__}: {cause}\n{error.traceback_str}")
    except ray.exceptions.RayError as error:  # its worker or node died, every retry
        return GroupFailed(f"its Ray worker was lost {MAX_RETRIES + 1} times; the last: {error}")


@ray.remote(num_cpus=0)
def _probe(directory: str, token: str) -> str:
    path = Path(directory) / f".probe-{token}-{ray.get_runtime_context().get_node_id()}"
    path.write_text(token)
    return str(path)


def _probe_on(node: str, directory: Path, token: str):
    place = NodeAffinitySchedulingStrategy(node, soft=False)
    return _probe.options(scheduling_strategy=place).remote(str(directory), token)


def _check_probe(host: str, directory: Path, probe, token: str) -> None:
    advice = "put --out on storage every node mounts at the same path (docs/cluster.md)"
    try:
        path = Path(ray.get(probe))
    except ray.exceptions.RayError as error:
        cause = getattr(error, "cause", None) or error
        raise RunError(
            f"{directory}: the Ray node on {host} cannot write it ({cause}); {advice}"
        ) from None
    try:
        seen = path.read_text()
        path.unlink()
    except OSError:
        seen = None
    if seen != token:
        raise RunError(f"{directory}: what the Ray node on {host} wrote is not here; {advice}")
