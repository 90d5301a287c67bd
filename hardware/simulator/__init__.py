"""Bit-accurate simulator of an IR network (docs/ir.md; Lava's fixed-point models,
shared/spec/fixed-point.md §1), with exact per-sample operation counts.

Layout: the integer primitives (``sakd.hardware.fixed_point``), each neuron model's pure step
(``sakd.hardware.neurons``), the exact synapses (``synapses``: ``dense_synapse``,
``conv_synapse``), the backends (``backends``: numpy, torch) and the runner (``runner``:
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

**Exact GEMMs.** Synaptic sums run as float64 GEMMs (BLAS) on integer values. Every product
``w · x`` is an integer with ``|w| ≤ 256`` and every partial sum, in whatever order BLAS adds,
is a sum of a subset of the products, so ``|partial| ≤ max_row Σ|w| · max|x|``. When that bound is
below 2^53 every intermediate value is an exactly representable integer and the result is exact
(FMA included). Spikes have ``max|x| = 1``, so a conv/dense needs fan-in · 256 < 2^53; graded
inputs (at most 24 bits, ``|x| ≤ 2^23``) need fan-in < 2^22. The bound is checked at run time
with the actual data; when it fails the input is split into limbs ``x = lo + hi · 2^k`` (each
limb within the bound) and the partial results are combined in int64, which is exact. Never
float32 / TF32.

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
from .runner import SimulationOverflowError, SimulationResult, readout_to_float, simulate
from .synapses import F64_EXACT, conv_fanout, conv_synapse, dense_synapse

__all__ = [
    "BACKENDS",
    "F64_EXACT",
    "SimulationInputError",
    "SimulationOverflowError",
    "SimulationResult",
    "conv_fanout",
    "conv_synapse",
    "dense_synapse",
    "readout_to_float",
    "shift_exp",
    "simulate",
    "trunc_shift",
    "trunc_shift12",
    "wrap24",
    "wrap_signed",
]
