"""Reading intermediate outputs of a network by module name (forward hooks)."""

from __future__ import annotations

import torch
from torch import nn

from sakd.errors import SakdError
from sakd.models.base import Network


class DistillError(SakdError):
    """A distillation setting the networks cannot take (feature taps, their shapes)."""


class FeatureTaps:
    """Record the outputs of the named modules of ``network`` during its forward.

    ``pop()`` returns ``{name: tensor}`` with time removed: for an SNN the module outputs are
    ``[T*B, ...]`` spikes (or spike counts), and the tap is their mean over T, i.e. firing rates
    ``[B, ...]``; for an ANN the outputs are returned as they are.
    """

    def __init__(self, network: Network, names: list[str]) -> None:
        modules = dict(network.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            stages = list(network.stage_names)
            raise DistillError(f"distill.taps: '{missing[0]}' is not a module of "
                               f"{type(network).__name__}; its stage outputs are {stages}")
        self.network = network
        self.names = list(names)
        self._store: dict[str, torch.Tensor] = {}
        self._handles = [modules[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
            self._store[name] = output

        return hook

    def pop(self) -> dict[str, torch.Tensor]:
        out = {n: self.network.unfold_time(self._store[n]).mean(0) for n in self.names
               if n in self._store}
        if len(out) != len(self.names):
            missing = [n for n in self.names if n not in self._store]
            raise RuntimeError(f"feature taps {missing} were not reached by the forward pass")
        self._store = {}
        return out

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
