"""`match`: the query row set from the raw inputs' similarity, against the reference forward
with the row written by hand (`induction` is checked in test_clamps.py)."""

import pytest
import torch
from reference_model import check_against_reference, tiny_group

C, HD = 8, 4


def _match_row(features, b, temperature):
    """Row 4 of sequence b: softmax over the two context items of cos(x_q, x_j) / t, on
    the label tokens after them (hardmax at t = 0)."""
    query, items = features[b, -1], features[b, :-1]
    cosine = torch.nn.functional.cosine_similarity(items, query[None], dim=-1)
    if temperature == 0:
        weights = (cosine == cosine.max()).float()
        weights = weights / weights.sum()
    else:
        weights = torch.softmax(cosine / temperature, 0)
    row = torch.zeros(5)
    row[1], row[3] = weights
    return row


@pytest.mark.parametrize("temperature", [0.0, 0.05, 1.0])
@pytest.mark.parametrize("layer", [0, 1])
def test_match_sets_the_query_row_from_the_inputs_similarity(temperature, layer):
    def edit_of(model, batch):
        def edit(site, at_layer, head, i, value, b):
            if (site, at_layer, head, i) == ("pattern", layer, 1, 4):
                return _match_row(batch.features, b, temperature)
            return value

        return edit

    grads = check_against_reference(
        f"    clamp L{layer + 1}.H1 to match temperature {temperature}\n", edit_of
    )
    if layer == 1:  # the last layer: only the query row is computed, and it is set
        assert grads["qkv1"][:, HD : 2 * HD].abs().max() == 0


def test_match_reads_the_same_inputs_from_an_eval_table():
    model, clamps, batch = tiny_group("    clamp L2.H0 to match temperature 0.1\n")
    expected = model(batch.features, batch.labels, clamps)
    prepared = model.prepare_evals(batch.table, batch.items.shape[-1])
    with torch.no_grad():
        logits = model(batch.table, batch.labels, clamps, items=batch.items, prepared=prepared)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
