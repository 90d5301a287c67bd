"""The base class of every architecture: an ANN whose ReLUs are marked as future spike sites,
and whose forward handles time once the ReLUs have become LIF neurons (see ``spikify``).

Time is folded into the batch: a spiking network computes every stateless layer (conv, BN, pool,
linear, add) on ``[T*B, ...]`` tensors, and only the neurons unfold ``[T, B, ...]`` to integrate
over time. The input is repeated over T (direct encoding); the output is the mean of the
per-step logits over T.
"""

from __future__ import annotations

import torch
from torch import nn


class SpikeSite(nn.ReLU):
    """A ReLU of the ANN that becomes a LIF neuron in the SNN.

    ``detach_reset`` records the authors' choice for this site (sakd.md §2.1: True for the stem
    and after residual adds of Spiking-ResNet, False inside blocks and everywhere in SEW-ResNet);
    it is used when the neuron config says ``detach_reset: per-site``. It has no parameters, so
    state-dict keys are those of a plain ReLU network (torchvision's included).
    """

    def __init__(self, detach_reset: bool = False) -> None:
        super().__init__()
        self.detach_reset = detach_reset

    def extra_repr(self) -> str:
        return f"detach_reset={self.detach_reset}"


class Network(nn.Module):
    """A classifier that is an ANN (``time_steps == 0``) or an SNN (``time_steps == T >= 1``).

    Subclasses implement ``forward_static(x)``: the architecture's computation on a batch whose
    leading axis may hold time folded into it. ``stage_names`` lists the modules whose outputs
    are the default feature-distillation taps. The classifier is the ``nn.Linear`` attribute
    named by ``classifier_name`` (``fc``, torchvision's name, so that level 1 is a plain
    ``load_state_dict``); it becomes the readout population on the chip.
    """

    stage_names: tuple[str, ...] = ()
    classifier_name: str = "fc"

    @property
    def classifier(self) -> nn.Linear:
        """The final linear layer (``classifier_name``): its outputs are the class logits."""
        return getattr(self, self.classifier_name)

    def __init__(self) -> None:
        super().__init__()
        self._time_steps = 0

    # time -------------------------------------------------------------------------------------
    @property
    def time_steps(self) -> int:
        """0 for an ANN; the number of simulation steps T for an SNN."""
        return self._time_steps

    @time_steps.setter
    def time_steps(self, value: int) -> None:
        from sakd.models.neurons import MultiStepLIF

        if value < 0:
            raise ValueError(f"time_steps must be >= 0, got {value}")
        neurons = [m for m in self.modules() if isinstance(m, MultiStepLIF)]
        if value and not neurons:
            raise ValueError("this network has no spiking neurons: use spikify(ann, T) to get an SNN")
        for neuron in neurons:
            neuron.time_steps = value
        self._time_steps = value

    @property
    def is_spiking(self) -> bool:
        return self._time_steps > 0

    # forward ----------------------------------------------------------------------------------
    def forward_static(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ANN: logits ``[B, classes]``. SNN: the mean over T of the per-step logits."""
        if not self._time_steps:
            return self.forward_static(x)
        steps, batch = self._time_steps, x.shape[0]
        folded = x.unsqueeze(0).expand(steps, *x.shape).reshape(steps * batch, *x.shape[1:])
        logits = self.forward_static(folded)
        return logits.reshape(steps, batch, *logits.shape[1:]).mean(0)

    def unfold_time(self, tensor: torch.Tensor) -> torch.Tensor:
        """``[T*B, ...]`` -> ``[T, B, ...]`` for an SNN; adds a length-1 time axis for an ANN."""
        steps = max(self._time_steps, 1)
        return tensor.reshape(steps, tensor.shape[0] // steps, *tensor.shape[1:])

    def extra_repr(self) -> str:
        return f"time_steps={self._time_steps}" if self._time_steps else ""
