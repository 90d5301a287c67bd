"""The hardware IR: what the chip runs (docs/ir.md).

A network is a graph of one :class:`Input`, :class:`Population` s of neurons (each of one neuron
model, ``sakd.hardware.neurons``) and :class:`Projection` s (synapses) between them, for one
:class:`~sakd.hardware.target.TargetSpec`. Its ``schedule`` says how it runs in time:

- ``"sample"`` (what sakd exports): each sample is presented for ``time_steps`` = T steps, every
  population is reset every T steps staggered by its latency, and the readouts are read at step
  T + L. The graph is acyclic, every path from the input to a population has the same latency,
  and the sinks are readouts.
- ``"free"`` (netx files of other tools: lava-dl's ``netx.hdf5.Network`` semantics): the network
  runs freely from the zero state for as many steps as asked; resets happen only where the run
  options say (``reset_interval``). Recurrent projections (cycles), unequal path latencies and
  spiking or graded output populations are allowed.

Every node is a frozen dataclass. ``__post_init__`` checks what does not depend on the target
(types, shapes, enumerations, integer values) and freezes the arrays (int64 copies with
``flags.writeable = False``). The limits of the target (weight range and parity, the neuron
model's parameter ranges, delays, message bits) are checked by ``node.validate(target)``, which
:class:`Network` calls for every node; nodes can call it early themselves. Every error is an
:class:`IRError` (a ``SakdError``) whose message starts with the node's label
(``"projection 'stage2.conv': ..."``) and whose ``node`` attribute holds the node's name.

numpy only; Python 3.10 compatible.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .neurons import NeuronModel
from .target import DEFAULT_TARGET, TargetError, TargetSpec, get_target
from .values import (
    IRError,
    as_int,
    as_pair,
    as_positive_float,
    as_shape,
    as_str,
    check_name,
    check_range,
    frozen_int_array,
    label_of,
    refreeze,
)

ENCODINGS = ("graded", "spikes")
ROLES = ("spiking", "readout")
#: projection kinds: ``dense`` (a matrix), ``conv2d`` (a PyTorch conv), ``upsample`` (a transposed
#: conv whose kernel equals its stride: each target neuron reads one source position; nearest
#: upsampling, a broadcast), ``direct`` (the input written into the target, netx's input layer)
KINDS = ("dense", "conv2d", "upsample", "direct")
SCHEDULES = ("sample", "free")
#: "hardware": every value within the target chip's ranges; "lava": within what Lava's
#: bit-accurate CPU models run exactly (``TargetSpec.lava_model_limits``; netx files of others)
LIMITS = ("hardware", "lava")

#: default bit width of a graded input when none is given
DEFAULT_GRADED_BITS = 8
#: the most time steps per sample a network may declare: far beyond published SNN workloads
#: (T <= 1000); a larger value in a file is damage, not a network (it would need GiBs per sample)
MAX_TIME_STEPS = 1 << 16


def _fits_weights(w: np.ndarray, lo: int, hi: int, step: int) -> bool:
    return bool(w.size == 0 or (w.min() >= lo and w.max() <= hi and not np.any(w % step)))


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


def upsample_output_shape(input_shape: tuple[int, ...], weight_shape: tuple[int, ...]
                          ) -> tuple[int, int, int]:
    """(Cout, H·fh, W·fw) of an ``upsample`` projection of a (C, H, W) source with weight
    (Cout, Cin/groups, fh, fw)."""
    _, h, w = input_shape
    cout, _, fh, fw = weight_shape
    return (int(cout), int(h) * int(fh), int(w) * int(fw))


def upsample_row_bound(weight: np.ndarray) -> int:
    """max over target neurons of Σ|w| of an ``upsample`` weight (Cout, Cin/groups, fh, fw): a
    target neuron (co, i, j) reads ``w[co, :, i % fh, j % fw]``, one weight per channel of its
    group (Python int)."""
    w = np.abs(np.asarray(weight, dtype=np.int64))
    return int(w.sum(axis=1).max()) if w.size else 0


def upsample_synapses(source_shape: tuple[int, ...], weight: np.ndarray, groups: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """An ``upsample`` projection as a synapse list (COO: rows = target neurons, columns = source
    neurons, both flat in C,H,W order): ``(rows, cols, values, (n_target, n_source))``, int64,
    one entry per target neuron and channel of its group (zero weights included: they are
    stored synapses). Target (co, i, j) reads source (g·Cin/g + ci, i // fh, j // fw) with weight
    ``w[co, ci, i % fh, j % fw]``, g = co // (Cout/groups)."""
    c, h, w = (int(d) for d in source_shape)
    weight = np.asarray(weight, dtype=np.int64)
    cout, cg, fh, fw = weight.shape
    og = cout // groups
    co = np.arange(cout)[:, None, None, None]
    ci = np.arange(cg)[None, :, None, None]
    i = np.arange(h * fh)[None, None, :, None]
    j = np.arange(w * fw)[None, None, None, :]
    shape = (cout, cg, h * fh, w * fw)
    rows = np.broadcast_to((co * (h * fh) + i) * (w * fw) + j, shape)
    cols = np.broadcast_to(((co // og) * cg + ci) * (h * w) + (i // fh) * w + j // fw, shape)
    vals = weight[co, ci, i % fh, j % fw]
    n_out, n_in = cout * h * fh * w * fw, c * h * w
    return (rows.reshape(-1).astype(np.int64), cols.reshape(-1).astype(np.int64),
            np.broadcast_to(vals, shape).reshape(-1).astype(np.int64), (n_out, n_in))


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
        check_name("input", self.name)
        label, node = label_of("input", self.name), self.name
        object.__setattr__(self, "shape", as_shape(self.shape, label, node, ndims=(1, 3)))
        encoding = as_str(self.encoding, "encoding", label, node)
        if encoding not in ENCODINGS:
            raise IRError(f"{label}: encoding {encoding!r} is not one of {ENCODINGS}", node=node)
        object.__setattr__(self, "encoding", encoding)
        bits = self.bits
        if bits is None:
            bits = 1 if encoding == "spikes" else DEFAULT_GRADED_BITS
        bits = as_int(bits, "bits", label, node)
        scale = as_positive_float(self.scale, "scale", label, node)
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
        return label_of("input", self.name)

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
            check_range(
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
    """A group of neurons of one model (``neuron``: e.g. ``CubaLif(du=..., dv=..., vth=...)``)
    with one shape (C, H, W) or (N,).

    ``role`` ``readout``: the neurons integrate and never fire; their state is the network's
    output (a model declares which state variable). ``scale``: the float scale of the
    population, v_int ≈ 64 · scale · V_float (informative). ``origin``: the source module's name.
    ``message_bits``: the bits of each message on the chip (None: the model's default, 1 for a
    binary spike; netx ``messageBits``: a LIF layer may send its spikes as graded messages).
    """

    name: str
    shape: tuple[int, ...]
    neuron: NeuronModel
    role: str = "spiking"
    scale: float = 1.0
    origin: str = ""
    message_bits: int | None = None

    def __post_init__(self) -> None:
        check_name("population", self.name)
        label, node = label_of("population", self.name), self.name
        shape = as_shape(self.shape, label, node)
        object.__setattr__(self, "shape", shape)
        if not isinstance(self.neuron, NeuronModel):
            raise IRError(f"{label}: neuron must be a neuron model (sakd.hardware.neurons), got "
                          f"{type(self.neuron).__name__}", node=node)
        role = as_str(self.role, "role", label, node)
        if role not in ROLES:
            raise IRError(f"{label}: role {role!r} is not one of {ROLES}", node=node)
        if role == "readout" and self.neuron.readout_state is None:
            raise IRError(f"{label}: a {self.neuron.model} population cannot be a readout (the "
                          f"model declares no readout state)", node=node)
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "scale", as_positive_float(self.scale, "scale", label, node))
        object.__setattr__(self, "origin", as_str(self.origin, "origin", label, node))
        bits = self.neuron.default_message_bits if self.message_bits is None else self.message_bits
        bits = as_int(bits, "message_bits", label, node)
        if bits < 1:
            raise IRError(f"{label}: message_bits {bits} must be >= 1", node=node)
        object.__setattr__(self, "message_bits", bits)
        try:
            self.neuron.check(shape, label, node)
        except IRError as exc:
            raise IRError(str(exc), node=node) from exc

    @property
    def label(self) -> str:
        return label_of("population", self.name)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def is_readout(self) -> bool:
        return self.role == "readout"

    @property
    def binary(self) -> bool:
        """True when the messages are 0/1 spikes (whatever bits they are sent in)."""
        return self.neuron.binary

    def validate(self, target: TargetSpec) -> None:
        try:
            self.neuron.validate(target, self.shape, self.is_readout, self.label, self.name)
        except IRError as exc:
            raise IRError(str(exc), node=self.name) from exc
        if self.message_bits > target.max_message_bits:
            raise IRError(f"{self.label}: messages of {self.message_bits} bits exceed the "
                          f"target's {target.max_message_bits}", node=self.name)

    def equals(self, other: object) -> bool:
        return (
            isinstance(other, Population)
            and all(getattr(self, f) == getattr(other, f)
                    for f in ("name", "shape", "role", "scale", "origin", "message_bits"))
            and self.neuron.equals(other.neuron)
        )


@dataclass(frozen=True, eq=False)
class Projection:
    """Synapses from ``source`` (the input or a population) to ``target`` (a population).

    ``dense``: weight (out, in) applied to the source flattened in C,H,W order, then shifted by
    ``weight_exp`` (left if >= 0, else arithmetic right = floor). ``conv2d``: weight
    (Cout, Cin/groups, kh, kw), PyTorch cross-correlation with ``stride``, ``padding``,
    ``dilation``, ``groups``; ``weight_exp`` must be 0 (Lava's Conv ignores it) and the result is
    wrapped to 24 bits. ``upsample``: a transposed convolution whose kernel equals its stride,
    weight (Cout, Cin/groups, fh, fw), ``stride == (fh, fw)``, ``groups``, no padding or
    dilation: target (co, i, j) of shape (Cout, H·fh, W·fw) receives
    ``Σ_{ci in co's group} w[co, ci, i % fh, j % fw] · x[ci, i // fh, j // fw]``, then the shift by
    ``weight_exp`` as dense (on the chip a Lava ``Sparse`` synapse list; not wrapped). Nearest
    upsampling by (fh, fw) is the depthwise case (groups = C, equal weights per channel); a
    1x1 conv of a broadcast (C, 1, 1) map is the general one (fh, fw = H, W). ``direct``: weight 1 (a scalar), the source (the input) passed element by
    element to the target in the same step (latency 0): how netx feeds an input layer that
    carries a neuron. ``delay``: extra steps on top of the 1-step synapse latency. ``port``: the
    input of the target's neuron model it drives (``a_in``; CUBA-LIF also ``bias``; RF
    ``a_real_in`` / ``a_imag_in``).
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
    port: str = "a_in"

    def __post_init__(self) -> None:
        check_name("projection", self.name)
        label, node = label_of("projection", self.name), self.name
        for what in ("source", "target"):
            value = as_str(getattr(self, what), what, label, node)
            if not value:
                raise IRError(f"{label}: {what} must name a node", node=node)
            object.__setattr__(self, what, value)
        kind = as_str(self.kind, "kind", label, node)
        if kind not in KINDS:
            raise IRError(f"{label}: kind {kind!r} is not one of {KINDS}", node=node)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "weight_exp", as_int(self.weight_exp, "weight_exp", label, node))
        delay = as_int(self.delay, "delay", label, node)
        if delay < 0:
            raise IRError(f"{label}: delay {delay} must be >= 0", node=node)
        object.__setattr__(self, "delay", delay)
        object.__setattr__(self, "stride", as_pair(self.stride, "stride", label, node, 1))
        object.__setattr__(self, "padding", as_pair(self.padding, "padding", label, node, 0))
        object.__setattr__(self, "dilation", as_pair(self.dilation, "dilation", label, node, 1))
        groups = as_int(self.groups, "groups", label, node)
        if groups < 1:
            raise IRError(f"{label}: groups {groups} must be >= 1", node=node)
        object.__setattr__(self, "groups", groups)
        port = as_str(self.port, "port", label, node)
        if not port:
            raise IRError(f"{label}: port must name an input of the target's neuron model", node=node)
        object.__setattr__(self, "port", port)
        weight = frozen_int_array(self.weight, "weight", label, node)
        if weight.size == 0:
            raise IRError(f"{label}: weight is empty (shape {weight.shape})", node=node)
        if kind == "direct":
            if weight.shape != () or int(weight) != 1:
                raise IRError(f"{label}: a direct projection has weight 1 (a scalar), got "
                              f"{weight.tolist()!r}", node=node)
            if delay or self.weight_exp or (self.stride, self.padding, self.dilation, groups) != (
                    (1, 1), (0, 0), (1, 1), 1):
                raise IRError(f"{label}: a direct projection has no delay, weight_exp, stride, "
                              f"padding, dilation or groups", node=node)
        elif kind == "upsample":
            if weight.ndim != 4:
                raise IRError(f"{label}: an upsample weight is (Cout, Cin/groups, fh, fw), got "
                              f"shape {weight.shape}", node=node)
            factor = (int(weight.shape[2]), int(weight.shape[3]))
            if self.stride != factor:
                raise IRError(f"{label}: an upsample projection has stride = its kernel "
                              f"{factor} (each target neuron reads one source position), got "
                              f"stride {self.stride}; set stride={factor}", node=node)
            if self.padding != (0, 0) or self.dilation != (1, 1):
                raise IRError(f"{label}: an upsample projection has no padding or dilation, got "
                              f"padding {self.padding}, dilation {self.dilation}", node=node)
            if weight.shape[0] % groups:
                raise IRError(f"{label}: Cout {weight.shape[0]} is not divisible by groups "
                              f"{groups}", node=node)
        elif kind == "dense":
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
        object.__setattr__(self, "weight", weight)

    def __setstate__(self, state: dict[str, Any]) -> None:
        refreeze(self, state, ("weight",))

    @property
    def label(self) -> str:
        return label_of("projection", self.name)

    @property
    def latency(self) -> int:
        """Steps from a source's output to its effect on the target: 1 + delay (0: direct)."""
        return 0 if self.kind == "direct" else 1 + self.delay

    def validate(self, target: TargetSpec) -> None:
        label, node = self.label, self.name
        if self.kind == "direct":
            return
        w = self.weight
        if not _fits_weights(w, target.weight_min, target.weight_max, target.weight_step):
            # not mixed-sign-representable: a sign-definite matrix may use its 8-bit magnitude
            lo, hi, step, mode = target.weight_rule(int(w.min()), int(w.max()))
            rule = (f"{target.name} {mode} weights are "
                    + (f"even integers in [{lo}, {hi}]" if step == 2 else
                       f"integers in [{lo}, {hi}]" + (f" in steps of {step}" if step > 1 else "")))
            if mode != "mixed-sign":
                rule += (f" (or even integers in [{target.weight_min}, {target.weight_max}] in "
                         f"mixed-sign mode)")
            out_of_range = w[(w < lo) | (w > hi)]
            if out_of_range.size:
                raise IRError(f"{label}: weight {int(out_of_range[0])} is outside [{lo}, {hi}]; "
                              f"{rule}", node=node)
            odd = w[w % step != 0]
            if odd.size:
                raise IRError(f"{label}: weight {int(odd[0])} is odd; {rule}", node=node)
        if self.kind in ("dense", "upsample"):  # Lava's Dense and Sparse apply weight_exp
            check_range(
                self.weight_exp,
                target.weight_exp_min,
                target.weight_exp_max,
                "weight_exp",
                label,
                node,
            )
        check_range(
            self.delay,
            0,
            target.max_delay,
            "delay",
            label,
            node,
            "extra steps on top of the 1-step synapse latency",
        )

    def output_shape(self, source_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The target shape this projection produces from ``source_shape`` (dense: (out,);
        direct: the source's shape; upsample: (Cout, H·fh, W·fw))."""
        if self.kind == "direct":
            return tuple(source_shape)
        if self.kind == "dense":
            return (int(self.weight.shape[0]),)
        if self.kind == "upsample":
            return upsample_output_shape(source_shape, self.weight.shape)
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
                    "port",
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
    """One input, the populations and projections between them, for one target (docs/ir.md).

    ``target``: a :class:`TargetSpec` (a registered target's name is looked up; any spec is
    validated). ``time_steps``: T, the steps per sample the network was quantized for (a positive
    integer up to ``MAX_TIME_STEPS``), or None when the file does not fix it (a network from
    another framework: the simulation must be given one). ``metadata``: JSON-able facts about
    the source model (data set, architecture, classes, normalization, input quantization).
    ``schedule``: ``"sample"`` or ``"free"`` (module docstring). ``limits``: ``"hardware"``
    (every value within the target's ranges) or ``"lava"`` (within what Lava's bit-accurate
    models run: netx files of other tools; :meth:`hardware_notes` lists what the chip cannot
    hold).
    """

    input: Input
    populations: tuple[Population, ...]
    projections: tuple[Projection, ...]
    target: TargetSpec = DEFAULT_TARGET
    metadata: dict[str, Any] = field(default_factory=dict)
    time_steps: int | None = None
    schedule: str = "sample"
    limits: str = "hardware"

    def __post_init__(self) -> None:
        try:
            spec = get_target(self.target)
        except TargetError as exc:
            raise IRError(f"network: {exc}") from exc
        if spec.lava_model:
            raise IRError("network: target must be the chip's spec; pass limits='lava' for Lava's "
                          "wider model limits")
        object.__setattr__(self, "target", spec)
        for what, value, allowed in (("schedule", self.schedule, SCHEDULES),
                                     ("limits", self.limits, LIMITS)):
            if value not in allowed:
                raise IRError(f"network: {what} {value!r} is not one of {allowed}")
        checked = spec.lava_model_limits() if self.limits == "lava" else spec
        if self.time_steps is not None:
            steps = as_int(self.time_steps, "time_steps", "network", "")
            if not 1 <= steps <= MAX_TIME_STEPS:
                raise IRError(f"network: time_steps {steps} must be a positive integer of at most "
                              f"{MAX_TIME_STEPS}")
            object.__setattr__(self, "time_steps", steps)
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
        self.input.validate(checked)
        for node in (*pops, *projs):
            node.validate(checked)

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
            neuron = by_name[proj.target].neuron
            if proj.port not in neuron.ports:
                raise IRError(f"{proj.label}: port {proj.port!r} is not an input of target "
                              f"'{proj.target}' ({neuron.model}: {', '.join(neuron.ports)})",
                              node=proj.name)
            if proj.kind == "direct" and proj.source != self.input.name:
                raise IRError(f"{proj.label}: a direct projection comes from the input "
                              f"'{self.input.name}', not '{proj.source}'", node=proj.name)

        self._check_reachable(pops, projs)
        if self.schedule == "sample":
            order = self._topological_sort(pops, projs)
            components = tuple((name,) for name in order)
            self._check_readout(pops, projs)
            latencies = self._compute_latencies(order, projs)
        else:
            components = self._components(pops, projs)
            order = [name for comp in components for name in comp]
            latencies = self._shortest_latencies(pops, projs)
            if not self.outputs_of(pops, projs):
                raise IRError("network: no output population (every population feeds another); "
                              "a free-running network needs at least one")
        object.__setattr__(self, "_order", tuple(order))
        object.__setattr__(self, "_components", components)
        object.__setattr__(self, "_latencies", latencies)

    # -- validation steps -----------------------------------------------------------------------

    def _check_shapes(self, proj: Projection, src: tuple[int, ...], tgt: tuple[int, ...]) -> None:
        w = proj.weight.shape
        if proj.kind == "direct":
            if tuple(src) != tuple(tgt):
                raise IRError(f"{proj.label}: a direct projection needs equal shapes, got source "
                              f"'{proj.source}' {src} and target '{proj.target}' {tgt}",
                              node=proj.name)
            return
        if proj.kind == "dense":
            n_in, n_out = int(np.prod(src)), int(np.prod(tgt))
            if w != (n_out, n_in):
                raise IRError(
                    f"{proj.label}: dense weight shape {w} does not match (out, in) = ({n_out}, {n_in}) "
                    f"of target '{proj.target}' {tgt} and source '{proj.source}' {src} (flattened)",
                    node=proj.name,
                )
            return
        kind = proj.kind
        if len(src) != 3 or len(tgt) != 3:
            raise IRError(
                f"{proj.label}: {kind} needs (C, H, W) source and target, got source '{proj.source}' "
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
                f"{proj.label}: {kind} weight shape {w} needs Cin/groups = {src[0] // proj.groups} "
                f"(source '{proj.source}' has {src[0]} channels, groups {proj.groups})",
                node=proj.name,
            )
        try:
            out = proj.output_shape(src)
        except ValueError as exc:
            raise IRError(f"{proj.label}: {exc}", node=proj.name) from exc
        if out != tgt:
            how = (f"factor {proj.stride}" if kind == "upsample" else
                   f"stride {proj.stride}, padding {proj.padding}, dilation {proj.dilation}")
            raise IRError(
                f"{proj.label}: {kind} output shape {out} (source '{proj.source}' {src}, {how}) "
                f"does not match target '{proj.target}' {tgt}",
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
            raise IRError("network: no readout population (role 'readout'); at least one is required")
        sources = {proj.source: proj for proj in projs}
        for readout in readouts:
            if readout.name in sources:
                raise IRError(
                    f"{readout.label}: the readout has an outgoing projection "
                    f"'{sources[readout.name].name}'; a readout must be a sink",
                    node=readout.name,
                )
        names = ", ".join(f"'{p.name}'" for p in readouts)
        for p in pops:
            if not p.is_readout and p.name not in sources:
                raise IRError(
                    f"{p.label}: has no outgoing projections but is not a readout ({names}); "
                    f"only readouts may be sinks",
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
                cand = latency[proj.source] + proj.latency
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

    @staticmethod
    def outputs_of(pops: tuple[Population, ...], projs: tuple[Projection, ...]) -> tuple[str, ...]:
        """Populations with no projection to another population (a self-loop does not count)."""
        feeding = {p.source for p in projs if p.source != p.target}
        return tuple(p.name for p in pops if p.name not in feeding)

    def _components(self, pops: tuple[Population, ...],
                    projs: tuple[Projection, ...]) -> tuple[tuple[str, ...], ...]:
        """The strongly connected components (recurrent groups) in topological order of the
        condensation, each in declaration order (Tarjan's algorithm, iterative)."""
        names = [p.name for p in pops]
        position = {n: i for i, n in enumerate(names)}
        succ: dict[str, list[str]] = {n: [] for n in names}
        for proj in projs:
            if proj.source in succ:
                succ[proj.source].append(proj.target)
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        found: list[tuple[str, ...]] = []
        counter = 0
        for root in names:
            if root in index:
                continue
            work = [(root, 0)]
            while work:
                node, i = work.pop()
                if i == 0:
                    index[node] = low[node] = counter
                    counter += 1
                    stack.append(node)
                    on_stack.add(node)
                recurse = False
                for j in range(i, len(succ[node])):
                    nxt = succ[node][j]
                    if nxt not in index:
                        work.append((node, j + 1))
                        work.append((nxt, 0))
                        recurse = True
                        break
                    if nxt in on_stack:
                        low[node] = min(low[node], index[nxt])
                if recurse:
                    continue
                if low[node] == index[node]:
                    comp = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        comp.append(top)
                        if top == node:
                            break
                    found.append(tuple(sorted(comp, key=position.__getitem__)))
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
        # Tarjan emits components in reverse topological order; ties follow declaration order
        found.reverse()
        member = {n: k for k, comp in enumerate(found) for n in comp}
        indeg = [0] * len(found)
        edges: dict[int, set[int]] = {k: set() for k in range(len(found))}
        for proj in projs:
            if proj.source in member and member[proj.source] != member[proj.target]:
                a, b = member[proj.source], member[proj.target]
                if b not in edges[a]:
                    edges[a].add(b)
                    indeg[b] += 1
        first = {k: min(position[n] for n in comp) for k, comp in enumerate(found)}
        ready = sorted((k for k in range(len(found)) if indeg[k] == 0), key=first.__getitem__)
        ordered: list[tuple[str, ...]] = []
        while ready:
            k = ready.pop(0)
            ordered.append(found[k])
            for b in sorted(edges[k], key=first.__getitem__):
                indeg[b] -= 1
                if indeg[b] == 0:
                    ready.append(b)
            ready.sort(key=first.__getitem__)
        return tuple(ordered)

    def _shortest_latencies(self, pops: tuple[Population, ...],
                            projs: tuple[Projection, ...]) -> dict[str, int]:
        """The least latency from the input to every population (Dijkstra on 0 / 1 + delay)."""
        import heapq

        best: dict[str, int] = {self.input.name: 0}
        heap = [(0, self.input.name)]
        out: dict[str, list[Projection]] = {}
        for proj in projs:
            out.setdefault(proj.source, []).append(proj)
        while heap:
            lat, node = heapq.heappop(heap)
            if lat > best.get(node, lat):
                continue
            for proj in out.get(node, ()):
                cand = lat + proj.latency
                if cand < best.get(proj.target, cand + 1):
                    best[proj.target] = cand
                    heapq.heappush(heap, (cand, proj.target))
        return {p.name: best[p.name] for p in pops}

    def hardware_notes(self) -> list[str]:
        """Every value beyond the target chip's ranges, one sentence per node (empty for a
        network within them). A network with ``limits="lava"`` runs exactly in Lava's models
        and in the simulator; these values are what a chip build would have to change."""
        notes = []
        for node in (self.input, *self.populations, *self.projections):
            try:
                node.validate(self.target)
            except IRError as exc:
                notes.append(f"{exc} (beyond {self.target.name}'s hardware; exact in Lava's "
                             f"bit-accurate models)")
        return notes

    # -- queries ----------------------------------------------------------------------------------

    @property
    def target_spec(self) -> TargetSpec:
        """The target (kept for callers that name it so; ``target`` is the spec itself)."""
        return self.target

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
        """Population names, every population after all its sources outside its recurrent group
        (ties in declaration order)."""
        return self._order  # type: ignore[attr-defined]

    def components(self) -> tuple[tuple[str, ...], ...]:
        """The populations grouped into recurrent components (strongly connected, a single
        population without a self-loop being its own), in topological order."""
        return self._components  # type: ignore[attr-defined]

    def is_recurrent(self, component: tuple[str, ...]) -> bool:
        """Whether a component holds a cycle (more than one population, or a self-loop)."""
        names = set(component)
        return len(component) > 1 or any(
            p.source in names and p.target in names for p in self.projections)

    @property
    def outputs(self) -> tuple[Population, ...]:
        """The populations whose messages or state leave the network: every population with no
        projection to another one (the readouts of a sample network)."""
        names = set(self.outputs_of(self.populations, self.projections))
        return tuple(p for p in self.populations if p.name in names)

    @property
    def latencies(self) -> dict[str, int]:
        """Latency of every population: latency(source) + 1 + delay over any incoming projection
        (the same over every path in a sample network; the least one in a free network)."""
        return dict(self._latencies)  # type: ignore[attr-defined]

    @property
    def readouts(self) -> tuple[Population, ...]:
        """Every readout population, in declaration order (a detector has several)."""
        return tuple(p for p in self.populations if p.is_readout)

    @property
    def readout(self) -> Population:
        """The readout of a network with exactly one (a classifier); an IRError otherwise."""
        readouts = self.readouts
        if len(readouts) != 1:
            names = ", ".join(f"'{p.name}'" for p in readouts)
            raise IRError(f"network: {len(readouts)} readouts ({names}); name the one you mean")
        return readouts[0]

    @property
    def latency(self) -> int:
        """L, the largest output latency: the response to input step t has reached every
        readout (every output of a free network, by its shortest path) at step t + L."""
        return max(self._latencies[p.name] for p in self.outputs)  # type: ignore[attr-defined]

    def steps_for(self, time_steps: int | None = None) -> int:
        """T for a simulation: ``time_steps`` when given, else the network's own. An IRError when
        neither is known (a file from another framework does not fix T)."""
        steps = self.time_steps if time_steps is None else time_steps
        if steps is None:
            raise IRError("network: the file does not record T (the time steps per sample); "
                          "pass it (e.g. --time-steps)")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_TIME_STEPS:
            raise IRError(f"time_steps {steps!r} must be a positive integer of at most {MAX_TIME_STEPS}")
        return int(steps)

    def digest(self) -> str:
        """SHA-256 (hex) of everything the network means: target, T, metadata, every node's
        fields and arrays. Files record it, readers check it, reports name the network by it."""
        h = hashlib.sha256()

        def put(value: Any) -> None:
            if isinstance(value, np.ndarray):
                arr = np.ascontiguousarray(value, dtype=np.int64)
                h.update(json.dumps(["array", list(arr.shape)]).encode())
                h.update(arr.tobytes())
            else:
                h.update(json.dumps(value, sort_keys=True, default=str).encode())

        put(["sakd-ir-digest", 1, self.target.as_dict(), self.time_steps, self.metadata])
        # fields added in IR schema 3 enter only when they differ from their defaults, so that
        # earlier files keep their recorded digests
        if self.schedule != "sample" or self.limits != "hardware":
            put(["schedule", self.schedule, "limits", self.limits])
        i = self.input
        put(["input", i.name, list(i.shape), i.encoding, i.bits, i.scale])
        for p in self.populations:
            attrs, arrays = p.neuron.to_file()
            put(["population", p.name, list(p.shape), p.role, p.scale, p.origin, p.neuron.model,
                 attrs, sorted(arrays)])
            if p.message_bits != p.neuron.default_message_bits:
                put(["message_bits", p.message_bits])
            for key in sorted(arrays):
                put(arrays[key])
        for p in self.projections:
            put(["projection", p.name, p.source, p.target, p.kind, p.weight_exp, p.delay,
                 list(p.stride), list(p.padding), list(p.dilation), p.groups])
            if p.port != "a_in":
                put(["port", p.port])
            put(p.weight)
        return h.hexdigest()

    def equals(self, other: object) -> bool:
        return (
            isinstance(other, Network)
            and self.target == other.target
            and self.time_steps == other.time_steps
            and self.schedule == other.schedule
            and self.limits == other.limits
            and self.metadata == other.metadata
            and self.input.equals(other.input)
            and len(self.populations) == len(other.populations)
            and all(a.equals(b) for a, b in zip(self.populations, other.populations))
            and len(self.projections) == len(other.projections)
            and all(a.equals(b) for a, b in zip(self.projections, other.projections))
        )
