"""netx HDF5 (lava-dl's ``lava.lib.dl.netx.hdf5.Network``): the reader (``read``: every
network netx loads), the writer (``write``: what netx can express of the IR), the inspector and
the shared arithmetic (``common``)."""

from __future__ import annotations

from pathlib import Path

import h5py

from sakd.formats.base import Format
from sakd.hardware.target import NETX_BIAS_EXP

from .common import (
    NETX_DEFAULT_READOUT,
    SUPPORT,
    DenseWeights,
    NetxExportError,
    NetxImportError,
    netx_dense_weights,
    netx_layers,
    netx_rf_decays,
)
from .inspect import inspect_netx
from .read import INPUT_MODES, read_netx
from .write import NetxLayer, is_or_population, netx_chain, netx_hardware_notes, write_netx


def detect(path: Path) -> bool:
    """A netx file: HDF5 with a ``layer`` group (lava-dl's ``netx.hdf5.Network`` schema)."""
    try:
        with h5py.File(path, "r") as f:
            return "layer" in f
    except (OSError, RuntimeError, ValueError):
        return False


FORMAT = Format(
    name="netx", title="netx HDF5", suffixes=(".netx.h5", ".net", ".h5"),
    file_name="network.netx.h5", supports=SUPPORT, detect=detect, read=read_netx,
    write=write_netx, inspect=inspect_netx,
    read_options=("input_message_bits", "input_mode", "input_shape", "spike_exp",
                  "sparse_fc_layer", "time_steps"),
    notes=netx_hardware_notes,
    description="Intel lava-dl's netx HDF5 (sequential networks), run by lava.lib.dl.netx",
)

__all__ = [
    "FORMAT",
    "INPUT_MODES",
    "NETX_BIAS_EXP",
    "NETX_DEFAULT_READOUT",
    "DenseWeights",
    "NetxExportError",
    "NetxImportError",
    "NetxLayer",
    "detect",
    "inspect_netx",
    "is_or_population",
    "netx_chain",
    "netx_dense_weights",
    "netx_hardware_notes",
    "netx_layers",
    "netx_rf_decays",
    "read_netx",
    "write_netx",
]
