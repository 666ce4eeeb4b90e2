"""Each clamp's effect on a tiny model, checked against hand-built tensors, with the
reference's gradient semantics (icl_dynamics_spec.md §4, §7.9)."""

import pytest
import torch
from conftest import computing_everything
from reference_model import SETTINGS, reference_logits
from reference_model import tiny_group as setup

from clampdsl.compile import compile_source
from clampdsl.kinds.copy_scores import FILL as COPY_FILL
from clampdsl.kinds.shifted_embedding import shifted as shifted_embedding
from clampdsl.model.two_pass import KEYS

C, HD = 8, 4


def grads(model, loss):
    model.zero_grad()
    loss.sum().backward()
    # a weight the loss does not use (a bypassed layer 1) has no gradient at all: zeros
    return {
        name: torch.zeros_like(p) if p.grad is None else p.grad.clone()
        for name, p in model.weights.items()
    }


def columns(part: str, head: int) -> slice:
    """qkv columns of one head's q, k or v."""
    offset = {"q": 0, "k": C, "v": 2 * C}[part] + head * HD
    return slice(offset, offset + HD)


def test_unclamped_forward_matches_a_plain_reference():
    model, _, batch = setup("    ablate L1.H0 from step 5\n", "    ablate L1.H0 from step 5\n")
    logits = model(batch.features, batch.labels)
    for r in range(2):
        expected = reference_logits(model.weights, r, batch.features, batch.labels, 2, 2)
        torch.testing.assert_close(logits[r], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("selector", "zero"),
    [
        ("embed", (None, "embed", None)),
        ("logits", (None, "logits", None)),
        ("L1.in", (0, "in", None)),
        ("L2", (1, "out", None)),
        ("L1.out", (0, "out", None)),
        ("L1.H1.q", (0, "q", 1)),
        ("L2.H0.k", (1, "k", 0)),
        ("L1.H0", (0, "v", 0)),
        ("L2.H1.pattern", (1, "pattern", 1)),
        ("L1.H1.z", (0, "z", 1)),
    ],
)
def test_zero_reaches_every_site(selector, zero):
    model, clamps, batch = setup(f"    clamp {selector} to zero\n")
    logits = model(batch.features, batch.labels, clamps)
    expected = reference_logits(model.weights, 0, batch.features, batch.labels, 2, 2, zero)
    torch.testing.assert_close(logits[0], expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(logits[0], model(batch.features, batch.labels)[0])


def test_ablate_zeroes_the_heads_values_and_freezes_it():
    model, clamps, batch = setup("    ablate L2.H1\n")
    logits = model(batch.features, batch.labels, clamps)
    with torch.no_grad():
        model.weights["qkv1"][0, :, columns("v", 1)] = 0.0
    torch.testing.assert_close(logits, model(batch.features, batch.labels))
    g = grads(model, model.loss(batch.features, batch.labels, clamps))
    for part in "qkv":
        assert g["qkv1"][0, :, columns(part, 1)].abs().max() == 0
        assert g["qkv1"][0, :, columns(part, 0)].abs().max() > 0
    assert g["proj1"][0, HD:].abs().max() == 0 and g["proj1"][0, :HD].abs().max() > 0


def test_prev_token_pattern_is_the_hand_built_matrix():
    model, clamps, batch = setup("    clamp L1.H0 to prev-token strength 0.8\n")
    clamped, free = {}, {}
    model(batch.features, batch.labels, clamps, record=clamped)
    model(batch.features, batch.labels, None, record=free)
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0],
            [0.8, 0.2, 0, 0, 0],
            [0, 0.8, 0.2, 0, 0],
            [0, 0, 0.8, 0.2, 0],
            [0, 0, 0, 0.8, 0.2],
        ]
    )
    torch.testing.assert_close(clamped[0][0, :, 0], expected.expand(7, 5, 5))
    torch.testing.assert_close(clamped[0][0, :, 1], free[0][0, :, 1])  # other head untouched
    g = grads(model, model.loss(batch.features, batch.labels, clamps))
    assert g["qkv0"][0, :, columns("q", 0)].abs().max() == 0
    assert g["qkv0"][0, :, columns("k", 0)].abs().max() == 0
    assert g["qkv0"][0, :, columns("v", 0)].abs().max() > 0


def test_prev_token_at_labels_clamps_only_the_label_rows():
    model, clamps, batch = setup("    clamp L1.H0 to prev-token at labels\n")
    clamped, free = {}, {}
    model(batch.features, batch.labels, clamps, record=clamped)
    model(batch.features, batch.labels, None, record=free)
    head, free_head = clamped[0][0, :, 0], free[0][0, :, 0]
    for row in (1, 3):  # label rows attend to their exemplar
        torch.testing.assert_close(head[:, row], torch.eye(5)[row - 1].expand(7, 5))
    for row in (0, 2, 4):  # exemplar and query rows keep what the head computes
        torch.testing.assert_close(head[:, row], free_head[:, row])
    g = grads(model, model.loss(batch.features, batch.labels, clamps))
    assert g["qkv0"][0, :, columns("k", 0)].abs().max() > 0  # those rows still learn


def test_induction_sets_only_the_query_row():
    model, clamps, batch = setup("    clamp L2.H0 to induction strength 0.7\n")
    clamped, free = {}, {}
    model(batch.features, batch.labels, clamps, record=clamped)
    model(batch.features, batch.labels, None, record=free)
    expected = torch.zeros(7, 5)
    for b, m in enumerate(batch.match.tolist()):
        expected[b, 2 * m + 1], expected[b, 2 * (1 - m) + 1] = 0.7, 0.3
    assert clamped[1].shape[-2:] == (1, 5)  # the last layer is computed at the query only
    torch.testing.assert_close(clamped[1][0, :, 0, -1], expected)
    g = grads(model, model.loss(batch.features, batch.labels, clamps))
    assert g["qkv1"][0, :, columns("q", 0)].abs().max() == 0  # last layer: query row only


def test_shifted_embedding_bypasses_layer_one():
    model, clamps, batch = setup("    clamp L1.out to shifted-embedding\n")
    recorded = {}
    logits = model(batch.features, batch.labels, clamps, record=recorded)
    with torch.no_grad():
        e = model.embed(batch.features, batch.labels)  # [R, N, B, C]
        assert torch.equal(shifted_embedding(e)[0, :, 0, 0], e[0, [0, 0, 1, 2, 4], 0, 0])
        scores, _ = model.attention_scores(1, shifted_embedding(e))  # [R, H, N, N, B]
        pattern = torch.softmax(scores, KEYS)
        _, v = model.attention_scores(1, e)
        expected = model.readout(model.mix(1, e, pattern, v))
    query_row = pattern[:, :, -1:].permute(0, 4, 1, 2, 3)  # as recorded: [R, B, H, 1, N]
    torch.testing.assert_close(recorded[1], query_row)
    assert recorded[0].shape == (1, 7, 2, 5, 5)  # the bypassed layer, for measures
    torch.testing.assert_close(logits, expected)
    g = grads(model, model.loss(batch.features, batch.labels, clamps))
    for name in ("qkv0", "proj0", "ln_g0", "ln_b0"):
        assert g[name].abs().max() == 0, name
    assert g["qkv1"][0, :, columns("q", 0)].abs().max() > 0  # learns through pass 1
    assert g["qkv1"][0, :, columns("v", 0)].abs().max() > 0  # learns through the final pass


SHIFTED = "    clamp L1.out to shifted-embedding\n"


COPY = "    clamp logits to scores of L2.H1\n"


@pytest.mark.parametrize(
    ("experiments", "skips", "final_pass_runs"),
    [
        ((SHIFTED,), (True, True), (0, 1)),
        # The copy run's logits are pass 1's: the final pass computes nothing for it.
        ((SHIFTED, SHIFTED + COPY), (True, True), (0, 1)),
        ((SHIFTED + COPY,), (True, True), (0, 0)),
        ((SHIFTED + COPY.replace("L2.H1", "L2.H1 from step 2"),), (True, True), (0, 1)),
        # The other run needs layer 1: the final pass computes it for that run alone, where
        # the bypassed run is batched last (as `batching_order` does), else for both.
        (("    ablate L2.H1\n", SHIFTED), (True, False), (1, 2)),
        ((SHIFTED, "    ablate L2.H1\n"), (True, False), (2, 2)),
        (
            ("    clamp L1.H0 to prev-token\n", SHIFTED + "    ablate L2.H0\n"),
            (True, False),
            (1, 2),
        ),
        (("    ablate L1.H1\n", SHIFTED + COPY), (True, False), (1, 1)),
        ((SHIFTED + "    clamp logits to scores of L1.H0\n",), (False, True), (0, 0)),  # pass 1
        (("    clamp L1.out to shifted-embedding from step 2\n",), (False, False), (1, 1)),
    ],
)
def test_skipping_what_no_loss_reads_changes_nothing(experiments, skips, final_pass_runs):
    """Layer 1 where runs bypass it; the last layer where a copy clamp replaces the
    logits with pass 1's scores. `final_pass_runs`: how many runs get layer 1, and the
    last layer, in the final pass."""
    model, clamps, batch = setup(*experiments)
    schedule = clamps.schedule
    first_skips = schedule.first_pass is not None and schedule.first_pass.from_layer == 1
    assert (first_skips, schedule.final_from_layer == 1) == skips
    assert (schedule.layer_one_runs, schedule.last_layer_runs) == final_pass_runs
    skipped = model.loss(batch.features, batch.labels, clamps)
    skipped_grads = grads(model, skipped)
    with torch.no_grad():  # an eval that measures nothing (rotated weights)
        skipped_eval = model.loss(batch.features, batch.labels, clamps)
    computing_everything(clamps)
    computed = model.loss(batch.features, batch.labels, clamps)
    torch.testing.assert_close(skipped, computed)
    for name, value in grads(model, computed).items():
        torch.testing.assert_close(skipped_grads[name], value, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(skipped_eval, model.loss(batch.features, batch.labels, clamps))


def test_copy_scores_reads_the_unclamped_pass():
    model, clamps, batch = setup("    clamp logits to scores of L2.H1\n    ablate L2.H1\n")
    logits = model(batch.features, batch.labels, clamps)
    with torch.no_grad():
        x = model.embed(batch.features, batch.labels)
        scores0, v0 = model.attention_scores(0, x)
        scores1, _ = model.attention_scores(1, model.mix(0, x, torch.softmax(scores0, KEYS), v0))
    expected = torch.full((7, 5), COPY_FILL)
    for b in range(7):
        for j in range(2):
            expected[b, batch.labels[b, j]] = scores1[0, 1, -1, 2 * j + 1, b]
    torch.testing.assert_close(logits[0], expected)
    g = grads(model, model.loss(batch.features, batch.labels, clamps))
    for name in ("unembed_w", "unembed_b", "proj1"):
        assert g[name].abs().max() == 0, name
    assert g["qkv1"][0, :, columns("v", 1)].abs().max() == 0
    assert g["qkv1"][0, :, columns("q", 1)].abs().max() > 0
    assert g["qkv0"].abs().max() > 0 and g["embed_w"].abs().max() > 0


@pytest.mark.parametrize(
    ("others", "needs_pass"),
    [
        ("", False),
        ("    ablate L2.H1\n", False),  # the source layer's values: after the scores
        ("    clamp L2.H1 to induction\n", False),  # a pattern of the source layer
        ("    clamp logits to zero\n", False),
        ("    ablate L1.H0\n", True),  # an earlier layer
        ("    clamp L1.H1 to prev-token\n", True),
        ("    clamp L2.H1.q to zero\n", True),  # the source layer's queries
        ("    clamp embed to zero\n", True),
        ("    clamp L1.out to shifted-embedding\n", True),
    ],
)
def test_copy_scores_take_pass_one_only_when_a_clamp_acts_upstream(others, needs_pass):
    plan = compile_source(
        SETTINGS + "experiment e:\n    clamp logits to scores of L2.H1\n" + others
    )
    assert plan.groups[0].schedule.runs[0].first_pass == needs_pass


def test_copy_scores_read_from_the_final_pass_equal_pass_one():
    # Run 1 takes pass 1 (its ablation acts upstream, if only from step 1000); run 0 reads
    # the final pass. Same seed, so they must agree in logits and gradients.
    model, clamps, batch = setup(
        "    clamp logits to scores of L2.H0\n",
        "    clamp logits to scores of L2.H0\n    ablate L1.H0 from step 1000\n",
        seeds=[5, 5],
    )
    assert clamps.reads_first_pass.tolist() == [False, True]
    assert (clamps.schedule.first_pass.start, clamps.schedule.first_pass.stop) == (1, 2)
    logits = model(batch.features, batch.labels, clamps)
    torch.testing.assert_close(logits[0], logits[1])
    assert (logits[0] > COPY_FILL).sum() > 0
    g = grads(model, model.loss(batch.features, batch.labels, clamps))
    for name, value in g.items():
        torch.testing.assert_close(value[0], value[1], msg=name)


@pytest.mark.parametrize("per_run_data", [False, True], ids=["shared data", "per-run data"])
def test_tokens_as_table_rows_give_what_their_features_give(per_run_data):
    # Evals pass a table of distinct feature vectors and indices into it (each vector is
    # embedded once): the same logits and patterns as the features, clamps included.
    model, clamps, batch = setup(
        "    ablate L1.H1\n",
        "    clamp L1.in to zero\n",
        "    clamp embed to zero\n",
        "    clamp L1.H0 to prev-token\n    clamp logits to scores of L2.H1\n",
        SHIFTED + "    clamp logits to scores of L2.H0\n",
    )
    items, labels = batch.items, batch.labels
    if per_run_data:  # each run its own sequences
        order = torch.stack(
            [torch.randperm(7, generator=torch.Generator().manual_seed(r)) for r in range(5)]
        )
        items, labels = items[order], labels[order]
    for state in (None, clamps):
        direct, through_table = {}, {}
        expected = model(batch.table[items], labels, state, record=direct)
        logits = model(batch.table, labels, state, record=through_table, items=items)
        torch.testing.assert_close(logits, expected)
        assert direct.keys() == through_table.keys() == {0, 1}
        for layer, pattern in direct.items():
            torch.testing.assert_close(through_table[layer], pattern)
        # …and as evals run it: without gradient, on what `prepare_evals` computed once
        prepared = model.prepare_evals(batch.table, items.shape[-1])
        with torch.no_grad():
            logits = model(batch.table, labels, state, items=items, prepared=prepared)
        torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_windows_switch_in_place_without_new_tensors():
    model, clamps, batch = setup("    ablate L2.H1 from step 2 until step 4\n")
    (ablation,) = clamps.final[(1, "v")]
    mask = ablation.on
    pointer = mask.data_ptr()
    free = model(batch.features, batch.labels)
    outputs = {}
    for step in range(6):
        clamps.set_step(step)
        outputs[step] = model(batch.features, batch.labels, clamps)
    assert clamps.final[(1, "v")][0].on is mask and mask.data_ptr() == pointer
    for step in (0, 1, 4, 5):
        torch.testing.assert_close(outputs[step], free)
    for step in (2, 3):
        assert not torch.allclose(outputs[step], free)


@pytest.mark.parametrize(
    "clamp",
    [
        "    ablate L2.H1\n",
        "    clamp L1.H0 to prev-token\n",
        "    clamp L2.H0 to induction\n",
        "    clamp L1.out to shifted-embedding\n",
        "    clamp logits to scores of L2.H0\n",
        "    clamp L2.H1 to match temperature 0.2\n",
        "    clamp L1.H0 to uniform\n    clamp L1.H1 to self\n",
        "    forbid L1.H0 attending prev-token at labels\n    restrict L2.H1 to labels\n",
        "    ablate L1.H0\n    scale L2.H1 temperature 3\n",
        "    clamp L1.H0.z to mean\n",
        "    ablate L1.H0 keeping patterns\n",
    ],
)
def test_batched_runs_equal_the_same_runs_alone(clamp):
    experiments = ["    ablate L1.H1\n", clamp, "    clamp L1.H1 to prev-token strength 0.5\n"]
    model, clamps, batch = setup(*experiments, seeds=[5, 6, 7])
    together = model(batch.features, batch.labels, clamps)
    for r, text in enumerate(experiments):
        alone_model, alone_clamps, _ = setup(text, seeds=[5 + r])
        alone = alone_model(batch.features, batch.labels, alone_clamps)
        torch.testing.assert_close(together[r], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "clamp",
    [
        None,
        "    clamp L1.H1.q to zero\n    clamp L2.H0.k to zero\n",
        "    clamp L1.H0 to prev-token\n",
        "    clamp L2.H0 to induction\n",
        "    clamp L1.out to shifted-embedding\n",
        "    clamp L1.out to shifted-embedding\n    clamp logits to scores of L2.H0\n",
        "    ablate L1.H0 keeping values\n",
        "    ablate L1.H1 keeping queries\n    ablate L2.H0 keeping keys\n",
    ],
)
def test_the_forward_without_gradient_equals_the_training_forward(clamp):
    """Evals (no gradient) compute q, k and v another way: RoPE folded into the weights."""
    model, clamps, batch = setup(clamp or "    ablate L1.H0\n")
    clamps = clamps if clamp else None
    training, evaluating = {}, {}
    expected = model(batch.features, batch.labels, clamps, record=training)
    with torch.no_grad():
        logits = model(batch.features, batch.labels, clamps, record=evaluating)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    for layer, pattern in training.items():
        torch.testing.assert_close(evaluating[layer], pattern, atol=1e-6, rtol=1e-5)


def test_a_diverged_run_does_not_touch_its_siblings():
    model, clamps, batch = setup("    ablate L1.H1\n", "    clamp logits to scores of L2.H0\n")
    healthy = model.loss(batch.features, batch.labels, clamps)[1].item()
    with torch.no_grad():
        model.weights["qkv0"][0] = float("nan")
    losses = model.loss(batch.features, batch.labels, clamps)
    assert torch.isnan(losses[0]) and losses[1].item() == pytest.approx(healthy)
    g = grads(model, losses)
    assert torch.isfinite(g["qkv0"][1]).all()


@pytest.mark.parametrize("during", ["train", "eval"])
def test_a_clamp_during_one_phase_is_off_in_the_other(during):
    model, clamps, batch = setup(f"    clamp L2.H* to uniform during {during}\n")
    free = model(batch.features, batch.labels)
    outputs = {}
    for phase in ("train", "eval", "train"):
        clamps.set_step(0, phase)
        outputs[phase] = model(batch.features, batch.labels, clamps)
    other = "eval" if during == "train" else "train"
    torch.testing.assert_close(outputs[other], free)
    assert not torch.allclose(outputs[during], free)


@pytest.mark.parametrize(
    ("clamp", "cut"),
    [
        # the source head's queries and keys learn only through the copied scores
        ("    clamp logits to scores of L2.H1 detached\n", [("qkv1", "q", 1), ("qkv1", "k", 1)]),
        # the last layer's queries and keys learn only through the first pass's patterns
        ("    clamp L1.out to shifted-embedding detached\n", [("qkv1", "q", 0), ("qkv1", "k", 0)]),
    ],
)
def test_detached_cuts_the_gradient_through_what_the_clamp_reads(clamp, cut):
    model, clamps, batch = setup(clamp, clamp.replace(" detached", ""), seeds=[5, 5])
    losses = model.loss(batch.features, batch.labels, clamps)
    torch.testing.assert_close(losses[0], losses[1])  # the same forward
    g = grads(model, losses)
    for name, part, head in cut:
        assert g[name][0, :, columns(part, head)].abs().max() == 0, (name, part)
        assert g[name][1, :, columns(part, head)].abs().max() > 0, (name, part)
