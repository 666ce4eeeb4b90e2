"""One optimizer step of a batched group as a single function: forward, backward, Adam.

The same function runs eagerly or compiled (`torch.compile`): one graph per step, no host
synchronisation, and clamp windows seen through masks that change in place. Adam follows
torch.optim.Adam exactly (β 0.9/0.999, ε 1e-8, no weight decay; bias corrections in double
precision on the host, as it computes them): it is elementwise, so every run of the group
is optimised independently.
"""

from __future__ import annotations

import math

import torch
from torch.func import functional_call, grad_and_value

from clampdsl.model.clamps import ClampState
from clampdsl.model.transformer import BatchedTransformer
from clampdsl.train.compiled import CompiledOrEager

BETAS = (0.9, 0.999)
EPS = 1e-8


class TrainStep:
    def __init__(
        self,
        model: BatchedTransformer,
        clamps: ClampState,
        lr: float,
        compile_mode: str | None = None,
    ):
        self.model, self.clamps, self.lr = model, clamps, lr
        # Views sharing storage with the module's Parameters: updated in place, so the
        # module (and its state_dict) always holds the current weights.
        self.params = {name: p.detach() for name, p in model.named_parameters()}
        # The same tensors by the model's own names (`qkv0`, not `weights.qkv0`)
        self.weights = {name.removeprefix("weights."): p for name, p in self.params.items()}
        self.exp_avg = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self.exp_avg_sq = {name: torch.zeros_like(p) for name, p in self.params.items()}
        device = next(iter(self.params.values())).device
        self.count = 0  # steps taken
        # This step's bias corrections, written before each call: computed inside the
        # graph, inductor inlined them (two `pow`s) into every element's update, which
        # about doubled the cost of Adam.
        self.step_size = torch.zeros((), device=device)
        self.bias_correction2_sqrt = torch.zeros((), device=device)
        if compile_mode == "reduce-overhead":
            self._fix_addresses()
        self._run = CompiledOrEager(self._step, compile_mode)

    def _fix_addresses(self) -> None:
        """Marks the step's state as living at fixed addresses, for CUDA graphs: cudagraph
        trees replay a graph only if every input it updates in place (weights, Adam's
        moments) is static; else they skip it ("skipping cudagraphs due to mutated
        inputs") and the step runs kernel by kernel. Inputs not marked are copied in at
        every replay, a launch each, so the clamps' tensors are marked too. None of these
        ever moves: checkpoints load in place, and `set_step` rewrites masks in place."""
        state = (*self.params.values(), *self.exp_avg.values(), *self.exp_avg_sq.values())
        scalars = (self.step_size, self.bias_correction2_sqrt)
        for tensor in (*state, *scalars, *self.clamps.tensors()):
            torch._dynamo.mark_static_address(tensor)

    @property
    def compiled(self) -> bool:
        return self._run.compiled

    def __call__(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Takes one step; returns the per-run losses [R] (left on the device)."""
        self.count += 1
        beta1, beta2 = BETAS
        self.step_size.fill_(self.lr / (1 - beta1**self.count))
        self.bias_correction2_sqrt.fill_(math.sqrt(1 - beta2**self.count))
        return self._run(features, labels)

    def _losses(self, params, features, labels):
        logits = functional_call(self.model, params, (features, labels, self.clamps))
        losses = self.model.losses(logits, labels)
        return losses.sum(), losses.detach()

    def _step(self, features, labels):
        gradient = grad_and_value(self._losses, has_aux=True)
        grads, (_, losses) = gradient(self.params, features, labels)
        frozen = {
            f"weights.{name}": mask
            for name, mask in self.clamps.frozen_weights(
                self.model.weights_of, self.weights
            ).items()
        }
        held = {name: [t.clone() for t in self._state_of(name)] for name in frozen}
        self._adam(grads)
        for name, mask in frozen.items():  # frozen weights and their moments stay as they were
            for tensor, before in zip(self._state_of(name), held[name], strict=True):
                tensor.copy_(before.where(mask > 0, tensor))
        return losses

    def _state_of(self, name: str) -> tuple[torch.Tensor, ...]:
        """A weight and its Adam moments."""
        return tuple(t[name] for t in (self.params, self.exp_avg, self.exp_avg_sq))

    def _adam(self, grads: dict) -> None:
        names = list(self.params)
        params = [self.params[n] for n in names]
        grads = [grads[n] for n in names]
        exp_avg = [self.exp_avg[n] for n in names]
        exp_avg_sq = [self.exp_avg_sq[n] for n in names]
        beta1, beta2 = BETAS
        torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, 1 - beta2)
        denominator = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denominator, self.bias_correction2_sqrt)
        torch._foreach_add_(denominator, EPS)
        updates = torch._foreach_div(exp_avg, denominator)
        torch._foreach_mul_(updates, self.step_size)
        torch._foreach_sub_(params, updates)

    def state_dict(self) -> dict:
        count = torch.tensor(float(self.count))  # a tensor, as checkpoints have always held it
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "count": count}

    def load_state_dict(self, state: dict) -> None:
        for name in self.params:
            self.exp_avg[name].copy_(state["exp_avg"][name])
            self.exp_avg_sq[name].copy_(state["exp_avg_sq"][name])
        self.count = int(state["count"])
