"""`clamp SEL to mean`: a site := its mean over the sequences of the batch the forward sees
(a training batch, or an eval chunk), per run and position: mean ablation, which keeps a
head's typical contribution and removes what depends on the sequence.

Any site `zero` takes (a head's q, k, v (the default), pattern or z; a layer's in or out;
embed; logits). The mean is computed from the parameters, so gradient flows through it
into whatever computed the site, spread over the batch.
"""

from __future__ import annotations

from clampdsl.kinds.base import expand
from clampdsl.kinds.zero import Zero


class Mean(Zero):
    name = target = "mean"
    order = 90  # after the other clamps of the site, before zero
    example = "clamp L1.H2.z to mean"

    def apply(self, site, x, clamp, context):
        mean = x.mean(context.batch_dims[site], keepdim=True).expand_as(x)
        return mean.where(expand(clamp.on, x) > 0, x)


KINDS = (Mean(),)
