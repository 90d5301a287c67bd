"""The neuron-model interface: what every model of ``sakd.hardware.neurons`` declares and does.

A neuron model is a frozen dataclass of its **integer parameters** (the fields) plus class-level declarations:

Each field is declared with :func:`parameter`: a description and its range on a target.

- ``model``: the registry key, also written to the IR file (``"cuba_lif"``);
- ``title``: a human name, with the Lava model it reproduces;
- ``state``: the state variables (:class:`StateVariable`: name, bit width, wrap or saturate);
- ``readout_state``: the state variable a readout population is read from (None: the model
  cannot be a readout);
- ``ports``: the inputs a projection can drive (Lava's InPort names; the first is the default:
  ``a_in``), each summed over the projections that target it;
- ``binary``: True when the message is a 0/1 spike (stored as bool), False when it is a signed
  integer (graded: sigma-delta); ``default_message_bits``: the bits a message takes on the chip
  unless the population says otherwise (1 for a spike);
- ``resettable``: whether a free-running schedule's ``reset_interval`` resets it (netx resets
  LIF layers only, ``LIFReset``; it ignores the interval for sigma-delta and RF neurons);

and implements

- ``check(shape, label, node)``: the target-independent checks (array shapes), raising
  :class:`~sakd.hardware.values.IRError`; called when a ``Population`` is built;
- ``validate(target, shape, readout, label, node)``: the target's limits;
- ``prepare(ops, shape, target, readout)``: per-run constants as backend arrays;
- ``initial_state(ops, shape)``: the reset state (a dict of int64 backend arrays);
- ``step(state, inputs, prepared)``: one time step, a **pure function** of operators only (numpy
  arrays and torch int64 tensors alike): returns ``(new_state, output)``; ``inputs`` maps the
  first port always, and every other port that a projection drives, to its summed synaptic input
  (int64); ``output`` is the message (bool spikes when ``binary``, int64 values otherwise);
- ``run_window(ops, inputs, prepared, resets, count, read, batch, shape)`` (optional): a whole
  window in one fused kernel, equal to ``step`` applied n times, or None (the default);
- ``safe_input(target)``: the largest |a| per step for which the step is exact without a run-time
  check (0: always checked), and ``overflow(before, after, inputs, ops, target)`` (the state
  before and after the step): a message when Lava's result would depend on integer overflow
  that the model does not reproduce (None otherwise).

File (de)serialization, equality and the parameter table in the docs are generic over the
fields. Adding a model touches its own module plus one ``register`` call (docs/neuron-models.md).

numpy only; Python 3.10 compatible.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..target import TargetSpec
from ..values import IRError, as_int, check_range, frozen_int_array, refreeze

#: "wrap" (two's complement), "saturate" (clip), "unchecked" (Lava's CPU model holds int32 and
#: neither wraps nor saturates at the declared width; the simulator stops beyond int32)
OVERFLOW = ("wrap", "saturate", "unchecked")


@dataclass(frozen=True)
class StateVariable:
    """One state variable of a neuron: held in int64 by the simulator, ``bits`` wide on chip."""

    name: str
    bits: int
    overflow: str  # one of OVERFLOW
    description: str

    def __post_init__(self) -> None:
        if self.overflow not in OVERFLOW:
            raise ValueError(f"state variable {self.name}: overflow must be one of {OVERFLOW}")


#: ``limits(target, readout) -> (lo, hi)``: the inclusive range of a parameter on a target
Limits = Callable[[TargetSpec, bool], tuple[int, int]]


def parameter(description: str, limits: Limits, *, array: bool = False,
              default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field for an integer parameter whose range on a target is ``limits(target,
    readout)`` (``array``: an int64 array, e.g. a per-neuron or per-channel bias; else an int).
    The widths live in the ``TargetSpec``; the field only says which of them applies."""
    meta = {"limits": limits, "array": array, "description": description}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True, eq=False)
class WindowRun:
    """What ``NeuronModel.run_window`` returns (B samples, N neurons, n steps, L counted).

    ``spikes`` bool [n, B, N]; ``per_step`` int64 [L, B]: spikes per counted step; ``active``
    int64 [B]: counted neuron-steps that fired or received a nonzero input; ``fired`` int64
    [B, N]: spikes per neuron over the counted steps; ``read`` int64 [B, N]: the readout state
    after step ``read`` ([B, 0] when none was asked)."""

    spikes: np.ndarray
    per_step: np.ndarray
    active: np.ndarray
    fired: np.ndarray
    read: np.ndarray


@dataclass(frozen=True, eq=False)
class NeuronModel:
    """Base class of a neuron model's parameters (see the module docstring)."""

    model: ClassVar[str] = ""
    title: ClassVar[str] = ""
    state: ClassVar[tuple[StateVariable, ...]] = ()
    readout_state: ClassVar[str | None] = None
    ports: ClassVar[tuple[str, ...]] = ("a_in",)
    binary: ClassVar[bool] = True
    default_message_bits: ClassVar[int] = 1
    resettable: ClassVar[bool] = True

    def __post_init__(self) -> None:
        label = f"neuron model '{self.model}'"
        for fld in dataclasses.fields(self):
            value = getattr(self, fld.name)
            if fld.metadata.get("array"):
                object.__setattr__(self, fld.name, frozen_int_array(value, fld.name, label, label))
            else:
                object.__setattr__(self, fld.name, as_int(value, fld.name, label, label))

    def __setstate__(self, state: dict[str, Any]) -> None:
        refreeze(self, state, tuple(f.name for f in dataclasses.fields(self)
                                    if f.metadata.get("array")))

    # -- declarations ----------------------------------------------------------------------------

    @classmethod
    def parameters(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)

    # -- checks ----------------------------------------------------------------------------------

    def check(self, shape: tuple[int, ...], label: str, node: str) -> None:
        """Target-independent checks against the population's shape."""

    def validate(self, target: TargetSpec, shape: tuple[int, ...], readout: bool, label: str,
                 node: str) -> None:
        """The target's limits: every parameter within ``limits(target, readout)``."""
        for fld in self.parameters():
            lo, hi = fld.metadata["limits"](target, readout)
            value = getattr(self, fld.name)
            why = fld.metadata["description"]
            if isinstance(value, np.ndarray):
                bad = value[(value < lo) | (value > hi)]
                if bad.size:
                    raise IRError(f"{label}: {fld.name} {int(bad.reshape(-1)[0])} is outside "
                                  f"[{lo}, {hi}] ({why})", node=node)
            else:
                check_range(value, lo, hi, fld.name, label, node, why)

    # -- simulation ------------------------------------------------------------------------------

    def prepare(self, ops: Any, shape: tuple[int, ...], target: TargetSpec, readout: bool) -> Any:
        raise NotImplementedError

    def run_window(self, ops: Any, inputs: Mapping[str, Any], prepared: Any, resets: np.ndarray,
                   count: tuple[int, int], read: int, batch: int,
                   shape: tuple[int, ...]) -> WindowRun | None:
        """The whole window of a population at once, in a fused kernel, or None when this model
        has none for ``ops`` (the runner then calls ``step`` per step). ``inputs``: port ->
        int64 [n, B, N] (the summed input of every step, N the neurons flattened; a port that
        gets the same input every step may be a read-only broadcast view); ``resets`` bool [n]:
        reset to the initial state before step i; ``count``: (first step, steps) of the counted
        window; ``read``: the step after which the readout state is kept (-1: none). Must equal
        ``step`` applied n times, bit for bit. ``batch``, ``shape``: the samples and the
        population's shape."""
        return None

    def initial_state(self, ops: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        return {var.name: ops.zeros(shape) for var in self.state}

    def step(self, state: dict[str, Any], inputs: dict[str, Any],
             prepared: Any) -> tuple[dict[str, Any], Any]:
        raise NotImplementedError

    def safe_input(self, target: TargetSpec) -> int:
        """Largest |a| per step that needs no run-time overflow check."""
        raise NotImplementedError

    def overflow(self, before: dict[str, Any], after: dict[str, Any], inputs: dict[str, Any],
                 ops: Any, target: TargetSpec) -> str | None:
        return None

    # -- files and equality ----------------------------------------------------------------------

    def to_file(self) -> tuple[dict[str, int], dict[str, np.ndarray]]:
        """(integer attributes, arrays) of the parameters, for the IR file."""
        attrs, arrays = {}, {}
        for fld in self.parameters():
            value = getattr(self, fld.name)
            if fld.metadata.get("array"):
                arrays[fld.name] = value
            else:
                attrs[fld.name] = int(value)
        return attrs, arrays

    @classmethod
    def from_file(cls, values: Mapping[str, Any]) -> NeuronModel:
        """The model from its parameters; a missing or unknown parameter is an error naming it."""
        names = [f.name for f in cls.parameters()]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise IRError(f"neuron model '{cls.model}': unknown parameter(s) {unknown}; its "
                          f"parameters are {names}")
        required = [f.name for f in cls.parameters()
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [n for n in required if n not in values]
        if missing:
            raise IRError(f"neuron model '{cls.model}': missing parameter(s) {missing}")
        return cls(**dict(values))

    def equals(self, other: object) -> bool:
        if type(other) is not type(self):
            return False
        for fld in self.parameters():
            a, b = getattr(self, fld.name), getattr(other, fld.name)
            if isinstance(a, np.ndarray):
                if a.shape != b.shape or not np.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True

    def describe(self) -> str:
        """One line: the model and its scalar parameters (arrays by shape)."""
        parts = []
        for fld in self.parameters():
            value = getattr(self, fld.name)
            parts.append(f"{fld.name}={value.shape if isinstance(value, np.ndarray) and value.ndim else int(value)}")
        return f"{self.model}({', '.join(parts)})"


def broadcast_per_channel(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A parameter array of shape ``()``, ``(C,)`` (per channel of the first axis) or ``shape``,
    broadcast to ``shape`` (a new writeable int64 array)."""
    if value.ndim == 1 and len(shape) > 1:
        value = value.reshape((-1,) + (1,) * (len(shape) - 1))
    return np.broadcast_to(value, shape).astype(np.int64)


def check_per_channel(value: np.ndarray, what: str, shape: tuple[int, ...], label: str,
                      node: str) -> None:
    """An array parameter must be a scalar, per channel of the first axis, or per neuron."""
    if value.shape not in ((), (shape[0],), tuple(shape)):
        raise IRError(f"{label}: {what} shape {value.shape} must be () (scalar), ({shape[0]},) "
                      f"(per channel of the first axis) or the population shape {tuple(shape)}",
                      node=node)
