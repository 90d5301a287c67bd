"""Sigma-delta neurons: Lava's fixed-point ``Delta``, ``SigmaDelta`` and ``Sigma``
(``lava.proc.sdn``, ``PyDeltaModelFixed``, ``PySigmaDeltaModelFixed``, ``PySigmaModelFixed``) as
netx builds them for an ``SDNN`` layer: ``Delta`` for an input layer, ``Sigma`` for a layer with
``sigma_output``, ``SigmaDelta`` (ReLU activation, no cumulative error) otherwise.

A sigma-delta network sends graded messages: each neuron sends the *change* of its activation when
it exceeds a threshold, and the receiver integrates (sigma) what it is sent. Integer semantics, per
step, with ``k = spike_exp + state_exp`` (netx: ``spike_exp`` is a run-time option, default 6;
``state_exp`` 6) and ``>>`` the arithmetic (floor) shift:

- ``Delta``:      ``x = a << k``; ``d = x − act + residue``; ``s = d if |d| ≥ vth·2^k else 0``;
  ``residue = d − s``; ``act = x``; message ``s >> state_exp``.
- ``SigmaDelta``: ``sigma += a``; ``y = max(sigma + bias·2^k, 0)``; ``d = y − act + residue``;
  ``s = d if |d| ≥ vth·2^k else 0``; ``residue = d − s``; ``act = y``; message ``s >> state_exp``.
- ``Sigma``:      ``sigma += a``; message ``sigma``.

Lava holds every state variable in int32 and does not clip messages to their bit width (the
``messageBits`` of a layer, netx default 16, is what the chip would send); the simulator holds
int64 and is exact while every value stays within int32, which it checks every step (a value
beyond it raises ``SimulationOverflowError``: Lava's result would depend on int32 wrap-around).
netx ignores ``reset_interval`` for these neurons (it warns), and so do free-running schedules.

numpy only at import; Python 3.10 compatible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..target import TargetSpec
from .base import NeuronModel, StateVariable, broadcast_per_channel, check_per_channel, parameter

#: Lava's sigma-delta state is int32: |value| must stay below 2^31 for int64 to equal it
INT32_LIMIT = 1 << 31
#: netx's defaults for SDNN layers (lava-dl netx/hdf5.py ``get_neuron_params``)
NETX_SPIKE_EXP = 6
NETX_STATE_EXP = 6
NETX_SDNN_MESSAGE_BITS = 16
#: spike_exp and state_exp are 3-bit Vars in Lava (precision=3)
EXP_RANGE = (0, 7)


def _exp_limits(target: TargetSpec, readout: bool) -> tuple[int, int]:
    return EXP_RANGE


def _vth_limits(target: TargetSpec, readout: bool) -> tuple[int, int]:
    # vth · 2^(spike_exp + state_exp) is compared with int32 state; Lava stores it as int32
    return 0, (1 << (target.state_bits - 1)) - 1


def _int32_problem(name: str, value: int, step_what: str) -> str:
    return (f"{name} reaches {value} ({step_what}), beyond Lava's int32 sigma-delta state "
            f"(|x| < 2^31): Lava's result would depend on int32 wrap-around, which the "
            f"simulator does not reproduce")


@dataclass(frozen=True, eq=False)
class Delta(NeuronModel):
    """A delta encoder (netx: the input layer of an SDNN): sends changes of its input."""

    model = "delta"
    title = "Delta encoder (Lava PyDeltaModelFixed; netx SDNN input layer)"
    state = (
        StateVariable("act", 24, "unchecked", "the last input, a << (spike_exp + state_exp)"),
        StateVariable("residue", 24, "unchecked", "what the last change left unsent"),
    )
    binary = False
    default_message_bits = NETX_SDNN_MESSAGE_BITS
    resettable = False

    vth: int = parameter("threshold mantissa: a change d is sent iff |d| >= vth << (spike_exp + "
                         "state_exp)", _vth_limits)
    spike_exp: int = parameter("fraction bits of a message (netx run option spike_exp)",
                               _exp_limits, default=NETX_SPIKE_EXP)
    state_exp: int = parameter("fraction bits of the state beyond the message", _exp_limits,
                               default=NETX_STATE_EXP)

    @property
    def shift(self) -> int:
        return self.spike_exp + self.state_exp

    def prepare(self, ops: Any, shape: tuple[int, ...], target: TargetSpec, readout: bool) -> Any:
        return {"threshold": self.vth << self.shift}

    def step(self, state: dict[str, Any], inputs: dict[str, Any],
             prepared: Any) -> tuple[dict[str, Any], Any]:
        x = inputs["a_in"] << self.shift
        return delta_encode(x, state["act"], state["residue"], prepared["threshold"],
                            self.state_exp)

    def safe_input(self, target: TargetSpec) -> int:
        return 0  # checked every step

    def overflow(self, before: dict[str, Any], after: dict[str, Any], inputs: dict[str, Any],
                 ops: Any, target: TargetSpec) -> str | None:
        amax = ops.absmax(inputs["a_in"])
        if amax >= INT32_LIMIT >> self.shift:
            return _int32_problem("the input a << (spike_exp + state_exp)", amax << self.shift,
                                  f"a = {amax}")
        return delta_overflow(before, after, ops)

    def lava_process(self, size: int, shape: tuple[int, ...], target: TargetSpec, readout: bool,
                     reset_interval: int | None, reset_offset: int) -> Any:
        from lava.proc.sdn.process import Delta as LavaDelta

        return LavaDelta(shape=(size,), vth=self.vth, spike_exp=self.spike_exp,
                         state_exp=self.state_exp)


@dataclass(frozen=True, eq=False)
class SigmaDelta(NeuronModel):
    """A sigma-delta neuron with ReLU activation (netx: an SDNN layer)."""

    model = "sigma_delta"
    title = "Sigma-delta ReLU neuron (Lava PySigmaDeltaModelFixed; netx SDNN)"
    state = (
        StateVariable("sigma", 24, "unchecked", "the integrated input: sigma += a"),
        StateVariable("act", 24, "unchecked", "the activation max(sigma + bias << k, 0)"),
        StateVariable("residue", 24, "unchecked", "what the last change left unsent"),
    )
    binary = False
    default_message_bits = NETX_SDNN_MESSAGE_BITS
    resettable = False

    vth: int = parameter("threshold mantissa: a change d is sent iff |d| >= vth << (spike_exp + "
                         "state_exp)", _vth_limits)
    bias_mant: Any = parameter(  # noqa: RUF009 (a dataclasses.field with metadata)
        "signed bias (scalar, per channel or per neuron), added as bias << (spike_exp + "
        "state_exp)", lambda t, r: (t.bias_mant_min, t.bias_mant_max), array=True, default=0)
    spike_exp: int = parameter("fraction bits of a message (netx run option spike_exp)",
                               _exp_limits, default=NETX_SPIKE_EXP)
    state_exp: int = parameter("fraction bits of the state beyond the message", _exp_limits,
                               default=NETX_STATE_EXP)

    @property
    def shift(self) -> int:
        return self.spike_exp + self.state_exp

    def check(self, shape: tuple[int, ...], label: str, node: str) -> None:
        check_per_channel(self.bias_mant, "bias_mant", shape, label, node)

    @property
    def _bias_bound(self) -> int:
        return (int(np.abs(self.bias_mant).max()) if self.bias_mant.size else 0) << self.shift

    def prepare(self, ops: Any, shape: tuple[int, ...], target: TargetSpec, readout: bool) -> Any:
        bias = broadcast_per_channel(self.bias_mant, shape) << self.shift
        return {"bias": ops.asarray(bias), "threshold": self.vth << self.shift}

    def step(self, state: dict[str, Any], inputs: dict[str, Any],
             prepared: Any) -> tuple[dict[str, Any], Any]:
        sigma = state["sigma"] + inputs["a_in"]
        y = sigma + prepared["bias"]
        y = y * (y > 0)  # ReLU
        new, s = delta_encode(y, state["act"], state["residue"], prepared["threshold"],
                              self.state_exp)
        new["sigma"] = sigma
        return new, s

    def safe_input(self, target: TargetSpec) -> int:
        return 0  # sigma integrates without bound: checked every step

    def overflow(self, before: dict[str, Any], after: dict[str, Any], inputs: dict[str, Any],
                 ops: Any, target: TargetSpec) -> str | None:
        # sigma + a, then sigma + bias << k (the activation before the ReLU)
        smax = ops.absmax(after["sigma"])
        if smax >= INT32_LIMIT:
            return _int32_problem("sigma", smax, "sigma += a")
        # |sigma + bias << k| <= |sigma| + max|bias << k| (conservative by at most the bias)
        if smax + self._bias_bound >= INT32_LIMIT:
            return _int32_problem("the activation sigma + bias << k", smax + self._bias_bound,
                                  "before the ReLU")
        return delta_overflow(before, after, ops)

    def lava_process(self, size: int, shape: tuple[int, ...], target: TargetSpec, readout: bool,
                     reset_interval: int | None, reset_offset: int) -> Any:
        from lava.proc.sdn.process import SigmaDelta as LavaSigmaDelta

        return LavaSigmaDelta(
            shape=(size,), vth=self.vth,
            bias=broadcast_per_channel(self.bias_mant, shape).reshape(-1).astype(np.int32),
            spike_exp=self.spike_exp, state_exp=self.state_exp)


@dataclass(frozen=True, eq=False)
class Sigma(NeuronModel):
    """A sigma decoder (netx: an SDNN layer with ``sigma_output``): sends its integrated input."""

    model = "sigma"
    title = "Sigma decoder (Lava PySigmaModelFixed; netx SDNN sigma_output)"
    state = (StateVariable("sigma", 24, "unchecked", "the integrated input: sigma += a; the message"),)
    binary = False
    default_message_bits = NETX_SDNN_MESSAGE_BITS
    resettable = False

    def prepare(self, ops: Any, shape: tuple[int, ...], target: TargetSpec, readout: bool) -> Any:
        return None

    def step(self, state: dict[str, Any], inputs: dict[str, Any],
             prepared: Any) -> tuple[dict[str, Any], Any]:
        sigma = state["sigma"] + inputs["a_in"]
        return {"sigma": sigma}, sigma

    def safe_input(self, target: TargetSpec) -> int:
        return 0

    def overflow(self, before: dict[str, Any], after: dict[str, Any], inputs: dict[str, Any],
                 ops: Any, target: TargetSpec) -> str | None:
        vmax = ops.absmax(after["sigma"])
        if vmax >= INT32_LIMIT:
            return _int32_problem("sigma", vmax, "sigma += a")
        return None

    def lava_process(self, size: int, shape: tuple[int, ...], target: TargetSpec, readout: bool,
                     reset_interval: int | None, reset_offset: int) -> Any:
        from lava.proc.sdn.process import Sigma as LavaSigma

        return LavaSigma(shape=(size,))


def delta_encode(x: Any, act: Any, residue: Any, threshold: Any,
                 state_exp: int) -> tuple[dict[str, Any], Any]:
    """The delta step shared by ``Delta`` and ``SigmaDelta`` (Lava's ``delta_dynamics`` without
    cumulative error): ``d = x − act + residue``; ``s = d`` where ``|d| ≥ threshold`` else 0;
    returns ``({"act": x, "residue": d − s}, s >> state_exp)``."""
    d = x - act + residue
    s = d * (abs(d) >= threshold)
    return {"act": x, "residue": d - s}, s >> state_exp


def delta_overflow(before: dict[str, Any], after: dict[str, Any], ops: Any) -> str | None:
    """Whether the delta step's int32 intermediates ``x − act`` and ``d = x − act + residue``
    stayed within int32 (``after["act"]`` is x; ``before`` holds the previous act and residue)."""
    change = after["act"] - before["act"]
    cmax = ops.absmax(change)
    if cmax >= INT32_LIMIT:
        return _int32_problem("the change x - act", cmax, "delta step")
    dmax = ops.absmax(change + before["residue"])
    if dmax >= INT32_LIMIT:
        return _int32_problem("the change d", dmax, "delta step")
    return None
