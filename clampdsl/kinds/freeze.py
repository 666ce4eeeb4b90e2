"""`freeze SEL`: the parameters of what SEL names get no update while the window is open;
Adam's moments for them are kept as they were, so training them resumes where it stopped.

What SEL names: a head's W_Q, W_K, W_V columns and its W_O rows (`L2.H3`), or one of them
(`L2.H3.q`, `.k`, `.v`, `.z` for W_O); a whole layer, its norm included (`L1`); the
embeddings (`embed`: exemplar and label embeddings); the readout (`logits`: final norm and
unembedding). The forward is untouched: gradients are computed as ever, and only the
update is held back (`train/step.py`).
"""

from __future__ import annotations

from clampdsl.kinds.base import Kind, Write

HEAD_PARTS = ("q", "k", "v", "z")


class Freeze(Kind):
    name = statement = "freeze"
    example = "freeze L1.H* from step 1000"

    def lower_site(self, sites, model, span, errors):
        if sites.is_heads:
            if sites.site not in (None, *HEAD_PARTS):
                errors.error(
                    f"freeze takes a head's weights (.{', .'.join(HEAD_PARTS)}), not .{sites.site}",
                    span,
                )
                return None
            return sites.site or "heads"
        if sites.layers and sites.site == "in":
            errors.error("freeze takes a whole layer (`L1`), not its input", span)
            return None
        return "layer" if sites.layers else sites.site  # embed or logits

    def writes(self, item, model):
        return ()  # no activation changes

    def freezes(self, item, model) -> tuple[Write, ...]:
        parts = HEAD_PARTS if item.site == "heads" else (item.site,)
        if item.heads:
            return tuple(Write(item.layer, part, item.heads) for part in parts)
        return (Write(item.layer, item.site),)

    def weight_masks(self, clamp, layout, weights) -> dict:
        """{weight name: mask [R, …], 1 where frozen} for the clamps of one part.

        `layout(layer, part)` gives the weights it is made of, as (name, dim, start,
        width): a head's `width` entries along `dim` from `start` (dim None: the whole
        weight)."""
        masks = {}
        for name, dim, start, width in layout(clamp.layer, clamp.site):
            weight = weights[name]
            if dim is None:
                masks[name] = clamp.on.view(-1, *([1] * (weight.dim() - 1))).expand(weight.shape)
                continue
            mask = weight.new_zeros(weight.shape)
            per_head = clamp.on.repeat_interleave(width, 1)  # [R, H * width]
            shape = [per_head.shape[0]] + [1] * (weight.dim() - 1)
            shape[dim] = per_head.shape[1]
            block = mask.narrow(dim, start, per_head.shape[1])  # a view: written in place
            block.copy_(per_head.view(shape).expand_as(block))
            masks[name] = mask
        return masks


KINDS = (Freeze(),)
