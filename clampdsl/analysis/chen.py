"""Measures of Chen et al. 2024's model (`model arch=chen`, model/chen.py), read off its
weights with no forward (compile/progress.py declares them), as Chen's code tracks them:

* `measure feature-share of L2.H0`: each feature subset's share c_S² / Σ c² of the
  normalised kernel, by subset: `feature-share {H0,H1}` (x is the token itself, Hh layer
  1's head h). The paper's first stage puts it on the parents' heads.
* `measure attention-scale of L2.H0`: layer 2's scalar a, the kernel's inverse
  temperature (`attention-scale L2.H0`), which keeps growing in the last stage.
* `measure rpe-peak of L1.H*`: the distance at which each head's relative-position bias
  is highest (`rpe-peak L1.H0`): 1 for a head that copies the previous token. Chen's head
  h ends at distance h (heads counted from 1; ours, L1.H(h-1)).

Each takes the model and the heads measured, and returns its values by record key.
"""

from __future__ import annotations

import torch

from clampdsl.model.chen import subset_name


def feature_shares(model, layer: int, heads) -> dict[str, torch.Tensor]:
    coef = model.weights["coef"].detach()
    shares = coef.square() / coef.square().sum(-1, keepdim=True)
    return {
        f"feature-share {subset_name(members)}": shares[:, k]
        for k, members in enumerate(model.subsets)
    }


def attention_scale(model, layer: int, heads) -> dict[str, torch.Tensor]:
    return {"attention-scale L2.H0": model.weights["scale"].detach().clone()}


def rpe_peaks(model, layer: int, heads) -> dict[str, torch.Tensor]:
    peaks = model.weights["rel0"].detach().argmax(-1).float()  # [R, H]
    return {f"rpe-peak L1.H{h}": peaks[:, h] for h in heads}


MEASURES = {
    "feature-share": feature_shares,
    "attention-scale": attention_scale,
    "rpe-peak": rpe_peaks,
}
