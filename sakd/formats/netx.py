"""netx HDF5 (lava-dl's ``lava.lib.dl.netx.hdf5.Network``) writer and reader for the IR.

The schema is exactly what netx reads (shared/spec/fixed-point.md §2.1), laid out as slayer's
``export_hdf5`` writes it::

    /layer/{0..n-1}
      type     'S10' array (1,): input | conv | flatten | dense
      shape    int (C, H, W) or (N,)  (PyTorch order; netx reverses it to (W, H, C))
      input:   shape only (netx's ``input_message_bits`` gives a graded input: runtime argument)
      conv:    weight float32 (Cout, Cin/groups, kh, kw), integer values; stride, padding,
               dilation int (2,) in (H, W) order; groups int; bias float32 (Cout,) integers
      flatten: (shape (N,)); the next dense layer reads the previous layer in C,H,W order
      dense:   weight float32 (out, in), integer values; bias float32 (out,) integers
      neuron/  type 'S10' (1,) 'CUBA'; iDecay = du + 1; vDecay = dv; vThMant = vth;
               refDelay = 1; gradedSpike = 0 (netx ignores the last two)

**Bias.** netx fixes ``bias_exp = 6``: the IR's effective bias ``bias_mant << bias_exp`` is
written as ``bias_mant · 2^(bias_exp − 6)``; exact for bias_exp ≥ 6 (and for any bias_exp when
the mantissa is a multiple of ``2^(6 − bias_exp)``, e.g. zero), else an error. The result must
fit Lava's int16 ``bias_mant``: an IR bias with bias_exp 7 (which the quantizer picks when
the 13-bit mantissa at exp 6 would overflow) becomes a mantissa of up to 14 bits at exp 6, exact
in Lava's bit-accurate model, which stores int16; Loihi's 13-bit hardware mantissa would need
bias_exp 7, which netx cannot say.

**The readout (the finding).** netx gives a dense layer *without* ``neuron`` the defaults
iDecay = 0, vDecay = 4096, vThMant = ``1 << 18 - 1`` = 2^17. With Lava's ``du = iDecay − 1 = −1``
the current never decays and with ``dv = 4096`` the voltage keeps no memory, so at every step

    u_t = u_{t−1} + 64·a_t  (wraps at 2^23),   v_t = u_t + (bias << 6)   →  v_T = 64·Σ a + bias·64

while the IR's readout (du = 4095, dv = 0) integrates the voltage:

    u_t = 64·a_t,   v_t = v_{t−1} + u_t + (bias << 6)   →  v_T = 64·Σ a + T·bias·64  (saturates)

They agree only for a zero bias (and no overflow): the neuron-less readout adds the bias once,
not T times, so its argmax differs whenever the classifier has a bias (the lowered networks'
always do). The writer therefore gives the readout an explicit ``neuron`` group reproducing the
IR exactly: iDecay = du + 1 = 4096, vDecay = dv = 0, **vThMant = 2^17** (``2^17 << 6 = 2^23``
exceeds the v clip 2^23 − 1, so it never fires; 2^17 − 1 would let v ∈ (2^23 − 64, 2^23 − 1]
spike). ``read_netx`` reads a neuron-less readout exactly when its bias is zero and refuses it
otherwise.

**What netx can express** (else :class:`NetxExportError` naming the first node and the reason;
write the IR file ``network.h5`` or NIR instead): one chain input → conv/dense … → readout
(netx wires ``layers[-2] → layers[-1]`` only: no fan-in, no fan-out), no projection delays
(netx's delay is dense-only and the IR needs delays only for residual paths), no max-pooling OR
populations (unless ``or_as_conv=True``: as a grouped conv layer, which Lava runs exactly), dense ``weight_exp = 0`` (netx picks its own exponent), no all-zero dense matrix
(``optimize_weight_bits`` crashes) and no all-non-positive one (it is lossy there), a per-channel
(or scalar) bias on conv layers, a readout that is the last layer.

**Running it.** ``hdf5.Network(net_config=path, input_message_bits=B, reset_interval=T,
reset_offset=1)`` with ``B`` = the input's bits for a graded input (0 for spikes) reproduces the
IR's simulation, staggered reset included (``sakd.hardware.lava_runner`` does this). A dense
first layer reads its input flattened in C,H,W order. The root attributes ``generator``,
``input_message_bits`` and ``sakd`` (JSON: names, scales, origins, bias exponents, the input
encoding, target and metadata) are ignored by netx; ``read_netx`` uses them for our own files so
that reading one back ``equals`` the original network. Writing is atomic.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sakd.formats.base import (
    Format,
    FormatError,
    Inspection,
    IRBrief,
    LayerRow,
    Support,
    check_supported,
    ir_brief,
    jsonable,
    merge_range,
    value_range,
)
from sakd.hardware.atomic import atomic_path
from sakd.hardware.errors import SakdError
from sakd.hardware.integrity import IntegrityError, seal, sealed_kind
from sakd.hardware.ir import Input, IRError, Network, Population, Projection
from sakd.hardware.netfile import open_hdf5
from sakd.hardware.neurons import CubaLif
from sakd.hardware.target import DEFAULT_TARGET, NETX_BIAS_EXP, TargetSpec, get_target

#: Lava's LIF stores bias_mant as int16 (fixed-point.md §1.1); netx casts the bias to it
NETX_BIAS_RANGE = (-(1 << 15), (1 << 15) - 1)
GENERATOR = "sakd"
NETX_FORMAT = "sakd-netx"
NETX_FORMAT_VERSION = 1
#: what netx fills in for a dense layer without ``neuron`` (hdf5.py:352-357; 1 << 18 - 1 = 2^17)
NETX_DEFAULT_READOUT = {"iDecay": 0, "vDecay": 4096, "vThMant": 1 << 17}

_ELSEWHERE = "write the IR file (network.h5) or NIR (network.nir) instead"

#: what a netx file can express (docs/support.md)
SUPPORT = Support(
    neuron_models=("cuba_lif",),
    layer_kinds=("dense", "conv2d"),
    residual_fan_in=False,
    delays="none written (netx reads dense delays; conv delays are ignored by netx)",
    recurrence=False,
    graded_messages=False,
    multiple_readouts=False,
    notes=("one chain of layers: no fan-in, no fan-out (lava-dl netx wires layers[-2] -> "
           "layers[-1] only)", "netx fixes bias_exp = 6 (hdf5.py)",
           "pool, convT, unpool, average and concat layers are refused by netx itself"),
)


class NetxExportError(FormatError):
    """An IR network netx cannot express; the message names the first such node and why."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class NetxImportError(FormatError):
    """A netx file that does not fit the IR (or is not a readable netx file)."""


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


def _refuse(label: str, node: str, why: str) -> NetxExportError:
    return NetxExportError(f"{label}: {why}; netx cannot express it: {_ELSEWHERE}", node=node)


def is_or_population(network: Network, pop: Population) -> bool:
    """A max-pooling OR population (sakd.export.quantize): du = dv = 4095, vth = 1, no bias,
    fed only by depthwise all-2 convolutions."""
    unity = network.target.decay_unity
    if (pop.is_readout or pop.neuron.du != unity - 1 or pop.neuron.dv != unity - 1 or pop.neuron.vth != 1
            or np.any(pop.neuron.bias_mant)):
        return False
    incoming = network.projections_into(pop.name)
    return bool(incoming) and all(
        p.kind == "conv2d" and p.groups == pop.shape[0] and p.groups > 1
        and bool(np.all(p.weight == 2)) for p in incoming)


def netx_chain(network: Network, *, or_as_conv: bool = False) -> list[tuple[Projection, Population]]:
    """The (projection, population) layers of ``network`` in order, or :class:`NetxExportError`
    naming the first node netx cannot express (``or_as_conv``: see ``write_netx``)."""
    spec = network.target
    chain: list[tuple[Projection, Population]] = []
    order = network.topological_order()
    # structure first, in topological order: one chain, no fan-in, no fan-out
    for name in (network.input.name, *order):
        out = network.projections_from(name)
        pop = None if name == network.input.name else network.population(name)
        if pop is not None:
            incoming = network.projections_into(name)
            if len(incoming) > 1:
                names = ", ".join(f"'{p.name}'" for p in incoming)
                raise _refuse(pop.label, name, f"fan-in from {len(incoming)} projections "
                              f"({names}): a residual add; netx wires each layer to the previous "
                              f"one only")
        if len(out) > 1:
            label = network.input.label if pop is None else pop.label
            names = ", ".join(f"'{p.name}'" for p in out)
            raise _refuse(label, name, f"fan-out to {len(out)} projections ({names}): a "
                          f"residual branch; netx wires each layer to the next one only")
    src = network.input.name
    while True:
        out = network.projections_from(src)
        if not out:
            break
        proj = out[0]
        pop = network.population(proj.target)
        chain.append((proj, pop))
        src = pop.name
    for proj, pop in chain:
        if proj.delay:
            raise _refuse(proj.label, proj.name, f"delay {proj.delay}: netx has no delayed "
                          f"convolution and sakd networks need delays only for residual paths")
        if not or_as_conv and is_or_population(network, pop):
            raise _refuse(pop.label, pop.name, "a max-pooling OR population (depthwise all-2 "
                          "kernel, du = dv = 4095, vth = 1): netx has no pooling layer (pass "
                          "or_as_conv=True to write it as a grouped conv layer)")
        if proj.kind == "dense":
            w = proj.weight
            if proj.weight_exp != 0:
                raise _refuse(proj.label, proj.name, f"weight_exp {proj.weight_exp}: netx dense "
                              f"layers have no exponent field (optimize_weight_bits picks its own)")
            if not np.any(w):
                raise _refuse(proj.label, proj.name, "an all-zero dense matrix crashes netx's "
                              "optimize_weight_bits")
            if w.max() <= 0:
                raise _refuse(proj.label, proj.name, "an all-non-positive dense matrix: netx's "
                              "optimize_weight_bits is lossy for it (fixed-point.md §2.1)")
        _netx_bias(pop, spec)  # raises for biases netx's bias_exp 6 cannot hold
        if pop.is_readout and pop.name != chain[-1][1].name:  # pragma: no cover - IR forbids it
            raise _refuse(pop.label, pop.name, "the readout is not the last layer")
    return chain


def _netx_bias(pop: Population, spec: TargetSpec) -> np.ndarray:
    """The IR bias as netx's mantissa for bias_exp = 6 (scalar, (C,) or (N,)), exactly."""
    mant = pop.neuron.bias_mant.astype(np.int64)
    shift = pop.neuron.bias_exp - NETX_BIAS_EXP
    if shift >= 0:
        out = mant << shift
    else:
        if np.any(mant % (1 << -shift)):
            raise _refuse(pop.label, pop.name, f"bias_exp {pop.neuron.bias_exp} < {NETX_BIAS_EXP} with a "
                          f"mantissa that is not a multiple of {1 << -shift}: netx fixes bias_exp "
                          f"= {NETX_BIAS_EXP}, so the bias has no exact netx form")
        out = mant >> -shift
    lo, hi = NETX_BIAS_RANGE
    if out.size and (out.min() < lo or out.max() > hi):
        bad = int(out[(out < lo) | (out > hi)].reshape(-1)[0])
        raise _refuse(pop.label, pop.name, f"the bias as netx's mantissa (bias_exp "
                      f"{NETX_BIAS_EXP}) would be {bad}, outside Lava's int16 bias_mant")
    if out.ndim > 1:  # a conv population: netx wants a per-channel bias
        per = out.reshape(out.shape[0], -1)
        if not np.all(per == per[:, :1]):
            raise _refuse(pop.label, pop.name, "a per-neuron bias on a convolutional layer: "
                          "netx's conv bias is per channel")
        out = per[:, 0]
    return out


def netx_hardware_notes(network: Network, *, or_as_conv: bool = False) -> list[str]:
    """What in ``network``'s netx form is exact in Lava's bit-accurate model but outside the
    target's hardware ranges: today, biases whose netx mantissa (bias_exp fixed at 6) needs more
    than the target's ``bias_mant_bits`` (13 on Loihi 2). One sentence per population; empty when
    the netx file fits the hardware. Raises :class:`NetxExportError` like :func:`write_netx`."""
    spec = network.target
    notes = []
    for _, pop in netx_chain(network, or_as_conv=or_as_conv):
        bias = _netx_bias(pop, spec)
        if bias.size and (bias.min() < spec.bias_mant_min or bias.max() > spec.bias_mant_max):
            widest = int(np.abs(bias).max())
            notes.append(
                f"{pop.label}: bias mantissa up to {widest} at netx's bias_exp "
                f"{NETX_BIAS_EXP}, beyond the {spec.bias_mant_bits}-bit range "
                f"[{spec.bias_mant_min}, {spec.bias_mant_max}] of {spec.name}'s hardware; exact in "
                f"Lava's bit-accurate model (int16), but a chip build needs the IR's bias_exp "
                f"{pop.neuron.bias_exp} (use network.h5 or network.nir)")
    return notes


def _type(group: h5py.Group, kind: str) -> None:
    group.create_dataset("type", (1,), "S10", [kind.encode("ascii")])


def write_netx(network: Network, path: str | os.PathLike[str], *, or_as_conv: bool = False) -> Path:
    """Write ``network`` as a netx HDF5 file (module docstring), atomically. Raises
    :class:`NetxExportError` naming the first node netx cannot express. Returns the path.

    ``or_as_conv``: write a max-pooling OR population as what it is in the IR, a grouped
    (depthwise) conv layer with a CUBA neuron; netx has no pooling layer, but this form ran
    bit-exactly in Lava's netx (test_convnet_pool, 6 samples). Off by default."""
    if not isinstance(network, Network):
        raise TypeError(f"write_netx needs a Network, got {type(network).__name__}")
    # neuron models first; then netx_chain, which names the first node off the one chain
    check_supported(network, dataclasses.replace(SUPPORT, residual_fan_in=True), "netx",
                    NetxExportError)
    spec = network.target
    chain = netx_chain(network, or_as_conv=or_as_conv)
    message_bits = network.input.bits if network.input.encoding == "graded" else 0
    layers_meta: list[dict[str, Any]] = []
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            _write_layers(f, network, chain, spec, message_bits, layers_meta)
        seal(tmp, "netx")
    return path


def _write_layers(f: h5py.File, network: Network, chain: list[tuple[Projection, Population]],
                  spec: TargetSpec, message_bits: int, layers_meta: list[dict[str, Any]]) -> None:
    inp = network.input
    layer = f.create_group("layer")
    index = 0

    def new(kind: str) -> h5py.Group:
        nonlocal index
        g = layer.create_group(str(index))
        _type(g, kind)
        index += 1
        return g

    g = new("input")
    g.create_dataset("shape", data=np.asarray(inp.shape, dtype=np.int64))
    src_shape = inp.shape
    for proj, pop in chain:
        if proj.kind == "dense" and len(src_shape) > 1:
            g = new("flatten")
            g.create_dataset("shape", data=np.asarray([int(np.prod(src_shape))], np.int64))
        g = new("conv" if proj.kind == "conv2d" else "dense")
        g.create_dataset("shape", data=np.asarray(pop.shape, dtype=np.int64))
        g.create_dataset("weight", data=proj.weight.astype(np.float32))
        if proj.kind == "conv2d":
            for key in ("stride", "padding", "dilation"):
                g.create_dataset(key, data=np.asarray(getattr(proj, key), dtype=np.int64))
            g.create_dataset("groups", data=np.int64(proj.groups))
        bias = _netx_bias(pop, spec)
        if np.any(bias):
            count = pop.shape[0]
            g.create_dataset("bias", data=np.broadcast_to(bias, (count,)).astype(np.float32))
        n = g.create_group("neuron")
        _type(n, "CUBA")
        # the readout gets vThMant = 2^17: never fires (see the module docstring)
        vth = spec.readout_vth if pop.is_readout else pop.neuron.vth
        for key, value in (("iDecay", pop.neuron.du + 1), ("vDecay", pop.neuron.dv), ("vThMant", vth),
                           ("refDelay", 1), ("gradedSpike", 0)):
            n.create_dataset(key, data=np.int64(value))
        layers_meta.append({"layer": index - 1, "population": pop.name, "projection": proj.name,
                            "role": pop.role, "vth": pop.neuron.vth, "scale": pop.scale,
                            "origin": pop.origin, "bias_exp": pop.neuron.bias_exp,
                            "bias_shape": list(pop.neuron.bias_mant.shape)})
        src_shape = pop.shape
    f.attrs["generator"] = GENERATOR
    f.attrs["input_message_bits"] = message_bits
    f.attrs["sakd"] = json.dumps({
        "format": NETX_FORMAT, "version": NETX_FORMAT_VERSION, "target": network.target.name,
        "time_steps": network.time_steps, "digest": network.digest(),
        "input": {"name": inp.name, "shape": list(inp.shape), "encoding": inp.encoding,
                  "bits": inp.bits, "scale": inp.scale},
        "input_message_bits": message_bits,
        "run": "hdf5.Network(net_config=path, input_message_bits=input_message_bits, "
               "reset_interval=T, reset_offset=1) reproduces the IR's simulation",
        "layers": layers_meta, "metadata": network.metadata,
    }, sort_keys=True)


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    arr = np.asarray(value)
    if arr.ndim > 0:
        arr = arr.reshape(-1)[0]
    value = arr.item() if hasattr(arr, "item") else arr
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _int(group: h5py.Group, key: str, where: str) -> int:
    if key not in group:
        raise NetxImportError(f"{where}/{key}: missing")
    arr = np.asarray(group[key][()]).reshape(-1)
    if arr.size != 1 or arr.dtype.kind not in "iuf" or arr[0] != np.round(arr[0]):
        raise NetxImportError(f"{where}/{key}: expected one integer, got {arr.tolist()!r}")
    return int(arr[0])


def _pair(group: h5py.Group, key: str, where: str, default: int) -> tuple[int, int]:
    if key not in group:
        return (default, default)
    arr = np.asarray(group[key][()]).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2:
        raise NetxImportError(f"{where}/{key}: expected a scalar or a pair, got {arr.tolist()!r}")
    return int(arr[0]), int(arr[1])


def _ints(group: h5py.Group, key: str, where: str) -> np.ndarray:
    if key not in group:
        raise NetxImportError(f"{where}/{key}: missing")
    arr = np.asarray(group[key][()])
    if arr.dtype.kind not in "iuf":
        raise NetxImportError(f"{where}/{key}: not numeric (dtype {arr.dtype})")
    if arr.dtype.kind == "f" and (not np.all(np.isfinite(arr)) or (arr.size and np.abs(arr).max() >= 2.0**62)):
        raise NetxImportError(f"{where}/{key}: holds NaN, infinite or out-of-range values")
    return arr.astype(np.int64)  # netx's NetDict: .astype(int), truncation toward zero


def netx_layers(f: h5py.File, where: str) -> list[h5py.Group]:
    """``/layer/0..n-1`` in order (netx loops ``range(len(layer))``)."""
    if "layer" not in f or not isinstance(f["layer"], h5py.Group):
        raise NetxImportError(f"{where}: not a netx file (no 'layer' group)")
    layer = f["layer"]
    keys = sorted(layer.keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
    if list(keys) != [str(i) for i in range(len(keys))]:
        raise NetxImportError(f"{where}: /layer holds {keys}; netx reads groups 0..{len(keys) - 1}")
    out = []
    for k in keys:
        g = layer[k]
        if not isinstance(g, h5py.Group) or "type" not in g:
            raise NetxImportError(f"{where}: /layer/{k} is not a layer group with a 'type'")
        out.append(g)
    return out


def _check_seal(path: Path) -> None:
    """A netx file sakd wrote is sealed: checked before the HDF5 library parses it."""
    if not path.exists():
        return  # open_hdf5 says so
    try:
        kind = sealed_kind(path)
    except IntegrityError as exc:
        raise NetxImportError(str(exc)) from exc
    if kind not in (None, "netx"):
        raise NetxImportError(f"{path}: a {kind} file sakd wrote, not a netx file")


def read_netx(path: str | os.PathLike[str], *, input_message_bits: int | None = None,
              target: str | TargetSpec = DEFAULT_TARGET, time_steps: int | None = None,
              trust_metadata: bool = True) -> Network:
    """Read a netx HDF5 file that fits the IR: input / conv / flatten / dense layers with CUBA
    neurons, in one chain. Our own files come back ``equal`` to the written network.

    ``input_message_bits``: the graded input's bits netx would be run with (0: spikes); default:
    the file's ``input_message_bits`` attribute, else 0. The last layer is the readout: a layer
    that never fires (vThMant ≥ 2^17) or a neuron-less dense layer with zero bias becomes the IR
    readout directly; a spiking last layer keeps its spikes and gets a spike-count readout
    ``readout`` (identity weights 2, du = 4095, dv = 0). Population scales of files from others
    are the thresholds (1 for the readout); names are ``layer{i}`` (population) and
    ``layer{i}.synapse`` (projection).
    """
    path = Path(path)
    _check_seal(path)
    handle = open_hdf5(path, NetxImportError, "netx file")
    try:
        with handle as f:
            return _read(f, str(path), input_message_bits, target, time_steps, trust_metadata)
    except NetxImportError as exc:
        if not str(exc).startswith(str(path)):
            raise NetxImportError(f"{path}: {exc}") from exc
        raise
    except SakdError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise NetxImportError(f"{path}: the HDF5 file is damaged or truncated: "
                              f"{type(exc).__name__}: {exc}") from exc


def _read(f: h5py.File, where: str, message_bits: int | None, target: str | TargetSpec,
          time_steps: int | None, trust_metadata: bool) -> Network:
    spec = get_target(target)
    own = None
    ours = _text(f.attrs.get("generator", b"")) == GENERATOR or "sakd" in f.attrs
    if trust_metadata and ours:
        how = "pass trust_metadata=False to read it as a file from another framework"
        try:
            own = json.loads(_text(f.attrs["sakd"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise NetxImportError(f"{where}: the file says sakd wrote it, but its sakd metadata "
                                  f"is missing or unreadable ({type(exc).__name__}); {how}") from exc
        if not isinstance(own, dict) or own.get("format") != NETX_FORMAT or not isinstance(
                own.get("layers"), list) or "input" not in own:
            raise NetxImportError(f"{where}: the file's sakd metadata is damaged (not format "
                                  f"{NETX_FORMAT!r} with its layers and input); {how}")
    if own is not None:
        spec = get_target(own.get("target", target))
    if message_bits is None:
        message_bits = int(np.asarray(f.attrs.get("input_message_bits", 0)).reshape(-1)[0])
    unity = spec.decay_unity
    groups = netx_layers(f, where)
    own_layers = {int(x["layer"]): x for x in own["layers"]} if own else {}

    inp: Input | None = None
    populations: list[Population] = []
    projections: list[Projection] = []
    src_name: str | None = None
    src_shape: tuple[int, ...] | None = None
    flatten = False
    for i, g in enumerate(groups):
        kind = _text(g["type"][()])
        loc = f"/layer/{i}"
        if kind == "input":
            if "neuron" in g:
                raise NetxImportError(f"{loc}: an input layer with a neuron (netx drives it through "
                                      f"its bias, not its input) has no IR form")
            if inp is not None or populations:
                raise NetxImportError(f"{loc}: an input layer after the first layer")
            shape = tuple(int(d) for d in _ints(g, "shape", loc).reshape(-1))
            try:
                if own:
                    oi = own["input"]
                    inp = Input(oi["name"], shape, oi["encoding"], oi["bits"], oi["scale"])
                elif message_bits:
                    inp = Input("input", shape, "graded", message_bits, 1.0)
                else:
                    inp = Input("input", shape, "spikes")
            except IRError as exc:
                raise NetxImportError(f"{loc}: {exc}") from exc
            src_name, src_shape = inp.name, inp.shape
            continue
        if kind == "flatten":
            flatten = True
            continue
        if kind not in ("conv", "dense"):
            raise NetxImportError(f"{loc}: layer type {kind!r} has no IR form here (the reader "
                                  f"maps input, conv, flatten and dense)")
        if inp is None:
            raise NetxImportError(f"{loc}: a {kind} layer before any input layer (the input shape "
                                  f"is unknown)")
        shape = tuple(int(d) for d in _ints(g, "shape", loc).reshape(-1))
        weight = _ints(g, "weight", loc)
        if "delay" in g and np.any(np.asarray(g["delay"][()])):
            raise NetxImportError(f"{loc}: synaptic delays (a DelayDense) are not read")
        meta = own_layers.get(i)
        pname = meta["population"] if meta else f"layer{i}"
        jname = meta["projection"] if meta else f"layer{i}.synapse"
        last = i == len(groups) - 1
        has_neuron = "neuron" in g
        bias = _ints(g, "bias", loc) if "bias" in g else np.zeros((), np.int64)
        if has_neuron:
            n = g["neuron"]
            ntype = _text(n["type"][()]) if "type" in n else "?"
            if ntype not in ("CUBA", "LOIHI"):
                raise NetxImportError(f"{loc}/neuron: type {ntype!r}; the IR has CUBA-LIF only")
            if "messageBits" in n and _int(n, "messageBits", f"{loc}/neuron"):
                raise NetxImportError(f"{loc}/neuron: graded output (messageBits): IR populations "
                                      f"emit binary spikes")
            idecay = _int(n, "iDecay", f"{loc}/neuron")
            du, dv = idecay - 1, _int(n, "vDecay", f"{loc}/neuron")
            vth = _int(n, "vThMant", f"{loc}/neuron")
            if du < 0:
                raise NetxImportError(f"{loc}/neuron: iDecay {idecay} (no current decay) has no IR "
                                      f"form; the IR's du is 0..{unity - 1}")
        elif kind == "dense" and last:  # netx's integrating readout
            if np.any(bias):
                raise NetxImportError(
                    f"{loc}: a dense readout without neuron and with a bias: netx adds its bias "
                    f"once (v = u + bias, iDecay 0, vDecay 4096) while the IR's readout adds it "
                    f"every step; no IR form")
            du, dv, vth = unity - 1, 0, spec.readout_vth  # equal for a zero bias (docstring)
        else:
            raise NetxImportError(f"{loc}: a {kind} layer without a neuron group")
        role = "readout" if last and (vth >= spec.readout_vth or not has_neuron) else "spiking"
        if meta:
            role, vth = meta["role"], int(meta["vth"])
        elif role == "readout":
            vth = spec.readout_vth
        try:
            if kind == "conv":
                if len(src_shape) != 3 or flatten:
                    raise NetxImportError(f"{loc}: a conv layer after a flatten or a dense layer")
                proj = Projection(
                    name=jname, source=src_name, target=pname, kind="conv2d", weight=weight,
                    stride=_pair(g, "stride", loc, 1), padding=_pair(g, "padding", loc, 0),
                    dilation=_pair(g, "dilation", loc, 1),
                    groups=_int(g, "groups", loc) if "groups" in g else 1)
            else:
                n_out = int(np.prod(shape))
                shape = (n_out,)
                if weight.ndim == 1:
                    weight = weight.reshape(n_out, -1)
                proj = Projection(name=jname, source=src_name, target=pname, kind="dense",
                                  weight=weight)
            bias_mant, bias_exp = _ir_bias(bias, shape, meta, loc)
            pop = Population(
                name=pname, shape=shape,
                neuron=CubaLif(du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp),
                role=role,
                scale=float(meta["scale"]) if meta else float(max(vth, 1) if role == "spiking" else 1),
                origin=meta["origin"] if meta else f"netx {loc}")
        except IRError as exc:
            raise NetxImportError(f"{loc}: {exc}") from exc
        projections.append(proj)
        populations.append(pop)
        src_name, src_shape, flatten = pname, shape, False
    if inp is None or not populations:
        raise NetxImportError(f"{where}: no input or no synapse layers")
    if populations[-1].role != "readout":
        last = populations[-1]
        n = last.size
        name = "readout"
        taken = {p.name for p in populations} | {p.name for p in projections} | {inp.name}
        while name in taken:
            name += "_"
        populations.append(Population(name, (n,), CubaLif.readout(spec), role="readout",
                                      scale=2.0, origin=f"spike count of '{last.name}'"))
        projections.append(Projection(f"{name}.count", last.name, name, "dense",
                                      np.eye(n, dtype=np.int64) * 2))
    metadata = dict(own.get("metadata", {})) if own else {"source": "netx", "file": where}
    if own is not None:
        # files of sakd 0.1 kept T in the network metadata, newer ones beside it
        steps = own["time_steps"] if "time_steps" in own else metadata.pop("time_steps", None)
        time_steps = steps if time_steps is None else time_steps
    try:
        network = Network(inp, tuple(populations), tuple(projections), target=spec,
                          metadata=metadata, time_steps=time_steps)
    except IRError as exc:
        raise NetxImportError(f"{where}: the network is invalid: {exc}") from exc
    if own is not None and own.get("digest") and own["digest"] != network.digest():
        raise NetxImportError(f"{where}: the network does not match the digest sakd recorded when "
                              f"it wrote the file: it was damaged or edited (a layer, weight or "
                              f"bias changed); re-export it, or pass trust_metadata=False")
    return network


def _ir_bias(bias: np.ndarray, shape: tuple[int, ...], meta: dict[str, Any] | None,
             loc: str) -> tuple[np.ndarray, int]:
    """netx's bias (bias_exp 6) as the IR's (bias_mant, bias_exp)."""
    bias = np.asarray(bias, dtype=np.int64)
    if meta is None:
        if bias.ndim == 0 or bias.size == 1:
            return bias.reshape(()), NETX_BIAS_EXP
        if bias.size == shape[0]:
            return bias.reshape(shape[0]), NETX_BIAS_EXP
        raise NetxImportError(f"{loc}/bias: {bias.size} values for a layer of shape {shape}")
    exp = int(meta["bias_exp"])
    shift = exp - NETX_BIAS_EXP
    mant = bias >> shift if shift >= 0 else bias << -shift
    if shift >= 0 and np.any((mant << shift) != bias):
        raise NetxImportError(f"{loc}/bias: does not match bias_exp {exp} of the sakd metadata")
    target_shape = tuple(meta["bias_shape"])
    flat = mant.reshape(-1)
    if target_shape == ():
        return (flat[0] if flat.size else np.int64(0)), exp
    per = np.broadcast_to(flat if flat.size > 1 else (flat[0] if flat.size else 0),
                          (target_shape[0],))
    if len(target_shape) == 1:
        return per.copy(), exp
    per = per.reshape((-1,) + (1,) * (len(target_shape) - 1))
    return np.broadcast_to(per, target_shape).copy(), exp


# ---------------------------------------------------------------------------------------------
# inspection and the format record
# ---------------------------------------------------------------------------------------------


def inspect_netx(path: Path) -> Inspection:
    """Summarize a netx file: every layer as netx reads it, and the IR it maps onto."""
    path = Path(path)
    _check_seal(path)
    handle = open_hdf5(path, NetxImportError, "netx file")
    try:
        with handle as f:
            return _inspect(path, f)
    except SakdError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise NetxImportError(f"{path}: the HDF5 file is damaged or truncated: "
                              f"{type(exc).__name__}: {exc}") from exc


def _inspect(path: Path, f: h5py.File) -> Inspection:
    groups = netx_layers(f, str(path))
    rows: list[LayerRow] = []
    ranges: dict[str, Any] = {}
    weights = biases = neurons = 0
    delays: dict[str, Any] = {}
    in_info: dict[str, Any] = {}
    notes: list[str] = []
    for i, g in enumerate(groups):
        kind = g["type"][()]
        kind = np.asarray(kind).reshape(-1)[0] if np.ndim(kind) else kind
        kind = kind.decode("ascii") if isinstance(kind, bytes) else str(kind)
        name = f"layer{i}"
        shape = jsonable(g["shape"][()]) if "shape" in g else None
        row = LayerRow(name=name, kind=kind, shape=shape, inputs=[f"layer{i - 1}"] if i else [])
        if kind == "input":
            in_info = {"name": name, "shape": shape}
        if "weight" in g:
            w = np.asarray(g["weight"][()])
            row.params += int(w.size)
            row.weight_range = value_range(w)
            row.notes = f"weight {list(w.shape)}"
            weights += int(w.size)
            merge_range(ranges, "weight", row.weight_range)
        if "bias" in g:
            b = np.asarray(g["bias"][()])
            row.params += int(b.size)
            biases += int(b.size)
            row.bias_range = value_range(b)
            merge_range(ranges, "bias", row.bias_range)
        if kind == "conv":
            row.neuron = " ".join(f"{k[0]}{jsonable(g[k][()])}" for k in
                                     ("stride", "padding", "dilation", "groups") if k in g) + " "
        if "delay" in g:
            d = np.asarray(g["delay"][()])
            row.delay = value_range(d)
            delays[name] = row.delay
        if kind in ("conv", "dense", "dense_rec"):
            if shape is not None:
                neurons += int(np.prod(shape))
            if "neuron" in g:
                n = g["neuron"]
                vals = {k: jsonable(n[k][()]) for k in ("iDecay", "vDecay", "vThMant") if k in n}
                ntype = np.asarray(n["type"][()]).reshape(-1)[0] if "type" in n else "?"
                ntype = ntype.decode("ascii") if isinstance(ntype, bytes) else str(ntype)
                row.neuron += f"{ntype} " + " ".join(f"{k} {v}" for k, v in vals.items())
                if "iDecay" in vals:
                    merge_range(ranges, "du", [vals["iDecay"] - 1] * 2)
                if "vDecay" in vals:
                    merge_range(ranges, "dv", [vals["vDecay"]] * 2)
                if "vThMant" in vals and i < len(groups) - 1:
                    merge_range(ranges, "vth", [vals["vThMant"]] * 2)
            else:
                row.neuron += ("no neuron: netx's integrating readout (iDecay "
                                  f"{NETX_DEFAULT_READOUT['iDecay']}, vDecay "
                                  f"{NETX_DEFAULT_READOUT['vDecay']}, vThMant "
                                  f"{NETX_DEFAULT_READOUT['vThMant']})")
        rows.append(row)
    attrs = {k: jsonable(v) for k, v in f.attrs.items()}
    meta: dict[str, Any] = {}
    if isinstance(attrs.get("sakd"), str):
        try:
            sakd = json.loads(attrs["sakd"])
            meta = sakd.get("metadata", {})
            attrs["sakd"] = {k: v for k, v in sakd.items() if k not in ("metadata", "layers")}
        except ValueError:
            pass
    try:
        ir = ir_brief(read_netx(path))
    except SakdError as exc:
        ir = IRBrief(error=str(exc))
    own = attrs.get("sakd") if isinstance(attrs.get("sakd"), dict) else {}
    return Inspection(
        path=str(path), format="netx", version=None, target=own.get("target"), input=in_info,
        layers=rows,
        totals={"layers": len(rows), "neurons": neurons, "weights": weights,
                "parameters": weights + biases},
        ranges=ranges, delays=delays, latency=ir.latency, metadata=meta, ir=ir,
        attributes=attrs, notes=notes)




def detect(path: Path) -> bool:
    """A netx file: HDF5 with a ``layer`` group (lava-dl's ``netx.hdf5.Network`` schema)."""
    try:
        with h5py.File(path, "r") as f:
            return "layer" in f
    except (OSError, RuntimeError, ValueError):
        return False


FORMAT = Format(
    name="netx", title="netx HDF5", suffixes=(".netx.h5", ".net", ".h5"),
    file_name="network.netx.h5", supports=SUPPORT, detect=detect, read=read_netx,
    write=write_netx, inspect=inspect_netx, read_options=("input_message_bits", "time_steps"),
    notes=netx_hardware_notes,
    description="Intel lava-dl's netx HDF5 (sequential networks), run by lava.lib.dl.netx",
)


__all__ = [
    "NETX_BIAS_EXP",
    "NETX_DEFAULT_READOUT",
    "NetxExportError",
    "NetxImportError",
    "inspect_netx",
    "is_or_population",
    "netx_chain",
    "netx_layers",
    "read_netx",
    "write_netx",
]
