"""Resonate-and-fire neurons: Lava's fixed-point ``RF`` (phase spike) and ``RF_IZ``
(Izhikevich's resonate-and-fire) models (``lava.proc.rf`` ``PyRFModelFixed``, ``lava.proc.rf_iz``
``PyRF_IZModelFixed``), as netx builds them: ``RF_PHASE`` layers become ``RF``, ``RF`` and
``RF_IZ`` layers become ``RF_IZ``, always in a complex dense layer (``weight/real``,
``weight/imag``) that drives the two inputs ``a_real_in`` and ``a_imag_in``.

Integer semantics, per step (``trunc`` rounds toward zero, ``e = state_exp`` (netx: 6),
``q = decay_bits`` (netx: 12), clip to ±(2^23 − 1), 24-bit state)::

    xr = a_real << e;  xi = a_imag << e
    re' = clip(trunc(cos·re / 2^q) − trunc(sin·im / 2^q) + xr)
    im' = clip(trunc(sin·re / 2^q) + trunc(cos·im / 2^q) + xi)
    RF:     s = re' ≥ vth << e  and  im' ≥ 0  and  im < 0        (the phase crosses 0)
            re, im = re', im'
    RF_IZ:  s = im' ≥ vth << e
            re = re' · (1 − s);  im = s · ((vth << e) − 1) + (1 − s) · im'

``sin_decay`` and ``cos_decay`` are the 12-bit integers Lava holds: netx derives them from the
file's ``sinDecay``/``cosDecay`` through floats (``sakd.formats.netx``), which usually gives the
file's values and sometimes one less. The neurons send binary spikes. netx passes no reset
interval to RF neurons, and free-running schedules do not reset them either.

numpy only at import; Python 3.10 compatible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..fixed_point import trunc_shift
from ..target import TargetSpec
from .base import NeuronModel, StateVariable, parameter

#: netx's RF neuron parameters (lava-dl netx/hdf5.py ``get_neuron_params``)
NETX_RF_STATE_EXP = 6
NETX_RF_DECAY_BITS = 12
#: Lava receives a_real_in / a_imag_in into int32 before the shift: |a << e| < 2^31
INT32_LIMIT = 1 << 31


def _decay_limits(target: TargetSpec, readout: bool) -> tuple[int, int]:
    return 0, target.decay_unity - 1


def _vth_limits(target: TargetSpec, readout: bool) -> tuple[int, int]:
    # vth << state_exp is compared with the 24-bit state
    return 0, (1 << (target.state_bits - 1 - NETX_RF_STATE_EXP)) - 1


@dataclass(frozen=True, eq=False)
class _Resonator(NeuronModel):
    state = (
        StateVariable("real", 24, "saturate", "real part of the resonator state"),
        StateVariable("imag", 24, "saturate", "imaginary part of the resonator state"),
    )
    ports = ("a_real_in", "a_imag_in")
    resettable = False

    sin_decay: int = parameter("(1 − α)·sin(2π/period) in 12-bit fixed point", _decay_limits)
    cos_decay: int = parameter("(1 − α)·cos(2π/period) in 12-bit fixed point", _decay_limits)
    vth: int = parameter("threshold mantissa, compared as vth << state_exp", _vth_limits)
    state_exp: int = parameter("left shift of the inputs and the threshold",
                               lambda t, r: (0, t.act_shift), default=NETX_RF_STATE_EXP)
    decay_bits: int = parameter("fraction bits of the decays",
                                lambda t, r: (0, t.decay_bits), default=NETX_RF_DECAY_BITS)

    def prepare(self, ops: Any, shape: tuple[int, ...], target: TargetSpec, readout: bool) -> Any:
        top = target.state_max - 1
        return {"threshold": self.vth << self.state_exp, "lo": -top, "hi": top}

    def rotate(self, state: dict[str, Any], inputs: dict[str, Any],
               prepared: Any) -> tuple[Any, Any]:
        """The new (real, imag) before the spike and reset (module docstring)."""
        re, im = state["real"], state["imag"]
        q, e = self.decay_bits, self.state_exp
        xr = inputs["a_real_in"] << e
        xi = inputs["a_imag_in"] << e if "a_imag_in" in inputs else 0
        new_re = trunc_shift(re * self.cos_decay, q) - trunc_shift(im * self.sin_decay, q) + xr
        new_im = trunc_shift(re * self.sin_decay, q) + trunc_shift(im * self.cos_decay, q) + xi
        lo, hi = prepared["lo"], prepared["hi"]
        return new_re.clip(lo, hi), new_im.clip(lo, hi)

    def safe_input(self, target: TargetSpec) -> int:
        return (INT32_LIMIT >> self.state_exp) - 1

    def overflow(self, before: dict[str, Any], after: dict[str, Any], inputs: dict[str, Any],
                 ops: Any, target: TargetSpec) -> str | None:
        for port in self.ports:
            if port in inputs:
                amax = ops.absmax(inputs[port])
                if amax >= INT32_LIMIT >> self.state_exp:
                    return (f"the input {port} reaches {amax}; {port} << {self.state_exp} "
                            f"overflows Lava's int32, so Lava's result is undefined")
        return None


@dataclass(frozen=True, eq=False)
class ResonateFire(_Resonator):
    """RF: fires when the phase crosses zero with the real part above threshold."""

    model = "rf"
    title = "Resonate-and-fire, phase spike (Lava PyRFModelFixed; netx RF_PHASE)"

    def step(self, state: dict[str, Any], inputs: dict[str, Any],
             prepared: Any) -> tuple[dict[str, Any], Any]:
        re, im = self.rotate(state, inputs, prepared)
        s = (re >= prepared["threshold"]) & (im >= 0) & (state["imag"] < 0)
        return {"real": re, "imag": im}, s

    def lava_process(self, size: int, shape: tuple[int, ...], target: TargetSpec, readout: bool,
                     reset_interval: int | None, reset_offset: int) -> Any:
        raise NotImplementedError("RF neurons run in Lava through netx (complex dense layers)")


@dataclass(frozen=True, eq=False)
class ResonateFireIz(_Resonator):
    """RF_IZ: fires when the imaginary part reaches the threshold, then resets."""

    model = "rf_iz"
    title = "Resonate-and-fire Izhikevich (Lava PyRF_IZModelFixed; netx RF, RF_IZ)"

    def step(self, state: dict[str, Any], inputs: dict[str, Any],
             prepared: Any) -> tuple[dict[str, Any], Any]:
        re, im = self.rotate(state, inputs, prepared)
        threshold = prepared["threshold"]
        s = im >= threshold
        return {"real": re * ~s, "imag": im * ~s + (threshold - 1) * s}, s

    def lava_process(self, size: int, shape: tuple[int, ...], target: TargetSpec, readout: bool,
                     reset_interval: int | None, reset_offset: int) -> Any:
        raise NotImplementedError("RF_IZ neurons run in Lava through netx (complex dense layers)")
