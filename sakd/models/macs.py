"""Multiply-accumulate counts of an ANN, per layer and per sample (the energy report's baseline).

Counted: ``nn.Conv2d`` (Cout x Hout x Wout x Cin/groups x kh x kw, zero padding included) and
``nn.Linear`` (in x out per output vector). Not counted: biases, BatchNorm, pooling, additions and
activations (their cost is small and the energy profiles price MACs only). A module called
several times in one forward adds up its calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

#: The key of the sum of all layers in ``count_ann_macs``'s result (``sakd.hardware.energy``).
TOTAL_KEY = "total"


def _conv_macs(module: nn.Conv2d, output: torch.Tensor) -> int:
    c_out, h_out, w_out = output.shape[-3:]
    kh, kw = module.kernel_size
    return int(c_out * h_out * w_out * (module.in_channels // module.groups) * kh * kw)


def _linear_macs(module: nn.Linear, output: torch.Tensor) -> int:
    vectors = math.prod(output.shape[1:-1])  # 1 for [B, out]; extra axes for [B, ..., out]
    return int(vectors * module.in_features * module.out_features)


def count_ann_macs(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """MACs of one sample through ``model`` run as an ANN, by layer name, plus ``"total"``.

    ``input_shape`` is the shape of one sample without the batch axis, e.g. ``(C, H, W)``.
    The model runs once in eval mode (restored afterwards) on one sample of zeros. An ANN
    (``time_steps = 0``) is what this is for; a spikified model gives the same numbers, since
    each layer's count is taken from one sample's output shape whatever the batch axis holds
    (time folded into it included): the dense MACs of one step. Layers are keyed by their
    qualified module name, in the order they first run.
    """
    shape = tuple(int(s) for s in input_shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape must be the positive shape of one sample, got {input_shape}")
    macs: dict[str, int] = {}

    def hook(name: str, counter):
        def record(module: nn.Module, inputs, output) -> None:
            macs[name] = macs.get(name, 0) + counter(module, output)
        return record

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(hook(name, _conv_macs)))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(hook(name, _linear_macs)))
    was_training = model.training
    try:
        model.eval()
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros((1, *shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    macs[TOTAL_KEY] = sum(macs.values())
    return macs
