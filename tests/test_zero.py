"""`ablate … keeping …`: the reference's preserving ablations, against the reference
forward written by hand (`zero` and plain `ablate` are checked in test_clamps.py)."""

import pytest
import torch
from reference_model import check_against_reference, reference_logits, tiny_group

from clampdsl.compile import compile_source
from clampdsl.lang.diagnostics import SpecError

C, HD = 8, 4


def test_ablate_keeping_patterns_takes_every_pattern_from_the_first_pass():
    def edit_of(model, batch):
        first = {}  # the unclamped first pass, in the same autograd graph
        reference_logits(model.weights, 1, batch.features, batch.labels, 2, 2, record=first)

        def edit(site, layer, head, i, value, b):
            if site != "pattern":
                return value
            if (layer, head) == (0, 0):
                return torch.zeros_like(value)  # the ablated head writes nothing
            return first[("pattern", layer, head, b, i)]

        return edit

    grads = check_against_reference("    ablate L1.H0 keeping patterns\n", edit_of)
    # the ablated head still learns through the first pass (layer 2's kept patterns)
    assert grads["qkv0"][:, 2 * C : 2 * C + HD].abs().max() > 0


@pytest.mark.parametrize("kept", ["values", "queries", "keys"])
def test_ablate_keeping_other_sites_differs_from_plain_ablation(kept):
    model, clamps, batch = tiny_group(
        "    ablate L1.H0\n", f"    ablate L1.H0 keeping {kept}\n", seeds=[5, 5]
    )
    logits = model(batch.features, batch.labels, clamps)
    assert not torch.allclose(logits[0], logits[1])
    assert clamps.schedule.runs[1].first_pass and not clamps.schedule.runs[0].first_pass


def test_keeping_what_nothing_changed_is_the_unclamped_model():
    # preserving queries after ablating a last-layer head's values: layer 1 is untouched, so
    # the kept queries are what the final pass computes anyway
    model, clamps, batch = tiny_group(
        "    ablate L2.H0\n", "    ablate L2.H0 keeping queries\n", seeds=[5, 5]
    )
    logits = model(batch.features, batch.labels, clamps)
    torch.testing.assert_close(logits[0], logits[1], atol=1e-6, rtol=1e-5)


def test_keeping_something_else_is_refused():
    with pytest.raises(SpecError, match="ablate is written"):
        compile_source("clampdsl 1\nexperiment e:\n    ablate L1.H0 keeping scores\n")
