"""The sampler of `task markov` (declared in tasks/kinds/markov.py).

Each sequence gets a transition table of its own: for order n, a row over the k tokens for
each of the k^(n-1) contexts (tuples of the last n-1 tokens), drawn i.i.d. from
Dirichlet(alpha), the prior of Edelman et al. and Chen et al. With `prior=doubly-stochastic`
the draw is balanced by Sinkhorn's iteration (as Edelman's code does for k > 4): for each
choice of a context's n-2 latest tokens, the k × k table of (its oldest token, the next
token) is doubly stochastic, so the chain's stationary law over contexts is uniform and
token counts tell nothing about the table.

The chain starts, for n = 2, at a token drawn from its stationary distribution (Edelman);
for n > 2, at n-1 uniform tokens (Chen). A sequence is length + 1 tokens: the model reads
the first `length`, and each position's target is the next token (`loss=all`), or only
the last position's is scored (`loss=last`).

Everything is drawn from the generator it is given (Dirichlet draws through Gamma draws by
Marsaglia and Tsang's method: torch's own Gamma sampler takes no generator), so a chunk's
batches are a function of its seed alone.
"""

from __future__ import annotations

import math

import attrs
import torch

from clampdsl.compile.configs import ModelConfig, TaskConfig
from clampdsl.tasks import in_context
from clampdsl.tasks import kinds as task_kinds
from clampdsl.tasks.token_batch import NONE, StrategyBatch, TokenBatch

SINKHORN_ROUNDS = 1000  # at most; it stops once the columns sum to 1 within SINKHORN_TOLERANCE
SINKHORN_TOLERANCE = 1e-12
STATIONARY_SQUARINGS = 30  # the lazy chain run for 2^30 steps


class MarkovTask:
    def __init__(self, config: TaskConfig):
        self.config = config
        self.chain = config.markov

    def model(self, model: ModelConfig, seeds):
        from clampdsl.model.tokens import token_model

        return token_model(model, self.chain.vocab, self.chain.length, seeds)

    def sample(self, size: int, generator: torch.Generator) -> TokenBatch:
        chain = self.chain
        table = self.tables(size, generator)
        sequence = draw_chain(table, self.start(table, generator), chain.length + 1, generator)
        tokens, following = sequence[:, :-1], sequence[:, 1:]
        if chain.loss == "last":
            following = torch.cat([torch.full_like(following[:, 1:], NONE), following[:, -1:]], 1)
        return TokenBatch(tokens, following, torch.full_like(tokens, NONE))

    def eval_sets(self, names, size: int, seed: int) -> dict[str, StrategyBatch]:
        """Fixed eval sets (only `train`: sequences drawn as in training), from the eval
        seed, with the in-context strategies' predictions (tasks/in_context.py)."""
        generator = torch.Generator().manual_seed(seed)
        strategies = len(task_kinds.of(self.config).baselines(self.config))
        sets = {}
        for name in names:
            batch = self.sample(size, generator)
            predicted = in_context.log_probs(
                batch.tokens, self.chain.vocab, self.chain.alpha, strategies
            )
            sets[name] = StrategyBatch(*attrs.astuple(batch, recurse=False), predicted)
        return sets

    def tables(self, size: int, generator: torch.Generator) -> torch.Tensor:
        """[N, k^(n-1), k] float64: each sequence's transition table, a row per context
        (its oldest token the most significant digit)."""
        k, n = self.chain.vocab, self.chain.order
        if self.chain.prior == "dirichlet":
            return dirichlet(self.chain.alpha, (size, k ** (n - 1), k), generator)
        # for each n-2 latest tokens b, the table of (oldest token a, next token c)
        balanced = sinkhorn(dirichlet(self.chain.alpha, (size, k ** (n - 2), k, k), generator))
        return balanced.transpose(1, 2).reshape(size, k ** (n - 1), k)

    def start(self, table: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """[N, n-1]: the tokens before the chain's first step."""
        size, k, n = table.shape[0], self.chain.vocab, self.chain.order
        if n > 2:
            return torch.randint(k, (size, n - 1), generator=generator)
        return draw(stationary(table), torch.rand(size, generator=generator, dtype=table.dtype))[
            :, None
        ]


def draw_chain(
    table: torch.Tensor, start: torch.Tensor, length: int, generator: torch.Generator
) -> torch.Tensor:
    """[N, length]: the start tokens [N, n-1], then the chain's steps from `table`."""
    size, contexts, k = table.shape
    steps = length - start.shape[1]
    uniform = torch.rand(size, steps, generator=generator, dtype=table.dtype)
    cumulative = table.cumsum(-1)
    rows = torch.arange(size)
    digits = k ** torch.arange(start.shape[1] - 1, -1, -1)
    context = (start * digits).sum(-1)
    drawn = []
    for step in range(steps):
        token = draw(cumulative[rows, context], uniform[:, step], cumulative=True)
        drawn.append(token)
        context = (context * k + token) % contexts
    return torch.cat([start, torch.stack(drawn, 1)], 1)


def draw(law: torch.Tensor, uniform: torch.Tensor, cumulative: bool = False) -> torch.Tensor:
    """[N]: a draw from each row of law [N, k] by inverting its distribution function at
    uniform [N]."""
    bounds = law if cumulative else law.cumsum(-1)
    return (uniform[:, None] >= bounds).sum(-1).clamp(max=law.shape[-1] - 1)


def dirichlet(alpha: float, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Rows (the last dimension) drawn from Dirichlet(alpha), float64: normalised Gamma
    draws, normalised in logs (for a small alpha they lie far below the smallest float)."""
    return log_gamma(alpha, shape, generator).softmax(-1)


def log_gamma(alpha: float, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """The logs of Gamma(alpha, 1) draws, float64: Marsaglia and Tsang (2000), redrawing the
    rejected ones; an alpha under 1 draws Gamma(alpha + 1) and multiplies by U^(1/alpha)."""
    a = alpha + 1 if alpha < 1 else alpha
    d = a - 1 / 3
    c = 1 / math.sqrt(9 * d)
    out = torch.empty(math.prod(shape), dtype=torch.float64)
    pending = torch.arange(out.numel())
    while pending.numel():
        x = torch.randn(pending.numel(), generator=generator, dtype=torch.float64)
        u = 1 - torch.rand(pending.numel(), generator=generator, dtype=torch.float64)  # (0, 1]
        v = (1 + c * x) ** 3
        log_v = v.clamp(min=1e-300).log()
        accept = (v > 0) & (u.log() < 0.5 * x * x + d - d * v + d * log_v)
        out[pending[accept]] = math.log(d) + log_v[accept]
        pending = pending[~accept]
    out = out.view(shape)
    if alpha < 1:
        u = 1 - torch.rand(shape, generator=generator, dtype=torch.float64)
        out = out + u.log() / alpha
    return out


def sinkhorn(tables: torch.Tensor) -> torch.Tensor:
    """Square tables [..., k, k] scaled to doubly stochastic: columns and rows normalised
    in turn until the columns sum to 1 within SINKHORN_TOLERANCE (rows exactly)."""
    for _ in range(SINKHORN_ROUNDS):
        tables = tables / tables.sum(-2, keepdim=True)
        tables = tables / tables.sum(-1, keepdim=True)
        if (tables.sum(-2) - 1).abs().max() < SINKHORN_TOLERANCE:
            break
    return tables


def stationary(table: torch.Tensor) -> torch.Tensor:
    """[N, k]: a stationary law of each chain [N, k, k], where the lazy chain (P + I) / 2,
    which has the same ones, is carried from the uniform law for 2^30 steps."""
    k = table.shape[-1]
    lazy = (table + torch.eye(k, dtype=table.dtype)) / 2
    for _ in range(STATIONARY_SQUARINGS):
        lazy = lazy @ lazy
        lazy = lazy / lazy.sum(-1, keepdim=True)  # rows a little off 1 would drift away
    return lazy.mean(-2)
