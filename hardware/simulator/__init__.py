"""Bit-accurate simulator of an IR network (docs/ir.md; Lava's fixed-point models,
shared/spec/fixed-point.md §1), with exact per-sample operation counts.

Layout: the integer primitives (``sakd.hardware.fixed_point``), each neuron model's pure step
(``sakd.hardware.neurons``), the exact synapses (``synapses``: ``dense_synapse``,
``conv_synapse``, ``upsample_synapse``: a gather of one source cell per target neuron and
channel, never a dense matrix), the backends (``backends``: numpy, torch) and the runner (``runner``:
``simulate``), which dispatches on each population's neuron model.

**How the runner schedules time.** Lava steps every process once per time step; a synapse
delivers at ``t + 1 + delay`` what its source emitted at ``t`` (a ring buffer of ``1 + delay``
slots). Because the IR is acyclic, the runner instead processes one *population* at a time over
all of its steps: it reads the whole output history of each source, shifted by ``1 + delay``
steps (the ring buffer, unrolled in time), so a synapse runs once over ``steps × batch`` rows (one
large GEMM instead of one per step), and then runs the neuron model's recursion step by step. The result is
the same sequence of integer operations on the same values.

**Windows.** Population ``p`` (latency ``ℓ``) is reset before step ``1 + ℓ`` and its window is
``1 + ℓ .. T + ℓ``. What it does outside its window never reaches another window: its spikes
before the window arrive at a consumer before the consumer's own reset, its spikes after the
window arrive after the consumer's window. So a population that is not recorded is simulated on
its window only (``T`` steps, from zero state), which gives the same readout, predictions and
counts as the full ``T + L`` steps; a recorded population and its ancestors run all ``T + L``
steps, so traces are exactly Lava's (staggered reset included).

**Exact GEMMs.** Synaptic sums run as float32 or float64 GEMMs (BLAS) on integer values. Every
product ``w · x`` is an integer with ``|w| ≤ 256`` and every partial sum, in whatever order BLAS
adds, is a sum of a subset of the products, so ``|partial| ≤ max_row Σ|w| · max|x|``. When that
bound is below 2^24 (float32) or 2^53 (float64) every intermediate value is an exactly
representable integer and the result is exact (FMA included; the full argument is in
``synapses``). Spikes have ``max|x| = 1``, so a conv/dense from spikes runs in float32 whenever
``Σ|w| < 2^24`` (any fan-in below 65,536 at |w| = 256); graded inputs and messages are bounded by
the largest magnitude in each block, measured before the GEMM, and take float32, float64 or —
when even float64 fails — limbs ``x = lo + hi · 2^k`` (each within the bound) combined in int64.
The choice is made per projection and block from the IR's weights and the data; a failed bound
falls back, it never rounds. Never TF32, fp16 or bf16 (the torch backend switches TF32 and
cuDNN off around every synapse, ``backends``).

**Fused kernels.** On the numpy backend a population whose model has a compiled window
kernel (CUBA-LIF: ``sakd.hardware.neurons.cuba_lif_fused``, numba when installed) runs its
whole window in one call when it is not recorded, not recurrent and not overflow-checked; the
kernel equals the model's ``step`` bit for bit (``SAKD_SIM_KERNELS=0`` switches it off).

**Batch tiles.** Otherwise the neuron recursion of a population runs over tiles of the batch of about
``CPU_TILE_ELEMENTS`` neurons (every sample is independent, so the order of samples does not
matter): the dozen elementwise passes of each step then stay in the CPU's cache instead of
streaming whole-batch arrays through memory (3-4× faster on the LIF step, measured). The GPU
steps the whole batch at once.

**State.** Every state variable is kept in int64, so that products and sums never overflow; each
model applies its own wrap or saturation (CUBA-LIF: ``u`` wraps at 24 bits, ``v`` saturates).
This equals Lava's int32 arithmetic as long as no int32 sum overflows there. Each model states
the largest synaptic input for which that is guaranteed (``safe_input``; CUBA-LIF: |a| < 2^18,
so ``|a << 6| < 2^24`` and the single wrap keeps ``u`` within 24 bits); a population whose static
bound on ``|a|`` is larger is checked at run time by its model (CUBA-LIF: ``|a| ≥ 2^25`` or
``|u| ≥ 2^31 − 2^25``) and raises :class:`SimulationOverflowError`, since Lava's result would
then depend on int32 overflow, which this simulator does not reproduce.

numpy only at import (the torch backend imports torch lazily); Python 3.10 compatible.
"""

from __future__ import annotations

from ..fixed_point import shift_exp, trunc_shift, trunc_shift12, wrap24, wrap_signed
from .backends import BACKENDS, SimulationInputError
from .runner import (
    SimulationOverflowError,
    SimulationResult,
    concatenate_results,
    projection_dense_macs,
    readout_to_float,
    simulate,
)
from .synapses import (
    F32_EXACT,
    F64_EXACT,
    conv_fanout,
    conv_synapse,
    dense_synapse,
    gemm_format,
    upsample_fanout,
    upsample_synapse,
)

__all__ = [
    "BACKENDS",
    "F32_EXACT",
    "F64_EXACT",
    "SimulationInputError",
    "SimulationOverflowError",
    "SimulationResult",
    "concatenate_results",
    "conv_fanout",
    "conv_synapse",
    "dense_synapse",
    "gemm_format",
    "projection_dense_macs",
    "readout_to_float",
    "shift_exp",
    "simulate",
    "trunc_shift",
    "trunc_shift12",
    "upsample_fanout",
    "upsample_synapse",
    "wrap24",
    "wrap_signed",
]
