"""Exact synapses of the simulator (numpy): Lava's Dense and Conv fixed-point models as float64
GEMMs on integer values, exact by a bound checked at run time (limbs otherwise), and the
structural fan-out of every source neuron (for SynOp counts). See ``sakd.hardware.simulator``.

numpy only; Python 3.10 compatible.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..fixed_point import shift_exp, wrap24
from ..ir import conv2d_output_shape

#: every integer of magnitude below 2^53 is exact in float64
F64_EXACT = 1 << 53
#: |x| < 2^23 is unchanged by wrap24
WRAP_HALF = 1 << 23
#: memory bound (bytes) of an im2col / GEMM block
GEMM_BLOCK_BYTES = 64 << 20



def weight_bound(weight: np.ndarray) -> int:
    """max over output rows of Σ|w| (Python int): with max|x| it bounds every partial sum."""
    w = np.abs(np.asarray(weight, dtype=np.int64)).reshape(weight.shape[0], -1)
    return int(w.sum(axis=1).max()) if w.size else 0


def limb_bits(wsum: int, limit: int) -> int:
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
    bits = limb_bits(wsum, limit)
    x = x.astype(np.int64)
    lo = x & ((1 << bits) - 1)
    hi = x >> bits
    res = _exact_numpy(lo, wsum, f64, limit) + (_exact_numpy(hi, wsum, f64, limit) << bits)
    if out is None:
        return res
    out[...] = res
    return out


def rows_per_block(bytes_per_row: int) -> int:
    return max(1, GEMM_BLOCK_BYTES // max(1, bytes_per_row))


def dense_synapse(
    s: np.ndarray, weight: np.ndarray, weight_exp: int = 0, *, limit: int = F64_EXACT
) -> np.ndarray:
    """Lava Dense (``PyDenseModelBitAcc``): ``a = shift_exp(W @ s, weight_exp)``, exact.

    ``s``: [M, in] integer or bool rows (the source flattened in C,H,W order); ``weight``
    [out, in]. Returns int64 [M, out]."""
    s = np.asarray(s)
    weight = np.asarray(weight)
    return dense_raw(
        s.reshape(s.shape[0], -1),
        weight.astype(np.float64).T,
        weight_bound(weight),
        weight_exp,
        limit=limit,
    )


def dense_raw(
    s: np.ndarray,
    w64t: np.ndarray,
    wsum: int,
    weight_exp: int = 0,
    *,
    limit: int = F64_EXACT,
) -> np.ndarray:
    out = np.empty((s.shape[0], w64t.shape[1]), np.int64)
    rows = rows_per_block(8 * (s.shape[1] + w64t.shape[1]))
    for i in range(0, s.shape[0], rows):
        _exact_numpy(
            s[i : i + rows],
            wsum,
            lambda x: x.astype(np.float64) @ w64t,
            limit,
            out=out[i : i + rows],
        )
    return shift_exp(out, weight_exp)


def conv_weight_matrix(weight: np.ndarray, groups: int) -> np.ndarray:
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
    return conv_raw(
        s,
        conv_weight_matrix(weight, groups),
        weight.shape,
        weight_bound(weight),
        tuple(stride),
        tuple(padding),
        tuple(dilation),
        limit=limit,
    )


def conv_raw(
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
    _, ho, wo = conv2d_output_shape(tuple(s.shape[1:]), tuple(wshape), stride, padding, dilation)
    out = np.empty((m, cout, ho, wo), np.int64)
    # per sample: the padded NHWC copy, the im2col block and the float64 output
    per_row = 8 * (
        (h + 2 * padding[0]) * (w + 2 * padding[1]) * c + ho * wo * (kh * kw * c + 2 * cout)
    )
    rows = rows_per_block(per_row)

    def f64(x: np.ndarray) -> np.ndarray:
        return _conv_f64(x, wmat, (kh, kw), stride, padding, dilation, (ho, wo))

    xmax = 1 if s.dtype == np.bool_ else (int(np.abs(s).max()) if s.size else 0)
    wraps = xmax * wsum >= WRAP_HALF  # else |conv| < 2^23 and wrap24 is the identity
    for i in range(0, m, rows):
        block = _exact_numpy(s[i : i + rows], wsum, f64, limit, out=out[i : i + rows])
        if wraps:
            out[i : i + rows] = wrap24(block)
    return out


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
    _, ho, wo = conv2d_output_shape(tuple(input_shape), tuple(weight_shape), stride, padding, dilation)
    ry = _axis_reach(h, kh, stride[0], padding[0], dilation[0], ho)
    rx = _axis_reach(w, kw, stride[1], padding[1], dilation[1], wo)
    per_position = np.outer(ry, rx) * (cout // groups)
    return np.ascontiguousarray(np.broadcast_to(per_position, (c, h, w)))


