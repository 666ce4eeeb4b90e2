"""Progress measures read off the weights or post hoc (compile/progress.py): composition
and copying on hand-built weights with known answers, single-head accuracy and as-if
losses against evals with the same clamps active, and that none of them touches training."""

import io
import math

import pytest
import torch
from conftest import ROOT
from rich.console import Console

from clampdsl.analysis.progress import composition_scores, copying_scores
from clampdsl.compile import compile_file, compile_source
from clampdsl.compile.configs import ModelConfig
from clampdsl.lang.diagnostics import SpecError
from clampdsl.model.tokens import TokenTransformer
from clampdsl.model.transformer import BatchedTransformer
from clampdsl.report.console import print_plan
from clampdsl.train.loop import train_group
from clampdsl.train.session import GroupSession

TINY = """clampdsl 1
model layers=2 heads=2 d_model=16
task classes=10 new_classes=10 features=synthetic(dim=16, correlation=0.5)
train steps=30 batch=8 lr=1e-3
eval every 10 steps on train, relabel size=64
"""
AS_IF = "L1.H* clamped to prev-token"


def blank(model) -> None:
    with torch.no_grad():
        for weight in model.weights.values():
            weight.zero_()


def unit(c: int, i: int) -> torch.Tensor:
    return torch.eye(c)[i]


def test_composition_is_1_for_aligned_and_0_for_orthogonal_heads():
    model = BatchedTransformer(ModelConfig(heads=2, d_model=8), 4, 3, [0])  # hd = 4
    blank(model)
    c, hd = 8, 4
    w = model.weights
    with torch.no_grad():
        # L1.H0 writes only along e0, L1.H1 only along e1 (rank one: unit · e^T)
        w["proj0"][0, 0:hd] = torch.outer(unit(hd, 0), unit(c, 0))
        w["proj0"][0, hd : 2 * hd] = 3 * torch.outer(unit(hd, 2), unit(c, 1))
        # L2.H1's keys read e0 only; L2.H0's keys read e1 only; L2.H0's queries read e0
        w["qkv1"][0, :, c + hd : c + 2 * hd] = torch.outer(unit(c, 0), unit(hd, 1))
        w["qkv1"][0, :, c : c + hd] = 2 * torch.outer(unit(c, 1), unit(hd, 3))
        w["qkv1"][0, :, 0:hd] = torch.outer(unit(c, 0), unit(hd, 0))
    k = composition_scores(model, "k-composition", 1, 0)[0]  # [reader, writer]
    torch.testing.assert_close(k, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    q = composition_scores(model, "q-composition", 1, 0)[0]
    torch.testing.assert_close(q, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert composition_scores(model, "v-composition", 1, 0).abs().max() == 0


def test_composition_of_random_heads_is_about_one_over_root_width():
    model = BatchedTransformer(ModelConfig(heads=8, d_model=64), 16, 5, [5])
    scores = composition_scores(model, "k-composition", 1, 0)
    assert abs(scores.mean().item() - 1 / 8) < 0.02


def copier(model, c: int, hd: int, outputs: int, sign: float = 1.0, shift: int = 0) -> None:
    """L2.H0's OV circuit maps embedding direction i < outputs to ±direction i + shift
    (cyclically among the first `outputs`)."""
    blank(model)
    mapping = torch.eye(c)[:hd]
    mapping[:outputs, :outputs] = torch.eye(outputs).roll(shift, 1)
    with torch.no_grad():
        model.weights["qkv1"][0, :, 2 * c : 2 * c + hd] = torch.eye(c)[:, :hd]
        model.weights["proj1"][0, :hd] = sign * mapping


@pytest.mark.parametrize(("sign", "shift", "score"), [(1, 0, 1.0), (-1, 0, -1.0), (1, 1, -0.25)])
def test_copying_on_a_hand_built_ov_circuit(sign, shift, score):
    # few-shot: 5 labels embedded along e0..e4 and read out from them; a head whose OV
    # maps each label to itself copies (1), to minus itself anti-copies (-1), to the next
    # label raises another's logit: its own is the mean of the rest, 2·(-1/5)/(8/5)
    model = BatchedTransformer(ModelConfig(heads=2, d_model=16), 4, 5, [0])
    copier(model, 16, 8, 5, sign, shift)
    with torch.no_grad():
        model.weights["label_embed"][0] = torch.eye(16)[:5]
        model.weights["unembed_w"][0] = torch.eye(16)[:, :5]
    scores = copying_scores(model, 1)[0]
    torch.testing.assert_close(scores, torch.tensor([score, 0.0]))


def test_copying_reads_the_token_embedding_of_a_token_model():
    model = TokenTransformer(ModelConfig(heads=2, d_model=16), 6, 8, [0])
    copier(model, 16, 8, 6)
    with torch.no_grad():
        model.weights["token_embed"][0] = torch.eye(16)[:6]
        model.weights["unembed_w"][0] = torch.eye(16)[:, :6]
    torch.testing.assert_close(copying_scores(model, 1)[0], torch.tensor([1.0, 0.0]))


def test_single_head_accuracy_of_a_head_that_writes_nothing():
    # L2.H1 writes nothing (its rows of W_O are zero): dropping it changes nothing, and
    # L2.H0 alone is the whole model
    plan = compile_source(TINY + "experiment base\nmeasure single-head-accuracy of L2.H*\n")
    session = GroupSession(plan, 0)
    with torch.no_grad():
        session.model.weights["proj1"][:, 8:16] = 0
    results = session.evaluate(0)
    whole = results["train.acc"]
    assert results["single-head-accuracy L2.H0"] == whole
    assert results["dropped-head-accuracy L2.H1"] == whole
    assert results["dropped-head-accuracy L2.H0"] == results["single-head-accuracy L2.H1"]


def by_run(records, run):
    return [r for r in records if r["run"] == run]


def test_single_head_accuracy_at_end_is_the_eval_with_the_others_ablated():
    spec = TINY + (
        "experiment base\n"
        "experiment alone:\n    ablate L2.H1 during eval\n"
        "experiment dropped:\n    ablate L2.H0 during eval\n"
        "measure single-head-accuracy of L2.H0 at end\n"
    )
    records = train_group(compile_source(spec), 0).records
    base = by_run(records, "base")
    assert all("single-head-accuracy L2.H0" not in r for r in base[:-1])  # at the end only
    assert base[-1]["single-head-accuracy L2.H0"] == by_run(records, "alone")[-1]["train.acc"]
    assert base[-1]["dropped-head-accuracy L2.H0"] == by_run(records, "dropped")[-1]["train.acc"]


def test_as_if_loss_is_the_eval_loss_with_that_clamp_and_leaves_training_alone():
    clamp = "clamp L1.H* to prev-token during eval"
    spec = TINY + f"experiment base\nexperiment evals:\n    {clamp}\n"
    measures = f"measure loss as-if {AS_IF}\nmeasure acc as-if {AS_IF}\n"
    plain = train_group(compile_source(spec), 0).records
    plan = compile_source(spec + measures)
    # `evals` clamps those patterns itself: the measure leaves it out, with a warning
    assert "evals is not measured as if so clamped" in plan.warnings[0]
    records = train_group(plan, 0).records
    # training is untouched: the records are those of the runs without the measures
    assert [{k: v for k, v in r.items() if "as-if" not in k} for r in records] == list(plain)
    for base, evals in zip(by_run(records, "base"), by_run(plain, "evals"), strict=True):
        assert base[f"train.loss as-if {AS_IF}"] == evals["train.loss"]
        assert base[f"train.acc as-if {AS_IF}"] == evals["train.acc"]
    assert all(math.isnan(r[f"train.loss as-if {AS_IF}"]) for r in by_run(records, "evals"))


@pytest.mark.parametrize("keeping", ["patterns", "values"])
def test_an_as_if_ablation_keeping_patterns_or_values_is_the_eval_with_it(keeping):
    """Table 1's wiring ablations, post hoc: `as-if` takes a verb's statement too."""
    ablation = f"ablate L1.H1 keeping {keeping}"
    spec = TINY + f"experiment base\nexperiment evals:\n    {ablation} during eval\n"
    records = train_group(compile_source(spec + f"measure acc as-if {ablation} at end\n"), 0)
    base, evals = by_run(records.records, "base"), by_run(records.records, "evals")
    assert base[-1][f"train.acc as-if {ablation}"] == evals[-1]["train.acc"]
    assert all(f"train.acc as-if {ablation}" not in r for r in base[:-1])


@pytest.mark.parametrize(
    ("line", "message", "at"),
    [
        ("measure loss as-if L1.H* clamped to prev-tokn", "unknown clamp target", "prev-tokn"),
        ("measure loss as-if L1.out clamped to prev-token", "prev-token is an attention", "L1.out"),
        ("measure entropy as-if L1.H* clamped to prev-token", "unknown as-if metric", "entropy"),
        ("measure k-composition of L2.H*", "needs the heads whose output", "measure"),
        ("measure k-composition of L1.H* from L2.H*", "reads what an earlier layer", "L1.H*"),
        ("measure induction-strength of L2.H* from L1.H*", "takes no `from`", "L1.H*"),
        ("measure copying of L2.H* at noon", "unknown time to measure at", "noon"),
        ("measure induction-strength of L2.H* at end", "`at end` would save nothing", "end"),
        ("measure copying of L2.out", "is measured on heads", "L2.out"),
    ],
)
def test_errors_point_at_the_measure(line, message, at):
    with pytest.raises(SpecError) as raised:
        compile_source(TINY + "experiment base\n" + line + "\n")
    (diagnostic,) = raised.value.diagnostics
    assert message in diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.column) == (7, line.index(at) + 1)


def test_the_plan_records_and_shows_each_measure():
    spec = TINY + (
        "experiment base\nmeasure k-composition of L2.H* from L1.H1\n"
        "measure single-head-accuracy of L2.H* at end\nmeasure copying of L2.H0\n"
        f"measure loss as-if {AS_IF}\n"
    )
    plan = compile_source(spec)
    assert [(m.metric, m.reads) for m in plan.measures] == [
        ("k-composition", "weights"),
        ("single-head-accuracy", "post-hoc"),
        ("copying", "weights"),
        ("loss as-if", "post-hoc"),
    ]
    out = Console(file=io.StringIO(), width=200)
    print_plan(out, plan)
    assert (
        "measures: k-composition of L2.H* from L1.H1, single-head-accuracy of L2.H* at end, "
        "copying of L2.H0, loss as-if clamp L1.H* to prev-token strength 1"
    ) in out.file.getvalue()


def test_an_as_if_measure_at_end_is_not_a_row_set():
    line = f"measure loss as-if {AS_IF} strength 0.5 at labels at end\n"
    (measure,) = compile_source(TINY + "experiment base\n" + line).measures
    assert measure.at_end and measure.name == f"loss as-if {AS_IF} strength 0.5 at labels"
    assert measure.clamps[0].params == {"strength": 0.5, "at_labels": 1.0}


def test_the_shipped_spec_keeps_its_plan_hash():
    plan = compile_file(ROOT / "specs" / "three_subcircuits.clamp")
    assert plan.content_hash()[:12] == "451ee92b3cfd"
