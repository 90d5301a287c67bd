"""User-style spikingjelly SNNs, written the way a researcher writes them (not with sakd's
registry): the "bring your own model" tests export them through ``sakd export --model
own_models:FACTORY`` and ``sakd.app.own_model.export_module``.

- ``digits_csnn``: multi-step ``nn.Sequential`` of spikingjelly ``layer.*`` (conv, BN, max pool,
  flatten, linear) with a ``LIFNode`` and a ``ParametricLIFNode``, ending in a linear readout;
- ``tutorial_csnn``: spikingjelly's tutorial style (``IFNode``s; forward repeats the static
  input over T and returns the mean firing rate of the last spiking layer);
- ``ResidualSNN``: single-step, torch.nn layers, a residual add and an average pool;
- ``bad_*``: models the exporter must refuse, each for one named reason.

``make_spike(model, seed)`` gives a model random weights and BN statistics under which every
layer fires (the tests need activity for an agreement to mean something).
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

T = 4
SHAPE = (1, 8, 8)  # the digits images
CLASSES = 10


def digits_csnn(channels: int = 8, tau: float = 2.0) -> nn.Sequential:
    """conv-BN-LIF-maxpool, conv-BN-PLIF, flatten, linear-LIF, linear (multi-step)."""
    model = nn.Sequential(
        layer.Conv2d(1, channels, 3, padding=1, bias=False),
        layer.BatchNorm2d(channels),
        neuron.LIFNode(tau=tau, surrogate_function=surrogate.ATan()),
        layer.MaxPool2d(2),
        layer.Conv2d(channels, 2 * channels, 3, padding=1, bias=False),
        layer.BatchNorm2d(2 * channels),
        neuron.ParametricLIFNode(init_tau=2.0, surrogate_function=surrogate.ATan()),
        layer.Flatten(),
        layer.Linear(2 * channels * 4 * 4, 32),
        neuron.LIFNode(tau=tau, decay_input=False, surrogate_function=surrogate.ATan()),
        layer.Linear(32, CLASSES),
    )
    functional.set_step_mode(model, "m")
    return model


class TutorialCSNN(nn.Module):
    """spikingjelly's tutorial CSNN, shrunk to 8x8 digits: forward repeats the image over T and
    returns the firing rate of the last IF layer."""

    def __init__(self, T: int = T, channels: int = 8) -> None:
        super().__init__()
        self.T = T
        self.conv_fc = nn.Sequential(
            layer.Conv2d(1, channels, 3, padding=1, bias=False),
            layer.BatchNorm2d(channels),
            neuron.IFNode(surrogate_function=surrogate.ATan()),
            layer.MaxPool2d(2, 2),
            layer.Flatten(),
            layer.Linear(channels * 4 * 4, CLASSES, bias=False),
            neuron.IFNode(surrogate_function=surrogate.ATan()),
        )
        functional.set_step_mode(self, step_mode="m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        return self.conv_fc(x_seq).mean(0)


def tutorial_csnn(T: int = T) -> TutorialCSNN:
    return TutorialCSNN(T)


class ResidualSNN(nn.Module):
    """Single-step (called once per step): torch.nn layers, a residual add of two spike
    tensors' convolutions, an average pool folded into the classifier."""

    def __init__(self, channels: int = 6) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels))
        self.lif1 = neuron.LIFNode(tau=2.0)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.lif2 = neuron.LIFNode(tau=2.0)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(channels * 4 * 4, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.lif1(self.stem(x))
        s2 = self.lif2(self.bn(self.conv(s1)) + s1)  # identity shortcut: fan-in on the chip
        return self.fc(torch.flatten(self.pool(s2), 1))


def residual_snn() -> ResidualSNN:
    return ResidualSNN()


# ---------------------------------------------------------------------------------------------
# models the exporter refuses


def bad_soft_reset() -> nn.Sequential:
    """A LIFNode with a soft reset (v_reset=None): Loihi resets v to 0."""
    model = digits_csnn()
    model[2] = neuron.LIFNode(tau=2.0, v_reset=None)
    functional.set_step_mode(model, "m")
    return model


def bad_neuron() -> nn.Sequential:
    """A neuron model the exporter does not lower (QIFNode)."""
    model = digits_csnn()
    model[2] = neuron.QIFNode()
    functional.set_step_mode(model, "m")
    return model


def bad_sigmoid() -> nn.Sequential:
    """A torch activation where a neuron should be."""
    model = digits_csnn()
    model[9] = nn.Sigmoid()
    return model


def bad_mixed_modes() -> nn.Sequential:
    """One layer left in single-step mode inside a multi-step model."""
    model = digits_csnn()
    model[4].step_mode = "s"
    return model


def not_a_module() -> dict:
    return {"conv": 1}


# ---------------------------------------------------------------------------------------------
# weights under which every layer fires


def make_spike(model: nn.Module, seed: int = 0, shape: tuple[int, ...] = SHAPE,
               steps: int = T) -> nn.Module:
    """Random weights, BN running statistics from random inputs (cumulative, two passes) and BN
    affine parameters with positive shifts, linear layers scaled up: every layer fires on some
    but not all of its (neuron, step) pairs. Returns the model in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / p[0].numel()) ** 0.5)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None
                m.reset_running_stats()
        model.train()
        for _ in range(2):
            x = torch.randn(32, *shape, generator=gen)
            functional.reset_net(model)
            if _is_multi_step(model) and not isinstance(model, TutorialCSNN):
                model(x.unsqueeze(0).repeat(steps, 1, 1, 1, 1))
            elif isinstance(model, TutorialCSNN):
                model(x)
            else:
                for _t in range(steps):
                    model(x)
        functional.reset_net(model)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.5 + 0.1)
            if isinstance(m, nn.Linear):
                m.weight.mul_(3.0)
                if m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.2)
            if isinstance(m, neuron.ParametricLIFNode):
                m.w.fill_(-0.4)  # a learned tau of 1 + e^-0.4 = 1.67: not a power of two
    return model.eval()


def _is_multi_step(model: nn.Module) -> bool:
    return any(getattr(m, "step_mode", "s") == "m" for m in model.modules())
