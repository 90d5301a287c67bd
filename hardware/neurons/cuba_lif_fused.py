"""CUBA-LIF over a whole window in one compiled loop (numba): the same integer operations as
``cuba_lif.lif_dynamics`` followed by the spike test and reset of ``CubaLif.step``, with the
state of each sample in two int64 vectors and the counts of the window taken on the way.

Per sample ``b``, per step ``t``, per neuron ``j`` (int64 throughout):

- before the step, if ``resets[t]``: ``u = v = 0``;
- ``u' = trunc0(u · (4096 − (du + 1)) / 2^12) + (a << 6)`` (``du + 1 = 4096``: ``u' = a << 6``),
  wrapped once into ``(−2^23, 2^23]``;
- ``v' = trunc0(v · (4096 − dv) / 2^12) + u' + bias`` (``dv = 0``: ``v + u'``; ``dv = 4096``:
  ``u'``), ``bias = bias_mant << bias_exp`` plus a per-sample ``bias`` port ``<< bias_exp``,
  saturated to ``±(2^23 − 1)``;
- ``s = v' > threshold`` (strict); ``v' = 0`` where ``s``.

Counts over steps ``w0 .. w0 + length − 1``: spikes per step and sample, spikes per neuron and
sample, and active neuron-steps per sample (fired, or any port's input nonzero). ``read``: the
step whose ``v`` is kept (a readout's value; −1: none).

Compiled on first use (``sakd.hardware.jit``); numpy only at import. Python 3.10 compatible.
"""

from __future__ import annotations

from typing import Any

from ..jit import compiled


def _build(numba: Any, with_bias_port: bool) -> Any:
    """The kernel, with or without the ``bias`` port (a constant the compiler folds). The loop
    over neurons has no data-dependent branch (wrap, saturation and reset as selects), so the
    compiler vectorizes it; every formula is the exact integer one of ``lif_dynamics``: with
    ``du + 1 = 4096`` or ``dv = 4096`` the factor is 0 and the truncated term is 0, with ``dv = 0``
    it is ``v · 4096 / 2^12 = v`` exactly, as the numpy step's special cases give."""
    import numpy as np

    @numba.njit(cache=True, nogil=True)
    def kernel(a, bias_in, bias, bias_exp, du1, dv, unity, shift, act_shift, top, threshold,
               resets, w0, length, read, S, per_step, active, fired, read_v):
        n, batch, size = S.shape
        mask = (1 << shift) - 1
        limit = top - 1
        keep_u = unity - du1
        keep_v = unity - dv
        a_static = a.shape[0] == 1
        b_static = bias_in.shape[0] == 1
        for b in range(batch):
            u = np.zeros(size, np.int64)
            v = np.zeros(size, np.int64)
            count = np.zeros(size, np.int64)  # spikes per neuron over the counted steps
            for t in range(n):
                if resets[t]:
                    u[:] = 0
                    v[:] = 0
                ta = 0 if a_static else t
                tb = 0 if b_static else t
                counted = 1 if w0 <= t < w0 + length else 0
                spikes = 0
                busy = 0
                for j in range(size):
                    x = a[ta, b, j]
                    p = u[j] * keep_u
                    nu = ((p + ((p >> 63) & mask)) >> shift) + (x << act_shift)
                    nu -= (nu > top) * (2 * top)  # wrap once into (-2^23, 2^23]
                    nu += (nu <= -top) * (2 * top)
                    q = v[j] * keep_v
                    nv = ((q + ((q >> 63) & mask)) >> shift) + nu + bias[j]
                    nz = x != 0
                    if with_bias_port:
                        xb = bias_in[tb, b, j]
                        nv += xb << bias_exp
                        nz = nz | (xb != 0)
                    nv = min(max(nv, -limit), limit)  # saturate to +-(2^23 - 1)
                    s = nv > threshold
                    u[j] = nu
                    v[j] = nv * (1 - s)  # reset v (not u) after a spike
                    S[t, b, j] = s
                    count[j] += s * counted
                    spikes += s
                    busy += s | nz
                if counted:
                    per_step[t - w0, b] = spikes
                    active[b] += busy
                if t == read:
                    read_v[b, :] = v
            fired[b, :] = count

    return kernel


@compiled
def lif_window(numba: Any) -> Any:
    """``(with_bias_port) -> kernel`` (module docstring). Kernel arguments, in order:

    ``a`` int64 [n or 1, B, N] (1: the same input every step), ``bias_in`` int64 [n or 1, B, N]
    (the ``bias`` port; ignored by the kernel without it), ``bias`` int64 [N]
    (``bias_mant << bias_exp``), ``bias_exp``, ``du1`` (= du + 1), ``dv``, ``unity`` (4096),
    ``shift`` (12), ``act_shift`` (6), ``top`` (2^23), ``threshold``, ``resets`` bool [n], ``w0``,
    ``length``, ``read``; outputs: ``S`` bool [n, B, N], ``per_step`` int64 [length, B],
    ``active`` int64 [B], ``fired`` int64 [B, N], ``read_v`` int64 [B, N] ([B, 0] when
    ``read`` is -1: never written) (zero on entry)."""
    kernels = {flag: _build(numba, flag) for flag in (False, True)}
    return kernels.__getitem__
