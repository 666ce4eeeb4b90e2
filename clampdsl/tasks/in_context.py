"""In-context strategies of token tasks: predictors of the next token that read only the
sequence so far (Edelman et al. 2024's test_error.py). The m-gram, m = 1, 2, …, counts
what followed the last m-1 tokens earlier in the sequence, plus `alpha` for every token,
and predicts in proportion; m = 0 predicts uniformly. With alpha 1 these are Edelman's
add-one estimators; for a chain of order n with Dirichlet(alpha) rows the n-gram is the
posterior mean of the current context's row (what the chain's first tokens tell about the
table aside), the Bayes-optimal prediction."""

from __future__ import annotations

import torch


def log_probs(tokens: torch.Tensor, vocab: int, alpha: float, strategies: int) -> torch.Tensor:
    """[B, T, S, V]: the log-probabilities that the m-grams, m = 0 … S-1, give each
    position's next token, from tokens [B, T] (position t reads tokens 0 … t)."""
    per_strategy = [m_gram(tokens, vocab, alpha, m) for m in range(strategies)]
    return torch.stack(per_strategy, 2).log().float()


def m_gram(tokens: torch.Tensor, vocab: int, alpha: float, m: int) -> torch.Tensor:
    """[B, T, V]: the m-gram's prediction at each position. Its context is the last m-1
    tokens; where fewer have been seen, or m = 0, it predicts uniformly."""
    b, t = tokens.shape
    uniform = torch.full((b, vocab), 1.0 / vocab, dtype=torch.float64)
    if m == 0:
        return uniform[:, None].expand(b, t, vocab)
    width = m - 1  # tokens of context
    contexts = vocab**width
    counts = torch.zeros(b, contexts, vocab, dtype=torch.float64)
    rows = torch.arange(b)
    context = torch.zeros(b, dtype=torch.long)  # of the tokens up to t-1, once there are `width`
    predicted = []
    for position in range(t):
        token = tokens[:, position]
        if position >= width:  # the transition (context of t-1) → token t
            counts[rows, context, token] += 1
        context = (context * vocab + token) % contexts  # now of the tokens up to t
        if position >= width - 1:
            seen = counts[rows, context] + alpha
            predicted.append(seen / seen.sum(-1, keepdim=True))
        else:
            predicted.append(uniform)
    return torch.stack(predicted, 1)
