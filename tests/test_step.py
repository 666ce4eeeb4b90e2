"""The optimised train step (one functional, compiled graph) against a straightforward
step: autograd through the module and torch.optim.Adam, clamps and windows included."""

import pytest
import torch
from conftest import clamp_state, computing_everything

from clampdsl.compile import compile_source
from clampdsl.model.transformer import BatchedTransformer
from clampdsl.tasks.fewshot import FewShotTask
from clampdsl.train.step import TrainStep

SPEC = """clampdsl 1
model layers=2 heads=2 d_model=8
task classes=6 new_classes=4 features=synthetic(dim=6, correlation=0.3)
experiment a:
    ablate L2.H1 from step 2
experiment d:
    clamp logits to scores of L2.H1 from step 1
    ablate L1.H0 until step 3
experiment b:
    clamp L1.H0 to prev-token strength 0.8 until step 3
    clamp L2.H0 to induction
    ablate L2.H1 keeping values from step 1
experiment e:
    clamp logits to scores of L1.H1
experiment f:
    clamp L1.H0 to uniform until step 2
    scale L1.H0 temperature 2 from step 2
    forbid L1.H1 attending prev-token at labels
    clamp L2.H1 to match temperature 0.2
    restrict L2.H0 to labels from step 1
    freeze L1.H1 from step 1 until step 3
    freeze logits until step 2
experiment c:
    clamp L1.out to shifted-embedding
    clamp logits to scores of L2.H0
"""  # d and c take pass 1 (b, e and f sit between them, inside the range it covers); e
# reads its copy source from the final pass; c bypasses layer 1 and takes its logits from
# pass 1, so the final pass computes both of its layers for the other runs alone; f edits
# scores and patterns in windows
STEPS = 5


def build():
    runs = compile_source(SPEC).runs
    task = FewShotTask(runs[0].task)
    model = BatchedTransformer(runs[0].model, task.table.shape[-1], 5, [5, 6, 7, 8, 9, 10])
    batches = [task.sample(8, torch.Generator().manual_seed(s)) for s in range(STEPS)]
    return model, clamp_state(runs), batches


def _with_moments(optimizer, weight, copy=True):
    """A weight and torch Adam's moments of it (zeros before its first step)."""
    state = optimizer.state.get(weight, {})
    moments = [state.get(k, torch.zeros_like(weight)) for k in ("exp_avg", "exp_avg_sq")]
    tensors = [weight.data, *moments]
    return [t.clone() for t in tensors] if copy else tensors


def straightforward(lr):
    model, clamps, batches = build()
    # Every layer for every run, bypassed or replaced or not: what the optimised step
    # leaves out
    computing_everything(clamps)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for step, batch in enumerate(batches):
        clamps.set_step(step)
        loss = model.loss(batch.features, batch.labels, clamps)
        optimizer.zero_grad()
        loss.sum().backward()
        weights = {name: p.detach() for name, p in model.weights.items()}
        frozen = clamps.frozen_weights(model.weights_of, weights)
        held = {name: _with_moments(optimizer, model.weights[name]) for name in frozen}
        optimizer.step()
        for name, mask in frozen.items():  # freeze, by hand: weights and moments held back
            after = _with_moments(optimizer, model.weights[name], copy=False)
            for tensor, before in zip(after, held[name], strict=True):
                tensor.copy_(torch.where(mask > 0, before, tensor))
        losses.append(loss.detach())
    return torch.stack(losses), model.state_dict()


@pytest.mark.parametrize("mode", [None, "default"], ids=["eager", "compiled"])
def test_optimised_step_matches_a_straightforward_step(mode):
    lr = 1e-2  # large, so that any difference in the update shows
    expected_losses, expected_weights = straightforward(lr)
    model, clamps, batches = build()
    first = clamps.schedule.first_pass
    assert (first.start, first.stop) == (1, 6)
    assert clamps.schedule.layer_one_runs == clamps.schedule.last_layer_runs == 5
    step = TrainStep(model, clamps, lr, compile_mode=mode)
    losses = []
    for index, batch in enumerate(batches):
        clamps.set_step(index)  # windows open and close between compiled calls
        losses.append(step(batch.features, batch.labels).clone())
    assert step.compiled == (mode is not None)  # no silent fallback to eager
    torch.testing.assert_close(torch.stack(losses), expected_losses, atol=1e-5, rtol=1e-4)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, expected_weights[name], atol=1e-5, rtol=1e-4)


def test_a_function_that_cannot_compile_runs_eagerly_with_a_warning():
    from clampdsl.train.compiled import CompiledOrEager

    def data_dependent(x):
        if x.sum().item() > 0:  # a graph break: fullgraph compilation refuses it
            return x + 1
        return x - 1

    function = CompiledOrEager(data_dependent, "default")
    with pytest.warns(UserWarning, match="running eagerly"):
        result = function(torch.ones(3))
    assert torch.equal(result, torch.full((3,), 2.0)) and not function.compiled
    assert torch.equal(function(-torch.ones(3)), torch.full((3,), -2.0))


def test_compiled_functions_keep_their_graphs_to_themselves():
    """Compiled code is guarded by tensor metadata only (compiled.py): two functions over
    the same code with other Python constants must still each run their own graph, and a
    new input shape must still recompile."""
    from functools import partial

    from clampdsl.train.compiled import CompiledOrEager

    def scaled(factor, x):
        return x * factor

    double, triple = (CompiledOrEager(partial(scaled, f), "default") for f in (2.0, 3.0))
    x = torch.ones(4)
    assert torch.equal(double(x), 2 * x) and torch.equal(triple(x), 3 * x)
    assert torch.equal(double(torch.ones(2, 3)), torch.full((2, 3), 2.0))
    assert double.compiled and triple.compiled


def test_the_step_traces_as_cuda_graphs_need_it():
    """What a GPU's CUDA graphs need of the step, seen in AOT autograd's record of it traced
    on the "meta" device (no data, every tensor's device kept):
    - every tensor on the session's device: cudagraph trees skip a graph with a tensor
      elsewhere ("skipping cudagraphs due to cpu device");
    - every input it updates in place (weights, Adam's moments) static: else they skip it
      ("… due to mutated inputs") and the step runs kernel by kernel;
    - every other input static but the batch: the others would be copied in at each
      replay."""
    from torch._dynamo.backends.common import aot_autograd

    from clampdsl.train.session import GroupSession

    session = GroupSession(compile_source(SPEC), 0, "meta", "off")
    step = TrainStep(session.model, session.clamps, 1e-2, compile_mode="reduce-overhead")
    seen = {}

    def record(graph, example_inputs):
        meta = torch._guards.TracingContext.get().fw_metadata
        seen["updated"] = {i for i, info in enumerate(meta.input_info) if info.mutates_data}
        seen["static"] = set(meta.static_input_indices)
        seen["inputs"] = len(meta.input_info)
        values = [node.meta.get("val") for node in graph.graph.nodes]
        seen["devices"] = {v.device.type for v in values if isinstance(v, torch.Tensor)}
        return graph.forward

    backend = aot_autograd(fw_compiler=record)
    # static shapes: no size inputs, whatever shapes other tests' steps had
    traced = torch.compile(step._step, backend=backend, fullgraph=True, dynamic=False)
    batch = session.stream.at(0)
    traced(batch.features, batch.labels)
    assert seen["devices"] == {"meta"}
    # the weights and both Adam moments of every parameter
    assert len(seen["updated"]) == 3 * len(step.params)
    assert seen["updated"] <= seen["static"]
    assert seen["inputs"] - len(seen["static"]) == 2  # features and labels


# Ops that make the host wait for a GPU: reading a value back (`.item()`, `bool()`, …) or
# computing a shape from values.
WAITS_FOR_THE_DEVICE = {"_local_scalar_dense", "item", "nonzero", "masked_select", "unique"}


def test_training_steps_never_wait_for_the_device():
    """Between evals the loop only queues work (GPU path: no host synchronisation in the
    step loop). Seen on the CPU, eagerly, through every op the steps dispatch: batches
    drawn, clamp windows opening and closing, forward, backward and Adam."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from clampdsl.train.session import GroupSession

    class OpNames(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.add(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    session = GroupSession(compile_source(SPEC), 0, "cpu", "off")
    with OpNames() as ops:
        for step in range(STEPS):  # the spec's windows open and close in these steps
            session.train_step(step)
    assert {"mm", "bmm", "_foreach_sqrt"} & ops.seen  # the mode saw the step's ops
    assert not ops.seen & WAITS_FOR_THE_DEVICE
