"""`clamp SEL to mean`: the site's mean over the batch's sequences, against the reference
forward with the mean taken by hand (gradient through it)."""

import pytest
import torch
from reference_model import check_against_reference, reference_logits, tiny_group


def _mean_of(key_of, site, layer):
    """An edit_of that sets a site of every sequence to its mean over the batch, from an
    unclamped reference pass that records it (everything before the site is the same)."""

    def edit_of(model, batch):
        seen = {}
        reference_logits(model.weights, 1, batch.features, batch.labels, 2, 2, record=seen)
        mean = torch.stack([seen[key_of(b)] for b in range(batch.labels.shape[0])]).mean(0)

        def edit(at_site, at_layer, head, i, value, b):
            return mean if (at_site, at_layer) == (site, layer) else value

        return edit

    return edit_of


@pytest.mark.parametrize("layer", [0, 1])
def test_a_layer_output_to_its_mean(layer):
    check_against_reference(
        f"    clamp L{layer + 1}.out to mean\n",
        _mean_of(lambda b: ("out", layer, b), "out", layer),
    )


def test_the_logits_to_their_mean():
    grads = check_against_reference(
        "    clamp logits to mean\n", _mean_of(lambda b: ("logits", b), "logits", None)
    )
    assert grads["unembed_w"].abs().max() > 0  # through the mean


@pytest.mark.parametrize("site", ["q", "v", "pattern", "z"])
def test_a_head_site_to_its_mean_over_the_sequences(site):
    model, clamps, batch = tiny_group(f"    clamp L1.H1.{site} to mean\n")
    assert not torch.allclose(
        model(batch.features, batch.labels, clamps), model(batch.features, batch.labels)
    )
    # over a batch of one sequence, repeated, the mean is the sequence's own value
    same = batch.features[:1].expand(7, -1, -1), batch.labels[:1].expand(7, -1)
    torch.testing.assert_close(model(*same, clamps), model(*same), atol=1e-6, rtol=1e-5)
