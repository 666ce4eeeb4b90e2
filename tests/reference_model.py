"""A deliberately plain, per-head, per-position forward of one run: the yardstick the
batched model is checked against."""

import math

import torch


def layer_norm(x, g, b):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * g + b


def rope(x, position):
    out = torch.empty_like(x)
    d = x.shape[-1]
    for i in range(0, d, 2):
        angle = position * 10000.0 ** (-i / d)
        c, s = math.cos(angle), math.sin(angle)
        out[i] = x[i] * c - x[i + 1] * s
        out[i + 1] = x[i] * s + x[i + 1] * c
    return out


def reference_logits(weights, r, features, labels, layers, heads, zero=None):
    """Query logits [B, L] of run r, one sequence and one head at a time.

    `zero` = (layer or None, site, head or None) zeroes one site, as a zero clamp would."""
    zero_layer, zero_site, zero_head = zero or (None, None, None)

    def zeroed(layer, site, head=None):
        return (zero_layer, zero_site) == (layer, site) and zero_head in (None, head)

    w = {k: v[r] for k, v in weights.items()}
    c = w["embed_b"].shape[0]
    hd = c // heads
    out = []
    for b in range(features.shape[0]):
        tokens = []
        for k in range(features.shape[1]):
            tokens.append(features[b, k] @ w["embed_w"] + w["embed_b"])
            if k < features.shape[1] - 1:
                tokens.append(w["label_embed"][labels[b, k]])
        x = torch.stack(tokens)
        if zeroed(None, "embed"):
            x = torch.zeros_like(x)
        n = x.shape[0]
        for layer in range(layers):
            if zeroed(layer, "in"):
                x = torch.zeros_like(x)
            h = layer_norm(x, w[f"ln_g{layer}"], w[f"ln_b{layer}"])
            qkv = h @ w[f"qkv{layer}"]
            z = torch.zeros(n, c)
            for head in range(heads):
                part = {
                    site: qkv[:, offset + head * hd : offset + (head + 1) * hd]
                    for site, offset in (("q", 0), ("k", c), ("v", 2 * c))
                }
                q, k_, v = (0 * part[s] if zeroed(layer, s, head) else part[s] for s in "qkv")
                if zeroed(layer, "pattern", head) or zeroed(layer, "z", head):
                    continue  # this head writes nothing
                for i in range(n):
                    scores = torch.stack(
                        [rope(q[i], i) @ rope(k_[j], j) / math.sqrt(hd) for j in range(i + 1)]
                    )
                    z[i, head * hd : (head + 1) * hd] = torch.softmax(scores, 0) @ v[: i + 1]
            x = x + z @ w[f"proj{layer}"]
            if zeroed(layer, "out"):
                x = torch.zeros_like(x)
        query = layer_norm(x[-1], w["final_ln_g"], w["final_ln_b"])
        logits = query @ w["unembed_w"] + w["unembed_b"]
        out.append(0 * logits if zeroed(None, "logits") else logits)
    return torch.stack(out)
