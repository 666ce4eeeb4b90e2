"""`task markov`: its chains and batches, the in-context strategies, the measures of the
model's predictions on hand-built cases, what the compiler refuses, and a short run."""

import math

import pytest
import torch

from clampdsl.analysis import predictions
from clampdsl.compile import SpecError, compile_source
from clampdsl.compile.plan import Measure
from clampdsl.tasks import in_context, markov
from clampdsl.tasks import kinds as task_kinds
from clampdsl.tasks.stream import CHUNK_STEPS, BatchStream
from clampdsl.tasks.token_batch import StrategyBatch

HEADER = (
    "clampdsl 1\nmodel attention-only layers=2 heads=1 d_model=8\n"
    "task markov vocab=3 length=12\n"
    "train steps=10 batch=4\neval every 5 steps on train size=6\n"
)


def plan_of(body: str = 'experiment e "x"\n', header: str = HEADER):
    return compile_source(header + body, "markov.clamp")


def sampler(settings: str = ""):
    header = HEADER.replace("length=12", f"length=12 {settings}")
    task = plan_of(header=header).runs[0].task
    return task_kinds.of(task).sampler(task)


def errors_of(body: str, header: str = HEADER) -> str:
    with pytest.raises(SpecError) as error:
        plan_of(body, header)
    return str(error.value)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- the chains --------------------------------------------------------------------------


def test_a_batch_reads_length_tokens_and_predicts_each_next_one():
    batch = sampler().sample(50, generator())
    assert batch.tokens.shape == batch.targets.shape == batch.induction.shape == (50, 12)
    assert batch.tokens.min() >= 0 and batch.tokens.max() < 3
    assert (batch.targets[:, :-1] == batch.tokens[:, 1:]).all()  # loss=all
    assert (batch.targets[:, -1] >= 0).all()  # the token after the last: drawn too
    assert (batch.induction == -1).all()  # no induction targets (docs/language.md)


def test_loss_last_scores_the_last_position_only():
    batch = sampler("loss=last").sample(20, generator())
    assert (batch.targets[:, :-1] == -1).all() and (batch.targets[:, -1] >= 0).all()


def test_batches_are_a_function_of_the_seed_and_resume_exactly_across_a_chunk():
    task = sampler()
    one, again = (task.sample(8, generator(3)) for _ in range(2))
    other = task.sample(8, generator(4))
    assert torch.equal(one.tokens, again.tokens) and torch.equal(one.targets, again.targets)
    assert not torch.equal(one.tokens, other.tokens)
    step = CHUNK_STEPS + 7  # in the second chunk
    continuing = BatchStream([(task, 0)], [0], 4)
    for s in range(step + 1):
        continuing.at(s)
    resumed = BatchStream([(task, 0)], [0], 4)  # a run resumed at `step`
    assert torch.equal(continuing.at(step).tokens, resumed.at(step).tokens)
    assert torch.equal(continuing.at(step).targets, resumed.at(step).targets)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_table_rows_are_distributions_and_balanced_ones_doubly_stochastic(order):
    def by_suffix(tables):
        """For each n-2 latest tokens b, the total chance that the contexts (a, b) lead to
        each next token: 1 in a doubly stochastic chain."""
        return tables.view(200, 3, 3 ** (order - 2), 3).sum(1)

    rows = sampler(f"order={order}").tables(200, generator())
    assert rows.shape == (200, 3 ** (order - 1), 3)
    assert (rows > 0).all()
    torch.testing.assert_close(rows.sum(-1), torch.ones(rows.shape[:2]).double())
    assert not torch.allclose(by_suffix(rows), torch.ones(()).double())
    balanced = sampler(f"order={order} prior=doubly-stochastic").tables(200, generator())
    torch.testing.assert_close(balanced.sum(-1), torch.ones(rows.shape[:2]).double())
    ones = torch.ones(200, 3 ** (order - 2), 3).double()
    torch.testing.assert_close(by_suffix(balanced), ones, atol=1e-9, rtol=0)


def test_a_doubly_stochastic_chain_has_the_uniform_stationary_law():
    balanced = sampler("prior=doubly-stochastic").tables(50, generator())
    torch.testing.assert_close(markov.stationary(balanced), torch.full((50, 3), 1 / 3).double())


def test_the_stationary_law_is_left_unchanged_by_a_step():
    table = sampler().tables(100, generator())
    law = markov.stationary(table)
    torch.testing.assert_close((law[:, None] @ table)[:, 0], law)
    torch.testing.assert_close(law.sum(-1), torch.ones(100).double())


@pytest.mark.parametrize("alpha", [0.1, 1.0, 3.0])
def test_dirichlet_draws_have_the_dirichlet_mean_and_variance(alpha):
    draws = markov.dirichlet(alpha, (40_000, 3), generator())
    torch.testing.assert_close(draws.mean(0), torch.full((3,), 1 / 3).double(), atol=0.01, rtol=0)
    variance = (1 / 3) * (2 / 3) / (3 * alpha + 1)
    assert draws.var(0).sub(variance).abs().max() < 0.06 * variance


def test_a_chain_steps_by_its_table():
    table = torch.tensor([[[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.0, 0.5, 0.5]]]).double()
    table = table.expand(400, 3, 3)
    sequence = markov.draw_chain(table, torch.zeros(400, 1, dtype=torch.long), 200, generator())
    pairs = sequence[:, :-1] * 3 + sequence[:, 1:]
    counts = torch.bincount(pairs.flatten(), minlength=9).view(3, 3).double()
    torch.testing.assert_close(counts / counts.sum(-1, keepdim=True), table[0], atol=0.01, rtol=0)


def test_the_first_token_follows_the_stationary_law_and_later_ones_do_not_lag():
    """Order 2 starts in the stationary law, so the first token is distributed as the
    tenth is; order 3 starts from uniform tokens."""
    task = sampler()
    table = torch.tensor([[0.9, 0.1], [0.5, 0.5]]).double().expand(20_000, 2, 2)
    task.chain = task.chain.__class__(vocab=2)
    first = task.start(table, generator())
    assert first.shape == (20_000, 1)
    assert first.double().mean().item() == pytest.approx(1 / 6, abs=0.01)  # π = (5/6, 1/6)
    assert sampler("order=3").start(table, generator()).shape == (20_000, 2)


# ---- the in-context strategies -----------------------------------------------------------


def test_the_strategies_count_the_context_by_hand():
    tokens = torch.tensor([[0, 1, 0, 1, 0, 2]])
    probs = in_context.log_probs(tokens, 3, 1.0, 4).exp()[0]  # [T, S, V]
    assert probs.shape == (6, 4, 3)
    torch.testing.assert_close(probs[:, 0], torch.full((6, 3), 1 / 3))  # uniform
    # unigram after 0 1 0 1 0 2: counts 3, 2, 1, plus one each
    torch.testing.assert_close(probs[5, 1], torch.tensor([4, 3, 2]) / 9)
    # bigram at t=4 (token 0): 0 was followed by 1 twice
    torch.testing.assert_close(probs[4, 2], torch.tensor([1, 3, 1]) / 5)
    torch.testing.assert_close(probs[5, 2], torch.full((3,), 1 / 3))  # 2 never seen before
    # trigram at t=4 (context 1 0): followed by 1 once, at t=3
    torch.testing.assert_close(probs[4, 3], torch.tensor([1, 2, 1]) / 4)
    torch.testing.assert_close(probs[0, 3], torch.full((3,), 1 / 3))  # no context yet


def test_add_alpha_counts_follow_the_tasks_alpha():
    tokens = torch.tensor([[2, 2, 2]])
    probs = in_context.log_probs(tokens, 3, 0.5, 3).exp()[0]
    torch.testing.assert_close(probs[2, 1], torch.tensor([0.5, 0.5, 3.5]) / 4.5)
    torch.testing.assert_close(probs[2, 2], torch.tensor([0.5, 0.5, 2.5]) / 3.5)


def test_the_bigram_strategy_beats_the_others_on_the_chains():
    losses = predictions.baseline_losses(sampler().eval_sets(("train",), 400, 1)["train"])
    uniform, unigram, bigram = losses[0].tolist()
    assert uniform == pytest.approx(math.log(3))
    assert bigram < unigram < uniform


# ---- the measures of the predictions -----------------------------------------------------


def strategy_batch(strategies: torch.Tensor, tokens=None, targets=None) -> StrategyBatch:
    """A batch of B sequences of T positions with the given strategies [B, T, S, V]."""
    b, t = strategies.shape[:2]
    tokens = torch.zeros(b, t, dtype=torch.long) if tokens is None else tokens
    targets = torch.zeros(b, t, dtype=torch.long) if targets is None else targets
    return StrategyBatch(tokens, targets, torch.full((b, t), -1), strategies.log())


def measure(metric: str, params=()):
    """A Plan measure of the predictions, with `params` of its own."""
    return Measure(metric, None, (), None, params=params)


def test_kl_is_from_each_strategy_to_the_model_and_nearest_is_the_lowest():
    p, q = torch.tensor([0.5, 0.25, 0.25]), torch.tensor([1 / 3, 1 / 3, 1 / 3])
    strategies = torch.stack([q, p])[None, None].expand(1, 2, 2, 3)  # [B, T, S, V]
    batch = strategy_batch(strategies)
    logits = p.log()[None, None, None].expand(1, 1, 2, 3)  # the model predicts p
    kl = [
        predictions.chunk_value(measure(f"kl-{s}", (("strategy", i),)), logits, batch)
        for i, s in enumerate(("uniform", "unigram"))
    ]
    expected = (q * (q / p).log()).sum()  # KL(uniform ‖ model)
    torch.testing.assert_close(kl[0], expected[None])
    torch.testing.assert_close(kl[1], torch.zeros(1))
    nearest = measure("nearest")
    mean = predictions.chunk_value(nearest, logits, batch)
    assert predictions.finish(nearest, mean).tolist() == [1.0]


def test_kl_averages_each_sequences_scored_positions_first():
    strategies = torch.full((2, 3, 1, 2), 0.5)
    targets = torch.tensor([[-1, -1, 0], [0, 0, 0]])
    batch = strategy_batch(strategies, targets=targets)
    logits = torch.zeros(1, 2, 3, 2)
    logits[0, 0, 2] = torch.tensor([0.0, math.log(3)])  # scored: KL(½,½ ‖ ¼,¾)
    logits[0, 0, 0] = 50.0 * torch.tensor([1.0, 0.0])  # unscored: left out
    one = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    value = predictions.chunk_value(measure("kl-uniform", (("strategy", 0),)), logits, batch)
    assert value.item() == pytest.approx(one / 2)  # sequence 1's KL is 0


def test_the_icl_score_is_the_late_loss_minus_the_early_one():
    tokens = torch.tensor([[0, 1, 1, 0]])
    targets = torch.tensor([[1, 1, 0, 1]])  # the next token, the last position's too
    batch = strategy_batch(torch.full((1, 4, 1, 2), 0.5), tokens, targets)
    logits = torch.zeros(1, 1, 4, 2)
    logits[0, 0, 0] = torch.tensor([0.0, math.log(3)])  # after 1 token: 3/4 on token 1
    logits[0, 0, 3] = torch.tensor([0.0, math.log(9)])  # after 4: 9/10 on token 1
    score = measure("icl-score", (("early", 1), ("late", 4)))
    value = predictions.chunk_value(score, logits, batch)
    assert value.item() == pytest.approx(-math.log(0.9) + math.log(0.75))


# ---- the language ------------------------------------------------------------------------


MEASURES = "measure kl-uniform\nmeasure kl-bigram\nmeasure nearest\nmeasure icl-score\n"


def test_measures_of_the_predictions_lower_with_their_strategy_and_positions():
    plan = plan_of('experiment e "x"\n' + MEASURES + "measure icl-score early=2 late=9\n")
    lowered = [(m.metric, m.layer, m.params) for m in plan.measures]
    assert lowered == [
        ("kl-uniform", None, (("strategy", 0),)),
        ("kl-bigram", None, (("strategy", 2),)),
        ("nearest", None, ()),
        ("icl-score", None, (("early", 1), ("late", 12))),  # a tenth of 12, and 12
        ("icl-score", None, (("early", 2), ("late", 9))),
    ]
    from clampdsl.compile.plan import Plan

    assert Plan.from_json(plan.to_json()) == plan


def test_phase_rules_on_the_predictions():
    when = plan_of('experiment e "x"\n' + MEASURES + "phase when nearest is bigram\n").phase
    assert (when.metric, when.op, when.threshold, when.categorical) == ("nearest", "is", 2, True)
    from clampdsl.analysis.phase import phase_step

    records = [{"step": s, "train.nearest": v} for s, v in ((0, 0.0), (5, 1.0), (10, 2.0))]
    assert phase_step(records, when) == 10
    below = plan_of('experiment e "x"\n' + MEASURES + "phase train.kl-bigram < 0.05\n").phase
    assert (below.key, below.threshold) == ("train.kl-bigram", 0.05)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "measure kl-trigram\n",
            "the trigram strategy, which task markov (order 2, alpha 1, dirichlet) does not have",
        ),
        (
            "measure kl-bigram of L2.H0\n",
            "kl-bigram is a measure of the model's predictions: it takes no heads",
        ),
        (
            "measure icl-score early=6 late=6\n",
            "they must satisfy 1 <= early < late <= the length (12)",
        ),
        ("measure icl-score late=13\n", "late=13 tokens"),
        ("measure icl-score middle=3\n", "unknown icl-score option 'middle'"),
        ("measure nearest early=3\n", "nearest takes no options"),
        ("measure prev-token-strength\n", "prev-token-strength is measured on heads"),
        (
            "measure kl-bigram\nphase when nearest is bigram\n",
            "the phase rule reads nearest, which the spec does not measure",
        ),
        ("measure nearest\nphase when nearest is pentagram\n", "unknown nearest value 'pentagram'"),
        (
            "measure kl-bigram\nphase when kl-bigram is bigram\n",
            "reads a measure of categories, which kl-bigram is not",
        ),
        ("measure nearest\nphase train.nearest < 1\n", "nearest names a strategy, not a number"),
        ("phase train.kl-bigram < 0.1\n", "add `measure kl-bigram`"),
        (
            "measure induction-strength of L2.H*\n",
            "induction-strength reads label tokens, which task markov does not have",
        ),
        ("measure kl-bigramm\n", "kl-bigramm compares the predictions with the bigramm strategy"),
        ("measure kl-bigram\nphase\n", "error"),
    ],
)
def test_what_the_compiler_refuses(body, message):
    assert message in errors_of('experiment e "x"\n' + body)


def test_a_near_phase_cadence_needs_a_threshold():
    header = HEADER.replace("every 5 steps", "every 5 steps, every 1 steps near phase")
    text = errors_of('experiment e "x"\n' + MEASURES + "phase when nearest is bigram\n", header)
    assert "`when nearest is …` has none" in text


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("vocab=11 order=3", "tables of 1,331 entries per sequence, more than 1,024"),
        ("length=3 order=3", "length=3 leaves no transition to learn in context at order=3"),
        ("order=6", "order=6 is out of range"),
        ("alpha=0", "alpha=0 is out of range"),
        ("prior=uniform", "prior cannot be 'uniform'"),
        ("repeat_min=3", "repeat_min is a setting of task repeated-tokens, not of task markov"),
    ],
)
def test_impossible_settings_are_compile_errors(settings, message):
    assert message in errors_of(
        'experiment e "x"\n', HEADER.replace("length=12", f"length=12 {settings}")
    )


def test_other_tasks_have_no_strategies_to_measure():
    header = HEADER.replace("markov vocab=3 length=12", "repeated-tokens vocab=11 length=20")
    text = errors_of('experiment e "x"\nmeasure kl-bigram\nmeasure icl-score\n', header)
    assert (
        "kl-bigram compares the predictions with the bigram strategy, which task repeated-tokens"
        in text
    )
    assert (
        "icl-score reads a known next token at every position, which task repeated-tokens" in text
    )


def test_a_sweep_checks_every_runs_task():
    body = 'sweep task.order in 2, 3\nexperiment e "x"\nmeasure kl-trigram\n'
    assert "(order 2, alpha 1, dirichlet) does not have" in errors_of(body)
    plan = plan_of('sweep task.order in 2, 3\nexperiment e "x"\nmeasure kl-bigram\n')
    assert len(plan.groups) == 2  # the order decides how many strategies the evals carry


# ---- a short run -------------------------------------------------------------------------


def test_a_group_evaluates_the_measures_and_the_strategies_losses():
    from clampdsl.train.session import GroupSession

    body = 'experiment e "x"\nexperiment p:\n    clamp L1.H0 to prev-token\n' + MEASURES
    session = GroupSession(plan_of(body + "measure prev-token-strength of L1.H*\n"), 0)
    session.train_step(0)
    results = session.evaluate(1)
    assert {"train.kl-bigram", "train.nearest", "train.icl-score"} <= set(results)
    assert results["train.uniform-loss"].tolist() == pytest.approx([math.log(3)] * 2)
    assert results["prev-token-strength L1.H0"][1].item() == pytest.approx(1.0)
    assert (results["train.kl-uniform"] >= 0).all()


def test_the_markov_spec_trains_and_reports_a_short_run(tmp_path):
    from conftest import ROOT

    from clampdsl import api

    text = (ROOT / "specs" / "markov_bigram.clamp").read_text()
    short = text.replace("steps=400", "steps=20").replace("every 20 steps", "every 10 steps")
    (tmp_path / "markov.clamp").write_text(short)
    result = api.run(tmp_path / "markov.clamp", tmp_path / "runs", device="cpu", compile="off")
    assert [s.name for s in result.summaries] == ["base", "prev_token", "doubly"]
    base = result.summaries[0]
    assert list(base.strategies) == ["uniform", "unigram", "bigram"]
    assert base.measures["train.nearest"] in (0.0, 1.0, 2.0)
    report = (result.directory / "report.md").read_text()
    assert (
        "In-context strategies' loss on the first eval set (base, prev_token): uniform 1.099"
        in report
    )
    assert "first eval with `nearest is bigram`;" in report


def test_an_order_four_chain_has_the_tetragram_strategy_and_draws_from_three_parents():
    plan = plan_of(
        'experiment e "x"\nmeasure kl-tetragram\n',
        HEADER.replace("vocab=3 length=12", "vocab=3 length=12 order=4"),
    )
    assert task_kinds.of(plan.runs[0].task).baselines(plan.runs[0].task)[-1] == "tetragram"
    task = sampler("order=4")
    table = task.tables(50, generator())
    assert table.shape == (50, 27, 3)  # a row per three parents
    assert task.start(table, generator()).shape == (50, 3)
