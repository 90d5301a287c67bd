"""Architectures (each an ANN), the spikify transform and the spiking neurons."""

from sakd.models.base import Network, SpikeSite
from sakd.models.neurons import LIFSettings, MultiStepLIF
from sakd.models.registry import ARCHITECTURES, ArchSpec, ModelError, arch_spec, build_model
from sakd.models.spikify import SpikifyError, neuron_names, spikify

__all__ = [
    "ARCHITECTURES", "ArchSpec", "LIFSettings", "ModelError", "MultiStepLIF", "Network",
    "SpikeSite", "SpikifyError", "arch_spec", "build_model", "neuron_names", "spikify",
]
