"""Everything one batched group needs to train: model, clamps, data, the step, evals.

The trainer's loop and the benchmarks drive the same object, so what is measured is what
runs.
"""

from __future__ import annotations

import shutil
import warnings
from functools import partial
from pathlib import Path

import torch

from clampdsl import accel, kinds
from clampdsl.analysis import predictions
from clampdsl.compile.plan import Donor, Plan
from clampdsl.compile.progress import attention_measures
from clampdsl.compile.resources import COMPILE_AUTO_MIN_STEPS, COMPILE_CHOICES
from clampdsl.model.clamps import ClampState
from clampdsl.tasks import kinds as task_kinds
from clampdsl.tasks.per_run import distinct, for_runs
from clampdsl.tasks.stream import BatchStream
from clampdsl.train.checkpoint import CheckpointError, donor_weights
from clampdsl.train.compiled import CompiledOrEager
from clampdsl.train.evaluate import chunk_sums, evaluate
from clampdsl.train.progress import ProgressMeasures
from clampdsl.train.step import TrainStep


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def compile_mode(choice: str, device: torch.device, steps: int) -> str | None:
    """'on' | 'off' | 'auto' → a torch.compile mode, or None for eager."""
    if choice not in COMPILE_CHOICES:
        raise ValueError(f"compile={choice!r} is not one of {', '.join(COMPILE_CHOICES)}")
    if choice == "off":
        return None
    if choice == "auto" and device.type != "cuda" and steps < COMPILE_AUTO_MIN_STEPS:
        return None
    if device.type == "cpu" and not (shutil.which("c++") or shutil.which("g++")):
        warnings.warn("no C++ compiler found: training eagerly", stacklevel=2)
        return None
    # CUDA graphs for the launch-bound regime on GPUs; plain inductor code on CPUs.
    return "reduce-overhead" if device.type == "cuda" else "default"


def _lent(weights: dict[str, torch.Tensor], name: str, model) -> torch.Tensor:
    """A donor's weight `name`, as the model holds it for one run (the donor's plan has the
    model's shape: a kept file that disagrees is not the donor's)."""
    weight, shape = weights.get(name), model.weights[name].shape[1:]
    if weight is None or weight.shape != shape or not weight.dtype.is_floating_point:
        raise CheckpointError(f"the donor's kept weights lack {name} of shape {tuple(shape)}")
    return weight


class GroupSession:
    def __init__(
        self,
        plan: Plan,
        group_index: int,
        device="cpu",
        compile: str = "off",
        store: Path | None = None,
    ):
        """`store`: the run store, where the runs of donor specs are (None: no graft takes
        one)."""
        self.device = resolve_device(device)
        self.store = store
        self.plan, self.group_index = plan, group_index
        group = plan.groups[group_index]
        self.plan_order, schedule = group.runs, group.schedule
        self.runs = [plan.run(name) for name in schedule.order]
        self.measures = attention_measures(plan.measures)  # the others: self.progress
        first = self.runs[0]
        self.config = first
        tasks = {
            config: task_kinds.of(config).sampler(config) for config in {r.task for r in self.runs}
        }
        # Runs of a group share the task's shape: the first run's sampler builds the model.
        self.model = tasks[first.task].model(first.model, [r.train.seed for r in self.runs])
        self.model = self.model.to(self.device)
        self._graft()
        self.clamps = ClampState(self.runs, first.model, schedule).to(self.device)
        mode = compile_mode(compile, self.device, first.train.steps)
        self.step_function = TrainStep(self.model, self.clamps, first.train.lr, mode)
        # Runs of a group share model shape and schedule; their tasks and seeds may differ.
        sources, index = distinct([(r.task, r.train.data_seed) for r in self.runs])
        self.stream = BatchStream(
            [(tasks[t], seed) for t, seed in sources], index, first.train.batch, self.device
        )
        self.eval_sets = self._eval_sets(tasks)
        sets = first.eval.sets
        self.progress = ProgressMeasures(plan.measures, self.runs, self.model, sets[0])
        # the in-context strategies' losses on the eval sets: the same at every eval
        strategies = task_kinds.of(first.task).baselines(first.task)
        self.baselines = predictions.baseline_results(self.eval_sets, strategies, len(self.runs))
        # Evals are forward passes of a fixed size, reduced to sums: compiled too when the
        # step is, with static shapes in every group of a process, like the graphs
        # warm_evals.py compiles. With measures, two graphs: for the first eval set, with
        # them, and for the others, without (evaluate.py).
        graphs = [
            CompiledOrEager(partial(chunk_sums, self.model, measures), mode, dynamic=False)
            for measures in dict.fromkeys([self.measures, ()])
        ]
        self.eval_sums = (graphs[0], graphs[-1])
        self._warmer = None  # accel/warm_evals.py's child, while it compiles
        self._eager_eval_pending = False

    @torch.no_grad()
    def _graft(self) -> None:
        """Copies into each run's slice what its donors lend (kinds/graft.py), before it
        trains; a resumed run's checkpoint then loads the same weights over them."""
        for r, run in enumerate(self.runs):
            for item in run.interventions:
                lent = kinds.of(item).lends(item, run.model)
                weights = donor_weights(self._donor_run(item.donor), item.donor) if lent else {}
                for write in lent:
                    for name, *_ in self.model.weights_of(write.layer, write.site):
                        self.model.weights[name][r].copy_(_lent(weights, name, self.model))

    def _donor_run(self, donor: Donor) -> Path:
        """A donor's run directory: a saved run's, from the spec's folder; a donor spec's,
        in the run store."""
        if not donor.in_store:
            return Path(self.plan.file).parent / donor.path
        if self.store is None:
            raise CheckpointError(f"{donor.file} lends weights from a run store: none given")
        return self.store / donor.path

    def _eval_sets(self, tasks: dict) -> dict:
        """Fixed eval sets, drawn once per distinct (task, eval seed) of the runs."""
        sources, index = distinct([(r.task, r.train.eval_seed) for r in self.runs])
        eval_config = self.config.eval
        per_source = [
            tasks[t].eval_sets(eval_config.sets, eval_config.size, seed) for t, seed in sources
        ]
        return {
            name: for_runs([sets[name] for sets in per_source], index)
            .position_major()
            .to(self.device)
            for name in eval_config.sets
        }

    @property
    def compiled(self) -> bool:
        return self.step_function.compiled

    def train_step(self, step: int) -> torch.Tensor:
        """Trains on the batch of `step`; returns per-run losses [R], left on the device."""
        self.clamps.set_step(step)
        batch = self.stream.at(step)
        return self.step_function(*batch.model_inputs())

    def compile_evals_in_background(self) -> None:
        """Has a second process compile the eval graphs while this one compiles the step
        (warm_evals.py). The next eval runs eagerly, so that this process goes on to the
        step; the one after waits for the child and loads the graphs it compiled."""
        if self.eval_sums[0].compiled and accel.enabled("warm-evals"):
            from clampdsl.accel.warm_evals import start_warming

            self._warmer = start_warming(self.plan, self.group_index, self.device, self.store)
            self._eager_eval_pending = self._warmer is not None

    def evaluate(self, step: int) -> dict[str, torch.Tensor]:
        self.clamps.set_step(step, "eval")
        sums, prepare = self._eval_sums(), self.model.prepare_for
        results = evaluate(sums, prepare, self.clamps, self.eval_sets, self.measures)
        if self.progress:  # read off the weights, and post hoc (train/progress.py)
            last = step == self.config.train.steps
            first = next(iter(self.eval_sets.values()))
            results |= self.progress.evaluate(step, last, first)
        return results | self.baselines

    def _eval_sums(self) -> tuple:
        if self._eager_eval_pending:
            self._eager_eval_pending = False
            return tuple(sums.function for sums in self.eval_sums)
        if self._warmer is not None:
            self._warmer.wait()
            self._warmer = None
        return self.eval_sums

    def state_dict(self) -> dict:
        return {
            "runs": [run.name for run in self.runs],  # the order of every leading R dimension
            "model": self.model.state_dict(),
            "optimizer": self.step_function.state_dict(),
            "compiled": self.compiled,  # how it trained, for a report rebuilt from it
        }

    def load_state_dict(self, state: dict) -> None:
        """Loads a checkpoint whatever order it holds the runs in (checkpoints without a run
        list were written in plan order, before runs were batched in the schedule's order)."""
        saved = state.get("runs", list(self.plan_order))
        order = torch.tensor([saved.index(run.name) for run in self.runs])

        def reordered(tensors: dict) -> dict:
            return {name: tensor[order] for name, tensor in tensors.items()}

        optimizer = state["optimizer"]
        self.model.load_state_dict(reordered(state["model"]))
        self.step_function.load_state_dict(
            {
                "exp_avg": reordered(optimizer["exp_avg"]),
                "exp_avg_sq": reordered(optimizer["exp_avg_sq"]),
                "count": optimizer["count"],
            }
        )
