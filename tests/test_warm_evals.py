"""The eval graph compiled by a second process is the one the trainer loads."""

import torch
from torch._dynamo.utils import counters

from clampdsl.compile import compile_source
from clampdsl.train.session import GroupSession

SPEC = """clampdsl 1
model layers=2 heads=2 d_model=16
task classes=10 new_classes=10 features=synthetic(dim=16, correlation=0.5)
train steps=30 batch=8 lr=1e-3
eval every 10 steps on train, relabel, new-classes size=64
measure induction-strength of L2.H*
experiment base:
    ablate L2.H1
experiment copy:
    clamp logits to scores of L2.H0
"""


def test_the_trainer_loads_the_eval_graph_a_child_process_compiled(tmp_path, monkeypatch):
    # An empty inductor cache: a hit can only be the child's graph.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    plan = compile_source(SPEC)
    session = GroupSession(plan, 0, "cpu", "on")
    session.compile_evals_in_background()
    eager = session.evaluate(0)  # while the child compiles
    counters.clear()
    loaded = session.evaluate(0)
    assert counters["inductor"]["fxgraph_cache_hit"] == 1
    assert counters["inductor"]["fxgraph_cache_miss"] == 0
    assert eager.keys() == loaded.keys()
    for key, values in eager.items():
        assert torch.allclose(values, loaded[key], atol=1e-5), key


def test_no_child_when_nothing_compiles():
    session = GroupSession(compile_source(SPEC), 0, "cpu", "off")
    session.compile_evals_in_background()
    assert session._warmer is None


def test_a_child_that_cannot_start_leaves_the_compile_to_the_trainer(monkeypatch):
    from clampdsl.train import warm_evals

    monkeypatch.setattr(warm_evals.sys, "executable", "/nonexistent/python")
    assert warm_evals.start_warming(compile_source(SPEC), 0, torch.device("cpu")) is None
