"""The class × exemplar × dim feature array a few-shot task draws its sequences from.

Three sources (the plan's FeatureConfig says which):

- `gaussian` (the default stand-in): correlated Gaussian prototypes, `√ρ·s + √(1−ρ)·g_c`
  with a shared s and per-class g_c, exemplars 1.. the prototype plus noise. Isotropic:
  nearly orthogonal class differences, entries of either sign.
- `relu-lowrank`: what real image features have that those lack (icl_dynamics_spec.md §2,
  "synthetic stand-in"): non-negative (post-ReLU, as ResNet avgpool features), classes
  that differ within a shared low-rank subspace, and a set mean norm. Before the ReLU a
  class is `√ρ·m + √(1−ρ)·U z_c`, U a fixed dim × rank basis; an exemplar adds noise
  before the ReLU, so it stays non-negative; all are scaled so that exemplar 0 has mean
  length `norm`.
- a file (compile/feature_files.py found it): read whole, its SHA-256 checked against the
  plan's, `.npy` without pickles or `.h5` through h5py. The task takes the reference's
  class split: training classes are the file's first, new classes its last.

Each source returns [classes + new_classes, exemplars, dim], training classes first.
"""

from __future__ import annotations

import hashlib
import io
import math

import torch

from clampdsl.compile.configs import FeatureConfig, FeatureFile, TaskConfig
from clampdsl.compile.feature_files import h5_dataset

EXEMPLARS_PER_CLASS = 5  # the reference's drawings per Omniglot character


def class_features(config: TaskConfig, generator: torch.Generator) -> torch.Tensor:
    """[classes + new_classes, exemplars, dim]: the task's features, training classes first."""
    features, n_classes = config.features, config.classes + config.new_classes
    if features.stored is not None:
        return _split(_read(features.stored), config.classes, config.new_classes)
    if features.family == "relu-lowrank":
        return _relu_lowrank(features, n_classes, generator)
    return _gaussian(features, n_classes, generator)


def _gaussian(features: FeatureConfig, n_classes: int, generator) -> torch.Tensor:
    shared = torch.randn(features.dim, generator=generator)
    own = torch.randn(n_classes, features.dim, generator=generator)
    rho = features.correlation
    prototypes = math.sqrt(rho) * shared + math.sqrt(1 - rho) * own
    noise = torch.randn(n_classes, EXEMPLARS_PER_CLASS - 1, features.dim, generator=generator)
    exemplars = torch.cat(
        [prototypes[:, None], prototypes[:, None] + features.exemplar_noise * noise], 1
    )
    return exemplars * features.scale


def _relu_lowrank(features: FeatureConfig, n_classes: int, generator) -> torch.Tensor:
    dim, rank, rho = features.dim, features.rank, features.correlation
    shared = torch.randn(dim, generator=generator)
    # Unit-variance entries whatever the rank, so that ρ keeps its meaning.
    basis = torch.randn(dim, rank, generator=generator) / math.sqrt(rank)
    codes = torch.randn(n_classes, rank, generator=generator)
    before = math.sqrt(rho) * shared + math.sqrt(1 - rho) * codes @ basis.T
    noise = torch.randn(n_classes, EXEMPLARS_PER_CLASS - 1, dim, generator=generator)
    exemplars = torch.cat([before[:, None], before[:, None] + features.exemplar_noise * noise], 1)
    exemplars = exemplars.relu()
    length = exemplars[:, 0].norm(dim=-1).mean().clamp_min(torch.finfo(torch.float32).tiny)
    return exemplars * (features.norm / length)


def _read(stored: FeatureFile) -> torch.Tensor:
    """The file's array as float32, from bytes whose SHA-256 is the plan's."""
    with open(stored.file, "rb") as file:
        data = file.read()
    if hashlib.sha256(data).hexdigest() != stored.sha256:
        raise RuntimeError(
            f"{stored.file} changed since its spec was compiled (its SHA-256 is not the "
            "plan's): compile the spec again"
        )
    if stored.key:
        import h5py  # the `h5` extra; the compiler made sure it is installed

        with h5py.File(io.BytesIO(data), "r") as h5:
            array = h5_dataset(h5, stored.key)[()]
    else:
        import numpy

        array = numpy.load(io.BytesIO(data), allow_pickle=False)
    return torch.from_numpy(array.astype("float32", copy=False))


def _split(features: torch.Tensor, classes: int, new_classes: int) -> torch.Tensor:
    """The reference's class split: training classes first, new classes the file's last."""
    return torch.cat([features[:classes], features[features.shape[0] - new_classes :]])
