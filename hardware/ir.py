"""The hardware IR: what the chip runs (docs/ir.md).

A network is a directed acyclic graph of one :class:`Input`, CUBA-LIF :class:`Population` s and
:class:`Projection` s (synapses) between them, for one named target (``sakd.hardware.target``).

Every node is a frozen dataclass. ``__post_init__`` checks what does not depend on the target
(types, shapes, enumerations, integer values) and freezes the arrays (int64 copies with
``flags.writeable = False``). The limits of the target (weight range and parity, decays,
threshold, bias, delays, message bits) are checked by ``node.validate(target)``, which
:class:`Network` calls for every node against ``get_target(network.target)``; nodes can call it
early themselves. Every error is an :class:`IRError` whose message starts with the node's label
(``"projection 'stage2.conv': ..."``) and whose ``node`` attribute holds the node's name.

numpy only; Python 3.10 compatible.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .target import TargetSpec, get_target

ENCODINGS = ("graded", "spikes")
ROLES = ("spiking", "readout")
KINDS = ("dense", "conv2d")

#: default bit width of a graded input when none is given
DEFAULT_GRADED_BITS = 8


class IRError(ValueError):
    """An invalid IR node or network. ``node`` names the offending node (None: the network)."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


# ---------------------------------------------------------------------------------------------
# value helpers (each error names the node)
# ---------------------------------------------------------------------------------------------


def _label(kind: str, name: Any) -> str:
    return f"{kind} '{name}'"


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise IRError(f"{kind} {name!r}: name must be a non-empty string", node=str(name))


def _as_int(value: Any, what: str, label: str, node: str) -> int:
    """A Python int from an int or numpy integer (bools and floats are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise IRError(f"{label}: {what} must be an integer, got {value!r}", node=node)
    return int(value)


def _as_float(value: Any, what: str, label: str, node: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise IRError(f"{label}: {what} must be a number, got {value!r}", node=node)
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise IRError(f"{label}: {what} must be a finite positive number, got {value!r}", node=node)
    return value


def _as_str(value: Any, what: str, label: str, node: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise IRError(f"{label}: {what} must be a string, got {value!r}", node=node)
    return value


def _as_shape(
    value: Any, label: str, node: str, ndims: Iterable[int] | None = None
) -> tuple[int, ...]:
    try:
        dims = (
            tuple(np.asarray(value).reshape(-1).tolist()) if not isinstance(value, tuple) else value
        )
    except Exception as exc:
        raise IRError(
            f"{label}: shape must be a tuple of positive integers, got {value!r}", node=node
        ) from exc
    shape = tuple(_as_int(d, "shape entry", label, node) for d in dims)
    if not shape or any(d <= 0 for d in shape):
        raise IRError(
            f"{label}: shape must be a non-empty tuple of positive integers, got {shape}", node=node
        )
    if ndims is not None and len(shape) not in tuple(ndims):
        raise IRError(
            f"{label}: shape {shape} must have {' or '.join(map(str, ndims))} dimensions", node=node
        )
    return shape


def _as_pair(value: Any, what: str, label: str, node: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        pair: tuple[Any, ...] = (value, value)
    else:
        try:
            pair = tuple(np.asarray(value).reshape(-1).tolist())
        except Exception as exc:
            raise IRError(
                f"{label}: {what} must be an integer or a pair, got {value!r}", node=node
            ) from exc
    if len(pair) != 2:
        raise IRError(f"{label}: {what} must be an integer or a pair, got {value!r}", node=node)
    out = (_as_int(pair[0], what, label, node), _as_int(pair[1], what, label, node))
    if min(out) < minimum:
        raise IRError(f"{label}: {what} {out} must be >= {minimum}", node=node)
    return out


def _frozen_int_array(value: Any, what: str, label: str, node: str) -> np.ndarray:
    """A read-only int64 copy; float arrays are accepted only when every value is an integer."""
    try:
        arr = np.array(value, copy=True)
    except Exception as exc:
        raise IRError(f"{label}: {what} is not an array: {exc}", node=node) from exc
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise IRError(f"{label}: {what} holds NaN or infinite values", node=node)
        if np.any(arr != np.round(arr)):
            bad = arr[arr != np.round(arr)].reshape(-1)[0]
            raise IRError(f"{label}: {what} must hold integers, found {bad!r}", node=node)
        if arr.size and np.abs(arr).max() >= 2.0**62:
            raise IRError(f"{label}: {what} values are far outside any integer range", node=node)
    elif arr.dtype.kind not in "iub":
        raise IRError(f"{label}: {what} must be an integer array, got dtype {arr.dtype}", node=node)
    elif arr.dtype.kind == "u" and arr.size and arr.max() >= 2**63:
        raise IRError(f"{label}: {what} values are far outside any integer range", node=node)
    arr = arr.astype(np.int64)
    arr.flags.writeable = False
    return arr


def _check_range(
    value: int, lo: int, hi: int, what: str, label: str, node: str, why: str = ""
) -> None:
    if not lo <= value <= hi:
        suffix = f" ({why})" if why else ""
        raise IRError(f"{label}: {what} {value} is outside [{lo}, {hi}]{suffix}", node=node)


def _refreeze(node: Any, state: dict[str, Any], arrays: tuple[str, ...]) -> None:
    """Unpickling restores numpy arrays writeable: make them read-only again."""
    node.__dict__.update(state)
    for key in arrays:
        getattr(node, key).flags.writeable = False


def conv2d_output_shape(
    input_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> tuple[int, int, int]:
    """(Cout, Ho, Wo) of a PyTorch conv2d of an input (C, H, W) with weight (Cout, Cin/g, kh, kw):
    ``Ho = floor((H + 2·ph − dh·(kh − 1) − 1) / sh) + 1`` (same for W). Raises ValueError when the
    kernel does not fit."""
    _, h, w = input_shape
    cout, _, kh, kw = weight_shape
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if ho <= 0 or wo <= 0:
        raise ValueError(
            f"a {kh}x{kw} kernel (dilation {dilation}, padding {padding}) does not fit a {h}x{w} input"
        )
    return (int(cout), int(ho), int(wo))


# ---------------------------------------------------------------------------------------------
# nodes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Input:
    """The network's input: ``shape`` (C, H, W) or (N,).

    ``graded``: signed integers of ``bits`` bits, ``x_int = clip(rint(x · scale))``;
    ``spikes``: 0/1 values (``bits = 1``, ``scale = 1``). ``bits=None`` picks 1 for spikes and
    ``DEFAULT_GRADED_BITS`` for graded input.
    """

    name: str
    shape: tuple[int, ...]
    encoding: str = "graded"
    bits: int | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        _check_name("input", self.name)
        label, node = _label("input", self.name), self.name
        object.__setattr__(self, "shape", _as_shape(self.shape, label, node, ndims=(1, 3)))
        encoding = _as_str(self.encoding, "encoding", label, node)
        if encoding not in ENCODINGS:
            raise IRError(f"{label}: encoding {encoding!r} is not one of {ENCODINGS}", node=node)
        object.__setattr__(self, "encoding", encoding)
        bits = self.bits
        if bits is None:
            bits = 1 if encoding == "spikes" else DEFAULT_GRADED_BITS
        bits = _as_int(bits, "bits", label, node)
        scale = _as_float(self.scale, "scale", label, node)
        if encoding == "spikes":
            if bits != 1 or scale != 1.0:
                raise IRError(
                    f"{label}: a spike input has bits = 1 and scale = 1, got bits={bits}, scale={scale}",
                    node=node,
                )
        elif bits < 2:
            raise IRError(
                f"{label}: a graded input needs at least 2 bits (signed), got {bits}", node=node
            )
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "scale", scale)

    @property
    def label(self) -> str:
        return _label("input", self.name)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def value_range(self) -> tuple[int, int]:
        """Inclusive range of the encoded values: (0, 1) for spikes, the signed ``bits`` range else."""
        if self.encoding == "spikes":
            return (0, 1)
        return (-(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1)

    def validate(self, target: TargetSpec) -> None:
        if self.encoding == "graded":
            _check_range(
                self.bits,
                2,
                target.max_message_bits,
                "bits",
                self.label,
                self.name,
                f"graded messages of target '{target.name}'",
            )

    def encode(self, x: Any) -> np.ndarray:
        """Float values → the integers the network receives (int64, same shape as ``x``).

        graded: ``clip(rint(x · scale), −2^(bits−1), 2^(bits−1) − 1)``; ``np.rint`` rounds half to
        even, as ``torch.round`` does. spikes: the values must already be 0 or 1.
        """
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise IRError(
                f"{self.label}: cannot encode values of dtype {arr.dtype}", node=self.name
            )
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise IRError(f"{self.label}: cannot encode NaN or infinite values", node=self.name)
        if self.encoding == "spikes":
            if arr.size and not np.all((arr == 0) | (arr == 1)):
                raise IRError(
                    f"{self.label}: a spike input takes only the values 0 and 1", node=self.name
                )
            return arr.astype(np.int64)
        lo, hi = self.value_range
        scaled = np.rint(arr.astype(np.float64) * self.scale)
        return np.clip(scaled, lo, hi).astype(np.int64)

    def equals(self, other: object) -> bool:
        return (
            isinstance(other, Input)
            and self.name == other.name
            and self.shape == other.shape
            and self.encoding == other.encoding
            and self.bits == other.bits
            and self.scale == other.scale
        )


@dataclass(frozen=True, eq=False)
class Population:
    """A group of CUBA-LIF neurons (Lava ``PyLifModelBitAcc``) with one shape.

    Integer parameters (widths from the target): ``du`` 12-bit current decay (0..4095; the decay
    applied is ``du + 1``), ``dv`` voltage decay (0..4096), ``vth`` 17-bit threshold mantissa
    (compared as ``v > vth << 6``), ``bias_mant`` 13-bit signed mantissa (shape ``()``, ``(C,)``
    per channel of the first axis, or the full shape) shifted left by ``bias_exp`` (0..7).
    ``role`` ``readout`` never fires. ``scale``: v_int ≈ 64 · scale · V_float.
    """

    name: str
    shape: tuple[int, ...]
    du: int
    dv: int
    vth: int
    bias_mant: Any = 0
    bias_exp: int = 0
    role: str = "spiking"
    scale: float = 1.0
    origin: str = ""

    def __post_init__(self) -> None:
        _check_name("population", self.name)
        label, node = _label("population", self.name), self.name
        shape = _as_shape(self.shape, label, node)
        object.__setattr__(self, "shape", shape)
        for what in ("du", "dv", "vth", "bias_exp"):
            object.__setattr__(self, what, _as_int(getattr(self, what), what, label, node))
        role = _as_str(self.role, "role", label, node)
        if role not in ROLES:
            raise IRError(f"{label}: role {role!r} is not one of {ROLES}", node=node)
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "scale", _as_float(self.scale, "scale", label, node))
        object.__setattr__(self, "origin", _as_str(self.origin, "origin", label, node))
        bias = _frozen_int_array(self.bias_mant, "bias_mant", label, node)
        if bias.shape not in ((), (shape[0],), shape):
            raise IRError(
                f"{label}: bias_mant shape {bias.shape} must be () (scalar), ({shape[0]},) (per "
                f"channel of the first axis) or the population shape {shape}",
                node=node,
            )
        object.__setattr__(self, "bias_mant", bias)

    def __setstate__(self, state: dict[str, Any]) -> None:
        _refreeze(self, state, ("bias_mant",))

    @property
    def label(self) -> str:
        return _label("population", self.name)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def is_readout(self) -> bool:
        return self.role == "readout"

    def full_bias(self) -> np.ndarray:
        """``bias_mant`` broadcast to the population shape (a new writeable int64 array)."""
        bias = self.bias_mant
        if bias.ndim == 1 and len(self.shape) > 1:
            bias = bias.reshape((-1,) + (1,) * (len(self.shape) - 1))
        return np.broadcast_to(bias, self.shape).astype(np.int64)

    def effective_bias(self) -> np.ndarray:
        """int64 full-shape ``bias_mant << bias_exp``: what enters v every step (Lava recomputes
        it every step from the int16 mantissa; at most 13 + 7 = 20 bits)."""
        return self.full_bias() << self.bias_exp

    def validate(self, target: TargetSpec) -> None:
        label, node = self.label, self.name
        _check_range(
            self.du,
            0,
            target.decay_unity - 1,
            "du",
            label,
            node,
            f"{target.decay_bits}-bit current decay; the decay applied is du + 1",
        )
        _check_range(
            self.dv,
            0,
            target.decay_unity,
            "dv",
            label,
            node,
            f"voltage decay; {target.decay_unity} removes all memory",
        )
        vth_hi = target.readout_vth if self.is_readout else target.vth_max
        _check_range(
            self.vth, 0, vth_hi, "vth", label, node, f"{target.vth_bits}-bit threshold mantissa"
        )
        _check_range(
            self.bias_exp, target.bias_exp_min, target.bias_exp_max, "bias_exp", label, node
        )
        if self.bias_mant.size:
            lo, hi = target.bias_mant_min, target.bias_mant_max
            bad = self.bias_mant[(self.bias_mant < lo) | (self.bias_mant > hi)]
            if bad.size:
                raise IRError(
                    f"{label}: bias_mant {int(bad.reshape(-1)[0])} is outside [{lo}, {hi}] "
                    f"({target.bias_mant_bits}-bit signed mantissa)",
                    node=node,
                )

    def equals(self, other: object) -> bool:
        return (
            isinstance(other, Population)
            and all(
                getattr(self, f) == getattr(other, f)
                for f in ("name", "shape", "du", "dv", "vth", "bias_exp", "role", "scale", "origin")
            )
            and self.bias_mant.shape == other.bias_mant.shape
            and bool(np.array_equal(self.bias_mant, other.bias_mant))
        )


@dataclass(frozen=True, eq=False)
class Projection:
    """Synapses from ``source`` (the input or a population) to ``target`` (a population).

    ``dense``: weight (out, in) applied to the source flattened in C,H,W order, then shifted by
    ``weight_exp`` (left if >= 0, else arithmetic right = floor). ``conv2d``: weight
    (Cout, Cin/groups, kh, kw), PyTorch cross-correlation with ``stride``, ``padding``,
    ``dilation``, ``groups``; ``weight_exp`` must be 0 (Lava's Conv ignores it) and the result is
    wrapped to 24 bits. ``delay``: extra steps on top of the 1-step synapse latency.
    """

    name: str
    source: str
    target: str
    kind: str
    weight: Any
    weight_exp: int = 0
    delay: int = 0
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self) -> None:
        _check_name("projection", self.name)
        label, node = _label("projection", self.name), self.name
        for what in ("source", "target"):
            value = _as_str(getattr(self, what), what, label, node)
            if not value:
                raise IRError(f"{label}: {what} must name a node", node=node)
            object.__setattr__(self, what, value)
        kind = _as_str(self.kind, "kind", label, node)
        if kind not in KINDS:
            raise IRError(f"{label}: kind {kind!r} is not one of {KINDS}", node=node)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "weight_exp", _as_int(self.weight_exp, "weight_exp", label, node))
        delay = _as_int(self.delay, "delay", label, node)
        if delay < 0:
            raise IRError(f"{label}: delay {delay} must be >= 0", node=node)
        object.__setattr__(self, "delay", delay)
        object.__setattr__(self, "stride", _as_pair(self.stride, "stride", label, node, 1))
        object.__setattr__(self, "padding", _as_pair(self.padding, "padding", label, node, 0))
        object.__setattr__(self, "dilation", _as_pair(self.dilation, "dilation", label, node, 1))
        groups = _as_int(self.groups, "groups", label, node)
        if groups < 1:
            raise IRError(f"{label}: groups {groups} must be >= 1", node=node)
        object.__setattr__(self, "groups", groups)
        weight = _frozen_int_array(self.weight, "weight", label, node)
        if kind == "dense":
            if weight.ndim != 2:
                raise IRError(
                    f"{label}: a dense weight is (out, in), got shape {weight.shape}", node=node
                )
            if (self.stride, self.padding, self.dilation, groups) != ((1, 1), (0, 0), (1, 1), 1):
                raise IRError(
                    f"{label}: stride/padding/dilation/groups apply to conv2d only", node=node
                )
        else:
            if weight.ndim != 4:
                raise IRError(
                    f"{label}: a conv2d weight is (Cout, Cin/groups, kh, kw), got shape {weight.shape}",
                    node=node,
                )
            if self.weight_exp != 0:
                raise IRError(
                    f"{label}: weight_exp {self.weight_exp} on a conv2d projection; Lava's Conv "
                    f"ignores weight_exp, so it must be 0 (fold the scale into the weights and threshold)",
                    node=node,
                )
            if weight.shape[0] % groups:
                raise IRError(
                    f"{label}: Cout {weight.shape[0]} is not divisible by groups {groups}",
                    node=node,
                )
        if weight.size == 0:
            raise IRError(f"{label}: weight is empty (shape {weight.shape})", node=node)
        object.__setattr__(self, "weight", weight)

    def __setstate__(self, state: dict[str, Any]) -> None:
        _refreeze(self, state, ("weight",))

    @property
    def label(self) -> str:
        return _label("projection", self.name)

    def validate(self, target: TargetSpec) -> None:
        label, node = self.label, self.name
        lo, hi, step = target.weight_min, target.weight_max, target.weight_step
        rule = f"{target.name} mixed-sign weights are even integers in [{lo}, {hi}]"
        w = self.weight
        out_of_range = w[(w < lo) | (w > hi)]
        if out_of_range.size:
            raise IRError(
                f"{label}: weight {int(out_of_range[0])} is outside [{lo}, {hi}]; {rule}", node=node
            )
        odd = w[w % step != 0]
        if odd.size:
            raise IRError(f"{label}: weight {int(odd[0])} is odd; {rule}", node=node)
        if self.kind == "dense":
            _check_range(
                self.weight_exp,
                target.weight_exp_min,
                target.weight_exp_max,
                "weight_exp",
                label,
                node,
            )
        _check_range(
            self.delay,
            0,
            target.max_delay,
            "delay",
            label,
            node,
            "extra steps on top of the 1-step synapse latency",
        )

    def output_shape(self, source_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The target shape this projection produces from ``source_shape`` (dense: (out,))."""
        if self.kind == "dense":
            return (int(self.weight.shape[0]),)
        return conv2d_output_shape(
            source_shape, self.weight.shape, self.stride, self.padding, self.dilation
        )

    def equals(self, other: object) -> bool:
        return (
            isinstance(other, Projection)
            and all(
                getattr(self, f) == getattr(other, f)
                for f in (
                    "name",
                    "source",
                    "target",
                    "kind",
                    "weight_exp",
                    "delay",
                    "stride",
                    "padding",
                    "dilation",
                    "groups",
                )
            )
            and self.weight.shape == other.weight.shape
            and bool(np.array_equal(self.weight, other.weight))
        )


# ---------------------------------------------------------------------------------------------
# network
# ---------------------------------------------------------------------------------------------


def _normalize_metadata(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise IRError(f"network: metadata must be a dict, got {type(metadata).__name__}")

    def default(value: Any) -> Any:
        if hasattr(value, "tolist"):
            return value.tolist()
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    try:
        text = json.dumps(metadata, default=default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise IRError(f"network: metadata must be JSON-able: {exc}") from exc
    return json.loads(text)


@dataclass(frozen=True, eq=False)
class Network:
    """One input, the populations and projections between them, for one target (docs/ir.md)."""

    input: Input
    populations: tuple[Population, ...]
    projections: tuple[Projection, ...]
    target: str = "loihi2"
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            spec = get_target(self.target)
        except (ValueError, TypeError) as exc:
            raise IRError(f"network: {exc}") from exc
        if not isinstance(self.input, Input):
            raise IRError(f"network: input must be an Input, got {type(self.input).__name__}")
        pops = tuple(self.populations)
        projs = tuple(self.projections)
        for p in pops:
            if not isinstance(p, Population):
                raise IRError(
                    f"network: populations must be Population nodes, got {type(p).__name__}"
                )
        for p in projs:
            if not isinstance(p, Projection):
                raise IRError(
                    f"network: projections must be Projection nodes, got {type(p).__name__}"
                )
        if not pops:
            raise IRError("network: no populations")
        object.__setattr__(self, "populations", pops)
        object.__setattr__(self, "projections", projs)
        object.__setattr__(self, "metadata", _normalize_metadata(self.metadata))

        # unique names (one namespace: reports key populations and projections by name)
        seen: dict[str, str] = {self.input.name: self.input.label}
        for node in (*pops, *projs):
            if node.name in seen:
                raise IRError(
                    f"{node.label}: name already used by {seen[node.name]}", node=node.name
                )
            seen[node.name] = node.label

        # target limits, node by node
        self.input.validate(spec)
        for node in (*pops, *projs):
            node.validate(spec)

        # endpoints and shapes
        by_name = {p.name: p for p in pops}
        shapes: dict[str, tuple[int, ...]] = {self.input.name: self.input.shape}
        shapes.update({p.name: p.shape for p in pops})
        for proj in projs:
            if proj.source not in shapes:
                raise IRError(f"{proj.label}: unknown source '{proj.source}'", node=proj.name)
            if proj.target not in by_name:
                what = (
                    "is the input; a projection targets a population"
                    if proj.target == self.input.name
                    else "is unknown"
                )
                raise IRError(f"{proj.label}: target '{proj.target}' {what}", node=proj.name)
            self._check_shapes(proj, shapes[proj.source], by_name[proj.target].shape)

        order = self._topological_sort(pops, projs)
        self._check_reachable(pops, projs)
        self._check_readout(pops, projs)
        latencies = self._compute_latencies(order, projs)
        object.__setattr__(self, "_order", tuple(order))
        object.__setattr__(self, "_latencies", latencies)

    # -- validation steps -----------------------------------------------------------------------

    def _check_shapes(self, proj: Projection, src: tuple[int, ...], tgt: tuple[int, ...]) -> None:
        w = proj.weight.shape
        if proj.kind == "dense":
            n_in, n_out = int(np.prod(src)), int(np.prod(tgt))
            if w != (n_out, n_in):
                raise IRError(
                    f"{proj.label}: dense weight shape {w} does not match (out, in) = ({n_out}, {n_in}) "
                    f"of target '{proj.target}' {tgt} and source '{proj.source}' {src} (flattened)",
                    node=proj.name,
                )
            return
        if len(src) != 3 or len(tgt) != 3:
            raise IRError(
                f"{proj.label}: conv2d needs (C, H, W) source and target, got source '{proj.source}' "
                f"{src} and target '{proj.target}' {tgt}",
                node=proj.name,
            )
        if src[0] % proj.groups:
            raise IRError(
                f"{proj.label}: source channels {src[0]} are not divisible by groups {proj.groups}",
                node=proj.name,
            )
        if w[1] != src[0] // proj.groups:
            raise IRError(
                f"{proj.label}: conv2d weight shape {w} needs Cin/groups = {src[0] // proj.groups} "
                f"(source '{proj.source}' has {src[0]} channels, groups {proj.groups})",
                node=proj.name,
            )
        try:
            out = proj.output_shape(src)
        except ValueError as exc:
            raise IRError(f"{proj.label}: {exc}", node=proj.name) from exc
        if out != tgt:
            raise IRError(
                f"{proj.label}: conv2d output shape {out} (source '{proj.source}' {src}, stride "
                f"{proj.stride}, padding {proj.padding}, dilation {proj.dilation}) does not match "
                f"target '{proj.target}' {tgt}",
                node=proj.name,
            )

    def _topological_sort(
        self, pops: tuple[Population, ...], projs: tuple[Projection, ...]
    ) -> list[str]:
        names = [p.name for p in pops]
        indeg = dict.fromkeys(names, 0)
        succ: dict[str, list[str]] = {n: [] for n in names}
        succ[self.input.name] = []
        for proj in projs:
            indeg[proj.target] += 1
            succ[proj.source].append(proj.target)
        ready = [self.input.name] + [n for n in names if indeg[n] == 0]
        order: list[str] = []
        position = {n: i for i, n in enumerate(names)}
        while ready:
            node = ready.pop(0)
            if node != self.input.name:
                order.append(node)
            released = []
            for nxt in succ[node]:
                indeg[nxt] -= 1
                if indeg[nxt] == 0:
                    released.append(nxt)
            ready.extend(sorted(released, key=position.__getitem__))
        if len(order) < len(names):
            left = {n for n in names if indeg[n] > 0}
            cycle = self._find_cycle(left, projs)
            raise IRError(
                f"population '{cycle[0]}': part of a cycle {' -> '.join(cycle)}; the IR is a directed acyclic graph",
                node=cycle[0],
            )
        return order

    @staticmethod
    def _find_cycle(left: set[str], projs: tuple[Projection, ...]) -> list[str]:
        """A cycle among the populations Kahn's sort could not order. Each of them has a
        predecessor among them, so walking predecessors from any one must close a loop."""
        pred: dict[str, list[str]] = {n: [] for n in left}
        for proj in projs:
            if proj.source in left and proj.target in left:
                pred[proj.target].append(proj.source)
        start = min(left)
        back, index = [start], {start: 0}
        while True:
            prev = pred[back[-1]][0]
            if prev in index:
                return list(reversed(back[index[prev] :] + [prev]))
            index[prev] = len(back)
            back.append(prev)

    def _check_reachable(self, pops: tuple[Population, ...], projs: tuple[Projection, ...]) -> None:
        reached = {self.input.name}
        frontier = [self.input.name]
        while frontier:
            node = frontier.pop()
            for proj in projs:
                if proj.source == node and proj.target not in reached:
                    reached.add(proj.target)
                    frontier.append(proj.target)
        for p in pops:
            if p.name not in reached:
                raise IRError(
                    f"{p.label}: not reachable from input '{self.input.name}'", node=p.name
                )

    def _check_readout(self, pops: tuple[Population, ...], projs: tuple[Projection, ...]) -> None:
        readouts = [p for p in pops if p.is_readout]
        if not readouts:
            raise IRError(
                "network: no readout population (role 'readout'); exactly one is required"
            )
        if len(readouts) > 1:
            names = ", ".join(f"'{p.name}'" for p in readouts)
            raise IRError(
                f"network: {len(readouts)} readout populations ({names}); exactly one is allowed",
                node=readouts[1].name,
            )
        readout = readouts[0]
        sources = {proj.source: proj for proj in projs}
        if readout.name in sources:
            raise IRError(
                f"{readout.label}: the readout has an outgoing projection '{sources[readout.name].name}'; "
                f"it must be the network's only sink",
                node=readout.name,
            )
        for p in pops:
            if not p.is_readout and p.name not in sources:
                raise IRError(
                    f"{p.label}: has no outgoing projections but is not the readout ('{readout.name}'); "
                    f"only the readout may be a sink",
                    node=p.name,
                )

    def _compute_latencies(self, order: list[str], projs: tuple[Projection, ...]) -> dict[str, int]:
        latency: dict[str, int] = {self.input.name: 0}
        path: dict[str, list[str]] = {self.input.name: [self.input.name]}
        via: dict[str, Projection] = {}
        for name in order:
            for proj in projs:
                if proj.target != name:
                    continue
                cand = latency[proj.source] + 1 + proj.delay
                if name not in latency:
                    latency[name], path[name], via[name] = cand, path[proj.source] + [name], proj
                    continue
                if cand != latency[name]:
                    first = (latency[name], path[name], via[name])
                    second = (cand, path[proj.source] + [name], proj)
                    short, long_ = sorted((first, second), key=lambda item: item[0])

                    def describe(item: tuple[int, list[str], Projection]) -> str:
                        lat, nodes, last = item
                        return (
                            f"{lat} via {' -> '.join(repr(n) for n in nodes)} "
                            f"(last projection '{last.name}', delay {last.delay})"
                        )

                    raise IRError(
                        f"population '{name}': unequal latency: {describe(first)} but {describe(second)}; "
                        f"every path from the input must have the same latency (add "
                        f"{long_[0] - short[0]} to the delay of projection '{short[2].name}')",
                        node=name,
                    )
        return {name: latency[name] for name in order}

    # -- queries ----------------------------------------------------------------------------------

    @property
    def target_spec(self) -> TargetSpec:
        return get_target(self.target)

    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(f"network has no population '{name}'")

    def source_shape(self, name: str) -> tuple[int, ...]:
        """Shape of the input or a population."""
        if name == self.input.name:
            return self.input.shape
        return self.population(name).shape

    def projections_into(self, name: str) -> tuple[Projection, ...]:
        return tuple(p for p in self.projections if p.target == name)

    def projections_from(self, name: str) -> tuple[Projection, ...]:
        return tuple(p for p in self.projections if p.source == name)

    def topological_order(self) -> tuple[str, ...]:
        """Population names, every population after all its sources (ties in declaration order)."""
        return self._order  # type: ignore[attr-defined]

    @property
    def latencies(self) -> dict[str, int]:
        """Latency of every population: latency(source) + 1 + delay over any incoming projection."""
        return dict(self._latencies)  # type: ignore[attr-defined]

    @property
    def readout(self) -> Population:
        return next(p for p in self.populations if p.is_readout)

    @property
    def latency(self) -> int:
        """L, the readout's latency: the response to input step t appears at step t + L."""
        return self._latencies[self.readout.name]  # type: ignore[attr-defined]

    def equals(self, other: object) -> bool:
        return (
            isinstance(other, Network)
            and self.target == other.target
            and self.metadata == other.metadata
            and self.input.equals(other.input)
            and len(self.populations) == len(other.populations)
            and all(a.equals(b) for a, b in zip(self.populations, other.populations))
            and len(self.projections) == len(other.projections)
            and all(a.equals(b) for a, b in zip(self.projections, other.projections))
        )
