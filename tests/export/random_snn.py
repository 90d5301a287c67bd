"""Random tiny SNNs whose every LIF layer fires, for the export tests (shared by the test files of
this folder; imported through tests/export/conftest.py's sys.path entry)."""

from __future__ import annotations

import functools

import torch
from torch import nn

from sakd.export.lower import lower
from sakd.hardware.ir import Network
from sakd.models import LIFSettings, build_model, spikify
from sakd.models.base import Network as TorchNetwork

T = 4
CLASSES = 5


def input_shape(arch: str) -> tuple[int, int, int]:
    # the ImageNet stem (7x7/2 + max pool 3/2) needs a larger image to keep a few pixels
    return (3, 16, 16) if "bottleneck" in arch else (3, 8, 8)


def randomize(ann: nn.Module, gen: torch.Generator, shape: tuple[int, ...]) -> None:
    """Non-trivial BN statistics (cumulative averages over two train-mode passes) and affine
    parameters; positive biases; linear layers scaled up so that hidden fc layers fire."""
    for m in ann.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.momentum = None
    ann.train()
    with torch.no_grad():
        for _ in range(2):
            ann(torch.randn(32, *shape, generator=gen))
        for m in ann.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.5 + 0.1)
            if isinstance(m, nn.Linear):
                m.weight.mul_(3.0)
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.5 + 0.1)
    ann.eval()


def make_snn(arch: str, seed: int = 0, time_steps: int = T,
             settings: LIFSettings | None = None) -> TorchNetwork:
    """A random-init tiny SNN (float64, eval) whose every LIF layer fires."""
    shape = input_shape(arch)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ann = build_model(arch, num_classes=CLASSES, in_channels=shape[0], image_size=shape[1:])
    randomize(ann, gen, shape)
    return spikify(ann, time_steps, settings).eval().double()


@functools.cache
def lowered(arch: str, shape: tuple[int, ...]) -> Network:
    """A random SNN (three train-mode passes for the BN statistics, BN affine parameters drawn)
    lowered to the IR: the network the writer and reader tests use."""
    torch.manual_seed(0)
    ann = build_model(arch, num_classes=CLASSES, in_channels=shape[0], image_size=list(shape[1:]))
    ann.train()
    with torch.no_grad():
        for _ in range(3):
            ann(torch.randn(16, *shape))
        for m in ann.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.5)
    snn = spikify(ann, T).eval().double()
    return lower(snn, input_shape=shape, input_range=(-3, 3)).network
