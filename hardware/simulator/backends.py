"""Simulator backends: what differs between numpy (CPU) and torch (CPU or CUDA) — arrays, exact
GEMMs and convolutions, transfers. Both hold state in int64 and compute synapses in float64 under
the same exactness bound (``sakd.hardware.simulator``); torch is imported only when its backend
is used.

numpy only at import; Python 3.10 compatible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SakdError
from ..fixed_point import shift_exp, wrap24
from ..ir import Projection
from .synapses import (
    F64_EXACT,
    WRAP_HALF,
    conv_raw,
    conv_weight_matrix,
    dense_raw,
    limb_bits,
    rows_per_block,
)

BACKENDS = ("numpy", "torch")


class SimulationInputError(SakdError):
    """Inputs or options the simulator cannot use (shape, dtype, range, names, devices)."""



@dataclass
class ProjectionPlan:
    proj: Projection
    source_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    fanout: np.ndarray  # int64 [source neurons]: structural fan-out of each source neuron
    synapses: int
    dense_flops: int
    wsum: int  # max over output rows of Σ|w|
    a_bound: int = 0  # a static bound on |a| of this projection
    prepared: Any = None  # backend-specific weights


class NumpyOps:
    name = "numpy"

    def prepare(self, plan: ProjectionPlan) -> Any:
        w = plan.proj.weight
        if plan.proj.kind == "dense":
            return np.ascontiguousarray(w.astype(np.float64).T)
        return conv_weight_matrix(w, plan.proj.groups)

    def asarray(self, arr: np.ndarray) -> np.ndarray:
        return arr

    def zeros(self, shape: tuple[int, ...], boolean: bool = False) -> np.ndarray:
        return np.zeros(shape, np.bool_ if boolean else np.int64)

    def synapse(self, plan: ProjectionPlan, s: np.ndarray) -> np.ndarray:
        p = plan.proj
        if p.kind == "dense":
            a = dense_raw(s.reshape(s.shape[0], -1), plan.prepared, plan.wsum, p.weight_exp)
            return a.reshape((s.shape[0],) + plan.target_shape)
        return conv_raw(
            s, plan.prepared, p.weight.shape, plan.wsum, p.stride, p.padding, p.dilation
        )

    def absmax(self, x: np.ndarray) -> int:
        return int(np.abs(x).max()) if x.size else 0

    def numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def count_dot(self, counts: np.ndarray, fanout: np.ndarray) -> np.ndarray:
        """int64 [B]: Σ_i counts[b, i] · fanout[i] (float64 GEMV: every partial sum < 2^53)."""
        return (counts.astype(np.float64) @ fanout.astype(np.float64)).astype(np.int64)


class TorchOps:
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

    def prepare(self, plan: ProjectionPlan) -> Any:
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
        bits = limb_bits(wsum, F64_EXACT)
        x = x.to(torch.int64)
        return self._exact(x & ((1 << bits) - 1), wsum, f64) + (
            self._exact(x >> bits, wsum, f64) << bits
        )

    def synapse(self, plan: ProjectionPlan, s: Any) -> Any:
        torch = self.torch
        p = plan.proj
        m = s.shape[0]
        out = torch.empty((m,) + plan.target_shape, dtype=torch.int64, device=self.device)
        if p.kind == "dense":
            flat = s.reshape(m, -1)
            w = plan.prepared
            rows = rows_per_block(8 * (flat.shape[1] + w.shape[1]))
            for i in range(0, m, rows):
                acc = self._exact(flat[i : i + rows], plan.wsum, lambda xf: xf @ w)
                out[i : i + rows] = shift_exp(acc, p.weight_exp).reshape((-1,) + plan.target_shape)
            return out
        conv2d = torch.nn.functional.conv2d
        kh, kw = p.weight.shape[2:]
        per_row = 8 * (
            int(np.prod(plan.source_shape)) + int(np.prod(plan.target_shape)) * (1 + kh * kw)
        )
        rows = rows_per_block(per_row)
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


def make_ops(backend: str, device: str = "cpu") -> NumpyOps | TorchOps:
    """The backend called ``backend`` on ``device``."""
    if backend not in BACKENDS:
        raise SimulationInputError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "numpy":
        if str(device) != "cpu":
            raise SimulationInputError(f"backend 'numpy' runs on the CPU only, got device {device!r}")
        return NumpyOps()
    return TorchOps(device)
