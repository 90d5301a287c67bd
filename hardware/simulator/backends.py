"""Simulator backends: what differs between numpy (CPU) and torch (CPU or CUDA) — arrays, exact
GEMMs and convolutions, transfers. Both hold state in int64 and compute synapses in float32 or
float64 under the same exactness bound (``sakd.hardware.simulator.synapses``); torch is imported
only when its backend is used.

**torch on CUDA.** The same argument holds for cuBLAS and the native convolution as for any
BLAS: it needs IEEE float32/float64 arithmetic in every product and partial sum. Two CUDA
features break that and are switched off around every synapse evaluation (and restored after):
TF32 tensor-core matmuls (``torch.backends.cuda.matmul.allow_tf32``, a 10-bit significand) and
cuDNN (its FFT / Winograd convolution algorithms transform the data and round; TF32 too). The
float32 matmul precision is held at ``"highest"`` (on the CPU ``"medium"`` may use bf16).
fp16 / bf16 tensor-core GEMMs are not used: the products of 0/1 spikes and weights ≤ 256 are
exact in fp16, but torch returns an fp16 (11-bit) result, so exactness would need an fp32-output
GEMM whose accumulation is proven and checked bit-exact on the device, which has not been done.

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
    WeightFormats,
    conv_raw,
    conv_weight_matrix,
    dense_raw,
    dense_weight_matrices,
    gemm_format,
    limb_bits,
    rows_per_block,
    upsample_raw,
    upsample_weight_matrix,
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


#: neurons per batch tile of the neuron recursion on a CPU (int64: 256 KiB per state array)
CPU_TILE_ELEMENTS = 1 << 15


class NumpyOps:
    name = "numpy"
    tile_elements: int | None = CPU_TILE_ELEMENTS

    def prepare(self, plan: ProjectionPlan) -> Any:
        w = plan.proj.weight
        if plan.proj.kind == "dense":
            return dense_weight_matrices(w)
        if plan.proj.kind == "upsample":
            return upsample_weight_matrix(w, plan.proj.groups)
        return conv_weight_matrix(w, plan.proj.groups)

    def asarray(self, arr: np.ndarray) -> np.ndarray:
        return arr

    def zeros(self, shape: tuple[int, ...], boolean: bool = False) -> np.ndarray:
        return np.zeros(shape, np.bool_ if boolean else np.int64)

    def repeat_steps(self, x: np.ndarray, n: int) -> np.ndarray:
        """``x`` [B, ...] as a read-only [n, B, ...] view (stride 0 over the steps)."""
        return np.broadcast_to(x[None], (n,) + x.shape)

    def materialize(self, x: np.ndarray) -> np.ndarray:
        """A writeable copy of a view made by ``repeat_steps``."""
        return np.array(x)

    def synapse(self, plan: ProjectionPlan, s: np.ndarray, wrap: bool = True) -> np.ndarray:
        """The projection's ``a`` for the rows of ``s``; ``wrap=False``: a conv's exact sum
        without Lava's 24-bit wrap (for merged projections, whose own sums never wrap)."""
        p = plan.proj
        if p.kind == "dense":
            a = dense_raw(s.reshape(s.shape[0], -1), plan.prepared, plan.wsum, p.weight_exp)
            return a.reshape((s.shape[0],) + plan.target_shape)
        if p.kind == "upsample":
            return upsample_raw(s, plan.prepared, p.weight.shape, p.groups, plan.wsum, p.weight_exp)
        return conv_raw(
            s, plan.prepared, p.weight.shape, plan.wsum, p.stride, p.padding, p.dilation,
            wrap=wrap)

    def absmax(self, x: np.ndarray) -> int:
        return int(np.abs(x).max()) if x.size else 0

    def numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def count_dot(self, counts: np.ndarray, fanout: np.ndarray) -> np.ndarray:
        """int64 [B]: Σ_i counts[b, i] · fanout[i] (float64 GEMV: every partial sum < 2^53)."""
        return (counts.astype(np.float64) @ fanout.astype(np.float64)).astype(np.int64)


class TorchOps:
    """int64 tensors for state; float32 / float64 GEMMs and convolutions under the same
    exactness bound, with cuDNN and TF32 disabled (module docstring)."""

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
        # a GPU steps the whole batch at once (one kernel launch per operation)
        self.tile_elements = CPU_TILE_ELEMENTS if self.device.type == "cpu" else None

    def prepare(self, plan: ProjectionPlan) -> Any:
        torch = self.torch
        weight = plan.proj.weight
        dense = plan.proj.kind == "dense"
        if plan.proj.kind == "upsample":  # [g, Cin/g, (Cout/g)·fh·fw], as the numpy backend
            host = upsample_weight_matrix(weight, plan.proj.groups)
            return WeightFormats(lambda fmt: torch.from_numpy(host[fmt]).to(self.device),
                                 host.shape)

        def make(fmt: str) -> Any:  # |w| <= 256: exact in either format
            w = torch.from_numpy(weight.astype(fmt)).to(self.device)
            return w.t().contiguous() if dense else w.contiguous()

        return WeightFormats(make, weight.shape[::-1] if dense else weight.shape)

    def asarray(self, arr: np.ndarray) -> Any:
        return self.torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)

    def zeros(self, shape: tuple[int, ...], boolean: bool = False) -> Any:
        dtype = self.torch.bool if boolean else self.torch.int64
        return self.torch.zeros(shape, dtype=dtype, device=self.device)

    def repeat_steps(self, x: Any, n: int) -> Any:
        """``x`` [B, ...] as an [n, B, ...] expanded view (stride 0 over the steps)."""
        return x[None].expand((n,) + tuple(x.shape))

    def materialize(self, x: Any) -> Any:
        """A writeable contiguous copy of a view made by ``repeat_steps``."""
        return x.contiguous()

    def _exact(self, x: Any, wsum: int, f: Callable[[Any, str], Any]) -> Any:
        torch = self.torch
        xmax = 1 if x.dtype == torch.bool else (int(x.abs().max()) if x.numel() else 0)
        fmt = gemm_format(xmax * wsum)
        if fmt is not None:
            dtype = torch.float32 if fmt == "float32" else torch.float64
            return f(x.to(dtype), fmt).to(torch.int64)
        bits = limb_bits(wsum, F64_EXACT)
        x = x.to(torch.int64)
        return self._exact(x & ((1 << bits) - 1), wsum, f) + (
            self._exact(x >> bits, wsum, f) << bits
        )

    def _ieee(self) -> Any:
        """A context: TF32 off, float32 matmul precision "highest", cuDNN off (restored after)."""
        import contextlib

        torch = self.torch
        stack = contextlib.ExitStack()
        matmul = torch.backends.cuda.matmul
        saved = (matmul.allow_tf32, torch.get_float32_matmul_precision())
        matmul.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")

        def restore() -> None:
            matmul.allow_tf32 = saved[0]
            torch.set_float32_matmul_precision(saved[1])

        stack.callback(restore)
        stack.enter_context(torch.backends.cudnn.flags(enabled=False, allow_tf32=False))
        return stack

    def synapse(self, plan: ProjectionPlan, s: Any, wrap: bool = True) -> Any:
        torch = self.torch
        p = plan.proj
        m = s.shape[0]
        out = torch.empty((m,) + plan.target_shape, dtype=torch.int64, device=self.device)
        w = plan.prepared
        if p.kind == "dense":
            flat = s.reshape(m, -1)
            rows = rows_per_block(8 * (flat.shape[1] + w.shape[1]))
            with self._ieee():
                for i in range(0, m, rows):
                    acc = self._exact(flat[i : i + rows], plan.wsum, lambda xf, fmt: xf @ w[fmt])
                    out[i : i + rows] = shift_exp(acc, p.weight_exp).reshape(
                        (-1,) + plan.target_shape)
            return out
        if p.kind == "upsample":
            return self._upsample(plan, s, out)
        conv2d = torch.nn.functional.conv2d
        kh, kw = p.weight.shape[2:]
        per_row = 8 * (
            int(np.prod(plan.source_shape)) + int(np.prod(plan.target_shape)) * (1 + kh * kw)
        )
        rows = rows_per_block(per_row)
        xmax = 1 if s.dtype == torch.bool else (int(s.abs().max()) if s.numel() else 0)
        wraps = wrap and xmax * plan.wsum >= WRAP_HALF  # else wrap24 is the identity
        with self._ieee():
            for i in range(0, m, rows):
                acc = self._exact(
                    s[i : i + rows],
                    plan.wsum,
                    lambda xf, fmt: conv2d(
                        xf, w[fmt], None, p.stride, p.padding, p.dilation, p.groups
                    ),
                )
                out[i : i + rows] = wrap24(acc) if wraps else acc
        return out

    def _upsample(self, plan: ProjectionPlan, s: Any, out: Any) -> Any:
        """``synapses.upsample_raw`` in torch: per group a batched GEMM of the source cells by
        the prepared weights (exact under the bound, as every GEMM here), or with one channel
        per group an int64 broadcast product; then the shift by ``weight_exp``."""
        torch = self.torch
        p = plan.proj
        w = plan.prepared
        m, c, h, wd = s.shape
        cout, cg, fh, fw = p.weight.shape
        g, og = p.groups, cout // p.groups
        rows = rows_per_block(8 * (c * h * wd + 2 * cout * h * fh * wd * fw))
        with self._ieee():
            for i in range(0, m, rows):
                x = s[i : i + rows]
                n = x.shape[0]
                xg = x.reshape(n, g, cg, h, wd).permute(1, 0, 3, 4, 2).reshape(g, n * h * wd, cg)
                xmax = 1 if x.dtype == torch.bool else (int(x.abs().max()) if x.numel() else 0)
                if cg == 1 and xmax * plan.wsum < (1 << 62):
                    y = xg.to(torch.int64) * w["int64"]
                else:
                    y = self._exact(xg, plan.wsum, lambda xf, fmt: torch.bmm(xf, w[fmt]))
                out[i : i + rows] = shift_exp(y.reshape(g, n, h, wd, og, fh, fw).permute(
                    1, 0, 4, 2, 5, 3, 6).reshape(n, cout, h * fh, wd * fw), p.weight_exp)
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
