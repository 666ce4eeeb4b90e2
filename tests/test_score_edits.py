"""`forbid`, `restrict` and `scale`: pre-softmax edits, against the reference forward with
the scores edited by hand."""

import pytest
import torch
from reference_model import SETTINGS, check_against_reference, reference_logits

from clampdsl.compile import compile_source
from clampdsl.lang.diagnostics import SpecError

FORBIDDEN = -1e9
C, HD = 8, 4


def _edit_scores(layer, head, change):
    """An edit_of that rewrites row i's scores of one head with change(i, scores)."""

    def edit_of(model, batch):
        def edit(site, at_layer, at_head, i, value, b):
            if (site, at_layer, at_head) == ("scores", layer, head):
                return change(i, value.clone())
            return value

        return edit

    return edit_of


def _forbid_previous(only_labels):
    def change(i, scores):
        if i >= 1 and (not only_labels or i % 2 == 1):
            scores[i - 1] = FORBIDDEN
        return scores

    return change


@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("at_labels", [False, True], ids=["every row", "at labels"])
def test_forbid_attending_the_previous_token(layer, at_labels):
    rows = " at labels" if at_labels else ""
    check_against_reference(
        f"    forbid L{layer + 1}.H0 attending prev-token{rows}\n",
        _edit_scores(layer, 0, _forbid_previous(at_labels)),
    )


@pytest.mark.parametrize("layer", [0, 1])
def test_restrict_the_query_to_label_tokens(layer):
    def change(i, scores):
        if i == 4:  # the query row: exemplar keys (even positions) forbidden
            scores[0::2] = FORBIDDEN
        return scores

    check_against_reference(
        f"    restrict L{layer + 1}.H1 to labels\n", _edit_scores(layer, 1, change)
    )


@pytest.mark.parametrize("layer", [0, 1])
def test_scale_divides_the_scores(layer):
    grads = check_against_reference(
        f"    scale L{layer + 1}.H1 temperature 2.5\n",
        _edit_scores(layer, 1, lambda i, scores: scores / 2.5),
    )
    assert grads[f"qkv{layer}"][:, HD : 2 * HD].abs().max() > 0  # its queries learn


@pytest.mark.parametrize("from_first_pass", [True, False])
def test_scale_divides_the_unclamped_first_pass_where_a_clamp_acts_upstream(from_first_pass):
    """The reference divides the first pass's scores: an ablation in layer 1 then does not
    reach the scaled head's scores, and their gradient flows through the first pass."""

    def edit_of(model, batch):
        first = {}  # the reference's unclamped first pass, in the same autograd graph
        reference_logits(model.weights, 1, batch.features, batch.labels, 2, 2, record=first)

        def edit(site, layer, head, i, value, b):
            if (site, layer, head) == ("pattern", 0, 0):
                return torch.zeros_like(value)  # `ablate L1.H0`: the head writes nothing
            if (site, layer, head) == ("scores", 1, 1):
                return (first[(1, 1, b, i)] if from_first_pass else value) / 0.5
            return value

        return edit

    experiment = "    ablate L1.H0\n    scale L2.H1 temperature 0.5\n"
    plan = compile_source(SETTINGS + "experiment e:\n" + experiment)
    assert plan.groups[0].schedule.runs[0].first_pass
    if from_first_pass:
        check_against_reference(experiment, edit_of)
    else:  # dividing the final pass's own scores is not what the reference does
        with pytest.raises(AssertionError):
            check_against_reference(experiment, edit_of)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    forbid L1.H2 attending prev-token\n    clamp L1.H2 to prev-token\n", "is set by"),
        ("    restrict L2.H3 to labels\n    clamp L2.H* to induction\n", "is set by"),
        ("    forbid L1.H2 attending\n", "forbid is written `forbid … attending prev-token`"),
        ("    restrict L2.H3 to queries\n", "restrict is written"),
        ("    scale L2.H3\n", "scale needs its temperature"),
        ("    scale L2.H3 temperature 0\n", "temperature 0 is out of range"),
        ("    scale L2.H3 temperature 2 temperature 3\n", "temperature is given twice"),
        ("    scale L2.H3.pattern temperature 2\n", "acts on scores, not on .pattern"),
        ("    forbd L1.H2 attending prev-token\n", "did you mean forbid?"),
    ],
)
def test_refused(body, message):
    with pytest.raises(SpecError) as caught:
        compile_source("clampdsl 1\nexperiment e:\n" + body)
    assert message in str(caught.value)


def test_a_pattern_clamp_in_another_window_is_no_clash():
    compile_source(
        "clampdsl 1\nexperiment e:\n    forbid L1.H2 attending prev-token until step 10\n"
        "    clamp L1.H2 to prev-token from step 10\n"
    )


def test_forbidding_renormalises_over_the_other_keys():
    from reference_model import tiny_group

    model, clamps, batch = tiny_group("    forbid L1.H0 attending prev-token\n")
    recorded = {}
    model(batch.features, batch.labels, clamps, record=recorded)
    pattern = recorded[0][0, :, 0]  # [B, N, N]
    assert torch.all(pattern.diagonal(-1, 1, 2) < 1e-6)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(7, 5))


def test_scale_detached_passes_no_gradient_through_the_scores():
    grads = check_against_reference(
        "    scale L2.H1 temperature 2.5 detached\n",
        _edit_scores(1, 1, lambda i, scores: scores.detach() / 2.5),
    )
    assert grads["qkv1"][:, HD : 2 * HD].abs().max() == 0  # L2.H1's queries: none
