"""Exact synapses of the simulator (numpy): Lava's Dense and Conv fixed-point models as float32
or float64 GEMMs on integer values, each exact by a bound checked at run time (limbs
otherwise), and the structural fan-out of every source neuron (for SynOp counts).

**Why a float GEMM on integers is exact.** Let ``x`` be integers with ``|x| ≤ X`` and ``W``
integers whose rows have ``Σ|w| ≤ S`` (``weight_bound``). Every product ``w · x`` is an integer
with ``|w · x| ≤ S · X``, and every partial sum that a GEMM forms, in any order and blocking, with
or without fused multiply-add, is the sum of a subset of one row's products, so its magnitude is
at most ``S · X`` too. A binary float format with a ``p``-bit significand represents every
integer of magnitude ≤ 2^p exactly, and the sum or product of two exactly represented integers
whose exact result is such an integer is computed exactly (IEEE 754 rounds only when the exact
result is not representable). So when ``S · X < 2^p`` every intermediate value is exact and so
is the result: ``p = 24`` for float32 (``F32_EXACT``), ``p = 53`` for float64 (``F64_EXACT``).
Inputs are converted exactly too (``|x| ≤ X < 2^p``), weights have ``|w| ≤ 256``. For binary
spikes ``X = 1`` and the float32 bound is ``S < 2^24``: any fan-in with ``fan-in · 256 < 2^24``
(65,535 inputs of weight 256), so every projection from spikes of a Loihi-sized network runs in
float32; graded messages (inputs of ``bits`` bits, sigma-delta) have their own ``X`` — the
largest magnitude actually present in the block, measured before the GEMM —, and take float32,
float64 or limbs by the same test. When neither format holds the bound the input is split into
limbs ``x = lo + hi · 2^k`` (``0 ≤ lo < 2^k``, each within the bound), evaluated separately and
combined in int64. A failed bound never rounds: it falls back to the next format. Formats with
fewer bits (TF32: p = 11, fp16: 11, bf16: 8) are never used here.

See ``sakd.hardware.simulator``.

numpy only; Python 3.10 compatible.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..fixed_point import shift_exp, wrap24
from ..ir import conv2d_output_shape, upsample_row_bound

#: every integer of magnitude below 2^53 is exact in float64
F64_EXACT = 1 << 53
#: every integer of magnitude below 2^24 is exact in float32
F32_EXACT = 1 << 24
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


def gemm_format(bound: int, limit: int = F64_EXACT) -> str | None:
    """The narrowest float format whose GEMMs are exact for partial sums of magnitude ≤
    ``bound`` (module docstring): ``"float32"`` when ``bound < 2^24``, ``"float64"`` when
    ``bound < 2^53`` (``limit``: a smaller float64 limit, for tests of the fallbacks), None
    when neither is exact (limbs)."""
    if bound < min(F32_EXACT, limit):
        return "float32"
    if bound < limit:
        return "float64"
    return None


def _exact_numpy(
    x: np.ndarray,
    wsum: int,
    f: Callable[[np.ndarray, str], np.ndarray],
    limit: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``f`` (a linear map of integer data, computed in a float format) evaluated exactly, as int64.

    ``f(x, fmt)`` takes the integer (or bool) array and computes in ``fmt`` (``"float32"`` or
    ``"float64"``). The format is the narrowest that is exact for ``max|x| · wsum`` (measured
    here, see ``gemm_format``); when none is, x is split into limbs ``x = lo + hi · 2^k`` with
    ``0 ≤ lo < 2^k`` and ``hi = x >> k`` (floor), each evaluated exactly, and
    ``f(x) = f(lo) + f(hi) << k`` is combined in int64. With ``out`` the result is cast into it
    (the float values are integers, so the cast is exact).
    """
    xmax = 1 if x.dtype == np.bool_ else (int(np.abs(x).max()) if x.size else 0)
    fmt = gemm_format(xmax * wsum, limit)  # Python ints: no overflow in the check itself
    if fmt is not None:
        res = f(x, fmt)
        if out is None:
            return res.astype(np.int64)
        out[...] = res
        return out
    bits = limb_bits(wsum, limit)
    x = x.astype(np.int64)
    lo = x & ((1 << bits) - 1)
    hi = x >> bits
    res = _exact_numpy(lo, wsum, f, limit) + (_exact_numpy(hi, wsum, f, limit) << bits)
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
        dense_weight_matrices(weight),
        weight_bound(weight),
        weight_exp,
        limit=limit,
    )


class WeightFormats(dict):
    """A projection's weight matrix in each number format a synapse asks for (``"float32"``,
    ``"float64"``, ``"int64"``), made on first use from ``make(format)`` and kept: a network
    whose synapses all run in float32 holds only float32 copies. ``shape``: the matrix's shape.
    Every copy is exact (integer weights of magnitude ≤ 256)."""

    def __init__(self, make: Callable[[str], np.ndarray], shape: tuple[int, ...]) -> None:
        super().__init__()
        self.make = make
        self.shape = shape

    def __missing__(self, fmt: str) -> np.ndarray:
        value = self.make(fmt)
        self[fmt] = value
        return value


def dense_weight_matrices(weight: np.ndarray) -> WeightFormats:
    """(out, in) → ``W.T`` [in, out] per format, on demand (``WeightFormats``)."""
    w = np.asarray(weight)
    return WeightFormats(lambda fmt: np.ascontiguousarray(w.astype(fmt).T), w.shape[::-1])


#: the event-driven dense path runs below this fraction of nonzero inputs: the measured
#: crossover of a gather-and-sum of weight rows against a float32 GEMM (2-core CPU: about 0.2-0.3 %
#: on a 4096 → 1000 layer, below 0.1 % on 512 → 128; 3-5× faster at 0.02 %)
EVENT_DENSITY = 1 / 512
#: int64 sums of weight rows are exact below this bound
INT64_EXACT = 1 << 62


def dense_events(s: np.ndarray, wt64: np.ndarray) -> np.ndarray:
    """``s @ W.T`` event-driven, in int64: for every nonzero input (an event: a spike or a graded
    message) the weight row of its source neuron, times its value, summed per output row —
    exact integer arithmetic, the cost proportional to the events instead of ``in × out``.
    ``s`` [M, in] (bool or integer), ``wt64`` int64 [in, out]. The caller keeps
    ``max|x| · Σ|w| < 2^62`` (no int64 overflow)."""
    rows, cols = np.nonzero(s)
    out = np.zeros((s.shape[0], wt64.shape[1]), np.int64)
    if rows.size == 0:
        return out
    contrib = wt64[cols]
    if s.dtype != np.bool_:
        contrib *= s[rows, cols].astype(np.int64)[:, None]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    out[rows[starts]] = np.add.reduceat(contrib, starts, axis=0)
    return out


def dense_raw(
    s: np.ndarray,
    wt: WeightFormats,
    wsum: int,
    weight_exp: int = 0,
    *,
    limit: int = F64_EXACT,
    events: bool = True,
) -> np.ndarray:
    """``shift_exp(s @ W.T, weight_exp)`` exactly; ``wt``: ``dense_weight_matrices``. A block
    with fewer than ``EVENT_DENSITY`` nonzero inputs runs event-driven (``dense_events``)."""
    n_out = wt.shape[1]
    out = np.empty((s.shape[0], n_out), np.int64)
    rows = rows_per_block(8 * (s.shape[1] + n_out))
    for i in range(0, s.shape[0], rows):
        block = s[i : i + rows]
        if events and block.size and np.count_nonzero(block) < EVENT_DENSITY * block.size:
            xmax = 1 if block.dtype == np.bool_ else int(np.abs(block).max())
            if xmax * wsum < INT64_EXACT:
                out[i : i + rows] = dense_events(block, wt["int64"])
                continue
        _exact_numpy(
            s[i : i + rows],
            wsum,
            lambda x, fmt: x.astype(fmt) @ wt[fmt],
            limit,
            out=out[i : i + rows],
        )
    return shift_exp(out, weight_exp)


def conv_weight_matrix(weight: np.ndarray, groups: int) -> WeightFormats:
    """(Cout, Cin/g, kh, kw) → ``[g, kh·kw·Cin/g, Cout/g]`` per float format, on demand
    (``WeightFormats``), matching the im2col columns."""
    cout, cg, kh, kw = weight.shape
    w = np.asarray(weight).reshape(groups, cout // groups, cg, kh, kw)
    w = w.transpose(0, 3, 4, 2, 1).reshape(groups, kh * kw * cg, cout // groups)
    return WeightFormats(lambda fmt: np.ascontiguousarray(w.astype(fmt)), w.shape)


def _conv_float(
    x: np.ndarray,
    wmat: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """PyTorch cross-correlation of integer x [n, C, H, W] by im2col + GEMM in ``wmat``'s float
    format → [n, Cout, Ho, Wo] of that format (a transposed view)."""
    n, c, h, w = x.shape
    groups, _, cout_g = wmat.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (ho, wo) = kernel, stride, padding, dilation, out_hw
    xp = np.zeros((n, h + 2 * ph, w + 2 * pw, c), wmat.dtype)  # NHWC, zero padded
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
    wmat: WeightFormats,
    wshape: tuple[int, ...],
    wsum: int,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    *,
    limit: int = F64_EXACT,
    wrap: bool = True,
) -> np.ndarray:
    """``conv_synapse`` on prepared weights; ``wrap=False``: the exact sum without the wrap."""
    cout, _, kh, kw = wshape
    m, c, h, w = s.shape
    _, ho, wo = conv2d_output_shape(tuple(s.shape[1:]), tuple(wshape), stride, padding, dilation)
    out = np.empty((m, cout, ho, wo), np.int64)
    # per sample: the padded NHWC copy, the im2col block and the float64 output
    per_row = 8 * (
        (h + 2 * padding[0]) * (w + 2 * padding[1]) * c + ho * wo * (kh * kw * c + 2 * cout)
    )
    rows = rows_per_block(per_row)

    def f(x: np.ndarray, fmt: str) -> np.ndarray:
        return _conv_float(x, wmat[fmt], (kh, kw), stride, padding, dilation, (ho, wo))

    xmax = 1 if s.dtype == np.bool_ else (int(np.abs(s).max()) if s.size else 0)
    wraps = wrap and xmax * wsum >= WRAP_HALF  # else |conv| < 2^23: wrap24 is the identity
    for i in range(0, m, rows):
        block = _exact_numpy(s[i : i + rows], wsum, f, limit, out=out[i : i + rows])
        if wraps:
            out[i : i + rows] = wrap24(block)
    return out


def upsample_weight_matrix(weight: np.ndarray, groups: int) -> WeightFormats:
    """(Cout, Cin/g, fh, fw) → ``[g, Cin/g, (Cout/g)·fh·fw]`` per format (``"int64"`` included),
    on demand (``WeightFormats``): column (co, a, b) of group g holds the weights of the target
    neurons of channel co at offset (a, b) within their source cell."""
    cout, cg, fh, fw = weight.shape
    w = np.asarray(weight).reshape(groups, cout // groups, cg, fh, fw)
    w = w.transpose(0, 2, 1, 3, 4).reshape(groups, cg, (cout // groups) * fh * fw)
    return WeightFormats(lambda fmt: np.ascontiguousarray(w.astype(fmt)), w.shape)


def upsample_raw(
    s: np.ndarray,
    wmat: WeightFormats,
    wshape: tuple[int, ...],
    groups: int,
    wsum: int,
    weight_exp: int = 0,
    *,
    limit: int = F64_EXACT,
) -> np.ndarray:
    """An ``upsample`` projection (a transposed conv whose kernel equals its stride) on the rows
    of ``s`` [M, C, H, W] (integer or bool): ``a[co, i, j] = shift_exp(Σ_ci w[co, ci, i % fh,
    j % fw] · s[ci, i // fh, j // fw], weight_exp)``, int64 [M, Cout, H·fh, W·fw], exact, never
    a dense matrix. Per group a GEMM of the source cells [M·H·W, Cin/g] by ``wmat``; with one
    channel per group (nearest upsampling) an int64 broadcast product (|x·w| < 2^62 checked,
    else the exact GEMM); ``wsum`` = ``upsample_row_bound``. Not wrapped (Lava's Sparse)."""
    m, c, h, w = s.shape
    cout, cg, fh, fw = wshape
    og = cout // groups
    out = np.empty((m, cout, h * fh, w * fw), np.int64)
    rows = rows_per_block(8 * (c * h * w + 2 * cout * h * fh * w * fw))
    for i in range(0, m, rows):
        x = s[i : i + rows]
        n = x.shape[0]
        xg = x.reshape(n, groups, cg, h, w).transpose(1, 0, 3, 4, 2).reshape(groups, n * h * w, cg)
        xmax = 1 if x.dtype == np.bool_ else (int(np.abs(x).max()) if x.size else 0)
        if cg == 1 and xmax * wsum < INT64_EXACT:
            y = xg.astype(np.int64) * wmat["int64"]  # [g, n·h·w, 1] x [g, 1, og·fh·fw]
        else:
            y = _exact_numpy(xg, wsum, lambda v, fmt: np.matmul(v.astype(fmt), wmat[fmt]), limit)
        out[i : i + rows] = y.reshape(groups, n, h, w, og, fh, fw).transpose(
            1, 0, 4, 2, 5, 3, 6).reshape(n, cout, h * fh, w * fw)
    return shift_exp(out, weight_exp)


def upsample_synapse(
    s: np.ndarray, weight: np.ndarray, groups: int = 1, weight_exp: int = 0, *,
    limit: int = F64_EXACT,
) -> np.ndarray:
    """``upsample_raw`` on a weight (Cout, Cin/groups, fh, fw) as stored in the IR."""
    s = np.asarray(s)
    weight = np.asarray(weight)
    return upsample_raw(s, upsample_weight_matrix(weight, groups), weight.shape, groups,
                        upsample_row_bound(weight), weight_exp, limit=limit)


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




def upsample_fanout(input_shape: tuple[int, int, int], weight_shape: tuple[int, int, int, int],
                    groups: int = 1) -> np.ndarray:
    """int64 [C, H, W]: the structural fan-out of each source neuron of an ``upsample``
    projection: (Cout/groups)·fh·fw, everywhere (its target cell, in every output channel of
    its group; there are no borders)."""
    cout, _, fh, fw = weight_shape
    return np.full(tuple(int(d) for d in input_shape), (cout // groups) * fh * fw, np.int64)
