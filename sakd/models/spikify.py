"""Level-1 of SAKD, structurally: the SNN of the same architecture as an ANN.

``spikify(ann, T, settings)`` deep-copies a ``Network``, replaces every ReLU module (each
``SpikeSite``) by a multi-step spikingjelly LIF neuron, and sets ``time_steps = T``. Parameter
and buffer names are unchanged, so transferring the ANN's weights is ``load_state_dict`` alone.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from sakd.errors import SakdError
from sakd.models.base import Network, SpikeSite
from sakd.models.neurons import LIFSettings, MultiStepLIF


class SpikifyError(SakdError):
    """The network cannot be turned into an SNN faithfully; the message names the culprit."""


class _ActivationTracer(fx.Tracer):
    """torch.fx tracer that keeps every ReLU module (SpikeSite included) as one call."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, nn.ReLU) or super().is_leaf_module(module, qualified_name)


def _check_activations(ann: Network) -> None:
    """Every ReLU must be a module used exactly once per forward (its neuron keeps state).

    A shared ReLU module (torchvision's ``BasicBlock.relu``) would make several uses share one
    neuron's membrane; a functional ``F.relu`` would stay a ReLU in the SNN. Both are errors.
    """
    try:
        graph = _ActivationTracer().trace(ann)
    except Exception as exc:  # fx raises many types for untraceable Python
        raise SpikifyError(
            f"cannot trace {type(ann).__name__} with torch.fx to check its activations ({exc}); "
            "write its forward without data-dependent Python control flow"
        ) from exc
    uses: dict[str, int] = {}
    modules = dict(ann.named_modules())
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], nn.ReLU):
            uses[node.target] = uses.get(node.target, 0) + 1
        elif node.op == "call_function" and node.target in (torch.relu, nn.functional.relu, torch.relu_):
            raise SpikifyError(f"functional relu at graph node '{node.name}' cannot become a neuron; "
                               "use one nn.ReLU (or SpikeSite) module per use")
        elif node.op == "call_method" and node.target in ("relu", "relu_"):
            raise SpikifyError(f"tensor.relu() at graph node '{node.name}' cannot become a neuron; "
                               "use one nn.ReLU (or SpikeSite) module per use")
    shared = {name: count for name, count in uses.items() if count > 1}
    if shared:
        name, count = next(iter(shared.items()))
        raise SpikifyError(f"activation module '{name}' is used {count} times per forward; its "
                           "neurons would share state. Give each use its own module")
    unused = [name for name, m in modules.items() if isinstance(m, nn.ReLU) and name not in uses]
    if unused:
        raise SpikifyError(f"activation module '{unused[0]}' is never called in forward")


def spikify(ann: Network, time_steps: int, settings: LIFSettings | None = None) -> Network:
    """Return the SNN of ``ann``'s architecture: every ReLU becomes a ``MultiStepLIF``.

    The ANN is not modified. Weights are copied as they are (level-1 transfer); use
    ``load_state_dict`` to copy another ANN's weights.
    """
    if not isinstance(ann, Network):
        raise SpikifyError(f"spikify expects a sakd Network (got {type(ann).__name__}); "
                           "build the ANN with sakd.models.build_model")
    if ann.is_spiking:
        raise SpikifyError("this network is already spiking (time_steps > 0)")
    if time_steps < 1:
        raise SpikifyError(f"time_steps must be >= 1, got {time_steps}")
    settings = settings or LIFSettings()
    _check_activations(ann)
    snn = copy.deepcopy(ann)
    for name, module in list(snn.named_modules()):
        if isinstance(module, nn.ReLU):
            if settings.detach_reset == "per-site":
                detach = module.detach_reset if isinstance(module, SpikeSite) else False
            else:
                detach = settings.detach_reset == "true"
            snn.set_submodule(name, MultiStepLIF(time_steps, settings, detach_reset=detach))
    snn.time_steps = time_steps
    return snn


def neuron_names(model: nn.Module) -> list[str]:
    """Names of the spiking neurons of an SNN, in module order."""
    return [name for name, m in model.named_modules() if isinstance(m, MultiStepLIF)]
