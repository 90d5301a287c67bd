"""sakd: Self-Architectural Knowledge Distillation for spiking neural networks, lowered to
Loihi-class integer networks and simulated bit-accurately.

This module stays light on purpose: it imports neither torch nor spikingjelly, so that
``sakd.hardware`` (numpy and h5py only) imports on a machine without them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
