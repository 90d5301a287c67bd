"""Pure folding math shared by the lowering passes and QAT (one home, so both compute the same
bits): batch norm folded into the preceding conv/linear, and average pooling composed into the
following conv or linear. Torch tensors in, torch tensors out; differentiable (QAT trains
through them); float64 in the lowering.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bn_scale_shift(gamma: torch.Tensor, beta: torch.Tensor, mean: torch.Tensor,
                   var: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BN as ``y = x · scale + shift`` per channel: ``scale = γ / √(σ² + ε)``,
    ``shift = β − μ · scale``."""
    scale = gamma / torch.sqrt(var + eps)
    return scale, beta - mean * scale


def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, scale: torch.Tensor,
            shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``BN(conv(x))`` as one conv/linear: ``W' = W · scale`` per output channel,
    ``b' = b · scale + shift`` (``shift`` when there is no bias)."""
    weight = weight * scale.view(-1, *([1] * (weight.dim() - 1)))
    return weight, (shift.clone() if bias is None else bias * scale + shift)


def spread_pooled_linear(weight: torch.Tensor, source_shape: tuple[int, ...],
                         kernel: tuple[int, int]) -> torch.Tensor:
    """A linear weight on the pooled (C, Ho, Wo) map -> the same map on the (C, H, W) input of
    a non-overlapping average pool (stride = kernel): ``W'[o, c, h, w] = W[o, c, h // kh,
    w // kw] · (1 / (kh·kw))``, and 0 for the border rows/columns floor-mode pooling drops.
    O(out · C · H · W), no basis matrix. (Times the reciprocal: exactly what ``avg_pool2d`` of
    a one-hot gives.)"""
    channels, height, width = source_shape
    kh, kw = kernel
    out = weight.shape[0]
    grid = weight.reshape(out, channels, height // kh, width // kw) * (1.0 / (kh * kw))
    grid = grid.repeat_interleave(kh, dim=2).repeat_interleave(kw, dim=3)
    grid = F.pad(grid, (0, width - grid.shape[3], 0, height - grid.shape[2]))
    return grid.reshape(out, channels * height * width)


def pool_into_conv(weight: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """The kernel of ``conv(avg_pool(x))`` (pool stride = kernel) as one conv on x:
    ``K'[o, c, kh·i + a, kw·j + b] = W[o, c, i, j] / (kh·kw)``; the conv's stride and padding
    scale by the kernel (the caller sets them)."""
    kh, kw = kernel
    return weight.repeat_interleave(kh, dim=2).repeat_interleave(kw, dim=3) / (kh * kw)
