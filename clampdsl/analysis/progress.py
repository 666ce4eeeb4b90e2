"""Progress measures read off the weights, with no forward (compile/progress.py declares
them): composition scores between the heads of two layers (icl_dynamics_spec.md §5, Fig.
11) and Olsson et al. 2022's copying score. Both ignore LayerNorm and biases, as the
reference's composition scores do: they read the linear maps the heads compose.

Weights have a leading run dimension R; a head's blocks are found through the model's
`weights_of` (its q, k, v columns of W_QKV, its z rows of W_O)."""

from __future__ import annotations

import torch

COMPOSED = {"q-composition": "q", "k-composition": "k", "v-composition": "v"}
TINY = 1e-30  # a norm below it is a head that writes or reads nothing: its score is 0
# Source tokens the copying score averages over: every one, up to this many; beyond, an
# evenly spread subset (the tokens of the shipped tasks are exchangeable). Olsson et al.
# average over 25 random tokens in each of 10 examples.
COPY_SOURCES = 256


def head_blocks(model, layer: int, part: str) -> torch.Tensor:
    """A layer's per-head weight blocks [R, H, …]: for q, k, v their columns of W_QKV as
    [R, H, C, hd] (x · W gives the head's q); for z its rows of W_O as [R, H, hd, C]."""
    ((name, dim, start, width),) = model.weights_of(layer, part)
    heads = model.config.heads
    block = model.weights[name].narrow(dim, start, heads * width)
    return block.unflatten(dim, (heads, width)).movedim(dim, 1)


def composition(written: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
    """‖W_O^{h'} W_X^{h}‖_F / (‖W_O^{h'}‖_F ‖W_X^{h}‖_F) for every reading head h and writing
    head h': [R, H_read, H_write]. `written` [R, H', hd, C] (W_O rows), `read` [R, H, C, hd]
    (W_Q, W_K or W_V columns). 0 where the writer's output space is orthogonal to what the
    reader reads; 1 where both are rank one and aligned (the Cauchy-Schwarz bound)."""
    product = torch.einsum("rsic,rhcj->rhsij", written, read)
    norms = written.flatten(2).norm(dim=-1)[:, None, :] * read.flatten(2).norm(dim=-1)[:, :, None]
    return product.flatten(3).norm(dim=-1) / norms.clamp(min=TINY)


def composition_scores(model, metric: str, layer: int, source_layer: int) -> torch.Tensor:
    """The metric's scores of `layer`'s heads reading from `source_layer`'s: [R, H, H']."""
    written = head_blocks(model, source_layer, "z")
    return composition(written, head_blocks(model, layer, COMPOSED[metric]))


def copying(embed: torch.Tensor, ov: torch.Tensor, unembed: torch.Tensor) -> torch.Tensor:
    """Olsson et al.'s copying score of each head, from its direct OV path: [R, H].

    embed [R, S, C]: the embedding of S source tokens, source s being the token logit s
    names (few-shot: the label embeddings; token tasks: the token embeddings); ov
    [R, H, C, C] = W_V^h W_O^h; unembed [R, C, V] with V ≥ S. For a head attending wholly
    to source s, its logits ℓ = e_s W_V W_O W_U, centred over the V outputs (ℓ̃ = ℓ - mean
    ℓ). Its positive and negative deviations balance, so the attended token's own ℓ̃_s is
    at most half the total |ℓ̃| (Olsson's "0 to 0.5"): the score is 2·ℓ̃_s / Σ_v |ℓ̃_v|,
    in [-1, 1], averaged over the sources. 1: the head raises only the logit of what it
    attends to; about 0: it raises nothing in particular; below 0: it lowers that logit."""
    logits = torch.einsum("rsc,rhcd,rdv->rhsv", embed, ov, unembed)
    centred = logits - logits.mean(-1, keepdim=True)
    sources = embed.shape[1]
    own = centred[..., torch.arange(sources), torch.arange(sources)]  # [R, H, S]
    total = centred.abs().sum(-1).clamp(min=TINY)
    return (2 * own / total).mean(-1)


def copying_scores(model, layer: int) -> torch.Tensor:
    """The copying scores of a layer's heads: [R, H]. The model names what its logits read
    out (`COPIED`: the label embedding of the few-shot model, the token embedding of a
    token model). A large vocabulary is read through COPY_SOURCES of its tokens, spread
    evenly, with the readout's columns reordered so that theirs come first."""
    embed, unembed = model.weights[model.COPIED], model.weights["unembed_w"]
    count = embed.shape[1]
    picked = torch.linspace(0, count - 1, min(count, COPY_SOURCES), device=embed.device).long()
    others = torch.ones(count, dtype=torch.bool, device=embed.device)
    others[picked] = False
    unembed = torch.cat([unembed[..., picked], unembed[..., others]], -1)
    ov = head_blocks(model, layer, "v") @ head_blocks(model, layer, "z")  # [R, H, C, C]
    # a head at a time: the logits of every source over every output, [R, S, V], at most
    per_head = [copying(embed[:, picked], ov[:, h : h + 1], unembed) for h in range(ov.shape[1])]
    return torch.cat(per_head, -1)
