"""Integer primitives of Loihi's arithmetic (shared/spec/fixed-point.md): pure functions of
operators only, so that numpy arrays and torch int64 tensors both work. The neuron models and the
synapses of the simulator are built from them.

numpy only at import; Python 3.10 compatible.
"""

from __future__ import annotations

from typing import Any


def trunc_shift(p: Any, bits: int) -> Any:
    """``sign(p) · (|p| >> bits)``: division by 2^bits truncated toward zero, for int64 ``p``.

    Branch-free: an arithmetic shift floors, so negative values get ``2^bits − 1`` added first
    (``p >> 63`` is −1 for negative p, 0 otherwise).
    """
    return (p + ((p >> 63) & ((1 << bits) - 1))) >> bits


def trunc_shift12(p: Any) -> Any:
    """``trunc0(p / 4096)``: Lava's decay shift (``decay_shift = 12``)."""
    return trunc_shift(p, 12)


def wrap_signed(x: Any, bits: int) -> Any:
    """Two's-complement wrap of int64 ``x`` to ``bits`` bits: ``((x + 2^(b−1)) mod 2^b) − 2^(b−1)``."""
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def wrap24(x: Any) -> Any:
    """Lava Conv's ``signed_clamp(x, 24)``: wrap (not saturate) to 24 bits."""
    return wrap_signed(x, 24)


def shift_exp(acc: Any, weight_exp: int) -> Any:
    """Dense ``weight_exp``: ``acc << e`` for e ≥ 0, else ``acc >> −e`` (arithmetic = floor).
    Not saturated (Lava's Python Dense does not saturate)."""
    return acc << weight_exp if weight_exp >= 0 else acc >> -weight_exp
