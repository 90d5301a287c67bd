"""Typed values of IR nodes: the checks every node (and every neuron model's parameters) applies
to what it is given, each raising an :class:`IRError` whose message starts with the node's label.

numpy only; Python 3.10 compatible.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import SakdError


class IRError(SakdError):
    """An invalid IR node or network. ``node`` names the offending node (None: the network)."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


# ---------------------------------------------------------------------------------------------
# value helpers (each error names the node)
# ---------------------------------------------------------------------------------------------


def label_of(kind: str, name: Any) -> str:
    return f"{kind} '{name}'"


def check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise IRError(f"{kind} {name!r}: name must be a non-empty string", node=str(name))


def as_int(value: Any, what: str, label: str, node: str) -> int:
    """A Python int from an int or numpy integer (bools and floats are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise IRError(f"{label}: {what} must be an integer, got {value!r}", node=node)
    return int(value)


def as_positive_float(value: Any, what: str, label: str, node: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise IRError(f"{label}: {what} must be a number, got {value!r}", node=node)
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise IRError(f"{label}: {what} must be a finite positive number, got {value!r}", node=node)
    return value


def as_str(value: Any, what: str, label: str, node: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise IRError(f"{label}: {what} must be a string, got {value!r}", node=node)
    return value


def as_shape(
    value: Any, label: str, node: str, ndims: Iterable[int] | None = None
) -> tuple[int, ...]:
    try:
        dims = (
            tuple(np.asarray(value).reshape(-1).tolist()) if not isinstance(value, tuple) else value
        )
    except Exception as exc:
        raise IRError(
            f"{label}: shape must be a tuple of positive integers, got {value!r}", node=node
        ) from exc
    shape = tuple(as_int(d, "shape entry", label, node) for d in dims)
    if not shape or any(d <= 0 for d in shape):
        raise IRError(
            f"{label}: shape must be a non-empty tuple of positive integers, got {shape}", node=node
        )
    if ndims is not None and len(shape) not in tuple(ndims):
        raise IRError(
            f"{label}: shape {shape} must have {' or '.join(map(str, ndims))} dimensions", node=node
        )
    return shape


def as_pair(value: Any, what: str, label: str, node: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        pair: tuple[Any, ...] = (value, value)
    else:
        try:
            pair = tuple(np.asarray(value).reshape(-1).tolist())
        except Exception as exc:
            raise IRError(
                f"{label}: {what} must be an integer or a pair, got {value!r}", node=node
            ) from exc
    if len(pair) != 2:
        raise IRError(f"{label}: {what} must be an integer or a pair, got {value!r}", node=node)
    out = (as_int(pair[0], what, label, node), as_int(pair[1], what, label, node))
    if min(out) < minimum:
        raise IRError(f"{label}: {what} {out} must be >= {minimum}", node=node)
    return out


def frozen_int_array(value: Any, what: str, label: str, node: str) -> np.ndarray:
    """A read-only int64 copy; float arrays are accepted only when every value is an integer.
    An int64 numpy array that is already read-only is returned as it is (it cannot change, so
    nodes may share it: the copies of one conv in a lowered SEW-ResNet)."""
    if isinstance(value, np.ndarray) and value.dtype == np.int64 and not value.flags.writeable \
            and value.base is None:
        return value
    try:
        arr = np.array(value, copy=True)
    except Exception as exc:
        raise IRError(f"{label}: {what} is not an array: {exc}", node=node) from exc
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise IRError(f"{label}: {what} holds NaN or infinite values", node=node)
        if np.any(arr != np.round(arr)):
            bad = arr[arr != np.round(arr)].reshape(-1)[0]
            raise IRError(f"{label}: {what} must hold integers, found {bad!r}", node=node)
        if arr.size and np.abs(arr).max() >= 2.0**62:
            raise IRError(f"{label}: {what} values are far outside any integer range", node=node)
    elif arr.dtype.kind not in "iub":
        raise IRError(f"{label}: {what} must be an integer array, got dtype {arr.dtype}", node=node)
    elif arr.dtype.kind == "u" and arr.size and arr.max() >= 2**63:
        raise IRError(f"{label}: {what} values are far outside any integer range", node=node)
    arr = arr.astype(np.int64)
    arr.flags.writeable = False
    return arr


def check_range(
    value: int, lo: int, hi: int, what: str, label: str, node: str, why: str = ""
) -> None:
    if not lo <= value <= hi:
        suffix = f" ({why})" if why else ""
        raise IRError(f"{label}: {what} {value} is outside [{lo}, {hi}]{suffix}", node=node)


def refreeze(node: Any, state: dict[str, Any], arrays: tuple[str, ...]) -> None:
    """Unpickling restores numpy arrays writeable: make them read-only again."""
    node.__dict__.update(state)
    for key in arrays:
        getattr(node, key).flags.writeable = False
