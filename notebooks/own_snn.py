"""A small spikingjelly SNN for 8x8 digits, written the way a researcher writes one (not with
sakd's architecture registry): the model of notebook 4, which exports it with
``sakd.app.own_model.export_module`` and with ``sakd export --model own_snn:make_model``.

Multi-step (``step_mode='m'``): ``forward`` takes the image sequence ``[T, B, 1, 8, 8]`` and
returns the per-step logits ``[T, B, 10]``; the prediction is the argmax of their mean over T.
"""

from __future__ import annotations

from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn


class DigitsSNN(nn.Module):
    """conv-BN-LIF, max pool, conv-BN-PLIF (learned time constant), linear-LIF, linear."""

    def __init__(self, channels: int = 8, hidden: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            layer.Conv2d(1, channels, 3, padding=1, bias=False),
            layer.BatchNorm2d(channels),
            neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()),
            layer.MaxPool2d(2),                                        # 8x8 -> 4x4
            layer.Conv2d(channels, 2 * channels, 3, padding=1, bias=False),
            layer.BatchNorm2d(2 * channels),
            neuron.ParametricLIFNode(init_tau=2.0, surrogate_function=surrogate.ATan()),
        )
        self.classifier = nn.Sequential(
            layer.Flatten(),
            layer.Linear(2 * channels * 4 * 4, hidden),
            neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()),
            layer.Linear(hidden, classes),                             # the logits
        )
        functional.set_step_mode(self, "m")

    def forward(self, x_seq):
        return self.classifier(self.features(x_seq))


def make_model(channels: int = 8, hidden: int = 32) -> DigitsSNN:
    """The factory ``sakd export --model own_snn:make_model`` calls (``--model-arg channels=16``)."""
    return DigitsSNN(channels, hidden)
