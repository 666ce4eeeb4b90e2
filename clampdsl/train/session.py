"""Everything one batched group needs to train: model, clamps, data, the step, evals.

The trainer's loop and the benchmarks drive the same object, so what is measured is what
runs.
"""

from __future__ import annotations

import shutil
import warnings

import torch

from clampdsl.compile.plan import Plan
from clampdsl.model.clamps import ClampState
from clampdsl.model.transformer import BatchedTransformer
from clampdsl.tasks.fewshot import FewShotTask
from clampdsl.tasks.stream import BatchStream
from clampdsl.train.compiled import CompiledOrEager
from clampdsl.train.evaluate import evaluate
from clampdsl.train.step import TrainStep

# Compiling the step costs ~20-40 s on a 2-core CPU and pays back after ~3k steps there.
COMPILE_AUTO_MIN_STEPS = 3000


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def compile_mode(choice: str, device: torch.device, steps: int) -> str | None:
    """'on' | 'off' | 'auto' → a torch.compile mode, or None for eager."""
    if choice == "off":
        return None
    if choice == "auto" and device.type != "cuda" and steps < COMPILE_AUTO_MIN_STEPS:
        return None
    if device.type == "cpu" and not (shutil.which("c++") or shutil.which("g++")):
        warnings.warn("no C++ compiler found: training eagerly", stacklevel=2)
        return None
    # CUDA graphs for the launch-bound regime on GPUs; plain inductor code on CPUs.
    return "reduce-overhead" if device.type == "cuda" else "default"


class GroupSession:
    def __init__(self, plan: Plan, group_index: int, device="cpu", compile: str = "off"):
        self.device = resolve_device(device)
        self.runs = [plan.run(name) for name in plan.groups[group_index].runs]
        self.measures = plan.measures
        first = self.runs[0]
        self.config = first
        task = FewShotTask(first.task)
        self.model = BatchedTransformer(
            first.model, task.feature_dim, first.task.labels, [r.train.seed for r in self.runs]
        ).to(self.device)
        self.clamps = ClampState(self.runs, first.model).to(self.device)
        mode = compile_mode(compile, self.device, first.train.steps)
        self.step_function = TrainStep(self.model, self.clamps, first.train.lr, mode)
        self.stream = BatchStream(task, first.train.batch, first.train.data_seed, self.device)
        eval_sets = task.eval_sets(first.eval.sets, first.eval.size, first.train.eval_seed)
        self.eval_sets = {name: batch.to(self.device) for name, batch in eval_sets.items()}
        # Evals are forward passes of a fixed size: compiled too when the step is.
        self.forward = CompiledOrEager(self.model, mode)

    @property
    def compiled(self) -> bool:
        return self.step_function.compiled

    def train_step(self, step: int) -> torch.Tensor:
        """Trains on the batch of `step`; returns per-run losses [R], left on the device."""
        self.clamps.set_step(step)
        batch = self.stream.at(step)
        return self.step_function(batch.features, batch.labels)

    def evaluate(self, step: int) -> dict[str, torch.Tensor]:
        self.clamps.set_step(step)
        return evaluate(self.forward, self.clamps, self.eval_sets, self.measures)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.step_function.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.step_function.load_state_dict(state["optimizer"])
