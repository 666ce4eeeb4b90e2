"""Sequences of K context items (`task context=K`), `[x0, y0, …, x_{K-1}, y_{K-1}, xq]`:
the task's sequences, and the clamps that read the layout, against the reference forward
written by hand for 7 tokens."""

import pytest
import torch
from reference_model import check_against_reference, reference_logits, tiny_group

from clampdsl.compile import compile_source
from clampdsl.compile.configs import TaskConfig
from clampdsl.lang.diagnostics import SpecError
from clampdsl.tasks.fewshot import FewShotTask

THREE = "task context=3 labels=5\n"
N, QUERY = 7, 6  # tokens, and the query's position
FORBIDDEN = -1e9


@pytest.mark.parametrize("k", [3, 5])
def test_sequences_of_k_items(k):
    task = FewShotTask(TaskConfig(context=k, labels=k + 2, classes=12))
    batch = task.sample(500, torch.Generator().manual_seed(0))
    items, labels, match = batch.items, batch.labels, batch.match
    assert items.shape == labels.shape == (500, k + 1)
    rows = torch.arange(500)
    assert torch.equal(items[rows, match], items[:, -1])  # the query is its match's class
    assert torch.equal(labels[rows, match], labels[:, -1])  # and has its label
    for row in range(500):  # distinct classes and labels in each context
        assert len(set(items[row, :k].tolist())) == k
        assert len(set(labels[row, :k].tolist())) == k
    assert set(match.tolist()) == set(range(k))  # every item position matches sometimes


def _at(site, layer, head, row, value_of):
    def edit_of(model, batch):
        def edit(at_site, at_layer, at_head, i, value, b):
            if (at_site, at_layer, at_head, i) == (site, layer, head, row):
                return value_of(value, batch, b)
            return value

        return edit

    return edit_of


def _induction_row(value, batch, b):
    row = torch.zeros(N)
    matching = [j for j in range(3) if batch.labels[b, j] == batch.labels[b, -1]]
    others = [j for j in range(3) if j not in matching]
    for j in matching:
        row[2 * j + 1] = 0.9 / len(matching)
    for j in others:
        row[2 * j + 1] = 0.1 / len(others)
    return row


def _restricted(value, batch, b):
    value = value.clone()
    value[0::2] = FORBIDDEN  # the exemplars and the query itself
    return value


@pytest.mark.parametrize(
    ("experiment", "edit_of"),
    [
        (
            "    clamp L2.H1 to induction strength 0.9\n",
            _at("pattern", 1, 1, QUERY, _induction_row),
        ),
        ("    restrict L1.H1 to labels\n", _at("scores", 0, 1, QUERY, _restricted)),
    ],
)
def test_clamps_that_read_the_layout(experiment, edit_of):
    check_against_reference(experiment, edit_of, settings=THREE)


def test_prev_token_at_labels_and_the_copy_readout_on_seven_tokens():
    model, clamps, batch = tiny_group(
        "    clamp L1.H0 to prev-token at labels\n",
        "    clamp logits to scores of L2.H1\n",
        settings=THREE,
    )
    recorded = {}
    logits = model(batch.features, batch.labels, clamps, record=recorded)
    pattern = recorded[0][0, :, 0]  # [B, N, N]
    for row in (1, 3, 5):
        torch.testing.assert_close(pattern[:, row], torch.eye(N)[row - 1].expand(7, N))
    scores = {}
    reference_logits(model.weights, 1, batch.features, batch.labels, 2, 2, record=scores)
    for b in range(7):
        for j in range(3):
            expected = scores[(1, 1, b, QUERY)][2 * j + 1]
            torch.testing.assert_close(logits[1, b, batch.labels[b, j]], expected)


def test_shifted_embedding_on_seven_tokens():
    from clampdsl.kinds.shifted_embedding import shifted

    e = torch.arange(N).float().view(1, N, 1, 1)
    assert shifted(e).flatten().tolist() == [0, 0, 1, 2, 3, 4, 6]


def test_a_task_too_small_for_its_context_is_refused():
    with pytest.raises(SpecError, match="fewer than context=4"):
        compile_source("clampdsl 1\ntask context=4 classes=3\nexperiment e\n")


def test_induction_strength_with_three_items_is_the_match_minus_the_others_mean():
    from clampdsl.analysis.measures import induction_strength

    model, clamps, batch = tiny_group("    clamp L2.H0 to induction strength 0.9\n", settings=THREE)
    recorded = {}
    model(batch.features, batch.labels, clamps, record=recorded)
    strength = induction_strength(recorded[1], batch.match)
    assert strength[0, 0].item() == pytest.approx(0.9 - 0.1 / 2)


def test_a_spec_with_three_items_trains_and_evaluates():
    from conftest import FIXTURES

    from clampdsl.compile import compile_file
    from clampdsl.train.loop import train_group

    plan = compile_file(FIXTURES / "valid" / "context3.clamp")
    result = train_group(plan, 0)
    last = [r for r in result.records if r["step"] == 20]
    assert len(last) == 4
    for record in last:
        assert 0 < record["train.loss"] < 5 and "induction-strength L2.H1" in record
    match = next(r for r in last if r["run"] == "match")
    assert match["induction-strength L2.H1"] == pytest.approx(1.0)
