"""Graph composition for the NIR reader: a chain of linear NIR nodes (Affine, Linear, Conv2d,
pooling, Flatten) between two neurons composed exactly into one projection — a convolution where
the pair is pooling + convolution, otherwise a dense matrix (up to ``MAX_DENSE_ENTRIES``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sakd.formats.nir.common import MAX_DENSE_ENTRIES
from sakd.hardware.ir import conv2d_output_shape


@dataclass
class LinearOp:
    """A linear map on one sample: a convolution (PyTorch cross-correlation) or a dense matrix
    over the C,H,W-flattened input. ``pool``: (kh, kw) when this is a pooling with stride ==
    kernel and no padding (eligible for exact conv composition)."""

    kind: str
    weight: np.ndarray
    bias: np.ndarray | None
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    pool: tuple[int, int] | None = None


def conv_matrix(op: LinearOp) -> np.ndarray:
    """The dense (n_out, n_in) matrix of a convolution op (float64)."""
    import torch
    import torch.nn.functional as F

    n_in, n_out = int(np.prod(op.in_shape)), int(np.prod(op.out_shape))
    if n_in * n_out > MAX_DENSE_ENTRIES:
        raise ValueError(f"a {n_out} x {n_in} dense matrix exceeds {MAX_DENSE_ENTRIES} entries")
    eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *op.in_shape)
    out = F.conv2d(eye, torch.as_tensor(op.weight, dtype=torch.float64), None, op.stride,
                   op.padding, op.dilation, op.groups)
    return out.reshape(n_in, n_out).T.numpy()


def full_bias(op: LinearOp) -> np.ndarray | None:
    """The bias as a flat (n_out,) vector."""
    if op.bias is None:
        return None
    if op.kind == "dense":
        return op.bias.reshape(-1)
    return np.repeat(op.bias, int(np.prod(op.out_shape[1:])))


def as_dense(op: LinearOp) -> LinearOp:
    if op.kind == "dense":
        return op
    return LinearOp("dense", conv_matrix(op), full_bias(op), op.in_shape, op.out_shape)


def compose(a: LinearOp, b: LinearOp) -> LinearOp:
    """``b ∘ a`` (a first), exactly; a convolution where the pair is pooling + convolution."""
    if a.kind == "conv" and b.kind == "conv":
        c = compose_conv(a, b)
        if c is not None:
            return c
    da, db = as_dense(a), as_dense(b)
    weight = db.weight @ da.weight
    bias = None
    if da.bias is not None or db.bias is not None:
        bias = np.zeros(weight.shape[0])
        if da.bias is not None:
            bias = bias + db.weight @ da.bias
        if db.bias is not None:
            bias = bias + db.bias
    return LinearOp("dense", weight, bias, a.in_shape, b.out_shape)


def compose_conv(a: LinearOp, b: LinearOp) -> LinearOp | None:
    """Pooling (stride = kernel, no padding) then conv, or conv then such a pooling, as one
    convolution; None when the pair has no exact convolution form."""
    if a.pool is not None and b.dilation == (1, 1):
        kh, kw = a.pool
        factor = a.weight.reshape(-1)[0]
        h, w = a.in_shape[1:]
        if b.padding != (0, 0) and (h % kh or w % kw):
            return None  # padded rows of the pooled map would be real rows of the input
        weight = np.repeat(np.repeat(b.weight, kh, axis=2), kw, axis=3) * factor
        stride = (b.stride[0] * kh, b.stride[1] * kw)
        padding = (b.padding[0] * kh, b.padding[1] * kw)
        op = LinearOp("conv", weight, b.bias, a.in_shape, b.out_shape, stride, padding, (1, 1), b.groups)
    elif b.pool is not None and a.dilation == (1, 1):
        kh, kw = b.pool
        factor = b.weight.reshape(-1)[0]
        sh, sw = a.stride
        cout, cin_g, k1, k2 = a.weight.shape
        weight = np.zeros((cout, cin_g, sh * (kh - 1) + k1, sw * (kw - 1) + k2))
        for i in range(kh):
            for j in range(kw):
                weight[:, :, sh * i:sh * i + k1, sw * j:sw * j + k2] += a.weight * factor
        bias = None if a.bias is None else a.bias * factor * kh * kw
        op = LinearOp("conv", weight, bias, a.in_shape, b.out_shape, (sh * kh, sw * kw), a.padding,
                 (1, 1), a.groups)
    else:
        return None
    try:
        shape = conv2d_output_shape(op.in_shape, op.weight.shape, op.stride, op.padding, op.dilation)
    except ValueError:
        return None
    return op if shape == op.out_shape else None


