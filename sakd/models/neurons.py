"""Spiking neurons: spikingjelly's LIF run in multi-step mode on time folded into the batch."""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron, surrogate

from sakd.models.settings import LIFSettings

SURROGATES = {"atan": surrogate.ATan, "sigmoid": surrogate.Sigmoid}


class MultiStepLIF(neuron.LIFNode):
    """spikingjelly ``LIFNode`` (step_mode 'm') fed with ``[T*B, ...]`` and returning the same.

    Each call starts from ``v = v_reset``: one call processes a whole sample of T steps, so no
    state leaks from one batch into the next. spikingjelly picks its fastest kernel by device
    (Triton/CuPy on CUDA, the torch reference on the CPU).
    """

    def __init__(self, time_steps: int, settings: LIFSettings, detach_reset: bool) -> None:
        super().__init__(
            tau=float(settings.tau),
            decay_input=settings.decay_input,
            v_threshold=settings.v_threshold,
            v_reset=settings.v_reset,
            surrogate_function=SURROGATES[settings.surrogate](alpha=settings.alpha),
            detach_reset=detach_reset,
            step_mode="m",
        )
        self.time_steps = time_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.reset()
        sequence = x.reshape(self.time_steps, x.shape[0] // self.time_steps, *x.shape[1:])
        return super().forward(sequence).reshape(x.shape)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", decay_input={self.decay_input}, T={self.time_steps}"
