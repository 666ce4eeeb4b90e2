"""`uniform` and `self` patterns against the reference forward with the pattern set by hand."""

import pytest
import torch
from reference_model import check_against_reference, tiny_group

from clampdsl.compile import compile_source

C, HD = 8, 4


def _set_row(layer, head, row_of):
    def edit_of(model, batch):
        def edit(site, at_layer, at_head, i, value, b):
            if (site, at_layer, at_head) == ("pattern", layer, head):
                return row_of(i)
            return value

        return edit

    return edit_of


@pytest.mark.parametrize(
    ("target", "row_of"),
    [
        ("uniform", lambda i: torch.full((i + 1,), 1.0 / (i + 1))),
        ("self", lambda i: torch.eye(i + 1)[i]),
    ],
)
@pytest.mark.parametrize("layer", [0, 1])
def test_the_pattern_is_the_hand_written_one_and_freezes_queries_and_keys(target, row_of, layer):
    grads = check_against_reference(
        f"    clamp L{layer + 1}.H1 to {target}\n", _set_row(layer, 1, row_of)
    )
    queries, keys = slice(HD, 2 * HD), slice(C + HD, C + 2 * HD)
    assert grads[f"qkv{layer}"][:, queries].abs().max() == 0
    assert grads[f"qkv{layer}"][:, keys].abs().max() == 0
    assert grads[f"qkv{layer}"][:, 2 * C + HD :].abs().max() > 0  # its values still learn


def test_a_pattern_clamp_in_a_window_is_off_outside_it():
    model, clamps, batch = tiny_group("    clamp L1.H0 to uniform from step 3\n")
    free = model(batch.features, batch.labels)
    torch.testing.assert_close(model(batch.features, batch.labels, clamps), free)
    clamps.set_step(3)
    assert not torch.allclose(model(batch.features, batch.labels, clamps), free)


def test_two_pattern_clamps_of_one_head_in_disjoint_windows_are_legal():
    plan = compile_source(
        "clampdsl 1\nexperiment e:\n    clamp L1.H2 to uniform until step 100\n"
        "    clamp L1.H2 to prev-token from step 100\n"
    )
    assert [i.kind for i in plan.runs[0].interventions] == ["uniform", "prev-token"]
