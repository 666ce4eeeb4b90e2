"""The Plan's settings: what `model`, `task`, `train` and `eval` lines set, as frozen data
(compile/plan.py holds them in each Run), and `later`, how a field added after plans were
first written keeps their JSON and hash."""

from __future__ import annotations

from typing import Any

import attrs

LATER = "later"


def later(default: Any) -> Any:
    """A field added after plans were first written: left out of the JSON (and so of the
    hash) while at its default, so that a plan that does not use it reads, and hashes, as
    it did."""
    return attrs.field(default=default, metadata={LATER: True})


POSITION_SCHEMES = ("rope", "relative", "absolute", "none")  # `pos=` (model/positions.py)


@attrs.frozen
class ModelConfig:
    """The model: its shape, how positions enter it (`pos`, one of POSITION_SCHEMES), the
    MLP blocks' hidden width in multiples of d_model (`mlp`, 0: attention-only) and
    whether keys are smeared (`smear`, "on" or "off"); `arch`, one of
    compile/architectures.py's, and for `chen` the feature layer's `degree` (the largest
    subset of components it multiplies)."""

    layers: int = 2
    heads: int = 8
    d_model: int = 64
    pos: str = "rope"
    norm: str = "pre"
    mlp: int = later(0)
    smear: str = later("off")
    arch: str = later("transformer")
    degree: int = later(2)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    def variant(self) -> str:
        """What sets it apart from the reference's model (RoPE, attention only, plain
        keys), as a spec writes it (`pos=relative mlp=4 smear=on`); "" for nothing."""
        defaults = ModelConfig()
        return " ".join(
            f"{name}={getattr(self, name)}"
            for name in ("arch", "pos", "mlp", "smear", "degree")
            if getattr(self, name) != getattr(defaults, name)
        )


@attrs.frozen
class FeatureFile:
    """Features read from a file in the reference's layout, class × exemplar × dim. `file`
    is its absolute path, which the content hash leaves out (POSITIONAL_KEYS): what a run
    depends on is the bytes, named by their SHA-256, so moving the data keeps its run
    directories."""

    file: str
    key: str  # the dataset of an .h5 file; "" for an .npy file
    sha256: str
    classes: int  # in the file: training takes the first, new-classes the last
    exemplars: int  # per class: sequences show exemplar 0


@attrs.frozen
class FeatureConfig:
    """The class features: a synthetic stand-in for the paper's Omniglot ResNet features
    (kind "synthetic", of `family` "gaussian" or "relu-lowrank"), or a file (kind "file",
    `stored`; dim is the file's)."""

    kind: str = "synthetic"
    dim: int = 128
    correlation: float = 0.9
    scale: float = 1.0  # gaussian: multiplies every feature
    exemplar_noise: float = 0.5
    family: str = later("gaussian")
    rank: int = later(16)  # relu-lowrank: dimensions the classes differ in before the ReLU
    norm: float = later(25.0)  # relu-lowrank: the mean length of a class's exemplar 0
    stored: FeatureFile | None = later(None)

    def describe(self) -> str:
        """As a spec writes it, defaults written out (and a file's SHA-256)."""
        stored = self.stored
        if stored is not None:
            key = f', key="{stored.key}"' if stored.key else ""
            shape = f"{stored.classes} classes × {stored.exemplars} exemplars × {self.dim}"
            return f'file("{stored.file}"{key}): {shape}, sha256 {stored.sha256[:12]}'
        if self.family == "gaussian":
            options = f"dim={self.dim}, correlation={self.correlation:g}, scale={self.scale:g}"
        else:
            options = (
                f"kind={self.family}, dim={self.dim}, correlation={self.correlation:g}, "
                f"rank={self.rank}, norm={self.norm:g}"
            )
        return f"synthetic({options}, noise={self.exemplar_noise:g})"


@attrs.frozen
class TokensConfig:
    """Random tokens with one segment repeated later in the sequence (`task
    repeated-tokens`): `vocab` tokens, sequences of `length`, segments of repeat_min to
    repeat_max tokens; the loss scores every position's next token (`all`) or only those
    inside the segment's second copy (`repeat`)."""

    vocab: int = 64
    length: int = 64
    repeat_min: int = 16
    repeat_max: int = 32
    loss: str = "all"


@attrs.frozen
class MarkovConfig:
    """In-context Markov chains (`task markov`, Edelman et al. 2024): sequences of `length`
    tokens of `vocab`, each drawn from a transition table of its own, one row per
    (order-1)-tuple of previous tokens; rows from Dirichlet(alpha) (`prior` "dirichlet")
    or a doubly stochastic table ("doubly-stochastic"); the loss at every position (`all`)
    or the last."""

    vocab: int = 3
    length: int = 100
    order: int = 2
    alpha: float = 1.0
    prior: str = "dirichlet"
    loss: str = "all"


@attrs.frozen
class TaskConfig:
    """The task kind (clampdsl/tasks/kinds) and its settings: the few-shot task's at the top
    level, a token task's under `tokens` or `markov` (None for the others)."""

    kind: str = "fewshot"
    classes: int = 50
    new_classes: int = 100
    labels: int = 5
    context: int = 2
    pair_split: float = 0.8
    seed: int = 0
    features: FeatureConfig = FeatureConfig()
    tokens: TokensConfig | None = later(None)
    markov: MarkovConfig | None = later(None)


@attrs.frozen
class TrainConfig:
    steps: int = 4000
    batch: int = 32
    optimizer: str = "adam"
    lr: float = 1e-5
    seed: int = 5
    data_seed: int = 0
    eval_seed: int = 1
    keep_every: int = 0  # keep the weights every N steps, for grafts `at step N` (0: the last)
    checkpoint_every: int = 1000  # steps between checkpoints a killed run resumes from


@attrs.frozen
class EvalConfig:
    # The paper's cadence for its main runs: every 5,000 sequences (156 steps at batch 32)
    every: int = 156
    sets: tuple[str, ...] = ("train", "relabel", "new-classes")
    size: int = 1000
    # `, every N steps near phase`: the interval while a run of the group is near its phase
    # change (PhaseRule.near), on top of the regular evals
    near_every: int | None = later(None)
