"""The eval graph compiled by a second process is the one the trainer loads."""

import torch
from torch._dynamo.utils import counters

from clampdsl.compile import compile_source
from clampdsl.train.session import GroupSession
from tests.test_train import spec


def test_the_trainer_loads_the_eval_graph_a_child_process_compiled(tmp_path, monkeypatch):
    # An empty inductor cache: a hit can only be the child's graph.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    plan = compile_source(spec(["base", "copy"]))
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
    session = GroupSession(compile_source(spec(["base"])), 0, "cpu", "off")
    session.compile_evals_in_background()
    assert session._warmer is None
