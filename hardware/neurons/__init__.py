"""Neuron models as parts: each model is one module holding its integer parameters with their
ranges, its state variables with widths and wrap-or-saturate, its pure step, its reset, the bits
of its message and (where it has one) its float twin. ``Population`` carries a model instance;
the simulator, the counts, the IR file, the writers and the Lava bridge dispatch on it.

Adding a model: write ``hardware/neurons/<model>.py`` (a :class:`NeuronModel` subclass) and
register it here, or call :func:`register_model` (docs/neuron-models.md).

numpy only; Python 3.10 compatible.
"""

from __future__ import annotations

from ..values import IRError
from .base import NeuronModel, StateVariable, parameter
from .cuba_lif import CubaLif
from .resonate import ResonateFire, ResonateFireIz
from .sigma_delta import Delta, Sigma, SigmaDelta

#: model name -> the model's parameter class
NEURON_MODELS: dict[str, type[NeuronModel]] = {}


def register_model(cls: type[NeuronModel]) -> type[NeuronModel]:
    """Register a neuron model under ``cls.model`` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, NeuronModel)) or not cls.model:
        raise TypeError(f"{cls!r} is not a NeuronModel subclass with a `model` name")
    known = NEURON_MODELS.get(cls.model)
    if known is not None and known is not cls:
        raise ValueError(f"neuron model '{cls.model}' is already registered ({known.__qualname__})")
    NEURON_MODELS[cls.model] = cls
    return cls


def neuron_model(name: str) -> type[NeuronModel]:
    """The registered model called ``name``; an error lists the known ones."""
    if name not in NEURON_MODELS:
        raise IRError(f"unknown neuron model {name!r}; known models: {', '.join(sorted(NEURON_MODELS))}")
    return NEURON_MODELS[name]


for _model in (CubaLif, Delta, SigmaDelta, Sigma, ResonateFire, ResonateFireIz):
    register_model(_model)

__all__ = ["NEURON_MODELS", "CubaLif", "Delta", "NeuronModel", "ResonateFire", "ResonateFireIz",
           "Sigma", "SigmaDelta", "StateVariable", "neuron_model", "parameter", "register_model"]
