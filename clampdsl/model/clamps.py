"""A group's interventions as tensors, for the kinds (clampdsl/kinds) to apply at their sites.

Built once from the Plan: per kind and site a `SiteClamps` holding masks [R, H] (head
sites) or [R] (layer and model sites) and the kind's values. Each intervention keeps its
window; `set_step` rewrites the tensors in place only when a window opens or closes, so a
compiled step never sees a new tensor and nothing recompiles.

No clamp detaches anything: a clamp computed from parameters passes gradient, a constant
clamp cuts it, exactly as the reference's `where(mask, cache, computed)`
(shared/reference/icl_dynamics_spec.md §1, §7.9).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from clampdsl import kinds
from clampdsl.compile.configs import ModelConfig
from clampdsl.compile.plan import Intervention, Run, Schedule
from clampdsl.kinds.base import Kind, Write


class SiteClamps:
    """One kind's clamps of one site of one layer: `on` and the kind's values, by name
    (also as attributes: `clamp.strength`)."""

    def __init__(self, kind: Kind, write: Write, n_runs: int, model: ModelConfig):
        self.kind, self.layer, self.site = kind, write.layer, write.site
        self.base = (n_runs, model.heads) if write.heads else (n_runs,)
        self.items: list[tuple[int, Intervention, tuple[int, ...]]] = []
        self.values: dict[str, torch.Tensor] = {}
        self.on = torch.zeros(self.base)

    def add(self, run: int, item: Intervention, heads: tuple[int, ...], values: dict) -> None:
        self.items.append((run, item, heads))
        for name, value in values.items():
            if name not in self.values:
                shape = torch.as_tensor(value).shape
                self.values[name] = torch.zeros(*self.base, *shape)
                setattr(self, name, self.values[name])

    def get(self, name: str) -> torch.Tensor | None:
        return self.values.get(name)

    def set(self, active: set[int], model: ModelConfig) -> None:
        """Rewrites every tensor in place for the items whose window is open (ids)."""
        for tensor in self.tensors():
            tensor.zero_()
        for run, item, heads in self.items:
            if id(item) not in active:
                continue
            where = (run, list(heads)) if heads else run
            self.on[where] = 1.0
            for name, value in self.kind.values(item, model).items():
                self.values[name][where] = torch.as_tensor(value, dtype=torch.float32)

    def tensors(self) -> list[torch.Tensor]:
        return [self.on, *self.values.values()]

    def for_runs(self, runs: slice) -> SiteClamps:
        part = copy.copy(self)
        part.on, part.values = self.on[runs], {k: v[runs] for k, v in self.values.items()}
        for name, tensor in part.values.items():
            setattr(part, name, tensor)
        return part

    def to(self, device) -> SiteClamps:
        self.on = self.on.to(device)
        self.values = {k: v.to(device) for k, v in self.values.items()}
        for name, tensor in self.values.items():
            setattr(self, name, tensor)
        return self


class ClampState:
    """Per-group clamp tensors, by (layer, site), for the final pass and the first, each in
    the order the kinds apply (the reference's composition order); and the group's pass
    schedule (`compile/schedule.py`)."""

    def __init__(self, runs: Sequence[Run], model: ModelConfig, schedule: Schedule):
        self.n_runs, self.model, self.schedule = len(runs), model, schedule
        self.items = [item for run in runs for item in run.interventions]
        self.final = self._site_clamps(runs, lambda kind, item: kind.writes(item, model))
        self.first = self._site_clamps(runs, lambda kind, item: kind.first_pass_writes(item))
        self.frozen = self._site_clamps(runs, lambda kind, item: kind.freezes(item, model))
        self.reads_first_pass = torch.tensor([r.first_pass for r in schedule.runs])
        self._active: tuple[bool, ...] | None = None
        self.set_step(0)

    def _site_clamps(self, runs, writes_of) -> dict[tuple[int | None, str], list[SiteClamps]]:
        found: dict[tuple, SiteClamps] = {}
        for r, run in enumerate(runs):
            for item in run.interventions:
                kind = kinds.of(item)
                for write in writes_of(kind, item):
                    key = (write.layer, write.site, kind.name)
                    if key not in found:
                        found[key] = SiteClamps(kind, write, self.n_runs, self.model)
                    found[key].add(r, item, write.heads, kind.values(item, self.model))
        by_site: dict[tuple, list[SiteClamps]] = {}
        for clamp in sorted(found.values(), key=lambda c: c.kind.order):
            by_site.setdefault((clamp.layer, clamp.site), []).append(clamp)
        return by_site

    def at(self, site: str, layer: int | None, x: torch.Tensor, context) -> torch.Tensor:
        """x with the clamps of (layer, site) applied, those of the pass `context` is in."""
        table = self.first if context.first_pass else self.final
        for clamp in table.get((layer, site), ()):
            x = clamp.kind.apply(site, x, clamp, context)
        return x

    def set_step(self, step: int, phase: str = "train") -> None:
        """The clamps of training step `step` ("train"), or of the eval before it ("eval")."""
        active = tuple(item.window.is_active(step, phase) for item in self.items)
        if active == self._active:
            return
        self._active = active
        on = {id(item) for item, is_on in zip(self.items, active, strict=True) if is_on}
        for clamp in self._all():
            clamp.set(on, self.model)

    def frozen_weights(self, layout, weights: dict) -> dict[str, torch.Tensor]:
        """{weight name: mask [R, …], 1 where a freeze clamp holds it back now}; empty
        when no run freezes anything."""
        masks: dict[str, torch.Tensor] = {}
        for clamps in self.frozen.values():
            for clamp in clamps:
                for name, mask in clamp.kind.weight_masks(clamp, layout, weights).items():
                    masks[name] = mask if name not in masks else masks[name].maximum(mask)
        return masks

    def _all(self) -> list[SiteClamps]:
        tables = (self.final, self.first, self.frozen)
        return [c for table in tables for cs in table.values() for c in cs]

    def for_runs(self, runs: slice) -> ClampState:
        """The same clamps for a range of the runs: every per-run tensor a view of this
        state's (so `set_step` reaches it)."""
        part = copy.copy(self)
        part.n_runs = len(range(*runs.indices(self.n_runs)))
        part.final, part.first, part.frozen = (
            {key: [c.for_runs(runs) for c in cs] for key, cs in table.items()}
            for table in (self.final, self.first, self.frozen)
        )
        part.reads_first_pass = self.reads_first_pass[runs]
        return part

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor the forward reads: the masks and values `set_step` rewrites in
        place, and which runs read the first pass."""
        return [t for clamp in self._all() for t in clamp.tensors()] + [self.reads_first_pass]

    def to(self, device) -> ClampState:
        for clamp in self._all():
            clamp.to(device)
        self.reads_first_pass = self.reads_first_pass.to(device)
        return self
