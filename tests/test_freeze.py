"""`freeze SEL`: no update, and Adam's moments kept, while the window is open."""

import itertools

import pytest
import torch
from reference_model import SETTINGS

from clampdsl.compile import compile_source
from clampdsl.lang.diagnostics import SpecError
from clampdsl.train.session import GroupSession

C, HD = 8, 4
HEAD0 = {
    "qkv0": (slice(None), [*range(HD), *range(C, C + HD), *range(2 * C, 2 * C + HD)]),
    "proj0": (slice(0, HD), slice(None)),
}


def _session(*experiments):
    body = "".join(
        f"experiment e{i}:\n{text}" if text else f"experiment e{i}\n"
        for i, text in enumerate(experiments)
    )
    return GroupSession(compile_source(SETTINGS + "train lr=1e-2\n" + body), 0)


def _state(session, run):
    step = session.step_function
    return {
        kind: {name.removeprefix("weights."): t[run].clone() for name, t in tensors.items()}
        for kind, tensors in (
            ("weights", step.params),
            ("exp_avg", step.exp_avg),
            ("exp_avg_sq", step.exp_avg_sq),
        )
    }


def _head_zero(tensors):
    return {name: tensors[name][index] for name, index in HEAD0.items()}


def test_a_frozen_head_holds_its_weights_and_moments_while_the_window_is_open():
    session = _session("    freeze L1.H0 from step 2 until step 4\n", "")
    states = []
    for step in range(6):
        states.append(_state(session, 0))
        session.train_step(step)
    states.append(_state(session, 0))
    for kind in ("weights", "exp_avg", "exp_avg_sq"):
        held = [_head_zero(s[kind]) for s in states]
        for name in HEAD0:
            changed = [not torch.equal(a[name], b[name]) for a, b in itertools.pairwise(held)]
            assert changed == [True, True, False, False, True, True], (kind, name)
    # the other heads of the layer went on learning throughout
    others = [s["weights"]["qkv0"][:, HD:C] for s in states]
    assert all(not torch.equal(a, b) for a, b in itertools.pairwise(others))


@pytest.mark.parametrize(
    ("selector", "frozen"),
    [
        ("L1.H0.q", {"qkv0": (slice(None), slice(0, HD))}),
        ("L1.H0.z", {"proj0": (slice(0, HD), slice(None))}),
        ("L2", {name: (...,) for name in ("ln_g1", "ln_b1", "qkv1", "proj1")}),
        ("embed", {name: (...,) for name in ("embed_w", "embed_b", "label_embed")}),
        ("logits", {n: (...,) for n in ("final_ln_g", "final_ln_b", "unembed_w", "unembed_b")}),
    ],
)
def test_what_each_selector_freezes(selector, frozen):
    session = _session(f"    freeze {selector}\n")
    before = _state(session, 0)["weights"]
    for step in range(3):
        session.train_step(step)
    after = _state(session, 0)["weights"]
    for name, value in after.items():
        if name in frozen:
            index = frozen[name]
            assert torch.equal(value[index], before[name][index]), name
        else:
            assert not torch.equal(value, before[name]), name


def test_freezing_everything_changes_nothing():
    session = _session(
        "    freeze L*.H*\n    freeze L1\n    freeze L2\n    freeze embed\n    freeze logits\n"
    )
    before = _state(session, 0)
    session.train_step(0)
    assert all(
        torch.equal(before[k][n], t) for k, ts in _state(session, 0).items() for n, t in ts.items()
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    freeze L1.H0.pattern\n", "freeze takes a head's weights"),
        ("    freeze L1.in\n", "not its input"),
        ("    freeze L1.H0 solid\n", "unexpected 'solid'"),
    ],
)
def test_refused(body, message):
    with pytest.raises(SpecError, match=message):
        compile_source("clampdsl 1\nexperiment e:\n" + body)
