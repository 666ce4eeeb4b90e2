"""The reference's few-shot in-context classification task on synthetic class features.

A sequence is `[x0, y0, x1, y1, xq]`: the query class and one distractor in random order,
then the query, whose feature vector equals its matching context item's (exemplar 0). Labels
are a label pair drawn per sequence and randomly ordered, so the task is in-context only:
chance is ln 2 once the model answers with a label from the context.

With `context=K` items (K ≥ 2; the reference has 2): the query class and K-1 distinct
distractors in random order, `[x0, y0, …, x_{K-1}, y_{K-1}, xq]`, their labels a set of K
distinct labels drawn per sequence (from the training or held-out sets of K labels) in
random order; chance is ln K. K = 2 draws exactly as the reference's sampler.

The features (tasks/features.py) are a synthetic stand-in for the paper's Omniglot ResNet
features, whose high inter-class correlation makes matching hard, which is what keeps the
loss plateau; or the reference's own feature file.
"""

from __future__ import annotations

import itertools

import attrs
import torch

from clampdsl.compile.configs import ModelConfig, TaskConfig
from clampdsl.model.transformer import BatchedTransformer
from clampdsl.tasks.features import class_features


def label_sets(labels: int, size: int) -> torch.Tensor:
    """Every set of `size` distinct labels out of `labels`, [S, size] (the reference's
    label pairs for size 2)."""
    return torch.tensor(list(itertools.combinations(range(labels), size)))


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
    def sequences(self) -> int:
        return self.labels.shape[-2]

    @property
    def device(self) -> torch.device:
        return self.labels.device

    @property
    def preparation(self) -> int:
        """What `prepare_for` computes from: the table (shared by a group's eval sets)."""
        return id(self.table)

    def model_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features, self.labels

    def eval_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The table and labels, and the items that index the table: an eval embeds each
        feature vector once (model/transformer.py's `embed`)."""
        return self.table, self.labels, self.items

    @staticmethod
    def for_runs(batches, pick: torch.Tensor) -> Batch:
        """[R, …]: run r's sequences from batches[pick[r]], over one table that holds
        every batch's feature vectors."""
        offsets = [0]
        for batch in batches[:-1]:
            offsets.append(offsets[-1] + len(batch.table))

        def stacked(parts):
            return torch.stack(parts).index_select(0, pick)

        return Batch(
            stacked([b.items + offset for b, offset in zip(batches, offsets, strict=True)]),
            stacked([b.labels for b in batches]),
            stacked([b.match for b in batches]),
            torch.cat([b.table for b in batches]),
        )

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
    """Features, class and label-set splits, and samplers for training and eval sets."""

    def __init__(self, config: TaskConfig):
        self.config = config
        generator = torch.Generator().manual_seed(config.seed)
        self.features = class_features(config, generator)  # [classes, exemplars, dim]
        # Sequences use exemplar 0 of each class (the reference's exact-match training set).
        self.table = self.features[:, 0].contiguous()
        self.train_classes = torch.arange(config.classes)
        self.new_classes = torch.arange(config.classes, len(self.features))
        sets = label_sets(config.labels, config.context)
        sets = sets[torch.randperm(len(sets), generator=generator)]
        n_train = max(1, min(len(sets) - 1, round(config.pair_split * len(sets))))
        self.train_pairs, self.heldout_pairs = sets[:n_train], sets[n_train:]

    def model(self, model: ModelConfig, seeds):
        return BatchedTransformer(model, self.config.features.dim, self.config.labels, seeds)

    def sample(self, size: int, generator: torch.Generator, classes=None, pairs=None) -> Batch:
        classes = self.train_classes if classes is None else classes
        pairs = self.train_pairs if pairs is None else pairs
        if self.config.context > 2:
            return self._sample_context(size, generator, classes, pairs)
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

    def _sample_context(self, size: int, generator, classes, sets) -> Batch:
        """`sample` for K > 2 context items."""
        n, k = len(classes), self.config.context
        query = torch.randint(n, (size,), generator=generator)
        # K-1 distinct distractors, none the query: distinct shifts 1..n-1 around the ring
        shifts = torch.rand(size, n - 1, generator=generator).argsort(-1)[:, : k - 1] + 1
        distractors = (query[:, None] + shifts) % n  # [B, K-1]
        match = torch.randint(k, (size,), generator=generator)
        order = torch.rand(size, k, generator=generator).argsort(-1)
        labels = sets[torch.randint(len(sets), (size,), generator=generator)].gather(1, order)
        # the distractors fill the items other than the match, in order
        slot = torch.arange(k)[None] - (torch.arange(k)[None] > match[:, None]).long()
        items = torch.where(
            torch.arange(k)[None] == match[:, None],
            query[:, None],
            distractors.gather(1, slot.clamp(max=k - 2)),
        )
        query_label = labels.gather(1, match[:, None])
        item_classes = torch.cat([items, query[:, None]], 1)
        return Batch(classes[item_classes], torch.cat([labels, query_label], 1), match, self.table)

    def eval_sets(self, names, size: int, seed: int) -> dict[str, Batch]:
        """Fixed eval sets, drawn once from the eval seed (as the reference)."""
        generator = torch.Generator().manual_seed(seed)
        splits = {
            "train": (self.train_classes, self.train_pairs),
            "relabel": (self.train_classes, self.heldout_pairs),
            "new-classes": (self.new_classes, self.train_pairs),
        }
        return {name: self.sample(size, generator, *splits[name]) for name in names}
