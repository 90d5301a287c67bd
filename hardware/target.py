"""Target chip specifications: the bit widths and limits that the quantizer, the writers, the IR
validation and the simulator all consult. No magic numbers elsewhere.

Values follow Lava's bit-accurate models (fixed-point.md §1) and Loihi 2's documented widths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TargetSpec:
    name: str
    # synaptic weights: mixed-sign weights are 2 x an int8 mantissa (Lava drops the LSB of odd
    # weights, fixed-point.md §1.2), so every IR weight is an even integer in [min, max]
    weight_min: int = -256
    weight_max: int = 254
    weight_step: int = 2
    weight_exp_min: int = -8
    weight_exp_max: int = 7
    # neuron state: u and v are 24-bit (u wraps, v saturates); a synaptic input a enters u as a << 6
    state_bits: int = 24
    act_shift: int = 6
    # decays: 12-bit fractions of 4096; u decays by (4096 - (du + 1)), v by (4096 - dv)
    decay_bits: int = 12
    # bias: 13-bit signed mantissa, left-shifted by bias_exp
    bias_mant_bits: int = 13
    bias_exp_min: int = 0
    bias_exp_max: int = 7
    # threshold: 17-bit unsigned mantissa, compared as v > vth << vth_shift
    vth_bits: int = 17
    vth_shift: int = 6
    # extra synaptic delay in steps on top of the 1-step latency of every synapse (netx clamps
    # delays to 0..62; Lava's DelayDense holds 6 bits)
    max_delay: int = 62
    # graded messages (graded-spike input): signed values of at most this many bits
    max_message_bits: int = 24

    # derived limits -------------------------------------------------------------------------
    @property
    def decay_unity(self) -> int:
        """4096: a decay of du = 4095 (u) or dv = 4096 (v) removes all memory."""
        return 1 << self.decay_bits

    @property
    def state_max(self) -> int:
        """2^23: u wraps into (-2^23, 2^23]; v saturates at +-(2^23 - 1)."""
        return 1 << (self.state_bits - 1)

    @property
    def bias_mant_min(self) -> int:
        return -(1 << (self.bias_mant_bits - 1))

    @property
    def bias_mant_max(self) -> int:
        return (1 << (self.bias_mant_bits - 1)) - 1

    @property
    def vth_max(self) -> int:
        return (1 << self.vth_bits) - 1

    @property
    def readout_vth(self) -> int:
        """A threshold no voltage can exceed (2^17 << 6 = 2^23 > the v clip): a readout never
        fires. netx writes the same value for a dense layer without a neuron (fixed-point.md §2.1)."""
        return 1 << self.vth_bits

    @property
    def max_synaptic_input(self) -> int:
        """Largest |a| per step for which a << act_shift cannot wrap u: 2^17 - 1."""
        return (1 << (self.state_bits - 1 - self.act_shift)) - 1

    def split_bias(self, effective: Any) -> tuple[np.ndarray, int, int]:
        """``bias_mant << bias_exp ~= effective`` (float array, in v_int units): bias_exp 6
        (netx's fixed exponent) when every mantissa fits the signed mantissa bits, else the
        smallest larger exponent that fits; clipped at the largest one otherwise. Rounding:
        half to even. Returns (int64 mantissas, bias_exp, number of clipped values)."""
        effective = np.asarray(effective, dtype=np.float64)
        lo, hi = self.bias_mant_min, self.bias_mant_max
        exp = self.bias_exp_max
        for candidate in range(max(6, self.bias_exp_min), self.bias_exp_max + 1):
            mant = np.rint(effective / (1 << candidate))
            if mant.size == 0 or (mant.min() >= lo and mant.max() <= hi):
                return mant.astype(np.int64), candidate, 0
        mant = np.rint(effective / (1 << exp))
        clipped = int(((mant < lo) | (mant > hi)).sum())
        return np.clip(mant, lo, hi).astype(np.int64), exp, clipped

    def message_range(self, bits: int) -> tuple[int, int]:
        """Signed range of a graded message of ``bits`` bits."""
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


LOIHI2 = TargetSpec(name="loihi2")

TARGETS: dict[str, TargetSpec] = {LOIHI2.name: LOIHI2}


def get_target(name: str) -> TargetSpec:
    if name not in TARGETS:
        raise ValueError(f"unknown target '{name}'; known targets: {sorted(TARGETS)}")
    return TARGETS[name]
