"""`task repeated-tokens`: its batches and roles, the token model against a plain forward,
its measures on hand-built patterns, and what the compiler refuses for it."""

import math

import pytest
import torch
from reference_model import layer_norm, rope

from clampdsl.compile import SpecError, compile_source
from clampdsl.tasks import kinds as task_kinds
from clampdsl.tasks.stream import CHUNK_STEPS, BatchStream

HEADER = (
    "clampdsl 1\nmodel attention-only layers=2 heads=2 d_model=8\n"
    "task repeated-tokens vocab=11 length=20 repeat_min=3 repeat_max=6\n"
    "train steps=10 batch=4\neval every 5 steps on train size=6\n"
)


def plan_of(body: str = 'experiment e "x"\n', header: str = HEADER):
    return compile_source(header + body, "tokens.clamp")


def sampler(body: str = 'experiment e "x"\n', header: str = HEADER):
    task = plan_of(body, header).runs[0].task
    return task_kinds.of(task).sampler(task)


def test_a_batch_repeats_one_segment_and_locates_each_rows_induction_target():
    batch = sampler().sample(50, torch.Generator().manual_seed(0))
    assert batch.tokens.shape == batch.targets.shape == batch.induction.shape == (50, 20)
    assert batch.tokens.max() < 11
    for tokens, targets, induction in zip(
        batch.tokens, batch.targets, batch.induction, strict=True
    ):
        rows = (induction >= 0).nonzero()[:, 0]
        assert 2 <= len(rows) <= 5  # a segment of 3..6 tokens: all its rows but the last
        assert (rows.diff() == 1).all()
        key = induction[rows]
        assert (key <= rows).all()  # the target lies before the row (causal)
        assert (tokens[key - 1] == tokens[rows]).all()  # after an earlier copy of the token
        assert (tokens[key] == tokens[rows + 1]).all()  # and it is the token to predict
        # loss=all: every position's next token but the last's
        assert (targets[:-1] == tokens[1:]).all() and targets[-1] == -1


def test_the_copy_lands_at_varying_lengths_and_distances():
    batch = sampler().sample(200, torch.Generator().manual_seed(1))
    rows = batch.induction >= 0
    distance = (torch.arange(20) - batch.induction + 1)[rows]
    assert len(set(rows.sum(-1).tolist())) == 4  # lengths 3..6, less one row each
    assert len(set(distance.tolist())) > 5


def test_loss_repeat_scores_the_second_copy_only():
    header = HEADER.replace("repeat_max=6", "repeat_max=6 loss=repeat")
    batch = sampler(header=header).sample(20, torch.Generator().manual_seed(0))
    assert ((batch.targets >= 0) == (batch.induction >= 0)).all()


def test_batches_are_a_function_of_the_seed_and_step():
    task = sampler()
    one = task.sample(8, torch.Generator().manual_seed(3))
    again = task.sample(8, torch.Generator().manual_seed(3))
    other = task.sample(8, torch.Generator().manual_seed(4))
    assert torch.equal(one.tokens, again.tokens) and torch.equal(one.induction, again.induction)
    assert not torch.equal(one.tokens, other.tokens)
    step = CHUNK_STEPS + 7  # in the second chunk
    continuing = BatchStream([(task, 0)], [0], 4)
    for s in range(step):
        continuing.at(s)
    resumed = BatchStream([(task, 0)], [0], 4)
    assert torch.equal(continuing.at(step).tokens, resumed.at(step).tokens)


def test_runs_with_their_own_data_stack_along_a_run_dimension():
    from clampdsl.tasks.per_run import for_runs

    task = sampler()
    batches = [task.sample(4, torch.Generator().manual_seed(s)) for s in (0, 1)]
    stacked = for_runs(batches, [1, 0, 1])
    assert stacked.tokens.shape == (3, 4, 20)
    assert torch.equal(stacked.tokens[0], batches[1].tokens)
    assert torch.equal(stacked.rows(slice(1, 3)).induction[1], batches[0].induction[1:3])


def reference_logits(weights, r, tokens, layers, heads):
    """Logits [T, V] of run r on one sequence, one head and one position at a time."""
    w = {k: v[r] for k, v in weights.items()}
    x = w["token_embed"][tokens]
    n, c = x.shape
    hd = c // heads
    for layer in range(layers):
        qkv = layer_norm(x, w[f"ln_g{layer}"], w[f"ln_b{layer}"]) @ w[f"qkv{layer}"]
        z = torch.zeros(n, c)
        for head in range(heads):
            q, k, v = (qkv[:, o + head * hd : o + (head + 1) * hd] for o in (0, c, 2 * c))
            for i in range(n):
                scores = torch.stack(
                    [rope(q[i], i) @ rope(k[j], j) / math.sqrt(hd) for j in range(i + 1)]
                )
                z[i, head * hd : (head + 1) * hd] = torch.softmax(scores, 0) @ v[: i + 1]
        x = x + z @ w[f"proj{layer}"]
    return layer_norm(x, w["final_ln_g"], w["final_ln_b"]) @ w["unembed_w"] + w["unembed_b"]


def test_the_token_model_computes_a_plain_forward_at_every_position():
    run = plan_of().runs[0]
    task = task_kinds.of(run.task).sampler(run.task)
    model = task.model(run.model, [5, 6])
    batch = task.sample(3, torch.Generator().manual_seed(0))
    logits = model(*batch.model_inputs())  # [R, B, T, V]
    assert logits.shape == (2, 3, 20, 11)
    with torch.no_grad():  # the eval path: projections rotated once per position
        prepared = model(*batch.model_inputs(), prepared=model.prepare_for(batch))
    for r in range(2):
        for b in range(3):
            expected = reference_logits(model.weights, r, batch.tokens[b], 2, 2)
            torch.testing.assert_close(logits[r, b], expected, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(prepared[r, b], expected, atol=1e-5, rtol=1e-4)
    # the loss: each sequence's mean over its scored positions, averaged
    losses = torch.nn.functional.cross_entropy(
        logits[0, :, :-1].reshape(-1, 11), batch.tokens[:, 1:].reshape(-1)
    )
    torch.testing.assert_close(model.losses(logits, batch.supervision)[0], losses)


def test_prefix_matching_reads_attention_on_the_induction_targets():
    from clampdsl.analysis.measures import prefix_matching, prev_token_strength

    induction = torch.full((2, 6), -1)
    induction[0, 3:5] = torch.tensor([1, 2])  # rows 3 and 4 of sequence 0
    induction[1, 4] = 0
    perfect = torch.zeros(1, 2, 1, 6, 6)
    perfect[0, 0, 0, 3, 1] = perfect[0, 0, 0, 4, 2] = perfect[0, 1, 0, 4, 0] = 1.0
    assert prefix_matching(perfect, induction).item() == pytest.approx(1.0)
    uniform = torch.ones(6, 6).tril() / torch.arange(1, 7)[:, None]
    uniform = uniform.expand(1, 2, 1, 6, 6)
    # rows 3, 4 attend 1/4 and 1/5 to their targets (sequence 0); row 4 1/5 (sequence 1)
    expected = ((1 / 4 + 1 / 5) / 2 + 1 / 5) / 2
    assert prefix_matching(uniform, induction).item() == pytest.approx(expected)
    previous = torch.eye(6).roll(-1, 1).tril().expand(1, 2, 1, 6, 6)  # row i on i-1
    assert prev_token_strength(previous).item() == pytest.approx(1.0)


def test_a_clamp_or_measure_that_reads_labels_is_a_compile_error_at_it():
    body = "experiment e:\n    clamp L2.H1 to match\n    restrict L2.H0 to labels\n"
    with pytest.raises(SpecError) as error:
        plan_of(body + "measure induction-strength of L2.H*\n")
    text = str(error.value)
    assert "tokens.clamp:7:5: error: match reads label tokens" in text
    assert "tokens.clamp:8:5: error: restrict reads label tokens" in text
    assert "tokens.clamp:9:9: error: induction-strength reads label tokens" in text


def test_another_tasks_setting_and_eval_set_are_errors():
    with pytest.raises(SpecError) as error:
        plan_of('experiment e "x":\n    task classes=4\n')
    assert "classes is a setting of task fewshot, not of task repeated-tokens" in str(error.value)
    with pytest.raises(SpecError) as error:
        plan_of('experiment e "x"\n', HEADER.replace("on train", "on relabel"))
    assert "unknown eval set 'relabel'" in str(error.value)


def test_a_phase_rule_reads_a_measured_metric():
    body = 'experiment e "x"\nmeasure prefix-matching of L2.H*\n'
    plan = plan_of(body + "phase train.prefix-matching > 0.5\n")
    assert (plan.phase.metric, plan.phase.threshold) == ("prefix-matching", 0.5)
    with pytest.raises(SpecError) as error:
        plan_of('experiment e "x"\nphase train.prefix-matching > 0.5\n')
    assert "reads prefix-matching, which the spec does not measure" in str(error.value)


def test_the_last_layer_is_measured_at_every_row():
    plan = plan_of('experiment e "x"\nmeasure prev-token-strength of L2.H*\n')
    assert [m.layer for m in plan.measures] == [1]


def test_a_token_plan_round_trips_and_a_few_shot_plan_keeps_its_json():
    from clampdsl.compile.plan import Plan

    plan = plan_of()
    assert Plan.from_json(plan.to_json()) == plan
    assert plan.runs[0].task.tokens.vocab == 11
    few_shot = compile_source("clampdsl 1\nexperiment e:\n    ablate L2.H1\n")
    assert "tokens" not in few_shot.to_json()["runs"][0]["task"]  # its hash is as it was


def test_a_phase_rule_on_a_measure_reads_its_strongest_head():
    from clampdsl.analysis.phase import phase_step, rule_value

    plan = plan_of('experiment e "x"\nmeasure prefix-matching of L2.H*\n' + PHASE)
    records = [
        {"step": 0, "prefix-matching L2.H0": 0.1, "prefix-matching L2.H1": 0.2},
        {"step": 50, "prefix-matching L2.H0": 0.3, "prefix-matching L2.H1": 0.6},
    ]
    assert rule_value(records[0], plan.phase) == 0.2
    assert phase_step(records, plan.phase) == 50


PHASE = "phase train.prefix-matching > 0.5\n"


def test_the_olsson_spec_trains_and_reports_a_short_run(tmp_path):
    from conftest import ROOT

    from clampdsl import api

    text = (ROOT / "specs" / "olsson_repeated.clamp").read_text()
    short = text.replace("steps=2000", "steps=20").replace("every 50 steps", "every 10 steps")
    (tmp_path / "olsson.clamp").write_text(short)
    result = api.run(tmp_path / "olsson.clamp", tmp_path / "runs", device="cpu", compile="off")
    assert [s.name for s in result.summaries] == ["base", "prev_token"]
    final = {r["run"]: r for r in result.records if r["step"] == 20}
    assert final["prev_token"]["prev-token-strength L1.H0"] == pytest.approx(1.0)
    assert 3.5 < final["base"]["train.loss"] < 5.0  # near ln 64 = 4.16 this early
    assert (result.directory / "report.md").read_text().count("strongest head") == 1


def test_runs_whose_repeats_differ_batch_as_one_model_with_their_own_data():
    body = (
        'experiment short "x":\n    task repeat_min=3 repeat_max=4\n'
        'experiment long "y":\n    task repeat_min=5 repeat_max=6 loss=repeat\n'
        'experiment wide "z":\n    task vocab=12\n'
    )
    plan = plan_of(body)
    assert [group.runs for group in plan.groups] == [("short", "long"), ("wide",)]
    from clampdsl.train.session import GroupSession

    session = GroupSession(plan, 0)
    batch = session.stream.at(0)
    assert batch.tokens.shape == (2, 4, 20)  # [R, B, T]: each run its own sequences
    rows = (batch.induction >= 0).sum(-1)
    assert rows[0].max() <= 3 and rows[1].min() >= 4
    assert session.train_step(0).shape == (2,)
    assert set(session.evaluate(1)) == {"train.loss", "train.acc"}


def test_an_induction_clamp_puts_its_strength_on_each_rows_induction_target():
    from clampdsl.train.session import GroupSession

    body = (
        "experiment e:\n    clamp L2.H1 to induction strength 0.7\n"
        "measure prefix-matching of L2.H*\n"
    )
    session = GroupSession(plan_of(body), 0)
    results = session.evaluate(0)
    assert results["prefix-matching L2.H1"].item() == pytest.approx(0.7)
    assert results["prefix-matching L2.H0"].item() < 0.3
    record = {}
    batch = session.eval_sets["train"]
    session.model(*batch.model_inputs(), session.clamps, record)
    pattern = record[1][0, :, 1]  # [B, N, N] of L2.H1
    rows = batch.induction < 0
    assert torch.allclose(pattern.sum(-1), torch.ones(())) and not pattern[rows].eq(0.7).any()
    session.train_step(0)  # trains through the clamp


@pytest.mark.parametrize(
    "statement",
    [
        "forbid L1.H* attending prev-token",
        "ablate L2.H1 keeping patterns",
        "ablate L1.H0 keeping values",
        "scale L2.H0 temperature 2",
        "clamp L1.H1 to uniform",
        "freeze L1.H* from step 1",
        "clamp embed to zero",
        "clamp L1.H0 to mean",
    ],
)
def test_the_clamps_that_need_no_labels_train_and_evaluate_a_token_model(statement):
    from clampdsl.train.session import GroupSession

    session = GroupSession(plan_of(f"experiment e:\n    {statement}\n"), 0)
    assert torch.isfinite(session.train_step(0)).all()
    assert torch.isfinite(session.evaluate(1)["train.loss"]).all()
