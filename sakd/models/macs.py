"""Multiply-accumulate counts of an ANN, per layer and per sample (the energy report's baseline).

Counted: ``nn.Conv2d`` (Cout x Hout x Wout x Cin/groups x kh x kw, zero padding included),
``nn.Linear`` (in x out per output vector) and nearest upsampling by ``F.interpolate`` (one MAC
per output value: the chip lowers it to an upsample projection with one synapse per target
neuron, so the ANN twin is counted as the lowered network does it; an ANN on a host only copies
these values). Not counted: biases, BatchNorm, pooling, additions, activations and other
interpolation modes (their cost is small and the energy profiles price MACs only; a bilinear
upsampling is host work in sakd's dense networks, after the readouts, or a free broadcast of a
1x1 map, DeepLabV3's pooling branch, whose 1x1 project conv is counted as a conv). A module called several
times in one forward adds up its calls; the upsamplings a module calls are keyed
``<module>.interpolate``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

#: The key of the sum of all layers in ``count_ann_macs``'s result (``sakd.hardware.energy``).
TOTAL_KEY = "total"
#: The suffix of the key of the nearest upsamplings a module calls (``<module>.interpolate``).
UPSAMPLE_KEY = "interpolate"


def _conv_macs(module: nn.Conv2d, output: torch.Tensor) -> int:
    c_out, h_out, w_out = output.shape[-3:]
    kh, kw = module.kernel_size
    return int(c_out * h_out * w_out * (module.in_channels // module.groups) * kh * kw)


def _linear_macs(module: nn.Linear, output: torch.Tensor) -> int:
    vectors = math.prod(output.shape[1:-1])  # 1 for [B, out]; extra axes for [B, ..., out]
    return int(vectors * module.in_features * module.out_features)


def _interpolate_mode(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The ``mode`` of an ``F.interpolate(input, size, scale_factor, mode, ...)`` call."""
    return str(kwargs.get("mode", args[3] if len(args) > 3 else "nearest"))


class _NearestUpsamples(TorchFunctionMode):
    """Calls ``record(output)`` after every nearest ``F.interpolate`` run under it."""

    def __init__(self, record: Callable[[torch.Tensor], None]) -> None:
        super().__init__()
        self.record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is F.interpolate and _interpolate_mode(args, kwargs) == "nearest":
            self.record(out)
        return out


def count_ann_macs(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """MACs of one sample through ``model`` run as an ANN, by layer name, plus ``"total"``.

    ``input_shape`` is the shape of one sample without the batch axis, e.g. ``(C, H, W)``.
    The model runs once in eval mode (restored afterwards) on one sample of zeros. An ANN
    (``time_steps = 0``) is what this is for; a spikified model gives the same numbers, since
    each layer's count is taken from one sample's output shape whatever the batch axis holds
    (time folded into it included): the dense MACs of one step. Layers are keyed by their
    qualified module name, in the order they first run; nearest upsamplings by the module that
    calls them (``<module>.interpolate``, e.g. ``backbone.fpn.interpolate`` for an FPN's
    top-down path), one MAC per output value of one sample.
    """
    shape = tuple(int(s) for s in input_shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape must be the positive shape of one sample, got {input_shape}")
    macs: dict[str, int] = {}
    running: list[str] = []  # the modules whose forward is running, innermost last

    def hook(name: str, counter):
        def record(module: nn.Module, inputs, output) -> None:
            macs[name] = macs.get(name, 0) + counter(module, output)
        return record

    def enter(name: str):
        def push(module: nn.Module, inputs) -> None:
            running.append(name)
        return push

    def leave(module: nn.Module, inputs, output) -> None:
        running.pop()

    def upsampled(output: torch.Tensor) -> None:
        owner = running[-1] if running else ""
        key = f"{owner}.{UPSAMPLE_KEY}" if owner else UPSAMPLE_KEY
        macs[key] = macs.get(key, 0) + math.prod(output.shape[1:])  # one sample's output values

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(name)))
        handles.append(module.register_forward_hook(leave))
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(hook(name, _conv_macs)))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(hook(name, _linear_macs)))
    was_training = model.training
    try:
        model.eval()
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        with torch.no_grad(), _NearestUpsamples(upsampled):
            model(torch.zeros((1, *shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    macs[TOTAL_KEY] = sum(macs.values())
    return macs
