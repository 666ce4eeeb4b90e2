"""Several specs at once: `clampdsl run A.clamp B.clamp … --jobs N`.

Each spec trains in a child `clampdsl run FILE --events` process with an equal share of
the CPU's cores (torch threads) and reports its progress on its stdout as JSON lines; this
process draws every group's bar and prints each spec's results as it finishes. No code or
pickles pass between the processes: a child gets its spec's path and the options on its
command line, and writes its run directory as `clampdsl run FILE` would.

Why: on a CPU a batched group's step is many small kernels, which a second core speeds up
little; two specs, one core each, train more run-steps per second than one after the
other on both, and their compiles, mostly single-threaded Python, overlap. Large groups
are the exception: their step gains from both cores' caches, and two side by side train
fewer run-steps per second than one after the other (docs/performance.md, "--jobs").
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import attrs

from clampdsl import api
from clampdsl.api import GroupCallback
from clampdsl.compile.plan import Plan
from clampdsl.report.console import group_bars, print_outcome, progress_bars

POLL_S = 0.1
# A rough cost model for starting the longest specs first (so that none starts last and
# runs alone): a step's fixed cost is about 2 runs' share of a batched step on a 2-core
# CPU, and compiling a group costs about as much as training 150,000 run-steps.
STEP_OVERHEAD_RUNS = 2
COMPILE_RUN_STEPS = 150_000


def threads_each(jobs: int) -> int:
    """Torch threads for each of `jobs` processes at once: an equal share of this one's."""
    import torch

    return max(1, torch.get_num_threads() // jobs)


def estimated_work(plan: Plan) -> int:
    """Run-steps, roughly, that `plan` will take: for ordering, not for display."""
    work = 0
    for group in plan.groups:
        steps = plan.run(group.runs[0]).train.steps
        work += steps * (len(group.runs) + STEP_OVERHEAD_RUNS) + COMPILE_RUN_STEPS
    return work


def report_events(stream: IO[str]) -> GroupCallback:
    """The child's side: an `on_group` callback for clampdsl.api.run that writes each
    group's start and progress to `stream` as JSON lines."""

    def emit(event: dict) -> None:
        stream.write(json.dumps(event) + "\n")
        stream.flush()

    def on_group(index, runs, total, start):
        emit({"group": index, "runs": list(runs), "total": total, "start": start})

        def on_progress(step: int, losses: dict[str, float]) -> None:
            emit({"group": index, "step": step, "losses": losses})

        return on_progress

    return on_group


def relay_events(lines: Iterable[str], on_group: GroupCallback) -> None:
    """This side: replays a child's JSON lines into `on_group` and the callbacks it
    returns. Lines that are not events (a library printing to stdout) are skipped."""
    on_progress = {}
    for line in lines:
        try:
            event = json.loads(line)
            group = event["group"]
            if "total" in event:
                runs, total, start = tuple(event["runs"]), event["total"], event["start"]
                on_progress[group] = on_group(group, runs, total, start)
            else:
                on_progress[group](event["step"], event["losses"])
        except (ValueError, KeyError, TypeError):
            continue


@attrs.frozen
class JobOutcome:
    spec: Path
    returncode: int
    stderr: str


class _Job:
    """One child process, its stdout relayed to the display by a thread of its own."""

    def __init__(self, spec: Path, command: list[str], on_group: GroupCallback):
        self.spec = spec
        # A file, not a pipe: a child writing much to stderr can never block on it.
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8"
        )
        self._relay = threading.Thread(
            target=relay_events, args=(self._process.stdout, on_group), daemon=True
        )
        self._relay.start()

    def outcome(self) -> JobOutcome | None:
        """None while the child runs."""
        returncode = self._process.poll()
        if returncode is None:
            return None
        self._relay.join()
        self._stderr.seek(0)
        stderr = self._stderr.read()
        self._stderr.close()
        return JobOutcome(self.spec, returncode, stderr)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait()
        self._stderr.close()


def run_jobs(
    specs: list[Path],
    jobs: int,
    command_for: Callable[[Path], list[str]],
    on_group_for: Callable[[Path], GroupCallback],
    on_finished: Callable[[JobOutcome], None],
) -> None:
    """Runs `command_for(spec)` for every spec, at most `jobs` at a time, in order of the
    list; `on_finished` is called as each ends. If this process is interrupted, the
    children are stopped too (each resumes from its checkpoints when run again)."""
    pending, running = list(specs), []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                spec = pending.pop(0)
                running.append(_Job(spec, command_for(spec), on_group_for(spec)))
            for job in list(running):
                if (outcome := job.outcome()) is not None:
                    running.remove(job)
                    on_finished(outcome)
            time.sleep(POLL_S)
    finally:
        for job in running:
            job.stop()


def child_command(spec: Path, options: list[str], threads: int) -> list[str]:
    """`clampdsl run` of one spec with the parent's options, its thread share, and events
    on stdout."""
    run = [sys.executable, "-m", "clampdsl", "run", str(spec), *options]
    return [*run, "--threads", str(threads), "--events"]


def run_reporting_events(files: list[Path], out_dir: Path, options: dict) -> None:
    """A child of `run_in_children`: trains each spec, with progress as JSON lines on
    stdout."""
    for file in files:
        api.run(file, out_dir, on_group=report_events(sys.stdout), **options)


def run_in_children(
    files: list[Path],
    plans: list[Plan],
    out_dir: Path,
    jobs: int,
    options: dict,
    console,
    warnings,
) -> list[Path]:
    """Trains the specs in child processes, `jobs` at a time, longest first, drawing their
    bars on `console` and printing each one's results as it finishes (warnings on
    `warnings`); returns the specs that failed."""
    threads = threads_each(jobs)
    flags = ["--out", str(out_dir), "--device", options["device"], "--compile"]
    flags += [options["compile"]] + (["--fresh"] if options["fresh"] else [])
    flags += ["--allow-large"] if options["allow_large"] else []
    by_file = dict(zip(files, plans, strict=True))
    failed = []
    with progress_bars(console) as progress:

        def on_finished(outcome: JobOutcome) -> None:
            result = api.load(outcome.spec, out_dir) if outcome.returncode == 0 else None
            if result is None:
                failed.append(outcome.spec)
                progress.console.print(
                    f"[bold red]{outcome.spec}: failed (exit {outcome.returncode})[/]"
                )
                sys.stderr.write(outcome.stderr)
                return
            progress.console.print(f"[bold]{outcome.spec}[/]")
            print_outcome(progress.console, warnings, result)

        run_jobs(
            sorted(files, key=lambda file: -estimated_work(by_file[file])),  # longest first
            jobs,
            lambda file: child_command(file, flags, threads),
            lambda file: group_bars(progress, by_file[file], file.stem),
            on_finished,
        )
    return failed
