"""The few-shot model's input: exemplars and their labels as tokens `[x0, y0, …, xq]`, in
the residual stream's layout [R, N, B, C] (model/transformer.py).

Data is either shared by every run (features [B, K, F], labels [B, K]) or given per run (a
leading R); `per_run` gives it a leading run dimension D of 1 or R either way.
"""

from __future__ import annotations

import torch


def embed(w, features, labels, items, n_labels: int, embed_table) -> torch.Tensor:
    """features [(R,) B, K, F], labels [(R,) B, K] → tokens [R, 2K-1, B, C]; the query's
    label is never embedded. `w`: the weights; `embed_table`, the model's (below, over
    its own weights).

    With `items` [(R,) B, K], `features` is instead a table [U, F] of the distinct feature
    vectors, shared by the runs: each is embedded once and every item picks its row
    (evals: a few hundred classes across thousands of sequences), or is found embedded
    already in `w` (`prepare_evals`)."""
    r, f, c = w["embed_w"].shape
    if items is not None:
        if "embedded_table" in w:
            table = w["embedded_table"]  # [R, U, C]
        else:
            table = embed_table(features).transpose(0, 1)
        runs = torch.arange(r, device=items.device)[:, None, None]
        exemplars = table[runs, items.expand(r, *items.shape[-2:]).transpose(1, 2)]
    else:
        features, labels = per_run(features, labels)
        _, b, k = labels.shape
        by_position = features.transpose(1, 2)  # [D, K, B, F]
        if features.shape[0] == 1:
            exemplars = embed_table(by_position.reshape(k * b, f))
            exemplars = exemplars.view(k, b, r, c).permute(2, 0, 1, 3)
        else:
            exemplars = torch.matmul(by_position.reshape(r, k * b, f), w["embed_w"])
            exemplars = exemplars.view(r, k, b, c)
    exemplars = exemplars + w["embed_b"][:, None, None]  # [R, K, B, C]
    context = per_run(features, labels)[1][..., :-1].transpose(1, 2)  # [D, K-1, B]
    # Compared with each label rather than F.one_hot, which eagerly reads the labels
    # back to check their range: a wait for the device in every step.
    labels_seen = torch.arange(n_labels, device=context.device)
    onehot = (context[..., None] == labels_seen).to(exemplars.dtype).flatten(1, 2)
    label_tokens = torch.matmul(onehot, w["label_embed"]).view(r, *context.shape[1:], c)
    k, b = exemplars.shape[1:3]
    tokens = exemplars.new_empty(r, 2 * k - 1, b, c)
    tokens[:, 0::2] = exemplars
    tokens[:, 1::2] = label_tokens
    return tokens


def embed_table(embed_w: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """[M, F] feature vectors seen by every run → [M, R, C]: one GEMM, [M, F] @ [F, R·C]."""
    r, f, c = embed_w.shape
    return torch.matmul(features, embed_w.permute(1, 0, 2).reshape(f, r * c)).view(-1, r, c)


def raw_inputs(features, items) -> torch.Tensor:
    """The sequences' feature vectors [D, B, K, F] (D: 1 for data the runs share, else R),
    from features, or from a table [U, F] and the items that index it."""
    if items is None:
        return features if features.dim() == 4 else features[None]
    return features[items if items.dim() == 3 else items[None]]


def per_run(features: torch.Tensor, labels: torch.Tensor):
    """Shared data ([B, K, F], [B, K]) gains a leading run dimension of 1; per-run data
    ([R, B, K, F], [R, B, K]) is returned as it is."""
    if labels.dim() == 2:
        return features[None], labels[None]
    return features, labels
