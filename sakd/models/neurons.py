"""Spiking neurons: spikingjelly's LIF run in multi-step mode on time folded into the batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from spikingjelly.activation_based import neuron, surrogate

SURROGATES = {"atan": surrogate.ATan, "sigmoid": surrogate.Sigmoid}


@dataclass(frozen=True)
class LIFSettings:
    """Float LIF dynamics (decay_input=False): H = (1 - 1/tau) V + X; spike if H >= v_threshold;
    hard reset V = v_reset after a spike."""

    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: float = 0.0
    decay_input: bool = False
    surrogate: str = "atan"
    alpha: float = 2.0
    detach_reset: str = "per-site"  # "per-site" | "true" | "false"

    def __post_init__(self) -> None:
        if self.surrogate not in SURROGATES:
            raise ValueError(f"unknown surrogate '{self.surrogate}'; choose one of {sorted(SURROGATES)}")
        if self.tau <= 1.0:
            raise ValueError(f"tau must be > 1 (got {self.tau})")
        if self.detach_reset not in ("per-site", "true", "false"):
            raise ValueError(f"detach_reset must be per-site, true or false (got {self.detach_reset!r})")


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
