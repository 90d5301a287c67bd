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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sakd.formats.base import FormatError, check_supported
from sakd.hardware.atomic import atomic_path
from sakd.hardware.integrity import seal
from sakd.hardware.ir import Network, Population, Projection
from sakd.hardware.neurons.sigma_delta import NETX_SDNN_MESSAGE_BITS
from sakd.hardware.target import NETX_BIAS_EXP, TargetSpec

from .common import (
    ELSEWHERE,
    GENERATOR,
    NETX_BIAS_RANGE,
    NETX_FORMAT,
    NETX_FORMAT_VERSION,
    SUPPORT,
    NetxExportError,
    NetxImportError,
    netx_dense_weights,
    netx_rf_decays,
)

_ELSEWHERE = ELSEWHERE


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


def _refuse(label: str, node: str, why: str) -> NetxExportError:
    return NetxExportError(f"{label}: {why}; netx cannot express it: {_ELSEWHERE}", node=node)


def _refuse_upsampling(network: Network) -> None:
    """An upsample projection has no netx layer: name the first one."""
    for proj in network.projections:
        if proj.kind == "upsample":
            raise _refuse(proj.label, proj.name, "an upsample projection (nearest upsampling or "
                          "a broadcast, a transposed conv whose kernel equals its stride): netx "
                          "has no upsampling or transposed-conv layer, and its dense layers "
                          "feed flat (N,) layers only")


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


@dataclass
class NetxLayer:
    """One netx layer of a network: its population, the projections from the previous layer
    (several: one per delay, or an RF layer's real and imaginary parts; a ``direct`` one: an
    input layer that carries a neuron) and its recurrent projections (``dense_rec``)."""

    pop: Population
    incoming: list[Projection]
    recurrent: list[Projection]

    @property
    def kind(self) -> str:
        if self.incoming[0].kind == "direct":
            return "input"
        if self.incoming[0].kind == "conv2d":
            return "conv"
        return "dense_rec" if self.recurrent else "dense"


def netx_chain(network: Network, *, or_as_conv: bool = False) -> list[NetxLayer]:
    """The layers of ``network`` in netx's order, or :class:`NetxExportError` naming the first
    node netx cannot express (``or_as_conv``: see ``write_netx``)."""
    _refuse_upsampling(network)
    # structure first: one chain, each layer fed only by the previous one (and itself)
    chain: list[NetxLayer] = []
    prev = network.input.name
    remaining = list(network.topological_order())
    while remaining:
        nexts = {p.target for p in network.projections_from(prev) if p.target != prev}
        if len(nexts) != 1:
            label = network.input.label if prev == network.input.name else \
                network.population(prev).label
            if not nexts:  # pragma: no cover - every population is reachable
                break
            names = ", ".join(f"'{p.name}'" for p in network.projections_from(prev)
                              if p.target != prev)
            raise _refuse(label, prev, f"fan-out to {len(nexts)} populations ({names}): a "
                          f"residual branch; netx wires each layer to the next one only")
        name = nexts.pop()
        pop = network.population(name)
        into = network.projections_into(name)
        others = [p for p in into if p.source not in (prev, name)]
        if others:
            names = ", ".join(f"'{p.name}'" for p in into if p.source != name)
            raise _refuse(pop.label, name, f"fan-in from {len(into)} projections ({names}): a "
                          f"residual add; netx wires each layer to the previous one only")
        chain.append(NetxLayer(pop, [p for p in into if p.source == prev],
                               [p for p in into if p.source == name]))
        remaining.remove(name)
        prev = name
    for k, layer in enumerate(chain):
        _check_layer(network, layer, k, or_as_conv)
    sdnn = {(p.neuron.spike_exp, p.neuron.state_exp) for p in network.populations
            if hasattr(p.neuron, "spike_exp")}
    if len(sdnn) > 1:
        raise _refuse("network", "", f"sigma-delta populations with different (spike_exp, "
                      f"state_exp) {sorted(sdnn)}: netx takes one spike_exp per network and "
                      f"state_exp 6")
    if sdnn and next(iter(sdnn))[1] != 6:
        raise _refuse("network", "", "sigma-delta state_exp other than 6: netx fixes it at 6")
    return chain


def _check_layer(network: Network, layer: NetxLayer, k: int, or_as_conv: bool) -> None:
    pop, into = layer.pop, layer.incoming
    kinds = {p.kind for p in into}
    if len(kinds) > 1:
        raise _refuse(pop.label, pop.name, f"projections of kinds {sorted(kinds)} from one layer")
    kind = kinds.pop()
    if kind == "direct" and k != 0:  # pragma: no cover - the IR allows direct only from the input
        raise _refuse(pop.label, pop.name, "a direct projection into a later layer")
    if kind == "conv2d":
        if len(into) > 1 or into[0].delay:
            raise _refuse(into[0].label, into[0].name, f"delay {into[0].delay}: netx ignores "
                          f"conv delays")
        if layer.recurrent:
            raise _refuse(pop.label, pop.name, "a recurrent conv layer: netx has dense_rec only")
    model = pop.neuron.model
    if model in ("rf", "rf_iz"):
        ports = sorted(p.port for p in into)
        if kind != "dense" or ports != ["a_imag_in", "a_real_in"] or any(p.delay for p in into):
            raise _refuse(pop.label, pop.name, "an RF layer is a complex dense layer: one real "
                          "and one imaginary dense projection from the previous layer, no delays")
        if layer.recurrent:
            raise _refuse(pop.label, pop.name, "a recurrent RF layer")
        if pop.message_bits != 1:
            raise _refuse(pop.label, pop.name, "graded RF messages: netx's RF layers send spikes")
    elif kind == "dense":
        ports = {p.port for p in into}
        if ports != {pop.neuron.ports[0]}:
            raise _refuse(pop.label, pop.name, f"inputs through ports {sorted(ports)}: netx's "
                          f"dense layers drive a_in")
        if len({p.delay for p in into}) != len(into):
            raise _refuse(pop.label, pop.name, "two projections with the same delay from one layer")
        if layer.recurrent and (len(into) > 1 or into[0].delay or len(layer.recurrent) > 1
                                or layer.recurrent[0].delay):
            raise _refuse(pop.label, pop.name, "a recurrent layer with delays: netx gives its "
                          "two synapses one delay array (sakd writes dense_rec without delays)")
    elif kind == "direct" and pop.neuron.model not in ("cuba_lif", "delta"):
        raise _refuse(pop.label, pop.name, f"a {model} input layer: netx's input layers carry "
                      f"CUBA or SDNN (Delta) neurons")
    if model == "delta" and kind != "direct":
        raise _refuse(pop.label, pop.name, "a Delta population after the first layer: netx builds "
                      "Delta neurons for SDNN input layers only")
    if not or_as_conv and model == "cuba_lif" and is_or_population(network, pop):
        raise _refuse(pop.label, pop.name, "a max-pooling OR population (depthwise all-2 "
                      "kernel, du = dv = 4095, vth = 1): netx has no pooling layer (pass "
                      "or_as_conv=True to write it as a grouped conv layer)")
    if network.schedule == "sample":
        for proj in (*into, *layer.recurrent):
            if proj.delay:
                raise _refuse(proj.label, proj.name, f"delay {proj.delay} in a sample network: "
                              f"netx resets layer k at step offset + 1 + k, but a delay moves the "
                              f"staggered reset of every later population (sakd's sample networks "
                              f"need delays only for residual paths)")
    if network.schedule == "sample" and model != "cuba_lif":
        raise _refuse(pop.label, pop.name, f"a {model} population in a sample network: netx "
                      f"resets only LIF layers, so the staggered reset has no netx form")
    if model == "cuba_lif":
        _netx_bias(pop, network.target)  # raises for biases netx's bias_exp 6 cannot hold


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
    for layer in netx_chain(network, or_as_conv=or_as_conv):
        pop = layer.pop
        if pop.neuron.model != "cuba_lif":
            continue
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

    The file is read back before it replaces anything at ``path`` (``read_netx`` interprets it
    as netx does); a network that would come back different is refused, naming the first
    difference, so a written file always means the network.

    ``or_as_conv``: write a max-pooling OR population as what it is in the IR, a grouped
    (depthwise) conv layer with a CUBA neuron; netx has no pooling layer, but this form ran
    bit-exactly in Lava's netx (test_convnet_pool, 6 samples). Off by default."""
    if not isinstance(network, Network):
        raise TypeError(f"write_netx needs a Network, got {type(network).__name__}")
    # upsampling and neuron models first; then netx_chain, which names the first node off the
    # one chain
    _refuse_upsampling(network)
    check_supported(network, dataclasses.replace(SUPPORT, residual_fan_in=True), "netx",
                    NetxExportError)
    chain = netx_chain(network, or_as_conv=or_as_conv)
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            options = _write_layers(f, network, chain)
        seal(tmp, "netx")
        _check_round_trip(network, tmp, options)
    return path


def _check_round_trip(network: Network, tmp: Path, options: dict[str, Any]) -> None:
    from .read import read_netx

    try:
        back = read_netx(tmp, **options)
    except FormatError as exc:
        raise NetxExportError(f"netx would not read the file back as this network: {exc}") from exc
    if back.equals(network):
        return
    why = first_difference(network, back)
    raise NetxExportError(f"netx would run a different network: {why}; {_ELSEWHERE}")


def first_difference(a: Network, b: Network) -> str:
    """A sentence naming the first node where two networks differ."""
    for pa, pb in zip(a.populations, b.populations):
        if not pa.equals(pb):
            return (f"{pa.label}: {pa.neuron.describe()} (message_bits {pa.message_bits}) would "
                    f"come back as {pb.neuron.describe()} (message_bits {pb.message_bits})")
    by_name = {p.name: p for p in b.projections}
    for pa in a.projections:
        pb = by_name.get(pa.name)
        if pb is None:
            return f"{pa.label}: would be lost"
        if not pa.equals(pb):
            return (f"{pa.label}: its weights or parameters would change (netx rescales dense "
                    f"weights with optimize_weight_bits, and Lava clips and truncates them)")
    if len(a.populations) != len(b.populations) or len(a.projections) != len(b.projections):
        return "the layers would differ"
    return "its input, schedule or metadata would differ"


def _dense_file_weights(proj: Projection, weight: np.ndarray, exp: int,
                        apply_exponent: bool = True) -> np.ndarray:
    """File weights that netx turns back into ``weight`` with exponent ``exp`` (the IR's map
    ``floor(W @ s · 2^exp)``): the integer matrix ``W · 2^exp`` when it is one, checked against
    netx's ``optimize_weight_bits`` and Lava's clip and truncation (``netx_dense_weights``)."""
    if exp >= 0:
        file_w = weight << exp
    elif np.any(weight % (1 << -exp)):
        raise _refuse(proj.label, proj.name, f"weight_exp {exp} with weights that are not "
                      f"multiples of {1 << -exp}: a netx dense layer holds integer weights and no "
                      f"exponent (optimize_weight_bits picks its own)")
    else:
        file_w = weight >> -exp
    try:
        dw = netx_dense_weights(file_w, apply_exponent=apply_exponent)
    except NetxImportError as exc:
        raise _refuse(proj.label, proj.name, str(exc)) from exc
    if not _same_map(dw.effective, dw.weight_exp, weight, exp):
        raise _refuse(proj.label, proj.name, "netx's optimize_weight_bits and Lava's clip and "
                      "truncation would change these weights (fixed-point.md §2.1)")
    return file_w


def _same_map(w1: np.ndarray, e1: int, w2: np.ndarray, e2: int) -> bool:
    """Whether ``w1 · 2^e1 == w2 · 2^e2`` element by element (the same dense map)."""
    lo = min(e1, e2)
    return bool(np.array_equal(w1.astype(np.int64) << (e1 - lo), w2.astype(np.int64) << (e2 - lo)))


def _rf_file_decays(pop: Population) -> tuple[int, int]:
    """(sinDecay, cosDecay) that netx's float round trip turns into the population's decays."""
    s, c = pop.neuron.sin_decay, pop.neuron.cos_decay
    for ds in (0, 1, 2):
        for dc in (0, 1, 2):
            if netx_rf_decays(s + ds, c + dc) == (s, c):
                return s + ds, c + dc
    raise _refuse(pop.label, pop.name, f"decays ({s}, {c}): no sinDecay/cosDecay gives them "
                  f"after netx's float round trip")


def _write_neuron(g: h5py.Group, pop: Population, spec: TargetSpec) -> None:
    n = g.create_group("neuron")
    m = pop.neuron
    model = m.model
    if model == "cuba_lif":
        _type(n, "CUBA")
        # a readout gets vThMant = 2^17: never fires (see the module docstring)
        vth = spec.readout_vth if pop.is_readout else m.vth
        values = {"iDecay": m.du + 1, "vDecay": m.dv, "vThMant": vth, "refDelay": 1,
                  "gradedSpike": int(pop.message_bits > 1)}
        if pop.message_bits > 1:
            values["messageBits"] = pop.message_bits
    elif model in ("delta", "sigma_delta", "sigma"):
        _type(n, "SDNN")
        # netx's default width is 16; lava-dl 0.6 cannot run a file that states messageBits at
        # all (docs/netx.md), so the key is written only where the width differs
        values = {} if pop.message_bits == NETX_SDNN_MESSAGE_BITS else {"messageBits": pop.message_bits}
        if model != "sigma":
            values["vThMant"] = m.vth
        else:
            values["sigma_output"] = 1
    else:
        _type(n, "RF_PHASE" if model == "rf" else "RF_IZ")
        sin, cos = _rf_file_decays(pop)
        values = {"sinDecay": sin, "cosDecay": cos, "vThMant": m.vth, "gradedSpike": 0}
    for key, value in values.items():
        n.create_dataset(key, data=np.int64(value))


def _write_bias(g: h5py.Group, pop: Population, spec: TargetSpec) -> None:
    m = pop.neuron
    if m.model == "cuba_lif":
        bias = _netx_bias(pop, spec)
    elif m.model == "sigma_delta":
        bias = np.asarray(m.bias_mant, np.int64)
        if bias.ndim > 1:  # per neuron: netx takes it in W,H,C order
            bias = bias.transpose(2, 1, 0)
    else:
        return
    if np.any(bias):
        if bias.ndim <= 1:
            bias = np.broadcast_to(bias, (pop.shape[0],))
        g.create_dataset("bias", data=bias.astype(np.float32))


def _write_layers(f: h5py.File, network: Network, chain: list[NetxLayer]) -> dict[str, Any]:
    """Write every layer; returns the read options that give the network back."""
    spec = network.target
    inp = network.input
    layer = f.create_group("layer")
    index = 0
    layers_meta: list[dict[str, Any]] = []

    def new(kind: str) -> h5py.Group:
        nonlocal index
        g = layer.create_group(str(index))
        _type(g, kind)
        index += 1
        return g

    input_mode = "a_in"
    if chain[0].kind != "input":
        g = new("input")
        g.create_dataset("shape", data=np.asarray(inp.shape, dtype=np.int64))
    src_shape = inp.shape
    for item in chain:
        pop = item.pop
        kind = item.kind
        names: dict[str, dict[str, Any]] = {}
        if kind == "input":
            g = new("input")
            g.create_dataset("shape", data=np.asarray(pop.shape, dtype=np.int64))
            _write_neuron(g, pop, spec)
            input_mode = "bias" if item.incoming[0].port == "bias" else "a_in"
            names[f"layer{index - 1}.input"] = {"name": item.incoming[0].name}
        else:
            if kind != "conv" and len(src_shape) > 1:
                flat = new("flatten")
                flat.create_dataset("shape", data=np.asarray([int(np.prod(src_shape))], np.int64))
            g = new(kind)
            g.create_dataset("shape", data=np.asarray(pop.shape, dtype=np.int64))
            if kind == "conv":
                proj = item.incoming[0]
                g.create_dataset("weight", data=proj.weight.astype(np.float32))
                for key in ("stride", "padding", "dilation"):
                    g.create_dataset(key, data=np.asarray(getattr(proj, key), dtype=np.int64))
                g.create_dataset("groups", data=np.int64(proj.groups))
                names[f"layer{index - 1}.synapse"] = {"name": proj.name}
            elif pop.neuron.model in ("rf", "rf_iz"):
                wg = g.create_group("weight")
                for proj in item.incoming:
                    part = "real" if proj.port == "a_real_in" else "imag"
                    wg.create_dataset(part, data=_dense_file_weights(
                        proj, proj.weight, proj.weight_exp).astype(np.float32))
                    names[f"layer{index - 1}.{part}"] = {"name": proj.name,
                                                         "weight_exp": proj.weight_exp}
            else:
                _write_dense(g, item, index - 1, names)
            _write_bias(g, pop, spec)
            _write_neuron(g, pop, spec)
        meta = {"layer": index - 1, "population": pop.name, "role": pop.role, "scale": pop.scale,
                "origin": pop.origin, "projections": names}
        if pop.neuron.model == "cuba_lif":
            meta.update({"vth": pop.neuron.vth, "bias_exp": pop.neuron.bias_exp,
                         "bias_shape": list(pop.neuron.bias_mant.shape)})
        layers_meta.append(meta)
        src_shape = pop.shape
    graded = inp.encoding == "graded" and chain[0].kind != "input"
    message_bits = inp.bits if graded else 0
    spike_exps = {p.neuron.spike_exp for p in network.populations if hasattr(p.neuron, "spike_exp")}
    options: dict[str, Any] = {"input_message_bits": message_bits, "input_mode": input_mode}
    if spike_exps:
        options["spike_exp"] = spike_exps.pop()
    run = ("hdf5.Network(net_config=path, input_message_bits=input_message_bits, "
           "reset_interval=T, reset_offset=1) reproduces the IR's simulation"
           if network.schedule == "sample" else
           "hdf5.Network(net_config=path, **netx_options) runs it free (no reset), as sakd's "
           "free schedule does")
    f.attrs["generator"] = GENERATOR
    f.attrs["input_message_bits"] = message_bits
    f.attrs["sakd"] = json.dumps({
        "format": NETX_FORMAT, "version": NETX_FORMAT_VERSION, "target": network.target.name,
        "time_steps": network.time_steps, "digest": network.digest(),
        "schedule": network.schedule, "limits": network.limits,
        "input": {"name": inp.name, "shape": list(inp.shape), "encoding": inp.encoding,
                  "bits": inp.bits, "scale": inp.scale},
        "input_message_bits": message_bits, "netx_options": options, "run": run,
        "layers": layers_meta, "metadata": network.metadata,
    }, sort_keys=True)
    return options


def _write_dense(g: h5py.Group, item: NetxLayer, index: int,
                 names: dict[str, dict[str, Any]]) -> None:
    """A dense (or dense_rec) layer: one weight matrix, a per-synapse delay matrix when the
    layer's projections carry different delays."""
    into = sorted(item.incoming, key=lambda p: p.delay)
    exps = {p.weight_exp for p in into} | {p.weight_exp for p in item.recurrent}
    if len(exps) > 1:
        raise _refuse(item.pop.label, item.pop.name, f"projections with different weight_exp "
                      f"{sorted(exps)}: a netx dense layer has one weight scale")
    exp = exps.pop()
    weight = np.zeros_like(into[0].weight)
    delay = np.zeros(weight.shape, np.int64)
    for proj in into:
        overlap = (weight != 0) & (proj.weight != 0)
        if np.any(overlap):
            raise _refuse(proj.label, proj.name, "two delays on one synapse: netx holds one delay "
                          "per synapse")
        weight = weight + proj.weight
        delay = np.where(proj.weight != 0, proj.delay, delay)
    if len(into) == 1 and into[0].delay == 0:
        names[f"layer{index}.synapse"] = {"name": into[0].name, "weight_exp": exp}
    else:
        for proj in into:
            names[f"layer{index}.synapse.d{proj.delay}"] = {"name": proj.name, "weight_exp": exp}
    if item.recurrent:  # netx scales weight and weight_rec together
        rec = item.recurrent[0]
        n_in = weight.shape[1]
        joint = _dense_file_weights(rec, np.hstack([weight, rec.weight]), exp)
        g.create_dataset("weight", data=joint[:, :n_in].astype(np.float32))
        g.create_dataset("weight_rec", data=joint[:, n_in:].astype(np.float32))
        names[f"layer{index}.synapse_rec"] = {"name": rec.name, "weight_exp": exp}
    else:
        g.create_dataset("weight", data=_dense_file_weights(into[0], weight, exp)
                         .astype(np.float32))
    if len(into) > 1 or into[0].delay:
        g.create_dataset("delay", data=delay.astype(np.float32))
