"""The eval graphs compiled by a second process are the ones the trainer loads."""

import pytest
import torch
from torch._dynamo.utils import counters

from clampdsl import accel
from clampdsl.compile import compile_file, compile_source
from clampdsl.train.session import GroupSession

# The least that has both eval graphs (with the measures, for the first set, and without,
# for the second): each graph the child compiles costs this test seconds.
SPEC = """clampdsl 1
model layers=2 heads=2 d_model=16
task classes=10 features=synthetic(dim=16, correlation=0.5)
train steps=20 batch=8 lr=1e-3
eval every 10 steps on train, relabel size=16
experiment base:
    ablate L2.H1
measure induction-strength of L2.H0
"""


@pytest.fixture(params=["default threads", "one thread"])
def threads(request):
    """The trainer's torch threads: the default, or one (a job of `run --jobs`; C++
    kernels are compiled, and cached, for a thread count)."""
    default = torch.get_num_threads()
    if request.param == "one thread":
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(default)


def test_the_trainer_loads_the_eval_graphs_a_child_process_compiled(tmp_path, monkeypatch, threads):
    # An empty inductor cache: a hit can only be the child's graph.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    plan = compile_source(SPEC)
    assert accel.enable(["warm-evals"])["warm-evals"]
    session = GroupSession(plan, 0, "cpu", "on")
    session.compile_evals_in_background()
    eager = session.evaluate(0)  # while the child compiles
    counters.clear()
    loaded = session.evaluate(0)
    assert counters["inductor"]["fxgraph_cache_hit"] == 2  # with the measures, and without
    assert counters["inductor"]["fxgraph_cache_miss"] == 0
    assert eager.keys() == loaded.keys()
    for key, values in eager.items():
        assert torch.allclose(values, loaded[key], atol=1e-5), key


def test_no_child_when_nothing_compiles(tiny_spec):
    session = GroupSession(compile_file(tiny_spec), 0, "cpu", "off")
    session.compile_evals_in_background()
    assert session._warmer is None


def test_a_child_that_cannot_start_leaves_the_compile_to_the_trainer(monkeypatch, tiny_spec):
    from clampdsl.accel import warm_evals

    monkeypatch.setattr(warm_evals.sys, "executable", "/nonexistent/python")
    assert warm_evals.start_warming(compile_file(tiny_spec), 0, torch.device("cpu")) is None
