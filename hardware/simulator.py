"""Bit-accurate simulator of an IR network (docs/ir.md; Lava's fixed-point models,
shared/spec/fixed-point.md §1), with exact per-sample operation counts.

Layout: pure integer step functions (``trunc_shift12``, ``wrap24``, ``lif_step``,
``dense_synapse``, ``conv_synapse``) and a thin runner around them.

**How the runner schedules time.** Lava steps every process once per time step; a synapse
delivers at ``t + 1 + delay`` what its source emitted at ``t`` (a ring buffer of ``1 + delay``
slots). Because the IR is acyclic, the runner instead processes one *population* at a time over
all of its steps: it reads the whole output history of each source, shifted by ``1 + delay``
steps (the ring buffer, unrolled in time), so a synapse runs once over ``steps × batch`` rows (one
large GEMM instead of one per step), and then runs the LIF recursion step by step. The result is
the same sequence of integer operations on the same values.

**Windows.** Population ``p`` (latency ``ℓ``) is reset before step ``1 + ℓ`` and its window is
``1 + ℓ .. T + ℓ``. What it does outside its window never reaches another window: its spikes
before the window arrive at a consumer before the consumer's own reset, its spikes after the
window arrive after the consumer's window. So a population that is not recorded is simulated on
its window only (``T`` steps, from zero state), which gives the same readout, predictions and
counts as the full ``T + L`` steps; a recorded population and its ancestors run all ``T + L``
steps, so traces are exactly Lava's (staggered reset included).

**Exact GEMMs.** Synaptic sums run as float64 GEMMs (BLAS) on integer values. Every product
``w · x`` is an integer with ``|w| ≤ 256`` and every partial sum, in whatever order BLAS adds,
is a sum of a subset of the products, so ``|partial| ≤ max_row Σ|w| · max|x|``. When that bound is
below 2^53 every intermediate value is an exactly representable integer and the result is exact
(FMA included). Spikes have ``max|x| = 1``, so a conv/dense needs fan-in · 256 < 2^53; graded
inputs (at most 24 bits, ``|x| ≤ 2^23``) need fan-in < 2^22. The bound is checked at run time
with the actual data; when it fails the input is split into limbs ``x = lo + hi · 2^k`` (each
limb within the bound) and the partial results are combined in int64, which is exact. Never
float32 / TF32.

**State.** ``u`` and ``v`` are 24-bit values (Lava: int32 arrays), kept here in int64 so that
products and sums never overflow. This equals Lava's int32 arithmetic as long as no int32 sum
overflows there. That is guaranteed when the summed synaptic input stays below 2^18 per step
(then ``|a << 6| < 2^24`` and the single wrap keeps ``u`` within 24 bits; the target's
``max_synaptic_input`` is 2^17 − 1). A population whose static bound on ``|a|`` is larger is
checked at run time: ``|a| ≥ 2^25`` (``a << 6`` overflows int32) or ``|u| ≥ 2^31 − 2^25`` after a
step (u left the 24-bit range and keeps growing) raise :class:`SimulationOverflowError`, since
Lava's result would then depend on int32 overflow, which this simulator does not reproduce.

numpy only at import (the torch backend imports torch lazily); Python 3.10 compatible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .counts import NetworkCounts, PopulationCounts, ProjectionCounts
from .ir import Network, Projection
from .target import LOIHI2, TargetSpec

#: every integer of magnitude below 2^53 is exact in float64
F64_EXACT = 1 << 53
#: Lava keeps a_in, u and v in int32 (fixed-point.md §1.1): ``a << 6`` must fit int32, so |a| < 2^25
A_IN_LIMIT = 1 << 25
#: |u| bound after a step that keeps every int32 sum of the next one (u ± 2^24, v + u + bias) exact
U_LIMIT = (1 << 31) - (1 << 25)
#: |x| < 2^23 is unchanged by wrap24
WRAP_HALF = 1 << 23
#: memory bounds (bytes): an im2col / GEMM block, and the state of one batch chunk when
#: ``batch_size`` is None
GEMM_BLOCK_BYTES = 64 << 20
AUTO_CHUNK_BYTES = 1 << 30

BACKENDS = ("numpy", "torch")


class SimulationInputError(ValueError):
    """Inputs or options the simulator cannot use (shape, dtype, range, names)."""


class SimulationOverflowError(OverflowError):
    """Synaptic input or current beyond Lava's int32 state: the chip's result is undefined."""


# ---------------------------------------------------------------------------------------------
# pure integer step functions (numpy arrays or torch int64 tensors alike: operators only)
# ---------------------------------------------------------------------------------------------


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


def lif_step(
    u: Any,
    v: Any,
    a: Any,
    du: int,
    dv: int,
    vth: int,
    bias: Any,
    readout: bool = False,
    target: TargetSpec = LOIHI2,
) -> tuple[Any, Any, Any]:
    """One step of Lava's ``PyLifModelBitAcc`` (fixed-point.md §1.1).

    ``u``, ``v``: int64 arrays holding 24-bit state; ``a``: int64 summed synaptic input of this
    step (or 0); ``bias``: the effective bias ``bias_mant << bias_exp`` (int64, broadcastable).
    Returns the new ``(u, v, s)`` with ``s`` boolean. A readout never fires.
    """
    unity, shift, top = target.decay_unity, target.decay_bits, target.state_max  # 4096, 12, 2^23
    # current: decay by du + 1 (ds_offset = 1), truncated toward zero; add a << 6
    # (du = 4095: the factor is 0, so the decayed term is 0 and u = a << 6)
    decayed_u = 0 if du + 1 == unity else trunc_shift(u * (unity - (du + 1)), shift)
    u = decayed_u + (a << target.act_shift)
    if isinstance(u, int):  # a scalar 0 with du == 4095: u is 0 everywhere (as an array)
        u = v * 0
    # wrap once (not saturate): u > 2^23 -> u - 2^24; u <= -2^23 -> u + 2^24  (u == 2^23 is kept)
    u = u - (u > top) * (2 * top)
    u = u + (u <= -top) * (2 * top)
    # voltage: decay by dv (dm_offset = 0), truncated toward zero (dv = 0 keeps v exactly,
    # dv = 4096 forgets it); add u and the bias; saturate (not wrap) to +-(2^23 - 1)
    if dv == 0:
        decayed_v = v
    elif dv == unity:
        decayed_v = 0
    else:
        decayed_v = trunc_shift(v * (unity - dv), shift)
    v = decayed_v + u + bias
    v = v.clip(-(top - 1), top - 1)
    # spike: strict v > vth << 6; a readout's threshold 2^23 is above the clip, so it never fires
    threshold = top if readout else vth << target.vth_shift
    s = v > threshold
    v = v * ~s  # reset v only; u keeps its value
    return u, v, s


# ---------------------------------------------------------------------------------------------
# exact synapses (numpy)
# ---------------------------------------------------------------------------------------------


def _weight_bound(weight: np.ndarray) -> int:
    """max over output rows of Σ|w| (Python int): with max|x| it bounds every partial sum."""
    w = np.abs(np.asarray(weight, dtype=np.int64)).reshape(weight.shape[0], -1)
    return int(w.sum(axis=1).max()) if w.size else 0


def _limb_bits(wsum: int, limit: int) -> int:
    """Largest k with 2^k · wsum < limit (a limb in [0, 2^k) is then exact)."""
    bits = ((limit - 1) // max(wsum, 1)).bit_length() - 1
    if bits < 1:
        raise OverflowError(
            f"a weight row with Σ|w| = {wsum} cannot be evaluated exactly in float64"
        )
    return bits


def _exact_numpy(
    x: np.ndarray,
    wsum: int,
    f64: Callable[[np.ndarray], np.ndarray],
    limit: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``f64`` (a linear map of integer data, computed in float64) evaluated exactly, as int64.

    ``f64`` takes the integer (or bool) array and computes in float64. It is exact when
    max|x| · wsum < limit (2^53; see the module docstring); else x is split into limbs
    ``x = lo + hi · 2^k`` with ``0 ≤ lo < 2^k`` and ``hi = x >> k`` (floor), each evaluated
    exactly, and ``f(x) = f(lo) + f(hi) << k`` is combined in int64. With ``out`` the result is
    cast into it (the float64 values are integers, so the cast is exact).
    """
    xmax = 1 if x.dtype == np.bool_ else (int(np.abs(x).max()) if x.size else 0)
    if xmax * wsum < limit:  # Python ints: no overflow in the check itself
        res = f64(x)
        if out is None:
            return res.astype(np.int64)
        out[...] = res
        return out
    bits = _limb_bits(wsum, limit)
    x = x.astype(np.int64)
    lo = x & ((1 << bits) - 1)
    hi = x >> bits
    res = _exact_numpy(lo, wsum, f64, limit) + (_exact_numpy(hi, wsum, f64, limit) << bits)
    if out is None:
        return res
    out[...] = res
    return out


def _rows_per_block(bytes_per_row: int) -> int:
    return max(1, GEMM_BLOCK_BYTES // max(1, bytes_per_row))


def dense_synapse(
    s: np.ndarray, weight: np.ndarray, weight_exp: int = 0, *, limit: int = F64_EXACT
) -> np.ndarray:
    """Lava Dense (``PyDenseModelBitAcc``): ``a = shift_exp(W @ s, weight_exp)``, exact.

    ``s``: [M, in] integer or bool rows (the source flattened in C,H,W order); ``weight``
    [out, in]. Returns int64 [M, out]."""
    s = np.asarray(s)
    weight = np.asarray(weight)
    return _dense_raw(
        s.reshape(s.shape[0], -1),
        weight.astype(np.float64).T,
        _weight_bound(weight),
        weight_exp,
        limit=limit,
    )


def _dense_raw(
    s: np.ndarray,
    w64t: np.ndarray,
    wsum: int,
    weight_exp: int = 0,
    *,
    limit: int = F64_EXACT,
) -> np.ndarray:
    out = np.empty((s.shape[0], w64t.shape[1]), np.int64)
    rows = _rows_per_block(8 * (s.shape[1] + w64t.shape[1]))
    for i in range(0, s.shape[0], rows):
        _exact_numpy(
            s[i : i + rows],
            wsum,
            lambda x: x.astype(np.float64) @ w64t,
            limit,
            out=out[i : i + rows],
        )
    return shift_exp(out, weight_exp)


def _conv_weight_matrix(weight: np.ndarray, groups: int) -> np.ndarray:
    """(Cout, Cin/g, kh, kw) → float64 [g, kh·kw·Cin/g, Cout/g], matching the im2col columns."""
    cout, cg, kh, kw = weight.shape
    w = np.asarray(weight, dtype=np.float64).reshape(groups, cout // groups, cg, kh, kw)
    return np.ascontiguousarray(
        w.transpose(0, 3, 4, 2, 1).reshape(groups, kh * kw * cg, cout // groups)
    )


def _conv_f64(
    x: np.ndarray,
    wmat: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """PyTorch cross-correlation of integer x [n, C, H, W] by float64 im2col + GEMM →
    float64 [n, Cout, Ho, Wo] (a transposed view)."""
    n, c, h, w = x.shape
    groups, _, cout_g = wmat.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (ho, wo) = kernel, stride, padding, dilation, out_hw
    xp = np.zeros((n, h + 2 * ph, w + 2 * pw, c), np.float64)  # NHWC, zero padded
    xp[:, ph : ph + h, pw : pw + w, :] = x.transpose(0, 2, 3, 1)
    s_n, s_h, s_w, s_c = xp.strides
    cg = c // groups
    patches = as_strided(
        xp,
        shape=(n, ho, wo, kh, kw, groups, cg),
        strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c * cg, s_c),
        writeable=False,
    )
    cols = patches.transpose(5, 0, 1, 2, 3, 4, 6).reshape(groups, n * ho * wo, kh * kw * cg)
    out = np.matmul(cols, wmat)  # [g, n·Ho·Wo, Cout/g]
    return out.transpose(1, 0, 2).reshape(n, ho, wo, groups * cout_g).transpose(0, 3, 1, 2)


def conv_synapse(
    s: np.ndarray,
    weight: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    *,
    limit: int = F64_EXACT,
) -> np.ndarray:
    """Lava Conv (``PyConvModelFixed``) in PyTorch cross-correlation order: ``a = wrap24(conv2d(s, W))``.

    ``s``: [M, C, H, W] integer or bool; ``weight`` (Cout, C/groups, kh, kw). Returns int64
    [M, Cout, Ho, Wo]. ``weight_exp`` does not exist here: Lava's Conv ignores it."""
    s = np.asarray(s)
    weight = np.asarray(weight)
    return _conv_raw(
        s,
        _conv_weight_matrix(weight, groups),
        weight.shape,
        _weight_bound(weight),
        tuple(stride),
        tuple(padding),
        tuple(dilation),
        limit=limit,
    )


def _conv_raw(
    s: np.ndarray,
    wmat: np.ndarray,
    wshape: tuple[int, ...],
    wsum: int,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    *,
    limit: int = F64_EXACT,
) -> np.ndarray:
    cout, _, kh, kw = wshape
    m, c, h, w = s.shape
    _, ho, wo = _conv_out(s.shape[1:], wshape, stride, padding, dilation)
    out = np.empty((m, cout, ho, wo), np.int64)
    # per sample: the padded NHWC copy, the im2col block and the float64 output
    per_row = 8 * (
        (h + 2 * padding[0]) * (w + 2 * padding[1]) * c + ho * wo * (kh * kw * c + 2 * cout)
    )
    rows = _rows_per_block(per_row)

    def f64(x: np.ndarray) -> np.ndarray:
        return _conv_f64(x, wmat, (kh, kw), stride, padding, dilation, (ho, wo))

    xmax = 1 if s.dtype == np.bool_ else (int(np.abs(s).max()) if s.size else 0)
    wraps = xmax * wsum >= WRAP_HALF  # else |conv| < 2^23 and wrap24 is the identity
    for i in range(0, m, rows):
        block = _exact_numpy(s[i : i + rows], wsum, f64, limit, out=out[i : i + rows])
        if wraps:
            out[i : i + rows] = wrap24(block)
    return out


def _conv_out(
    in_shape: tuple[int, ...],
    wshape: tuple[int, ...],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int]:
    from .ir import conv2d_output_shape

    return conv2d_output_shape(tuple(in_shape), tuple(wshape), stride, padding, dilation)


# ---------------------------------------------------------------------------------------------
# structural counts
# ---------------------------------------------------------------------------------------------


def _axis_reach(size: int, k: int, stride: int, pad: int, dil: int, out: int) -> np.ndarray:
    """For each input index along one axis: how many (output index, kernel tap) pairs read it."""
    counts = np.zeros(size, np.int64)
    for o in range(out):
        for j in range(k):
            i = o * stride - pad + j * dil
            if 0 <= i < size:
                counts[i] += 1
    return counts


def conv_fanout(
    input_shape: tuple[int, int, int],
    weight_shape: tuple[int, int, int, int],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """int64 [C, H, W]: the structural fan-out of each input neuron of a conv2d: the number of
    output positions whose receptive field contains it (borders included: fewer than kh·kw
    there), times Cout/groups. A 2-D receptive field is a product of two 1-D ones, so the count
    is the product of the per-axis counts."""
    c, h, w = input_shape
    cout, _, kh, kw = weight_shape
    _, ho, wo = _conv_out(input_shape, weight_shape, stride, padding, dilation)
    ry = _axis_reach(h, kh, stride[0], padding[0], dilation[0], ho)
    rx = _axis_reach(w, kw, stride[1], padding[1], dilation[1], wo)
    per_position = np.outer(ry, rx) * (cout // groups)
    return np.ascontiguousarray(np.broadcast_to(per_position, (c, h, w)))


# ---------------------------------------------------------------------------------------------
# backends: what differs between numpy and torch (arrays, GEMMs, transfers)
# ---------------------------------------------------------------------------------------------


@dataclass
class _ProjPlan:
    proj: Projection
    source_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    fanout: np.ndarray  # int64 [source neurons]: structural fan-out of each source neuron
    synapses: int
    dense_flops: int
    wsum: int  # max over output rows of Σ|w|
    a_bound: int = 0  # a static bound on |a| of this projection
    prepared: Any = None  # backend-specific weights


class _NumpyOps:
    name = "numpy"

    def prepare(self, plan: _ProjPlan) -> Any:
        w = plan.proj.weight
        if plan.proj.kind == "dense":
            return np.ascontiguousarray(w.astype(np.float64).T)
        return _conv_weight_matrix(w, plan.proj.groups)

    def asarray(self, arr: np.ndarray) -> np.ndarray:
        return arr

    def zeros(self, shape: tuple[int, ...], boolean: bool = False) -> np.ndarray:
        return np.zeros(shape, np.bool_ if boolean else np.int64)

    def synapse(self, plan: _ProjPlan, s: np.ndarray) -> np.ndarray:
        p = plan.proj
        if p.kind == "dense":
            a = _dense_raw(s.reshape(s.shape[0], -1), plan.prepared, plan.wsum, p.weight_exp)
            return a.reshape((s.shape[0],) + plan.target_shape)
        return _conv_raw(
            s, plan.prepared, p.weight.shape, plan.wsum, p.stride, p.padding, p.dilation
        )

    def absmax(self, x: np.ndarray) -> int:
        return int(np.abs(x).max()) if x.size else 0

    def numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def count_dot(self, counts: np.ndarray, fanout: np.ndarray) -> np.ndarray:
        """int64 [B]: Σ_i counts[b, i] · fanout[i] (float64 GEMV: every partial sum < 2^53)."""
        return (counts.astype(np.float64) @ fanout.astype(np.float64)).astype(np.int64)


class _TorchOps:
    """int64 tensors for state; float64 GEMMs / convolutions under the same exactness bound,
    with cuDNN disabled (its FFT / Winograd algorithms are not exact) and never TF32."""

    name = "torch"

    def __init__(self, device: str) -> None:
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - torch is in the main environment
            raise SimulationInputError(
                "backend 'torch' needs PyTorch, which is not installed"
            ) from exc
        self.torch = torch
        try:
            self.device = torch.device(device)
            torch.zeros(1, device=self.device)
        except (RuntimeError, AssertionError) as exc:
            raise SimulationInputError(f"torch device {device!r} is not available: {exc}") from exc

    def prepare(self, plan: _ProjPlan) -> Any:
        w = self.torch.from_numpy(plan.proj.weight.astype(np.float64)).to(self.device)
        return w.t().contiguous() if plan.proj.kind == "dense" else w.contiguous()

    def asarray(self, arr: np.ndarray) -> Any:
        return self.torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)

    def zeros(self, shape: tuple[int, ...], boolean: bool = False) -> Any:
        dtype = self.torch.bool if boolean else self.torch.int64
        return self.torch.zeros(shape, dtype=dtype, device=self.device)

    def _exact(self, x: Any, wsum: int, f64: Callable[[Any], Any]) -> Any:
        torch = self.torch
        xmax = 1 if x.dtype == torch.bool else (int(x.abs().max()) if x.numel() else 0)
        if xmax * wsum < F64_EXACT:
            return f64(x.to(torch.float64)).to(torch.int64)
        bits = _limb_bits(wsum, F64_EXACT)
        x = x.to(torch.int64)
        return self._exact(x & ((1 << bits) - 1), wsum, f64) + (
            self._exact(x >> bits, wsum, f64) << bits
        )

    def synapse(self, plan: _ProjPlan, s: Any) -> Any:
        torch = self.torch
        p = plan.proj
        m = s.shape[0]
        out = torch.empty((m,) + plan.target_shape, dtype=torch.int64, device=self.device)
        if p.kind == "dense":
            flat = s.reshape(m, -1)
            w = plan.prepared
            rows = _rows_per_block(8 * (flat.shape[1] + w.shape[1]))
            for i in range(0, m, rows):
                acc = self._exact(flat[i : i + rows], plan.wsum, lambda xf: xf @ w)
                out[i : i + rows] = shift_exp(acc, p.weight_exp).reshape((-1,) + plan.target_shape)
            return out
        conv2d = torch.nn.functional.conv2d
        kh, kw = p.weight.shape[2:]
        per_row = 8 * (
            int(np.prod(plan.source_shape)) + int(np.prod(plan.target_shape)) * (1 + kh * kw)
        )
        rows = _rows_per_block(per_row)
        xmax = 1 if s.dtype == torch.bool else (int(s.abs().max()) if s.numel() else 0)
        wraps = xmax * plan.wsum >= WRAP_HALF  # else wrap24 is the identity
        with torch.backends.cudnn.flags(enabled=False):
            for i in range(0, m, rows):
                acc = self._exact(
                    s[i : i + rows],
                    plan.wsum,
                    lambda xf: conv2d(
                        xf, plan.prepared, None, p.stride, p.padding, p.dilation, p.groups
                    ),
                )
                out[i : i + rows] = wrap24(acc) if wraps else acc
        return out

    def absmax(self, x: Any) -> int:
        return int(x.abs().max()) if x.numel() else 0

    def numpy(self, x: Any) -> np.ndarray:
        if isinstance(x, np.ndarray):
            return x
        return x.detach().cpu().numpy()

    def count_dot(self, counts: Any, fanout: np.ndarray) -> np.ndarray:
        f = self.torch.from_numpy(fanout.astype(np.float64)).to(self.device)
        return self.numpy((counts.to(self.torch.float64) @ f).to(self.torch.int64))


# ---------------------------------------------------------------------------------------------
# the runner
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """What one simulation returns (arrays are numpy, axis 0 or 1 the sample)."""

    readout_v: np.ndarray  # int64 [B, *readout.shape]: the readout's v at step T + L
    predictions: np.ndarray  # int64 [B]: argmax of the flattened readout_v, ties -> lowest index
    counts: NetworkCounts
    traces: dict[str, dict[str, np.ndarray]]  # pop -> {"u", "v": int64, "s": bool} [T+L, B, *shape]
    time_steps: int
    latency: int
    backend: str


@dataclass
class _Signal:
    """A source's output history: ``arr[i]`` is the output of global step ``t0 + i``; zero
    outside ``t0 .. t0 + n − 1``. ``static``: ``arr`` is one [B, ...] value held for all n steps."""

    arr: Any
    t0: int
    n: int
    static: bool = False


@dataclass
class _Plan:
    network: Network
    time_steps: int
    order: tuple[str, ...]
    latencies: dict[str, int]
    full: frozenset[str]
    record: tuple[str, ...]
    projections: dict[str, _ProjPlan]
    bias: dict[str, Any] = field(default_factory=dict)
    # populations whose static |a| bound allows int32 overflow in Lava: checked at run time
    check_a: frozenset[str] = frozenset()  # |a| may reach A_IN_LIMIT
    check_u: frozenset[str] = frozenset()  # |a| may reach 2^18: u may leave 24 bits


def _make_plan(network: Network, time_steps: int, record: tuple[str, ...], ops: Any) -> _Plan:
    lat = network.latencies
    # recorded populations and all their ancestors run every step (exact traces)
    full: set[str] = set()
    stack = list(record)
    while stack:
        name = stack.pop()
        if name in full or name == network.input.name:
            continue
        full.add(name)
        stack.extend(p.source for p in network.projections_into(name))
    projections: dict[str, _ProjPlan] = {}
    for proj in network.projections:
        src = network.source_shape(proj.source)
        tgt = network.population(proj.target).shape
        if proj.kind == "dense":
            fanout = np.full(int(np.prod(src)), proj.weight.shape[0], np.int64)
            flops = int(proj.weight.size)
        else:
            fanout = conv_fanout(
                src, proj.weight.shape, proj.stride, proj.padding, proj.dilation, proj.groups
            ).reshape(-1)
            flops = int(np.prod(tgt)) * int(np.prod(proj.weight.shape[1:]))
        wsum = _weight_bound(proj.weight)
        xmax = 1 << (network.input.bits - 1) if proj.source == network.input.name else 1
        if proj.kind == "conv2d":
            bound = min(wsum * xmax, WRAP_HALF)
        else:  # |floor(y / 2^k)| <= (|y| >> k) + 1
            bound = shift_exp(wsum * xmax, proj.weight_exp) + (proj.weight_exp < 0)
        plan = _ProjPlan(proj, src, tgt, fanout, int(fanout.sum()), flops, wsum, bound)
        plan.prepared = ops.prepare(plan)
        projections[proj.name] = plan
    spec = network.target_spec
    a_bound = {
        pop.name: sum(projections[p.name].a_bound for p in network.projections_into(pop.name))
        for pop in network.populations
    }
    u_safe = (2 * spec.state_max) >> spec.act_shift  # 2^18: |a << 6| < 2^24 keeps u in 24 bits
    check_a = frozenset(n for n, b in a_bound.items() if b >= A_IN_LIMIT)
    check_u = frozenset(n for n, b in a_bound.items() if b >= u_safe)
    bias = {p.name: ops.asarray(p.effective_bias()) for p in network.populations}
    return _Plan(
        network,
        time_steps,
        network.topological_order(),
        lat,
        frozenset(full),
        record,
        projections,
        bias,
        check_a,
        check_u,
    )


def _run_chunk(plan: _Plan, ops: Any, x: np.ndarray, sequence: bool) -> dict[str, Any]:
    net, T = plan.network, plan.time_steps
    spec = net.target_spec
    L = net.latency
    inp = net.input
    B = x.shape[1] if sequence else x.shape[0]
    xs = ops.asarray(x)
    signals: dict[str, _Signal] = {inp.name: _Signal(xs, 1, T, static=not sequence)}
    consumers = {name: len(net.projections_from(name)) for name in (inp.name, *plan.order)}
    result: dict[str, Any] = {"pop": {}, "proj": {}, "traces": {}}

    # input-side counts: window = steps 1..T
    if net.projections_from(inp.name):
        nz = xs != 0
        per_neuron = (nz.sum(0) if sequence else nz * T).reshape(B, -1)
        for proj in net.projections_from(inp.name):
            dot = ops.count_dot(per_neuron, plan.projections[proj.name].fanout)
            zero = np.zeros(B, np.int64)
            result["proj"][proj.name] = (zero, dot) if inp.encoding == "graded" else (dot, zero)

    for name in plan.order:
        pop = net.population(name)
        ell = plan.latencies[name]
        full = name in plan.full
        t0, n = (1, T + L) if full else (1 + ell, T)
        shape = pop.shape

        # summed synaptic input a for steps t0 .. t0 + n - 1: source step t - 1 - delay
        A = None
        for proj in net.projections_into(name):
            sig = signals[proj.source]
            d = proj.delay
            lo = max(t0 - 1 - d, sig.t0)
            hi = min(t0 + n - 2 - d, sig.t0 + sig.n - 1)
            if lo <= hi:
                if A is None:
                    A = ops.zeros((n, B) + shape)
                dst = slice(lo + 1 + d - t0, hi + 2 + d - t0)
                pplan = plan.projections[proj.name]
                if sig.static:  # the same input every step: one synapse evaluation
                    A[dst] += ops.synapse(pplan, sig.arr)[None]
                else:
                    src = sig.arr[lo - sig.t0 : hi - sig.t0 + 1]
                    k = hi - lo + 1
                    a = ops.synapse(pplan, src.reshape((k * B,) + src.shape[2:]))
                    A[dst] += a.reshape((k, B) + shape)
            consumers[proj.source] -= 1
            if consumers[proj.source] == 0:
                del signals[proj.source]
        if A is not None and name in plan.check_a:
            amax = ops.absmax(A)
            if amax >= A_IN_LIMIT:
                raise SimulationOverflowError(
                    f"population '{name}': summed synaptic input a reaches {amax}; a << 6 overflows "
                    f"Lava's int32 state (|a| < 2^25), so the chip's result is undefined (the "
                    f"target's max synaptic input is {spec.max_synaptic_input}). Reduce weight_exp, "
                    f"the input bits or the weights."
                )

        # the LIF recursion, with the staggered reset (interval T, offset 1 + latency)
        S = ops.zeros((n, B) + shape, boolean=True)
        u = v = ops.zeros((B,) + shape)
        record = name in plan.record
        if record:
            tr = {"u": ops.zeros((n, B) + shape), "v": ops.zeros((n, B) + shape), "s": S}
        bias = plan.bias[name]
        no_input = ops.zeros((B,) + shape) if A is None else None
        check_u = name in plan.check_u
        for i in range(n):
            t = t0 + i
            if (t - 1 - ell) % T == 0:
                u = v = ops.zeros((B,) + shape)
            a = A[i] if A is not None else no_input
            u, v, s = lif_step(u, v, a, pop.du, pop.dv, pop.vth, bias, pop.is_readout, spec)
            if check_u:
                umax = ops.absmax(u)
                if umax >= U_LIMIT:
                    raise SimulationOverflowError(
                        f"population '{name}': u reaches {umax} at step {t}, beyond what Lava's "
                        f"int32 state holds exactly (|a| per step exceeds the target's max synaptic "
                        f"input {spec.max_synaptic_input}, so u left its 24 bits and kept growing). "
                        f"Reduce weight_exp, the input bits or the weights."
                    )
            S[i] = s
            if record:
                tr["u"][i] = u
                tr["v"][i] = v
        if record:
            result["traces"][name] = {k: ops.numpy(val) for k, val in tr.items()}
        if pop.is_readout:
            result["readout_v"] = ops.numpy(v)

        # counts over the window (global steps 1 + ell .. T + ell)
        w0 = 1 + ell - t0
        s_win = S[w0 : w0 + T]
        per_step = ops.numpy(s_win.reshape(T, B, -1).sum(-1)).T
        active_mask = s_win if A is None else ((A[w0 : w0 + T] != 0) | s_win)
        active = ops.numpy(active_mask.reshape(T, B, -1).sum((0, 2)))
        result["pop"][name] = (per_step.astype(np.int64), active.astype(np.int64))
        outgoing = net.projections_from(name)
        if outgoing:
            per_neuron = s_win.sum(0).reshape(B, -1)
            for proj in outgoing:
                dot = ops.count_dot(per_neuron, plan.projections[proj.name].fanout)
                result["proj"][proj.name] = (dot, np.zeros(B, np.int64))
            signals[name] = _Signal(S, t0, n)
        del A
    return result


# ---------------------------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------------------------


def _check_inputs(network: Network, inputs: Any, time_steps: int, sequence: bool) -> np.ndarray:
    inp = network.input
    if hasattr(inputs, "detach") and hasattr(inputs, "cpu"):  # a torch tensor
        inputs = inputs.detach().cpu().numpy()
    try:
        arr = np.asarray(inputs)
    except Exception as exc:
        raise SimulationInputError(f"inputs are not an array: {exc}") from exc
    if arr.dtype.kind in "fc":
        if np.isnan(arr).any():
            raise SimulationInputError(f"inputs for input '{inp.name}' contain NaN")
        raise SimulationInputError(
            f"inputs for input '{inp.name}' have dtype {arr.dtype}; the simulator takes the encoded "
            f"integers: pass network.input.encode(x)"
        )
    if arr.dtype.kind not in "biu":
        raise SimulationInputError(
            f"inputs for input '{inp.name}' have non-integer dtype {arr.dtype}"
        )
    expected = ("T", "B") + inp.shape if sequence else ("B",) + inp.shape
    ok = arr.ndim == len(expected) and tuple(arr.shape[-len(inp.shape) :]) == inp.shape
    if ok and sequence and arr.shape[0] != time_steps:
        ok = False
    if not ok:
        raise SimulationInputError(
            f"inputs for input '{inp.name}' have shape {arr.shape}; expected "
            f"[{', '.join(map(str, expected))}]"
            + (f" with T = {time_steps}" if sequence else "")
            + (
                " (a sequence input needs sequence=True)"
                if not sequence and arr.ndim == len(inp.shape) + 2
                else ""
            )
        )
    batch = arr.shape[1] if sequence else arr.shape[0]
    if batch == 0:
        raise SimulationInputError(f"inputs for input '{inp.name}' hold no samples")
    lo, hi = inp.value_range
    if arr.size:
        amin, amax = int(arr.min()), int(arr.max())
        if amin < lo or amax > hi:
            bad = amin if amin < lo else amax
            what = (
                "spike input takes 0 or 1"
                if inp.encoding == "spikes"
                else f"{inp.bits}-bit graded input takes [{lo}, {hi}]"
            )
            raise SimulationInputError(
                f"inputs for input '{inp.name}': value {bad} is out of range (a {what}); encode with "
                f"network.input.encode(x)"
            )
    return arr.astype(np.int64)


def _auto_chunk(
    network: Network, time_steps: int, full: frozenset[str], record: Sequence[str]
) -> int:
    """Samples per chunk so that one chunk's state stays near AUTO_CHUNK_BYTES."""
    L = network.latency
    live = 0
    peak = 0
    for pop in network.populations:
        steps = time_steps + L if pop.name in full else time_steps
        size = pop.size * steps
        live += size  # spike history (bool) of every population, as an upper bound
        peak = max(peak, 3 * 8 * size)  # a (int64) plus a synapse result and a temporary
        if pop.name in record:
            live += 2 * 8 * pop.size * (time_steps + L)
    per_sample = live + peak + 8 * network.input.size * (time_steps + 1)
    return max(1, AUTO_CHUNK_BYTES // max(per_sample, 1))


def simulate(
    network: Network,
    inputs: Any,
    *,
    time_steps: int,
    sequence: bool = False,
    record: Sequence[str] = (),
    backend: str = "numpy",
    device: str = "cpu",
    batch_size: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> SimulationResult:
    """Simulate ``network`` bit-accurately on a batch of encoded inputs (docs/ir.md).

    ``inputs``: integers from ``network.input.encode``, shape ``[B, *input.shape]`` (a static
    input, emitted at steps 1..T) or, with ``sequence=True``, ``[T, B, *input.shape]``.
    ``record``: population names whose u, v and spikes are returned for all T + L steps.
    ``backend``: ``numpy`` or ``torch`` (``device`` e.g. ``cuda``; same results bit for bit).
    ``batch_size``: samples per chunk (memory bound); None picks one from a ~1 GiB budget.
    ``progress(done, total)`` is called after each chunk.
    """
    if not isinstance(network, Network):
        raise SimulationInputError(f"simulate needs a Network, got {type(network).__name__}")
    if (
        isinstance(time_steps, (bool, np.bool_))
        or not isinstance(time_steps, (int, np.integer))
        or time_steps < 1
    ):
        raise SimulationInputError(f"time_steps must be a positive integer, got {time_steps!r}")
    time_steps = int(time_steps)
    if isinstance(record, str):
        record = (record,)
    record = tuple(record)
    names = {p.name for p in network.populations}
    for name in record:
        if name not in names:
            raise SimulationInputError(
                f"cannot record '{name}': not a population of the network (populations: {sorted(names)})"
            )
    if backend not in BACKENDS:
        raise SimulationInputError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "numpy" and str(device) != "cpu":
        raise SimulationInputError(f"backend 'numpy' runs on the CPU only, got device {device!r}")
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise SimulationInputError(
            f"batch_size must be a positive integer or None, got {batch_size!r}"
        )
    x = _check_inputs(network, inputs, time_steps, sequence)

    ops = _NumpyOps() if backend == "numpy" else _TorchOps(device)
    plan = _make_plan(network, time_steps, record, ops)
    total = x.shape[1] if sequence else x.shape[0]
    chunk = (
        int(batch_size)
        if batch_size is not None
        else _auto_chunk(network, time_steps, plan.full, record)
    )

    parts: list[dict[str, Any]] = []
    for start in range(0, total, chunk):
        xc = x[:, start : start + chunk] if sequence else x[start : start + chunk]
        parts.append(_run_chunk(plan, ops, xc, sequence))
        if progress is not None:
            progress(min(start + chunk, total), total)

    readout_v = np.concatenate([p["readout_v"] for p in parts]).astype(np.int64)
    predictions = np.argmax(readout_v.reshape(total, -1), axis=1).astype(np.int64)
    pop_counts = {}
    for pop in network.populations:
        pop_counts[pop.name] = PopulationCounts(
            name=pop.name,
            neurons=pop.size,
            time_steps=time_steps,
            spikes_per_step=np.concatenate([p["pop"][pop.name][0] for p in parts]),
            active_updates=np.concatenate([p["pop"][pop.name][1] for p in parts]),
        )
    proj_counts = {}
    for proj in network.projections:
        pp = plan.projections[proj.name]
        proj_counts[proj.name] = ProjectionCounts(
            name=proj.name,
            source=proj.source,
            target=proj.target,
            synapses=pp.synapses,
            synops=np.concatenate([p["proj"][proj.name][0] for p in parts]),
            graded_macs=np.concatenate([p["proj"][proj.name][1] for p in parts]),
            dense_flops=pp.dense_flops,
        )
    traces = {
        name: {
            key: np.concatenate([p["traces"][name][key] for p in parts], axis=1)
            for key in ("u", "v", "s")
        }
        for name in record
    }
    return SimulationResult(
        readout_v=readout_v,
        predictions=predictions,
        counts=NetworkCounts(
            time_steps=time_steps, samples=total, populations=pop_counts, projections=proj_counts
        ),
        traces=traces,
        time_steps=time_steps,
        latency=network.latency,
        backend=backend,
    )


def readout_to_float(network: Network, readout_v: np.ndarray, time_steps: int) -> np.ndarray:
    """float64 mean logits: ``readout_v / (64 · readout.scale · T)``. The readout's v at step
    T + L is the integer image of the float SNN's logits summed over the T steps (docs/ir.md)."""
    spec = network.target_spec
    scale = (1 << spec.act_shift) * network.readout.scale * int(time_steps)
    return np.asarray(readout_v, dtype=np.float64) / scale


__all__ = [
    "A_IN_LIMIT",
    "F64_EXACT",
    "U_LIMIT",
    "SimulationInputError",
    "SimulationOverflowError",
    "SimulationResult",
    "conv_fanout",
    "conv_synapse",
    "dense_synapse",
    "lif_step",
    "readout_to_float",
    "shift_exp",
    "simulate",
    "trunc_shift",
    "trunc_shift12",
    "wrap24",
    "wrap_signed",
]
