"""What the NIR writer and reader share: the conventions' constants, the errors, and small
helpers for NIR node parameters (see ``sakd.formats.nir`` for the conventions)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sakd.formats.base import FormatError

DEFAULT_DT = 1e-4
GENERATOR = "sakd"
NIR_FORMAT = "sakd-nir"
NIR_FORMAT_VERSION = 1
TIMINGS = ("layered", "lava")
FIRING_RULES = (">", ">=")
#: largest dense matrix (entries) the reader builds when a chain cannot stay a convolution
MAX_DENSE_ENTRIES = 1 << 24

UNITS = ("integer network: weights are the IR's integer weights; currents and voltages are "
         "u_int/64 and v_int/64; v_threshold = vth; an Affine/Conv2d bias (or beta*v_leak) is "
         "(bias_mant << bias_exp)/64 per step; the input is the encoded integer input")


class NirExportError(FormatError):
    """An IR network that has no exact NIR form; the message names the node and the reason."""


class NirImportError(FormatError):
    """A NIR graph (or file) that does not map onto the IR; ``node`` names the NIR node."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node



def node_error(name: str, node: Any, why: str) -> NirImportError:
    return NirImportError(f"NIR node '{name}' ({type(node).__name__}): {why}", node=name)


def metadata_text(value: Any) -> Any:
    """NIR metadata as JSON-able values (numpy scalars/arrays, bytes)."""
    if isinstance(value, dict):
        return {str(k): metadata_text(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [metadata_text(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def as_array(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def uniform(name: str, node: Any, what: str, value: Any) -> float:
    arr = as_array(value)
    if arr.size == 0:
        raise node_error(name, node, f"{what} is empty")
    first = float(arr.reshape(-1)[0])
    if not np.all(np.isfinite(arr)):
        raise node_error(name, node, f"{what} holds NaN or infinite values")
    if not np.allclose(arr, first, rtol=1e-6, atol=0.0):
        raise node_error(name, node, f"{what} differs between neurons (min {arr.min():g}, max "
                          f"{arr.max():g}); an IR population has one value")
    return first


def int_pair(value: Any, name: str, node: Any, what: str) -> tuple[int, int]:
    arr = np.asarray(value).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or np.any(arr != np.round(arr.astype(np.float64))):
        raise node_error(name, node, f"{what} {value!r} is not an integer or a pair")
    return int(arr[0]), int(arr[1])


def graph_signature(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> str:
    """SHA-256 of a NIR graph's structure (node names and types, edges): sakd records it when it
    writes a file and checks it when it reads one, so a node or edge added, removed or retyped
    (a Delay inserted, say) is noticed even where the network read would not change."""
    import hashlib
    import json

    structure = {"nodes": sorted([str(n), type(node).__name__] for n, node in nodes.items()),
                 "edges": sorted([str(a), str(b)] for a, b in edges)}
    return hashlib.sha256(json.dumps(structure).encode()).hexdigest()
