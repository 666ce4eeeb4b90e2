"""Chen et al. 2024's model (`model arch=chen`, model/chen.py): its forward against a plain
one written from the equations, runs independent of their group, the feature layer's
normalisation, its measures (analysis/chen.py) on hand-set weights, what the compiler
refuses, and a short run of specs/chen_ngram.clamp."""

import math
from itertools import combinations

import pytest
import torch

from clampdsl.analysis import chen as chen_measures
from clampdsl.compile import SpecError, compile_source
from clampdsl.compile.configs import ModelConfig
from clampdsl.model.chen import ChenModel, subsets

CONFIG = ModelConfig(layers=2, heads=3, pos="relative", arch="chen", degree=2)
HEADER = (
    "clampdsl 1\nmodel arch=chen layers=2 heads=3 pos=relative\n"
    "task markov vocab=3 length=12 order=3 alpha=0.1 loss=last\n"
    "train steps=4 batch=4 lr=1e-2\neval every 2 steps on train size=6\n"
)


def plan_of(body: str, header: str = HEADER):
    return compile_source(header + body, "chen.clamp")


def errors_of(body: str, header: str = HEADER) -> str:
    with pytest.raises(SpecError) as error:
        plan_of(body, header)
    return str(error.value)


def randomised(model: ChenModel, seed: int = 0) -> ChenModel:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for weight in model.weights.values():
            weight.copy_(torch.randn(weight.shape, generator=generator))
    return model


def reference_logits(w: dict, tokens: torch.Tensor, vocab: int, degree: int) -> torch.Tensor:
    """One run's logits [B, T, V] straight from the equations, a position at a time."""
    heads = w["rel0"].shape[0]
    batch, t = tokens.shape
    out = torch.zeros(batch, t, vocab)
    for b in range(batch):
        x = torch.eye(vocab)[tokens[b]]  # [T, V]
        u = [[x[i]] for i in range(t)]  # per position: the token, then each head's output
        for h in range(heads):
            for i in range(t):
                logits = torch.stack(
                    [x[i] @ w["qk0"][h] @ x[j] + w["rel0"][h, i - j] for j in range(i + 1)]
                )
                mixed = logits.softmax(0) @ x[: i + 1]
                u[i].append(mixed / (mixed.norm() + 1e-7))
        sets = [s for size in range(degree + 1) for s in combinations(range(heads + 1), size)]
        c2 = w["coef"] ** 2
        out[b, 0] = math.log(1 / vocab + 1e-9)
        for i in range(1, t):
            kernel = torch.stack(
                [
                    sum(
                        c2[k] * math.prod(float(u[i][m] @ u[j][m]) for m in s)
                        for k, s in enumerate(sets)
                    )
                    / c2.sum()
                    for j in range(i)
                ]
            )
            attention = (w["scale"] * kernel).softmax(0)
            out[b, i] = (attention @ x[1 : i + 1] + 1e-9).log()
    return out


def test_the_forward_is_the_equations_on_random_weights():
    model = randomised(ChenModel(CONFIG, 3, 7, [0, 1]))
    tokens = torch.randint(3, (2, 5, 7), generator=torch.Generator().manual_seed(1))
    supervision = torch.full((2, 5, 7, 2), -1)
    with torch.no_grad():
        logits = model(tokens, supervision)
    for r in range(2):
        w = {name: value[r].detach() for name, value in model.weights.items()}
        expected = reference_logits(w, tokens[r], 3, 2)
        assert torch.allclose(logits[r], expected, atol=1e-4)


def test_a_run_alone_is_the_same_run_in_a_group():
    tokens = torch.randint(3, (4, 10), generator=torch.Generator().manual_seed(2))
    supervision = torch.full((4, 10, 2), -1)
    group, alone = ChenModel(CONFIG, 3, 10, [5, 6, 7]), ChenModel(CONFIG, 3, 10, [6])
    for name, weight in alone.weights.items():
        assert torch.equal(weight[0], group.weights[name][1])
    with torch.no_grad():
        assert torch.allclose(group(tokens, supervision)[1], alone(tokens, supervision)[0])
    seeds = ChenModel(CONFIG, 3, 10, [5, 6]).weights["qk0"]
    assert not torch.equal(seeds[0], seeds[1])  # the seed draws the content term


def test_the_init_is_chens():
    w = ChenModel(CONFIG, 3, 10, [0]).weights
    assert w["rel0"][0, :, 1:4].diagonal().tolist() == [1.0, 1.0, 1.0]  # head h at h + 1
    assert w["rel0"][0, 0, 0].item() == pytest.approx(0.01)
    assert w["coef"][0].tolist() == pytest.approx([0.01] * len(subsets(3, 2)))
    assert w["scale"][0].item() == pytest.approx(0.01)


def test_subsets_are_every_set_of_at_most_degree_components():
    assert subsets(3, 2)[:6] == [(), (0,), (1,), (2,), (3,), (0, 1)]
    assert len(subsets(3, 2)) == 1 + 4 + 6
    assert len(subsets(2, 3)) == 8


def test_the_kernel_is_normalised_by_the_coefficients():
    """Scaling every c_S leaves the kernel alone; each share weighs its subset's product of
    inner products, so unit components give a kernel of 1 on the diagonal."""
    model = randomised(ChenModel(CONFIG, 3, 6, [0]))
    components = torch.nn.functional.normalize(torch.randn(1, 4, 2, 6, 3), dim=-1)
    with torch.no_grad():
        before = model.kernel(components)
        model.weights["coef"].mul_(7.0)
        after = model.kernel(components)
    assert torch.allclose(before, after, atol=1e-6)
    assert torch.allclose(after.diagonal(dim1=-2, dim2=-1), torch.ones(1, 2, 6), atol=1e-5)
    with torch.no_grad():  # all weight on {H0}: the kernel is head 0's inner products
        model.weights["coef"].zero_()
        model.weights["coef"][0, subsets(3, 2).index((1,))] = 1.0
        only = model.kernel(components)
    expected = components[:, 1] @ components[:, 1].transpose(-1, -2)
    assert torch.allclose(only, expected, atol=1e-6)


def test_a_large_scale_copies_the_most_similar_keys_successor():
    """Only x (the token itself) in the features, a large a: row i attends to the earlier
    copies of its token, and predicts what followed them."""
    model = ChenModel(CONFIG, 3, 5, [0])
    with torch.no_grad():
        model.weights["coef"].zero_()
        model.weights["coef"][0, subsets(3, 2).index((0,))] = 1.0
        model.weights["scale"].fill_(50.0)
        logits = model(torch.tensor([[0, 2, 1, 0, 1]]), torch.full((1, 5, 2), -1))
    assert logits[0, 0, 3].exp().tolist() == pytest.approx([0.0, 0.0, 1.0], abs=1e-6)


def test_the_measures_read_the_hand_set_weights():
    model = ChenModel(CONFIG, 3, 10, [0, 1])
    with torch.no_grad():
        model.weights["coef"].zero_()
        model.weights["coef"][:, subsets(3, 2).index((1, 2))] = 3.0
        model.weights["coef"][:, 0] = 1.0
        model.weights["scale"][1] = 2.5
        model.weights["rel0"][1, 2, 7] = 9.0
    shares = chen_measures.feature_shares(model, 1, (0,))
    assert shares["feature-share {H0,H1}"].tolist() == pytest.approx([0.9, 0.9])
    assert shares["feature-share {}"].tolist() == pytest.approx([0.1, 0.1])
    assert sum(shares.values()).tolist() == pytest.approx([1.0, 1.0])
    assert chen_measures.attention_scale(model, 1, (0,))["attention-scale L2.H0"].tolist() == (
        pytest.approx([0.01, 2.5])
    )
    peaks = chen_measures.rpe_peaks(model, 0, (0, 1, 2))
    assert [peaks[f"rpe-peak L1.H{h}"].tolist() for h in range(3)] == [
        [1.0, 1.0],
        [2.0, 2.0],
        [3.0, 7.0],
    ]


def test_its_clamps_and_measures_lower():
    body = (
        'experiment e "x":\n    clamp L1.H0 to relative-position offset -1\n'
        "    clamp L1.H1 to prev-token\n"
        "measure feature-share of L2.H0\nmeasure attention-scale of L2.H0\n"
        "measure rpe-peak of L1.H*\n"
    )
    plan = plan_of(body)
    assert plan.runs[0].model.arch == "chen"
    assert [(m.metric, m.layer, m.heads) for m in plan.measures] == [
        ("feature-share", 1, (0,)),
        ("attention-scale", 1, (0,)),
        ("rpe-peak", 0, (0, 1, 2)),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("clamp L2.H0 to prev-token\n", "L2's pattern, which a model arch=chen does not have"),
        ("freeze L1.H0\n", "which a model arch=chen does not have"),
        ("ablate L1.H0\n", "which a model arch=chen does not have"),
    ],
)
def test_clamps_at_sites_it_lacks_are_compile_errors(body, message):
    assert message in errors_of('experiment e "x":\n    ' + body)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (HEADER.replace("pos=relative", "pos=rope"), "arch=chen is two layers whose first"),
        (HEADER.replace("layers=2", "layers=3"), "arch=chen is two layers whose first"),
        (HEADER.replace("heads=3", "heads=3 degree=5"), "degree=5 is more than the 4"),
        (
            HEADER.replace("task markov vocab=3 length=12 order=3 alpha=0.1 loss=last", "task"),
            "does not build a model arch=chen",
        ),
    ],
)
def test_impossible_models_are_compile_errors(header, message):
    assert message in errors_of('experiment e "x"\n', header)


@pytest.mark.parametrize(
    ("measure", "message"),
    [
        ("feature-share of L1.H0", "feature-share is measured at L2's heads, which are L2.H0"),
        ("attention-scale of L2.H1", "which are L2.H0"),
        ("rpe-peak of L2.H0", "rpe-peak is measured at L1's heads"),
    ],
)
def test_its_measures_on_other_heads_are_compile_errors(measure, message):
    assert message in errors_of(f'experiment e "x"\nmeasure {measure}\n')


def test_its_measures_need_its_model():
    header = HEADER.replace("arch=chen", "d_model=12")
    assert "rpe-peak reads a model arch=chen; this one is arch=transformer" in errors_of(
        'experiment e "x"\nmeasure rpe-peak of L1.H*\n', header
    )


def test_the_chen_spec_trains_and_reports_a_short_run(tmp_path):
    from conftest import ROOT

    from clampdsl import api

    text = (ROOT / "specs" / "chen_ngram.clamp").read_text()
    short = text.replace("steps=250", "steps=6").replace("every 10 steps", "every 3 steps")
    (tmp_path / "chen.clamp").write_text(short.replace("size=256", "size=8"))
    result = api.run(tmp_path / "chen.clamp", tmp_path / "runs", device="cpu", compile="off")
    base = result.summaries[0]
    assert list(base.strategies) == ["uniform", "unigram", "bigram", "trigram"]
    assert "rpe-peak L1.H0" in base.measures
    assert "feature-share {H0,H1}" in base.measures


def test_freeze_holds_a_layers_weights():
    from clampdsl.train.session import GroupSession

    body = 'experiment e "x":\n    freeze L1\nexperiment f "y":\n    freeze L2\n'
    session = GroupSession(plan_of(body), 0)
    before = {name: w.detach().clone() for name, w in session.model.weights.items()}
    for step in range(2):
        session.train_step(step)
    after = session.model.weights
    assert torch.equal(after["rel0"][0], before["rel0"][0])
    assert torch.equal(after["coef"][1], before["coef"][1])
    assert not torch.equal(after["coef"][0], before["coef"][0])
    assert not torch.equal(after["rel0"][1], before["rel0"][1])
