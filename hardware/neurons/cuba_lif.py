"""CUBA-LIF: Lava's bit-accurate current-based leaky integrate-and-fire neuron (``PyLifModelBitAcc``,
shared/spec/fixed-point.md §1.1), and its float twin (spikingjelly's ``LIFNode``, §3.3 and §5).

Integer parameters (ranges from the ``TargetSpec``; Loihi 2 values in brackets):

- ``du``: current decay, the decay applied is ``du + 1`` (``ds_offset = 1``) [−1..4095; −1 is
  netx's ``iDecay = 0``: the current never decays];
- ``dv``: voltage decay, applied as is (``dm_offset = 0``) [0..4096; 4096 forgets v];
- ``vth``: threshold mantissa, fires iff ``v > vth << 6`` (strict) [0..2^17 − 1; a readout
  has 2^17, above the v clip, and never fires];
- ``bias_mant``: signed mantissa, shape ``()``, ``(C,)`` per channel of the first axis, or the
  population shape [13 bits: −4096..4095]; ``bias_exp``: its left shift [0..7].

Inputs: ``a_in`` (the synaptic input) and ``bias`` (a per-sample bias mantissa, added to
``bias_mant`` before the shift: how lava-dl's tinynet test drives an input layer, by setting its
``bias_mant``).

State (int64 here, int32 holding 24 bits in Lava): ``u`` wraps once per step into
(−2^23, 2^23]; ``v`` saturates at ±(2^23 − 1). A neuron sends a binary spike; ``v`` is reset to 0
after it (``u`` is not).

numpy only at import (Lava is imported inside :meth:`CubaLif.lava_process`); Python 3.10
compatible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..jit import kernels_enabled
from ..target import TargetSpec
from ..values import IRError
from .base import (
    NeuronModel,
    StateVariable,
    WindowRun,
    broadcast_per_channel,
    check_per_channel,
    parameter,
)

#: Lava keeps a_in, u and v in int32 (fixed-point.md §1.1): ``a << 6`` must fit int32, so |a| < 2^25
A_IN_LIMIT = 1 << 25
#: |u| bound after a step that keeps every int32 sum of the next one (u ± 2^24, v + u + bias) exact
U_LIMIT = (1 << 31) - (1 << 25)


@dataclass(frozen=True, eq=False)
class CubaLif(NeuronModel):
    """CUBA-LIF integer parameters (see the module docstring)."""

    model = "cuba_lif"
    title = "CUBA-LIF (Lava PyLifModelBitAcc / LIFReset, netx CUBA)"
    state = (
        StateVariable("u", 24, "wrap", "synaptic current: u = trunc0(u·(4096 − (du+1))/4096) + (a << 6)"),
        StateVariable("v", 24, "saturate", "membrane voltage: v = trunc0(v·(4096 − dv)/4096) + u + bias"),
    )
    readout_state = "v"
    ports = ("a_in", "bias")

    du: int = parameter("current decay; the decay applied is du + 1 (-1, netx's iDecay 0: "
                        "none; Lava's models only)",
                        lambda t, r: (-1 if t.lava_model else 0, t.decay_unity - 1))
    dv: int = parameter("voltage decay; 4096 removes all memory",
                        lambda t, r: (0, t.decay_unity))
    vth: int = parameter("threshold mantissa: fires iff v > vth << 6 (a readout: 2^17, never)",
                         lambda t, r: (0, t.readout_vth if r else t.vth_max))
    bias_mant: Any = parameter(  # noqa: RUF009 (a dataclasses.field with metadata)
        "signed bias mantissa (scalar, per channel or per neuron)",
        lambda t, r: (t.bias_mant_min, t.bias_mant_max), array=True, default=0)
    bias_exp: int = parameter("bias exponent: bias = bias_mant << bias_exp",
                              lambda t, r: (t.bias_exp_min, t.bias_exp_max), default=0)

    # -- constructors for the roles the lowering uses --------------------------------------------

    @classmethod
    def readout(cls, target: TargetSpec, bias_mant: Any = 0, bias_exp: int = 0) -> CubaLif:
        """An integrating readout: du = 4095 (u carries this step's input), dv = 0 (v sums it),
        a threshold no voltage reaches (never fires)."""
        return cls(du=target.decay_unity - 1, dv=0, vth=target.readout_vth, bias_mant=bias_mant,
                   bias_exp=bias_exp)

    @classmethod
    def or_gate(cls, target: TargetSpec) -> CubaLif:
        """Fires at t + 1 iff any input (weight 2) spiked at t: du = dv = 4095, vth = 1 (max
        pooling over binary spikes)."""
        return cls(du=target.decay_unity - 1, dv=target.decay_unity - 1, vth=1)

    # -- parameters ------------------------------------------------------------------------------

    def check(self, shape: tuple[int, ...], label: str, node: str) -> None:
        check_per_channel(self.bias_mant, "bias_mant", shape, label, node)

    def full_bias(self, shape: tuple[int, ...]) -> np.ndarray:
        """``bias_mant`` broadcast to the population shape (a new writeable int64 array)."""
        return broadcast_per_channel(self.bias_mant, shape)

    def effective_bias(self, shape: tuple[int, ...]) -> np.ndarray:
        """int64 full-shape ``bias_mant << bias_exp``: what enters v every step (Lava recomputes
        it every step from the int16 mantissa; at most 13 + 7 = 20 bits)."""
        return self.full_bias(shape) << self.bias_exp

    # -- simulation ------------------------------------------------------------------------------

    def prepare(self, ops: Any, shape: tuple[int, ...], target: TargetSpec, readout: bool) -> Any:
        # a readout's threshold 2^23 is above the v clip, so it never fires
        threshold = target.state_max if readout else self.vth << target.vth_shift
        bias = self.effective_bias(shape)
        return {"bias": ops.asarray(bias) if np.any(bias) else 0, "threshold": threshold,
                "target": target}

    def step(self, state: dict[str, Any], inputs: dict[str, Any],
             prepared: Any) -> tuple[dict[str, Any], Any]:
        bias = prepared["bias"]
        if "bias" in inputs:  # a per-sample bias mantissa (netx input layers, --input-mode bias)
            bias = bias + (inputs["bias"] << self.bias_exp)
        u, v = lif_dynamics(state["u"], state["v"], inputs["a_in"], self.du, self.dv, bias,
                            prepared["target"])
        s = v > prepared["threshold"]  # strict v > vth << 6
        v *= ~s  # reset v only (v is lif_dynamics' fresh array); u keeps its value
        return {"u": u, "v": v}, s

    def run_window(self, ops: Any, inputs: Mapping[str, Any], prepared: Any, resets: np.ndarray,
                   count: tuple[int, int], read: int, batch: int,
                   shape: tuple[int, ...]) -> WindowRun | None:
        """The window in one compiled loop (``cuba_lif_fused``) on the numpy backend when numba
        is there (``sakd.hardware.jit``); None otherwise."""
        if getattr(ops, "name", None) != "numpy" or not kernels_enabled():
            return None
        from .cuba_lif_fused import lif_window

        n, size = len(resets), int(np.prod(shape))
        a = inputs.get("a_in")
        bias_in = inputs.get("bias")
        target: TargetSpec = prepared["target"]
        bias = prepared["bias"]
        bias = (np.zeros(size, np.int64) if isinstance(bias, int)
                else np.ascontiguousarray(np.broadcast_to(bias, shape), np.int64).reshape(size))
        spikes = np.empty((n, batch, size), np.bool_)
        length = count[1]
        kept = size if read >= 0 else 0  # the readout state is kept only when asked for
        run = WindowRun(spikes, np.zeros((length, batch), np.int64), np.zeros(batch, np.int64),
                        np.zeros((batch, size), np.int64), np.zeros((batch, kept), np.int64))
        no_bias = np.zeros((1, 1, 1), np.int64)  # never read: has_bias_in is False
        lif_window()(bias_in is not None)(
                     _per_step_input(a, batch, size),
                     no_bias if bias_in is None else _per_step_input(bias_in, batch, size),
                     bias, self.bias_exp, self.du + 1, self.dv,
                     target.decay_unity, target.decay_bits, target.act_shift, target.state_max,
                     int(prepared["threshold"]), np.ascontiguousarray(resets, np.bool_),
                     count[0], length, read, spikes, run.per_step, run.active, run.fired,
                     run.read)
        return run

    def safe_input(self, target: TargetSpec) -> int:
        """|a| < 2^18: ``a << 6`` stays below 2^24 and the single wrap keeps u within 24 bits."""
        return ((2 * target.state_max) >> target.act_shift) - 1

    def overflow(self, before: dict[str, Any], after: dict[str, Any], inputs: dict[str, Any],
                 ops: Any, target: TargetSpec) -> str | None:
        amax = ops.absmax(inputs["a_in"])
        if amax >= A_IN_LIMIT:
            return (f"summed synaptic input a reaches {amax}; a << 6 overflows Lava's int32 state "
                    f"(|a| < 2^25), so the chip's result is undefined (the target's max synaptic "
                    f"input is {target.max_synaptic_input})")
        umax = ops.absmax(after["u"])
        if umax >= U_LIMIT:
            return (f"u reaches {umax}, beyond what Lava's int32 state holds exactly (|a| per step "
                    f"exceeds the target's max synaptic input {target.max_synaptic_input}, so u "
                    f"left its 24 bits and kept growing)")
        return None

    # -- Lava --------------------------------------------------------------------------------------

    def lava_process(self, size: int, shape: tuple[int, ...], target: TargetSpec, readout: bool,
                     reset_interval: int | None, reset_offset: int) -> Any:
        """A Lava ``LIF`` / ``LIFReset`` of shape ``(size,)`` (the population flattened in C,H,W
        order) with these exact parameters."""
        from lava.proc.lif.process import LIF, LIFReset

        kw = dict(shape=(size,), du=self.du, dv=self.dv,
                  vth=target.readout_vth if readout else self.vth,
                  bias_mant=self.full_bias(shape).reshape(-1).astype(np.int32),
                  bias_exp=np.full((size,), self.bias_exp, np.int32))
        if reset_interval is None:
            return LIF(**kw)
        return LIFReset(reset_interval=reset_interval, reset_offset=reset_offset, **kw)


def lif_dynamics(u: Any, v: Any, a: Any, du: int, dv: int, bias: Any,
                 target: TargetSpec) -> tuple[Any, Any]:
    """The sub-threshold dynamics of ``PyLifModelBitAcc`` (fixed-point.md §1.1) on int64 arrays
    (numpy or torch): returns the new ``(u, v)`` before the spike test and reset, as fresh
    arrays (the arguments are not modified). ``bias``: the effective bias ``bias_mant <<
    bias_exp`` (broadcastable), or the int 0 for none.

    Speed without a change of result: the wrap of u and the clip of v are applied only when a
    value is beyond them (two reductions instead of four or six passes), the truncations run in
    place, and du = 4095 (no memory) skips the current's decay."""
    unity, shift, top = target.decay_unity, target.decay_bits, target.state_max  # 4096, 12, 2^23
    # current: decay by du + 1 (ds_offset = 1), truncated toward zero; add a << 6
    # (du = 4095: the factor is 0, so the decayed term is 0 and u = a << 6)
    if du + 1 == unity:
        new_u = a << target.act_shift
    else:  # u has the full shape; a may broadcast
        new_u = _truncate_in_place(u * (unity - (du + 1)), shift)
        new_u += a << target.act_shift
    if getattr(new_u, "shape", None) != v.shape:  # a scalar input: u is the same everywhere
        new_u = new_u + v * 0
    # wrap once (not saturate): u > 2^23 -> u - 2^24; u <= -2^23 -> u + 2^24  (u == 2^23 is kept)
    if new_u.max() > top or new_u.min() <= -top:
        new_u = new_u - (new_u > top) * (2 * top)
        new_u = new_u + (new_u <= -top) * (2 * top)
    # voltage: decay by dv (dm_offset = 0), truncated toward zero (dv = 0 keeps v exactly,
    # dv = 4096 forgets it); add u and the bias; saturate (not wrap) to +-(2^23 - 1)
    if dv == 0:
        new_v = v + new_u
    elif dv == unity:
        new_v = new_u + 0
    else:
        new_v = _truncate_in_place(v * (unity - dv), shift)
        new_v += new_u
    if not (isinstance(bias, int) and bias == 0):
        new_v += bias
    limit = top - 1
    if new_v.max() > limit or new_v.min() < -limit:
        new_v = new_v.clip(-limit, limit)
    return new_u, new_v


def _per_step_input(x: np.ndarray | None, batch: int, size: int) -> np.ndarray:
    """A port's input as C-contiguous int64 [n, B, N], or [1, B, N] when every step gets the same
    value (a broadcast view over the steps is not copied; zeros for a port without input)."""
    if x is None:
        return np.zeros((1, batch, size), np.int64)
    if x.shape[0] > 1 and x.strides[0] == 0:  # the same input every step
        x = x[:1]
    return np.ascontiguousarray(x, np.int64).reshape(x.shape[0], batch, size)


def _truncate_in_place(p: Any, bits: int) -> Any:
    """``p`` becomes ``trunc0(p / 2^bits)`` in place (int64, numpy or torch; fixed_point.trunc_shift
    without its temporaries); returns ``p``."""
    sign = p >> 63  # -1 for negative p, 0 otherwise
    sign &= (1 << bits) - 1
    p += sign
    p >>= bits
    return p


# ---------------------------------------------------------------------------------------------
# the float twin: spikingjelly's LIF (hard reset), and its mapping onto the integer parameters
# ---------------------------------------------------------------------------------------------


def lif_float_charge(v: Any, x: Any, *, tau: float, decay_input: bool,
                     v_reset: float | None = 0.0) -> Any:
    """spikingjelly 2.0's ``LIFNode`` charge, in its operation order (``base_node.py``,
    ``lif.py``): ``H = V − (V − V_reset)/τ + X``, or ``V + (X − (V − V_reset))/τ`` with
    ``decay_input``. Operators only (numpy arrays, torch tensors of any float dtype); ``v`` may be
    a Python float (the initial state). ``V − 0.0`` is skipped: it is V bit for bit."""
    reset = 0.0 if v_reset is None else v_reset
    leak = v if reset == 0.0 else v - reset
    return v + (x - leak) / tau if decay_input else v - leak / tau + x


def lif_float_fire(h: Any, *, v_threshold: float, v_reset: float | None = 0.0) -> tuple[Any, Any]:
    """Fire ``S = H ≥ V_th`` and reset: hard ``V = S·V_reset + (1 − S)·H``, or soft
    ``H − S·V_th`` when ``v_reset`` is None. Returns ``(fired, v_next)``, ``fired`` boolean."""
    fired = h >= v_threshold
    if v_reset is None:
        return fired, h - fired * v_threshold
    # S·V_reset + (1 − S)·H for S in {0, 1}: exactly H or V_reset (h·0 + V_reset keeps h's dtype)
    return fired, h * ~fired + (h * 0.0 + v_reset) * fired


def lif_float_step(v: Any, x: Any, *, tau: float, decay_input: bool, v_threshold: float,
                   v_reset: float | None = 0.0) -> tuple[Any, Any]:
    """One step of spikingjelly's ``LIFNode`` (the float twin of CUBA-LIF with du = 4095):
    charge, fire, reset. Returns ``(fired, v_next)``."""
    h = lif_float_charge(v, x, tau=tau, decay_input=decay_input, v_reset=v_reset)
    return lif_float_fire(h, v_threshold=v_threshold, v_reset=v_reset)


def lif_input_factor(tau: float, decay_input: bool, v_threshold: float) -> float:
    """c: the factor that maps the float LIF's input X onto the integer neuron's drive, with the
    threshold folded in (V' = V / θ fires at 1): ``(1/τ if decay_input else 1) / θ``."""
    return (1.0 / tau if decay_input else 1.0) / v_threshold


def lif_decays(tau: float, target: TargetSpec) -> tuple[int, int, bool]:
    """(du, dv, exact) of a float LIF with time constant ``tau`` (fixed-point.md §5): u carries
    only this step's input (``du = 4095``), ``dv = round(4096 / τ)``; exact when 4096/τ is an
    integer (τ = 2 → 2048)."""
    unity = target.decay_unity
    dv_float = unity / tau
    dv = int(round(dv_float))
    return unity - 1, dv, dv == dv_float


def lif_threshold(scale: int, dv: int) -> int:
    """The integer threshold for a float threshold scaled to ``scale``: ``S`` for a leaky LIF
    (only exact ties V == θ then differ from spikingjelly's ≥); ``S − 1`` for a non-leaky IF
    (v moves in multiples of 64, so ``v > (S − 1) << 6`` ⟺ ``V ≥ θ`` exactly)."""
    return scale if dv > 0 else scale - 1


def lif_population(name: str, shape: tuple[int, ...], *, du: int, dv: int, vth: int,
                   bias_mant: Any = 0, bias_exp: int = 0, role: str = "spiking",
                   scale: float = 1.0, origin: str = "") -> Any:
    """A ``Population`` of CUBA-LIF neurons with these parameters (a shorthand for
    ``Population(name, shape, CubaLif(...), role, scale, origin)``)."""
    from ..ir import Population

    try:
        neuron = CubaLif(du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp)
    except IRError as exc:
        raise IRError(f"population '{name}': {exc}", node=name) from exc
    return Population(name, shape, neuron, role=role, scale=scale, origin=origin)
