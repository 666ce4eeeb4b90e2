"""Model variants (`model pos=… mlp=N smear=on`): each against the plain per-head forward of
tests/reference_model.py on random weights, for the few-shot and the token model; the
clamp sites on every variant; runs independent in a group; what freeze and graft cover;
`clamp … to relative-position`; what the compiler refuses; short end-to-end runs."""

import pytest
import torch
from conftest import computing_everything
from reference_model import (
    check_against_reference,
    reference_logits,
    reference_token_logits,
    tiny_group,
)

from clampdsl.compile import SpecError, compile_source
from clampdsl.model.positions import SCHEMES, by_distance
from clampdsl.tasks import kinds as task_kinds

VARIANTS = {
    "rope+mlp": "mlp=2",
    "rope+smear": "smear=on",
    "relative": "pos=relative",
    "absolute": "pos=absolute",
    "none": "pos=none",
    "relative+mlp+smear": "pos=relative mlp=2 smear=on",
}
TOKENS = (
    "clampdsl 1\nmodel layers=2 heads=2 d_model=8\n"
    "task repeated-tokens vocab=11 length=12 repeat_min=3 repeat_max=5\n"
    "train steps=10 batch=4\neval every 5 steps on train size=6\n"
)


def variant(name: str) -> str:
    return f"model {VARIANTS[name]}\n"


def randomise(model, seed: int = 0) -> None:
    """Every weight off its initial value (the biases, gains, smear and relative positions
    start at constants that would hide a misplaced one)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for weight in model.weights.values():
            weight.add_(0.3 * torch.randn(weight.shape, generator=generator))


def token_model(settings: str, body: str = "experiment e\n", seeds=(5, 6)):
    plan = compile_source(TOKENS + settings + body, "tokens.clamp")
    run = plan.runs[0]
    task = task_kinds.of(run.task).sampler(run.task)
    return task.model(run.model, list(seeds)), task, plan


def test_the_position_schemes_are_the_ones_the_language_declares():
    from clampdsl.compile.configs import POSITION_SCHEMES

    assert tuple(SCHEMES) == POSITION_SCHEMES


def test_biases_by_distance_put_t_of_i_minus_j_below_the_diagonal():
    table = torch.arange(1.0, 8.0)[None]  # [1, P]: distance d has bias d + 1
    built = by_distance(table, 5)[0]
    for i in range(5):
        for j in range(i + 1):
            assert built[i, j] == i - j + 1


@pytest.mark.parametrize("name", VARIANTS)
def test_the_few_shot_model_computes_the_plain_forward(name):
    model, _, batch = tiny_group("    ablate L1.H0 from step 5\n", settings=variant(name))
    randomise(model)
    config = model.config
    logits = model(batch.features, batch.labels)
    with torch.no_grad():  # the eval path, on what `prepare_evals` computed once
        prepared = model.prepare_evals(batch.table, batch.items.shape[-1])
        evaluated = model(batch.table, batch.labels, items=batch.items, prepared=prepared)
    expected = reference_logits(model.weights, 0, batch.features, batch.labels, 2, 2, model=config)
    torch.testing.assert_close(logits[0], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(evaluated[0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
def test_the_token_model_computes_the_plain_forward_at_every_position(name):
    model, task, _ = token_model(variant(name))
    randomise(model)
    batch = task.sample(2, torch.Generator().manual_seed(0))
    logits = model(*batch.model_inputs())  # [R, B, T, V]
    with torch.no_grad():
        evaluated = model(*batch.model_inputs(), prepared=model.prepare_for(batch))
    for r in range(2):
        for b in range(2):
            expected = reference_token_logits(model.weights, r, batch.tokens[b], model.config)
            torch.testing.assert_close(logits[r, b], expected, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(evaluated[r, b], expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["rope+smear", "absolute", "none", "relative+mlp+smear"])
def test_gradients_of_every_weight_are_the_plain_forwards(name):
    """Batched between two other runs, whose slices the run's loss must not touch."""
    grads = check_against_reference("    clamp L1.H1 to uniform\n", _uniform, variant(name))
    extra = {"rel0", "smear0", "mlp_in0", "pos_embed"} & set(grads)
    assert all(grads[weight].abs().max() > 0 for weight in extra)


def _uniform(model, batch):
    def edit(site, layer, head, i, value, b):
        if (site, layer, head) == ("pattern", 0, 1):
            return torch.full_like(value, 1 / (i + 1))
        return value

    return edit


def test_a_variant_shares_its_initial_weights_with_the_rope_attention_only_model():
    """Its own weights come after the base model's, so the base's are drawn alike."""
    base, _, _ = tiny_group("    ablate L1.H0\n")
    for name in VARIANTS:
        model, _, _ = tiny_group("    ablate L1.H0\n", settings=variant(name))
        for weight, value in base.weights.items():
            assert torch.equal(model.weights[weight], value), (name, weight)
    assert set(base.weights) == {
        "embed_w", "embed_b", "label_embed", "final_ln_g", "final_ln_b", "unembed_w",
        "unembed_b", *(f"{w}{layer}" for layer in (0, 1) for w in ("ln_g", "ln_b", "qkv", "proj")),
    }  # fmt: skip


SITES = [
    ("embed", (None, "embed", None)),
    ("logits", (None, "logits", None)),
    ("L1.in", (0, "in", None)),
    ("L2", (1, "out", None)),
    ("L1.H1.q", (0, "q", 1)),
    ("L2.H0.k", (1, "k", 0)),
    ("L1.H0", (0, "v", 0)),
    ("L2.H1.pattern", (1, "pattern", 1)),
    ("L1.H1.z", (0, "z", 1)),
]


@pytest.mark.parametrize("name", ["relative+mlp+smear", "absolute"])
@pytest.mark.parametrize(("selector", "zero"), SITES)
def test_every_clamp_site_exists_on_every_variant(name, selector, zero):
    model, clamps, batch = tiny_group(f"    clamp {selector} to zero\n", settings=variant(name))
    randomise(model)
    logits = model(batch.features, batch.labels, clamps)
    expected = reference_logits(
        model.weights, 0, batch.features, batch.labels, 2, 2, zero, model=model.config
    )
    torch.testing.assert_close(logits[0], expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(logits[0], model(batch.features, batch.labels)[0])


CLAMPS = [
    "    clamp L1.H0 to prev-token\n",
    "    clamp L2.H0 to induction\n",
    "    clamp L1.out to shifted-embedding\n    clamp logits to scores of L2.H0\n",
    "    ablate L1.H0\n    scale L2.H1 temperature 3\n",
    "    ablate L1.H0 keeping patterns\n",
    "    clamp L1.H1.z to mean\n",
]


@pytest.mark.parametrize("name", ["relative+mlp+smear"])
@pytest.mark.parametrize("clamp", CLAMPS)
def test_runs_in_a_group_equal_the_same_runs_alone(name, clamp):
    experiments = ["    ablate L1.H1\n", clamp, "    clamp L1.H1 to prev-token strength 0.5\n"]
    model, clamps, batch = tiny_group(*experiments, seeds=[5, 6, 7], settings=variant(name))
    together = model(batch.features, batch.labels, clamps)
    for r, text in enumerate(experiments):
        alone, alone_clamps, _ = tiny_group(text, seeds=[5 + r], settings=variant(name))
        torch.testing.assert_close(
            together[r], alone(batch.features, batch.labels, alone_clamps)[0], atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("name", ["relative+mlp+smear", "absolute"])
@pytest.mark.parametrize("clamp", CLAMPS)
def test_what_the_schedule_leaves_out_and_the_eval_path_change_nothing(name, clamp):
    model, clamps, batch = tiny_group(clamp, "    ablate L2.H1\n", settings=variant(name))
    randomise(model)
    skipped = model.loss(batch.features, batch.labels, clamps)
    with torch.no_grad():
        evaluated = model.loss(batch.features, batch.labels, clamps)
    computed = model.loss(batch.features, batch.labels, computing_everything(clamps))
    torch.testing.assert_close(skipped, computed, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(evaluated, computed, atol=1e-5, rtol=1e-5)


def test_a_layers_weights_include_its_mlp_and_a_heads_keys_its_smear_and_positions():
    model, _, _ = tiny_group("    ablate L1.H0\n", settings=variant("relative+mlp+smear"))
    layer = {name for name, *_ in model.weights_of(0, "layer")}
    assert {"mlp_in0", "mlp_ln_g0", "mlp_out_b0", "rel0", "smear0", "qkv0"} <= layer
    assert not any(name.endswith("1") for name in layer)
    assert model.weights_of(1, "k")[1:] == [("rel1", 1, 0, 1), ("smear1", 1, 0, 1)]
    absolute, _, _ = tiny_group("    ablate L1.H0\n", settings=variant("absolute"))
    assert "pos_embed" in {name for name, *_ in absolute.weights_of(None, "embed")}


def test_freezing_a_layer_holds_its_mlp_and_a_heads_keys_its_smear():
    from clampdsl.train.session import GroupSession

    text = (
        "clampdsl 1\nmodel layers=2 heads=2 d_model=8 pos=relative mlp=2 smear=on\n"
        "task classes=6 new_classes=4 features=synthetic(dim=6, correlation=0.3)\n"
        "train lr=1e-2\nexperiment e:\n    freeze L1\n    freeze L2.H1.k\n"
    )
    session = GroupSession(compile_source(text), 0)
    weights = session.model.weights
    before = {name: w.detach().clone() for name, w in weights.items()}
    for step in range(3):
        session.train_step(step)
    for name in ("mlp_in0", "mlp_in_b0", "rel0", "smear0", "qkv0"):
        assert torch.equal(weights[name], before[name]), name
    assert torch.equal(weights["smear1"][0, 1], before["smear1"][0, 1])
    assert torch.equal(weights["rel1"][0, 1], before["rel1"][0, 1])
    for name in ("mlp_in1", "mlp_out1", "proj1"):
        assert not torch.equal(weights[name], before[name]), name
    assert not torch.equal(weights["smear1"][0, 0], before["smear1"][0, 0])


# ---- clamp … to relative-position ------------------------------------------------------------
RELATIVE = variant("relative")


def test_offset_minus_one_sets_the_prev_token_pattern():
    model, clamps, batch = tiny_group(
        "    clamp L1.H0 to relative-position offset -1\n",
        "    clamp L1.H0 to prev-token\n",
        settings=RELATIVE,
    )
    randomise(model)
    record = {}
    model(batch.features, batch.labels, clamps, record)
    positions, previous = record[0][0, :, 0], record[0][1, :, 0]  # [B, N, N] of L1.H0
    assert torch.equal(positions, previous)
    expected = torch.eye(5).roll(-1, 1).tril()  # row i on i-1, row 0 on itself
    expected[0, 0] = 1.0
    assert torch.equal(positions, expected.expand_as(positions))
    model.zero_grad()
    model.loss(batch.features, batch.labels, clamps)[0].backward()
    query_and_key = [*range(4), *range(8, 12)]  # L1.H0's columns of W_Q and W_K
    assert model.weights["qkv0"].grad[0][:, query_and_key].abs().max() == 0
    assert model.weights["rel0"].grad[0, 0].abs().max() == 0  # L1.H0's biases


def test_a_finite_margin_against_the_plain_forward_and_no_gradient_to_its_biases():
    def edit_of(model, batch):
        def edit(site, layer, head, i, value, b):
            if (site, layer, head) == ("positions", 0, 1):
                fixed = torch.full_like(value, -3.0)
                fixed[2] = 0.0  # distance 2: offset -2
                return fixed
            return value

        return edit

    clamp = "    clamp L1.H1 to relative-position offset -2 margin 3\n"
    grads = check_against_reference(clamp, edit_of, settings=RELATIVE)
    assert grads["rel0"][1].abs().max() == 0 and grads["rel0"][0].abs().max() > 0


def test_the_token_models_heads_attend_their_offset():
    body = "experiment e:\n    clamp L1.H1 to relative-position offset -3\n"
    model, task, plan = token_model(RELATIVE, body, seeds=(5,))
    from conftest import clamp_state

    clamps = clamp_state(plan.runs)
    batch = task.sample(3, torch.Generator().manual_seed(0))
    record = {}
    model(*batch.model_inputs(), clamps, record)
    pattern = record[0][0, :, 1]  # [B, T, T]
    rows = torch.arange(3, 12)
    assert torch.equal(pattern[:, rows, rows - 3], torch.ones(3, 9))


@pytest.mark.parametrize(
    ("settings", "body", "message"),
    [
        ("", "    clamp L1.H0 to relative-position offset -1\n",
         "5:11: error: relative-position clamps relative-position biases, and this model "
         "has pos=rope"),
        (RELATIVE, "    clamp L1.H0.scores to relative-position offset -1\n",
         "it cannot be clamped at L1.H{0}.scores"),
        (RELATIVE, "    clamp L1.H0 to relative-position offset -1.5\n",
         "offset -1.5 is not a whole number"),
        (RELATIVE, "    clamp L1.H0 to relative-position offset 1\n", "offset 1 is out of range"),
        (RELATIVE, "    clamp L1.H0 to relative-position\n", "relative-position needs its offset"),
        (RELATIVE,
         "    clamp L1.H0 to relative-position offset -1\n    clamp L1.H0 to prev-token\n",
         "L1.H0's pattern is set by prev-token"),
        (RELATIVE,
         "    clamp L2.H1 to relative-position offset -1\n    scale L2.H1 temperature 2\n",
         "replaced by scale (line 7), which reads the unclamped pass"),
        (RELATIVE,
         "    clamp L2.H1 to relative-position offset -1\n"
         "    clamp L2.H1 to relative-position offset -2 from step 3\n",
         "L2.H1's positions is already clamped to relative-position"),
        ("model attention-only mlp=2\n", "", "an attention-only model has no MLP blocks"),
        ("model pos=alibi\n", "", "pos cannot be 'alibi'"),
        ("model mlp=65\n", "", "mlp=65 is out of range"),
        ("model smear=yes\n", "", "smear cannot be 'yes'"),
        ("model heads=8\n", "", "the head size d_model / heads = 1 is odd"),
    ],
)  # fmt: skip
def test_what_the_compiler_refuses(settings, body, message):
    from reference_model import SETTINGS

    with pytest.raises(SpecError) as error:
        compile_source(SETTINGS + settings + "experiment e:\n" + (body or "    ablate L1.H0\n"))
    assert message in str(error.value)


def test_odd_heads_sizes_and_an_attention_only_line_before_an_mlp_line_compile():
    from reference_model import SETTINGS

    plan = compile_source(SETTINGS + "model heads=8 pos=none\nexperiment e:\n    model mlp=2\n")
    assert (plan.runs[0].model.head_dim, plan.runs[0].model.mlp) == (1, 2)
    later = compile_source(SETTINGS + "model mlp=4\nmodel attention-only\nexperiment e\n")
    assert later.runs[0].model.mlp == 0


def test_the_default_model_keeps_its_plan_json_and_the_variant_is_shown():
    from clampdsl.compile.configs import ModelConfig

    plain = compile_source("clampdsl 1\nexperiment e\n").to_json()["runs"][0]["model"]
    assert plain == {"layers": 2, "heads": 8, "d_model": 64, "pos": "rope", "norm": "pre"}
    assert ModelConfig(pos="relative", mlp=4, smear="on").variant() == (
        "pos=relative mlp=4 smear=on"
    )


@pytest.mark.parametrize("settings", ["model pos=relative\n", "model mlp=2\n"])
def test_a_short_repeated_tokens_run_trains_and_reports(tmp_path, settings):
    from clampdsl import api

    text = (
        TOKENS.replace("steps=10", "steps=6").replace("every 5", "every 3")
        + settings
        + "experiment base\nexperiment prev:\n"
        + ("    clamp L1.H0 to relative-position offset -1\n" if "relative" in settings else
           "    clamp L1.H0 to prev-token\n")
        + "measure prev-token-strength of L1.H*\n"
    )  # fmt: skip
    (tmp_path / "v.clamp").write_text(text)
    result = api.run(tmp_path / "v.clamp", tmp_path / "runs", device="cpu", compile="off")
    final = {r["run"]: r for r in result.records if r["step"] == 6}
    assert final["prev"]["prev-token-strength L1.H0"] == pytest.approx(1.0)
    assert 2.0 < final["base"]["train.loss"] < 3.0  # near ln 11 = 2.4 this early


@pytest.mark.parametrize("name", VARIANTS)
def test_the_resource_estimate_counts_a_variants_parameters(name):
    from clampdsl.compile import resources
    from clampdsl.model.transformer import BatchedTransformer

    run = compile_source(f"clampdsl 1\n{variant(name)}experiment e\n").runs[0]
    model = BatchedTransformer(run.model, run.task.features.dim, run.task.labels, [0])
    assert resources.parameters(run) == sum(p.numel() for p in model.parameters())
