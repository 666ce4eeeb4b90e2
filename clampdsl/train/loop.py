"""The training loop: one batched model per group of runs, executing the Plan.

A group's runs share model shape, task and schedule; they see the same data batches
(common random numbers) and each starts from its own init seed (the same seed by default,
as the paper). Clamp windows switch by rewriting mask tensors in place. Evaluation happens
before the step it is labelled with (the reference's `eval_iter`), plus once at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import attrs
import torch

from clampdsl.compile.plan import Plan, Run
from clampdsl.model.clamps import ClampState
from clampdsl.model.transformer import BatchedTransformer
from clampdsl.tasks.fewshot import FewShotTask
from clampdsl.train.checkpoint import Checkpointer
from clampdsl.train.evaluate import evaluate

Record = dict  # one eval of one run: {"run", "step", "sequences", "train.loss", …}


@attrs.frozen
class GroupResult:
    runs: tuple[str, ...]
    records: tuple[Record, ...]
    diverged: dict[str, int]  # run → first eval step with a non-finite loss
    train_seconds: float
    steps: int


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train_group(
    plan: Plan,
    group_index: int,
    device: torch.device | str = "cpu",
    on_progress: Callable[[int, dict[str, float]], None] | None = None,
    on_records: Callable[[list[Record]], None] | None = None,
    checkpointer: Checkpointer | None = None,
) -> GroupResult:
    device = torch.device(device)
    runs = [plan.run(name) for name in plan.groups[group_index].runs]
    first = runs[0]
    task = FewShotTask(first.task)
    model = BatchedTransformer(
        first.model, task.feature_dim, first.task.labels, [run.train.seed for run in runs]
    ).to(device)
    clamps = ClampState(runs, first.model).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=first.train.lr, betas=(0.9, 0.999), eps=1e-8, foreach=True
    )
    data = torch.Generator().manual_seed(first.train.data_seed)
    eval_sets = {
        k: v.to(device)
        for k, v in task.eval_sets(first.eval.sets, first.eval.size, first.train.eval_seed).items()
    }
    probe = task.sample(
        first.eval.probe_size, torch.Generator().manual_seed(first.train.eval_seed + 1)
    ).to(device)
    loss_fn = torch.compile(model.loss) if device.type == "cuda" else model.loss

    start, records = 0, []
    if checkpointer is not None:
        start, records = checkpointer.restore(group_index, model, optimizer, data)
    steps, every = first.train.steps, first.eval.every
    diverged: dict[str, int] = {}

    def run_eval(step: int) -> None:
        clamps.set_step(step)
        results = evaluate(model, clamps, eval_sets, probe, plan.measures)
        new = _records(runs, step, results)
        for record in new:
            if not math.isfinite(record.get("train.loss", record[_first_loss(record)])):
                diverged.setdefault(record["run"], step)
        records.extend(new)
        if on_records:
            on_records(new)
        if on_progress:
            on_progress(step, {r["run"]: r[_first_loss(r)] for r in new})

    started = time.perf_counter()
    for step in range(start, steps):
        if step % every == 0 and not (step == start and records):
            run_eval(step)
        if checkpointer is not None and checkpointer.due(step, start):
            checkpointer.save(group_index, step, model, optimizer, data, records)
        clamps.set_step(step)
        batch = task.sample(first.train.batch, data).to(device)
        loss = loss_fn(batch.features, batch.labels, clamps).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_progress and (step + 1) % every:
            on_progress(step + 1, {})
    if not records or records[-1]["step"] != steps:
        run_eval(steps)
    if checkpointer is not None:
        checkpointer.save(group_index, steps, model, optimizer, data, records)
    seconds = time.perf_counter() - started
    return GroupResult(
        tuple(r.name for r in runs), tuple(records), diverged, seconds, steps - start
    )


def _records(runs: list[Run], step: int, results: dict[str, torch.Tensor]) -> list[Record]:
    values = {key: tensor.detach().float().cpu().tolist() for key, tensor in results.items()}
    return [
        {"run": run.name, "step": step, "sequences": step * run.train.batch}
        | {key: column[r] for key, column in values.items()}
        for r, run in enumerate(runs)
    ]


def _first_loss(record: Record) -> str:
    return next(key for key in record if key.endswith(".loss"))
