"""The reference's few-shot in-context classification task on synthetic class features.

A sequence is `[x0, y0, x1, y1, xq]`: the query class and one distractor in random order,
then the query, whose feature vector equals its matching context item's (exemplar 0). Labels
are a label pair drawn per sequence and randomly ordered, so the task is in-context only:
chance is ln 2 once the model answers with a label from the context.

The Omniglot ResNet features of the paper are not available, so class prototypes are
correlated Gaussians (icl_dynamics_spec.md §2, "synthetic stand-in"): high inter-class
correlation makes matching hard, which is what keeps the loss plateau.
"""

from __future__ import annotations

import itertools
import math

import attrs
import torch

from clampdsl.compile.plan import TaskConfig

EXEMPLARS_PER_CLASS = 5


@attrs.frozen
class Batch:
    """Sequences as indices: item i of sequence b is feature vector table[items[b, i]].

    A leading run dimension on items, labels and match ([R, B, …]) gives each run its own
    sequences; the table is then shared (the sources' tables one after the other)."""

    items: torch.Tensor  # [B, K]: rows of `table`, context items then the query
    labels: torch.Tensor  # [B, K]: context labels then the query's label
    match: torch.Tensor  # [B]: which context item matches the query
    table: torch.Tensor  # [U, F]: the feature vectors the items index

    @property
    def features(self) -> torch.Tensor:
        """[B, K, F] (or [R, B, K, F]): the items' feature vectors. (Every training step
        gathers them: `index_select` is cheaper than `table[items]`.)"""
        rows = self.table.index_select(0, self.items.reshape(-1))
        return rows.view(*self.items.shape, self.table.shape[-1])

    def to(self, device) -> Batch:
        """The batch on `device`. To a GPU it is copied from pinned memory without waiting:
        a training batch arrives while steps are queued, and a plain copy would wait for
        them all to finish."""
        tensors = attrs.astuple(self, recurse=False)
        if torch.device(device).type == "cuda":
            return Batch(*(t.pin_memory().to(device, non_blocking=True) for t in tensors))
        return Batch(*(t.to(device) for t in tensors))

    def position_major(self) -> Batch:
        """The same batch with items and labels stored position by position ([K, B] in
        memory, [B, K] in shape), as the model reads them: the clamps that read labels
        (induction, copy-scores) then load 16 sequences' labels at once instead of one by
        one. Eval sets are kept so; a training step, 32 sequences, gains nothing
        measurable."""

        def by_position(t: torch.Tensor) -> torch.Tensor:
            return t.transpose(-1, -2).contiguous().transpose(-1, -2)

        return Batch(by_position(self.items), by_position(self.labels), self.match, self.table)

    def rows(self, rows: slice) -> Batch:
        """Sequences `rows` (along B) of every run."""
        return Batch(
            self.items[..., rows, :], self.labels[..., rows, :], self.match[..., rows], self.table
        )


class FewShotTask:
    """Features, class and label-pair splits, and samplers for training and eval sets."""

    def __init__(self, config: TaskConfig):
        if config.context != 2:
            raise ValueError("the few-shot task has exactly two context items")
        self.config = config
        generator = torch.Generator().manual_seed(config.seed)
        features = config.features
        n_classes = config.classes + config.new_classes
        shared = torch.randn(features.dim, generator=generator)
        own = torch.randn(n_classes, features.dim, generator=generator)
        rho = features.correlation
        prototypes = math.sqrt(rho) * shared + math.sqrt(1 - rho) * own
        noise = torch.randn(n_classes, EXEMPLARS_PER_CLASS - 1, features.dim, generator=generator)
        exemplars = torch.cat(
            [prototypes[:, None], prototypes[:, None] + features.exemplar_noise * noise], 1
        )
        self.features = exemplars * features.scale  # [classes, 5, dim]
        # Sequences use exemplar 0 of each class (the reference's exact-match training set).
        self.table = self.features[:, 0].contiguous()
        self.train_classes = torch.arange(config.classes)
        self.new_classes = torch.arange(config.classes, n_classes)
        pairs = torch.tensor(list(itertools.combinations(range(config.labels), 2)))
        pairs = pairs[torch.randperm(len(pairs), generator=generator)]
        n_train = max(1, min(len(pairs) - 1, round(config.pair_split * len(pairs))))
        self.train_pairs, self.heldout_pairs = pairs[:n_train], pairs[n_train:]

    def sample(self, size: int, generator: torch.Generator, classes=None, pairs=None) -> Batch:
        classes = self.train_classes if classes is None else classes
        pairs = self.train_pairs if pairs is None else pairs
        n = len(classes)
        query = torch.randint(n, (size,), generator=generator)
        # A distractor different from the query: shift by 1..n-1 around the class ring.
        distractor = (query + torch.randint(1, n, (size,), generator=generator)) % n
        match = torch.randint(2, (size,), generator=generator)
        pair = pairs[torch.randint(len(pairs), (size,), generator=generator)]
        flip = torch.randint(2, (size,), generator=generator).bool()
        right, wrong = (
            torch.where(flip, pair[:, 1], pair[:, 0]),
            torch.where(flip, pair[:, 0], pair[:, 1]),
        )
        first_matches = match == 0
        item_classes = torch.stack(
            [
                torch.where(first_matches, query, distractor),
                torch.where(first_matches, distractor, query),
                query,
            ],
            1,
        )
        labels = torch.stack(
            [
                torch.where(first_matches, right, wrong),
                torch.where(first_matches, wrong, right),
                right,
            ],
            1,
        )
        return Batch(classes[item_classes], labels, match, self.table)

    def eval_sets(self, names, size: int, seed: int) -> dict[str, Batch]:
        """Fixed eval sets, drawn once from the eval seed (as the reference)."""
        generator = torch.Generator().manual_seed(seed)
        splits = {
            "train": (self.train_classes, self.train_pairs),
            "relabel": (self.train_classes, self.heldout_pairs),
            "new-classes": (self.new_classes, self.train_pairs),
        }
        return {name: self.sample(size, generator, *splits[name]) for name in names}
