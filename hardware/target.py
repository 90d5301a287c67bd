"""Target chip specifications: the bit widths and limits that the quantizer, the writers, the IR
validation and the simulator all consult. No magic numbers elsewhere.

Values follow Lava's bit-accurate models (fixed-point.md §1) and Loihi 2's documented widths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .errors import SakdError

#: netx fixes every neuron's bias exponent at 6 (lava-dl ``netx/hdf5.py``: ``bias_exp=6``); the
#: quantizer prefers it so that a network's netx file is exact (fixed-point.md §2.1)
NETX_BIAS_EXP = 6


class TargetError(SakdError):
    """An unknown target name or an inconsistent target specification."""


@dataclass(frozen=True)
class TargetSpec:
    #: True for the widened limits of :meth:`lava_model_limits` (what Lava's CPU models run)
    lava_model: ClassVar[bool] = False

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

    @property
    def weight_magnitude_max(self) -> int:
        """255: an all-excitatory (w >= 0) or all-inhibitory (w <= 0) weight matrix uses the
        full 8-bit magnitude, |w| <= 2^8 - 1 = -weight_min - 1, in steps of 1 (Lava's EXCITATORY
        and INHIBITORY sign modes, fixed-point.md §1.2); mixed-sign weights are the even values
        in [weight_min, weight_max]."""
        return -self.weight_min - 1

    def weight_rule(self, wmin: int, wmax: int) -> tuple[int, int, int, str]:
        """(lo, hi, step, sign mode) that a weight matrix with these extremes must satisfy: the
        sign mode Lava derives for it (``determine_sign_mode``: min >= 0 excitatory, else
        max <= 0 inhibitory, else mixed)."""
        if wmin >= 0:
            return 0, self.weight_magnitude_max, 1, "excitatory"
        if wmax <= 0:
            return -self.weight_magnitude_max, 0, 1, "inhibitory"
        return self.weight_min, self.weight_max, self.weight_step, "mixed-sign"

    def lava_model_limits(self) -> TargetSpec:
        """This target widened to what Lava's bit-accurate CPU models run exactly (netx files of
        other tools use it, fixed-point.md §1-2): any weight in [weight_min, 255] (netx rescales
        a layer's weights and picks num_weight_bits), int16 bias mantissas (Lava stores
        bias_mant as int16), thresholds up to 24 bits (compared with 24-bit state). The name is
        kept: the network is still meant for this chip, and ``Network.hardware_notes()`` lists
        every value beyond its hardware ranges."""
        values = {**self.as_dict(), "weight_max": self.weight_magnitude_max, "weight_step": 1,
                  "bias_mant_bits": 16, "vth_bits": self.state_bits}
        return LavaModelLimits(**values)

    def validate(self) -> TargetSpec:
        """Check that the limits are consistent (a spec need not be registered to be used);
        returns the spec. Raises :class:`TargetError` naming the field."""
        def bad(field_name: str, why: str) -> TargetError:
            return TargetError(f"target '{self.name}': {field_name} {why}")

        if not isinstance(self.name, str) or not self.name:
            raise TargetError(f"a target needs a non-empty name, got {self.name!r}")
        for fld in dataclasses.fields(self):
            value = getattr(self, fld.name)
            if fld.name != "name" and (isinstance(value, bool) or not isinstance(value, int)):
                raise bad(fld.name, f"must be an integer, got {value!r}")
        for key in ("weight_step", "state_bits", "decay_bits", "bias_mant_bits", "vth_bits",
                    "max_message_bits"):
            if getattr(self, key) < 1:
                raise bad(key, f"must be >= 1, got {getattr(self, key)}")
        if not self.weight_min < 0 < self.weight_max:
            raise bad("weight range", f"[{self.weight_min}, {self.weight_max}] must contain 0")
        if self.weight_min % self.weight_step or self.weight_max % self.weight_step:
            raise bad("weight range", f"[{self.weight_min}, {self.weight_max}] must be multiples "
                                      f"of weight_step {self.weight_step}")
        for low, high in (("weight_exp_min", "weight_exp_max"), ("bias_exp_min", "bias_exp_max")):
            if getattr(self, low) > getattr(self, high):
                raise bad(low, f"{getattr(self, low)} exceeds {high} {getattr(self, high)}")
        if not 0 <= self.act_shift < self.state_bits or not 0 <= self.vth_shift < self.state_bits:
            raise bad("act_shift/vth_shift", "must lie within the state width")
        if self.max_delay < 0:
            raise bad("max_delay", f"must be >= 0, got {self.max_delay}")
        return self

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TargetSpec:
        """A spec from its fields (e.g. read from a file), validated; unknown or missing fields
        are errors naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        missing = sorted(names - set(values))
        if unknown or missing:
            raise TargetError(f"target specification: unknown fields {unknown}, missing fields "
                              f"{missing}")
        return cls(**{k: (v if k == "name" else int(v)) for k, v in values.items()}).validate()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def split_bias(self, effective: Any) -> tuple[np.ndarray, int, int]:
        """``bias_mant << bias_exp ~= effective`` (float array, in v_int units): bias_exp
        ``NETX_BIAS_EXP`` (6) when every mantissa fits the signed mantissa bits, else the
        smallest larger exponent that fits; clipped at the largest one otherwise. Rounding:
        half to even. Returns (int64 mantissas, bias_exp, number of clipped values)."""
        effective = np.asarray(effective, dtype=np.float64)
        lo, hi = self.bias_mant_min, self.bias_mant_max
        exp = self.bias_exp_max
        for candidate in range(max(NETX_BIAS_EXP, self.bias_exp_min), self.bias_exp_max + 1):
            mant = np.rint(effective / (1 << candidate))
            if mant.size == 0 or (mant.min() >= lo and mant.max() <= hi):
                return mant.astype(np.int64), candidate, 0
        mant = np.rint(effective / (1 << exp))
        clipped = int(((mant < lo) | (mant > hi)).sum())
        return np.clip(mant, lo, hi).astype(np.int64), exp, clipped

    def message_range(self, bits: int) -> tuple[int, int]:
        """Signed range of a graded message of ``bits`` bits."""
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


@dataclass(frozen=True)
class LavaModelLimits(TargetSpec):
    """A target's limits widened to what Lava's bit-accurate CPU models run exactly
    (:meth:`TargetSpec.lava_model_limits`); used to validate networks of other tools."""

    lava_model: ClassVar[bool] = True


LOIHI2 = TargetSpec(name="loihi2").validate()
#: the target every job uses unless told otherwise
DEFAULT_TARGET = LOIHI2

TARGETS: dict[str, TargetSpec] = {LOIHI2.name: LOIHI2}


def get_target(target: str | TargetSpec) -> TargetSpec:
    """A registered target by name, or a given spec validated (it need not be registered)."""
    if isinstance(target, TargetSpec):
        return target.validate()
    if not isinstance(target, str) or target not in TARGETS:
        raise TargetError(f"unknown target {target!r}; known targets: {', '.join(sorted(TARGETS))}")
    return TARGETS[target]
