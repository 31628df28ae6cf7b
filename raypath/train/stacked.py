"""Stacked parameters of G models and an AdamW that updates them with per-model hyperparameters.

`torch.optim.AdamW` keeps one learning rate per parameter group, but stacked parameters put all G
models into one tensor, so learning rate and weight decay become (G,) tensors broadcast over each
parameter. The update is torch's AdamW formula step for step (decoupled decay, bias corrections),
so a member trains exactly as it would alone. A member whose early stopping fired is frozen by an
`active` mask: neither its weights nor its moments change.
"""

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import stack_module_state


def stack(
    models: Sequence[nn.Module], *, device: torch.device | str = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(parameters, buffers) with a leading member dimension on `device`; parameters are leaf tensors."""
    params, buffers = stack_module_state(list(models))
    return (
        {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()},
        {k: v.to(device) for k, v in buffers.items()},
    )


def member_state(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], index: int) -> dict:
    """One member's state dict (CPU copies), loadable into a module built like the stacked ones."""
    return {k: v[index].detach().to("cpu", copy=True) for k, v in {**params, **buffers}.items()}


def _expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, *([1] * (like.dim() - 1)))


class StackedAdamW:
    """AdamW over stacked parameters with (G,) learning rates and weight decays."""

    def __init__(
        self,
        params: dict[str, torch.Tensor],
        *,
        lr: torch.Tensor,
        weight_decay: torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = params
        dtype = torch.get_default_dtype()
        self.lr, self.weight_decay = lr.to(dtype), weight_decay.to(dtype)
        self.beta1, self.beta2, self.eps = betas[0], betas[1], eps
        self.exp_avg = {k: torch.zeros_like(p) for k, p in params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(p) for k, p in params.items()}
        self.steps = torch.zeros_like(self.lr)

    def state_dict(self) -> dict[str, object]:
        """Moments and step counts (tensors only: a checkpoint loads them with weights_only)."""
        return {"exp_avg": dict(self.exp_avg), "exp_avg_sq": dict(self.exp_avg_sq), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()`'s moments, on this optimizer's device."""
        device = self.steps.device
        self.exp_avg = {k: v.to(device) for k, v in state["exp_avg"].items()}
        self.exp_avg_sq = {k: v.to(device) for k, v in state["exp_avg_sq"].items()}
        self.steps = state["steps"].to(device)

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor], *, active: torch.Tensor) -> None:
        """One update of the active members; frozen members keep weights, moments and step count."""
        self.steps += active.to(self.steps.dtype)
        # Frozen members' bias corrections are never used (their update is masked out); clamp avoids 0/0.
        steps = self.steps.clamp_min(1.0)
        correction1 = 1 - self.beta1**steps
        correction2_sqrt = torch.sqrt(1 - self.beta2**steps)
        for name, param in self.params.items():
            grad, keep = grads[name], _expand(active, param)
            exp_avg = torch.where(keep, self.exp_avg[name].lerp(grad, 1 - self.beta1), self.exp_avg[name])
            exp_avg_sq = torch.where(
                keep,
                self.exp_avg_sq[name] * self.beta2 + (1 - self.beta2) * grad * grad,
                self.exp_avg_sq[name],
            )
            decayed = param * (1 - _expand(self.lr * self.weight_decay, param))
            denom = exp_avg_sq.sqrt() / _expand(correction2_sqrt, param) + self.eps
            updated = decayed - _expand(self.lr / correction1, param) * exp_avg / denom
            param.copy_(torch.where(keep, updated, param))
            self.exp_avg[name], self.exp_avg_sq[name] = exp_avg, exp_avg_sq
