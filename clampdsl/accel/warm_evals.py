"""Compile a group's eval graphs in a second process while this one compiles the step.

Most of a CPU compile is inductor's single-threaded Python (scheduling and code
generation), so on a 2-core machine the step graph and the eval graphs (with the measures,
and without) would compile one after the other on one core. A child process compiles the
eval graphs alongside, into the inductor cache both processes read, and the trainer's
first compiled eval loads them from there; the eval before it runs eagerly, needing no
graph (docs/performance.md, "Accelerations").

The child gets the plan as JSON on stdin and runs one eval of a session built from it: no
code or pickles pass between the processes. If it fails or hangs, the trainer compiles the
eval graphs itself, as it would without it.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from clampdsl.compile.plan import Plan

# Far longer than the eval graphs take to compile, even on a busy 2-core CPU; past it the
# trainer stops waiting and compiles the graphs itself.
PATIENCE_S = 300
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def allow_warming() -> bool:
    """Whether a child's compiled graphs can reach this process: through inductor's FX
    graph cache, which must be on."""
    from torch._inductor import config

    return bool(config.fx_graph_cache)


def start_warming(
    plan: Plan, group_index: int, device: torch.device, store: Path | None = None
) -> EvalGraphWarmer | None:
    """The child compiling the group's eval graphs (`store`: the run store, where donor
    specs' runs are); None where it cannot help (on a GPU the step does not keep a core
    busy for a minute) or cannot start."""
    if device.type != "cpu":
        return None
    try:
        return EvalGraphWarmer(plan, group_index, device, store)
    except OSError:  # no interpreter to start: the trainer compiles the graphs itself
        return None


class EvalGraphWarmer:
    """The child process compiling one group's eval graphs."""

    def __init__(self, plan: Plan, group_index: int, device: torch.device, store: Path | None):
        # Inductor's C++ kernels are specialised on the thread count (and cached under it):
        # the child compiles for this process's.
        request = {
            "plan": plan.to_json(),
            "group": group_index,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "store": None if store is None else str(store),
        }
        # The child finds this clampdsl even when it is not installed (a checkout on sys.path).
        path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(PACKAGE_ROOT)]))
        self._child = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=os.environ | {"PYTHONPATH": path},
            text=True,
        )
        self._child.stdin.write(json.dumps(request))
        self._child.stdin.close()
        atexit.register(self._stop)

    def wait(self) -> None:
        """Returns once the child has finished, or has been stopped for taking too long."""
        try:
            self._child.wait(timeout=PATIENCE_S)
        except subprocess.TimeoutExpired:
            self._stop()
        atexit.unregister(self._stop)

    def _stop(self) -> None:
        if self._child.poll() is None:
            self._child.kill()
            self._child.wait()


def _compile_requested_graphs() -> None:
    from clampdsl import accel
    from clampdsl.train.session import GroupSession

    accel.enable()  # as the trainer compiles: the same generated code, sooner
    request = json.load(sys.stdin)
    torch.set_num_threads(request["threads"])
    plan = Plan.from_json(request["plan"])
    store = request["store"] and Path(request["store"])
    GroupSession(plan, request["group"], request["device"], "on", store).evaluate(0)


if __name__ == "__main__":
    _compile_requested_graphs()
