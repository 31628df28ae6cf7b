"""Gradient reversal (Ganin & Lempitsky 2015) for the adversarial scanner head."""

from typing import Any

import torch


class _GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by −coefficient."""

    generate_vmap_rule = True  # lets fused multi-config training vmap through it

    @staticmethod
    def forward(x: torch.Tensor, coefficient: float) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.coefficient = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coefficient * grad, None


def grad_reverse(x: torch.Tensor, coefficient: float = 1.0) -> torch.Tensor:
    """Pass `x` through unchanged, but reverse (and scale) its gradient on the way back.

    The scanner head then learns to predict the scanner while the encoder learns to hide it.
    """
    return _GradientReversal.apply(x, coefficient)
