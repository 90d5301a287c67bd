"""Read a netx HDF5 file into the IR, exactly as lava-dl 0.6's ``netx.hdf5.Network`` builds it
(``netx/hdf5.py`` ``_create``, ``get_neuron_params``, ``create_*``; ``netx/blocks/process.py``).

Files sakd wrote (root attribute ``sakd``) come back ``equal`` to the written network. Every
other file is read as netx interprets each key, into a network with ``schedule="free"`` (netx
runs free: no reset unless ``reset_interval`` is given when simulating) and ``limits="lava"``
(what Lava's models run; ``Network.hardware_notes()`` names what a chip could not hold):

- populations are named ``layer{i}`` after their ``/layer/{i}`` group; projections
  ``layer{i}.synapse`` (``.synapse_rec``, ``.real`` / ``.imag``, ``.d{delay}``, ``.input``);
- ``input``: with only a ``shape`` it gives the input's shape; with a ``neuron`` it is a
  population fed by a ``direct`` projection from the input: netx leaves its InPort unconnected,
  so the data enters the neuron's ``a_in`` (``input_mode="a_in"``, lava-dl's PilotNet examples)
  or its bias mantissa (``input_mode="bias"``, lava-dl's tinynet test); its ``weight``/``bias``
  keys are a ``transform`` netx never applies;
- no input layer: the input is the first layer's synapse input (a dense layer: ``(in,)``; a
  conv layer needs ``input_shape``, as netx does);
- ``conv``: PyTorch cross-correlation with the file's kernel, stride, padding, dilation and
  groups (no weight rescaling, no exponent); its ``delay`` is ignored, as netx ignores it;
- ``flatten``: the next dense layer reads the previous one in C,H,W order;
- ``dense`` / ``dense_rec``: the weights netx's ``optimize_weight_bits`` and Lava's
  bit-accurate Dense really use (``netx_dense_weights``; jointly for ``weight`` and
  ``weight_rec``); 1-D weights are reshaped to ``(out, -1)``; ``delay`` (scalar, axonal ``(out,)``,
  input ``(in,)`` or per synapse ``(out, in)``, clamped to 0..62 as netx does) becomes one
  projection per distinct delay; ``weight/real`` + ``weight/imag`` is a complex dense layer
  driving an RF neuron's two inputs;
- neurons: ``CUBA``/``LOIHI`` → CUBA-LIF (``du = iDecay − 1``, ``dv = vDecay``,
  ``vth = vThMant``, bias exponent 6; ``messageBits`` > 0: graded messages of that many bits);
  ``SDNN`` → Delta (an input layer), Sigma (``sigma_output``) or SigmaDelta, with
  ``spike_exp`` (a netx run option, default 6), ``state_exp`` 6 and ``messageBits`` (default 16);
  ``RF_PHASE`` → RF, ``RF``/``RF_IZ`` → RF_IZ, with netx's float round trip of the decays
  (``netx_rf_decays``); a dense layer without ``neuron`` gets netx's default (iDecay 0,
  vDecay 4096, vThMant 2^17: an integrator that never fires, read as a readout).

What netx refuses, sakd refuses with netx's reason (pool, convT, unpool, average and concat:
"… is not implemented"; dense_comp: netx calls ``create_complex_dense``, which does not exist);
what netx would silently skip or get wrong (an unknown layer type, an unconnected layer),
sakd refuses rather than guess.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sakd.hardware.errors import SakdError
from sakd.hardware.integrity import IntegrityError, sealed_kind
from sakd.hardware.ir import Input, IRError, Network, Population, Projection
from sakd.hardware.netfile import open_hdf5
from sakd.hardware.neurons import CubaLif, Delta, ResonateFire, ResonateFireIz, Sigma, SigmaDelta
from sakd.hardware.neurons.sigma_delta import NETX_SDNN_MESSAGE_BITS, NETX_SPIKE_EXP
from sakd.hardware.target import DEFAULT_TARGET, NETX_BIAS_EXP, TargetSpec, get_target

from .common import (
    GENERATOR,
    NETX_BIAS_RANGE,
    NETX_DEFAULT_READOUT,
    NETX_FORMAT,
    NETX_MAX_DELAY,
    NETX_UNIMPLEMENTED,
    NetxImportError,
    float_key,
    int_key,
    ints_key,
    layer_type,
    netx_dense_weights,
    netx_layers,
    netx_rf_decays,
    pair_key,
    shape_key,
    text,
)

INPUT_MODES = ("a_in", "bias")
#: the bits the simulator accepts for data written into an input neuron: a_in is Lava's int32
#: (the neuron model checks what its arithmetic can hold); bias_mant is Lava's int16
INPUT_NEURON_BITS = {"a_in": 24, "bias": 16}


def read_netx(path: str | os.PathLike[str], *, input_message_bits: int | None = None,
              input_mode: str | None = None, input_shape: tuple[int, ...] | None = None,
              spike_exp: int | None = None, sparse_fc_layer: bool = False,
              target: str | TargetSpec = DEFAULT_TARGET, time_steps: int | None = None,
              trust_metadata: bool = True) -> Network:
    """Read a netx HDF5 file (module docstring).

    ``input_message_bits``, ``spike_exp``, ``sparse_fc_layer``: netx's ``hdf5.Network`` options
    of the same names (``input_message_bits`` default: the file's attribute, else 0 = binary
    spikes; ``spike_exp`` default 6; ``sparse_fc_layer`` makes Lava use Sparse synapses, which
    compute the same sums). ``input_mode``: how data enters an input layer that carries a
    neuron (``a_in``, the default, or ``bias``). A file sakd wrote records the options it was
    written for; they are the defaults when reading it back. ``input_shape``: (C, H, W) for a file whose first layer is a conv without an
    input layer (netx's ``input_shape``, in PyTorch order here). ``time_steps``: T for files
    that do not record it. ``trust_metadata=False`` reads a sakd file like any other.
    """
    path = Path(path)
    if input_mode is not None and input_mode not in INPUT_MODES:
        raise NetxImportError(f"input_mode {input_mode!r} is not one of {INPUT_MODES}")
    if input_message_bits is not None and (isinstance(input_message_bits, bool) or not isinstance(
            input_message_bits, (int, np.integer)) or not 0 <= input_message_bits <= 24):
        raise NetxImportError(f"input_message_bits {input_message_bits!r} must be 0 (binary "
                              f"spikes) or a bit width up to 24")
    if spike_exp is not None and (isinstance(spike_exp, bool) or not isinstance(
            spike_exp, (int, np.integer)) or not 0 <= spike_exp <= 7):
        raise NetxImportError(f"spike_exp {spike_exp!r} must be an integer in [0, 7] (Lava's "
                              f"3-bit spike_exp)")
    check_seal(path)
    handle = open_hdf5(path, NetxImportError, "netx file")
    options = {"input_message_bits": input_message_bits, "input_mode": input_mode,
               "input_shape": input_shape, "spike_exp": spike_exp,
               "sparse_fc_layer": bool(sparse_fc_layer)}
    try:
        with handle as f:
            return _read(f, str(path), options, target, time_steps, trust_metadata)
    except NetxImportError as exc:
        if not str(exc).startswith(str(path)):
            raise NetxImportError(f"{path}: {exc}") from exc
        raise
    except SakdError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise NetxImportError(f"{path}: the HDF5 file is damaged or truncated: "
                              f"{type(exc).__name__}: {exc}") from exc


def check_seal(path: Path) -> None:
    """A netx file sakd wrote is sealed: checked before the HDF5 library parses it."""
    if not path.exists():
        return  # open_hdf5 says so
    try:
        kind = sealed_kind(path)
    except IntegrityError as exc:
        raise NetxImportError(str(exc)) from exc
    if kind not in (None, "netx"):
        raise NetxImportError(f"{path}: a {kind} file sakd wrote, not a netx file")


def _own_metadata(f: h5py.File, where: str, trust_metadata: bool) -> dict[str, Any] | None:
    ours = text(f.attrs.get("generator", b"")) == GENERATOR or "sakd" in f.attrs
    if not (trust_metadata and ours):
        return None
    how = "pass trust_metadata=False to read it as a file from another framework"
    try:
        own = json.loads(text(f.attrs["sakd"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise NetxImportError(f"{where}: the file says sakd wrote it, but its sakd metadata "
                              f"is missing or unreadable ({type(exc).__name__}); {how}") from exc
    if not isinstance(own, dict) or own.get("format") != NETX_FORMAT or not isinstance(
            own.get("layers"), list) or "input" not in own:
        raise NetxImportError(f"{where}: the file's sakd metadata is damaged (not format "
                              f"{NETX_FORMAT!r} with its layers and input); {how}")
    return own


def _read(f: h5py.File, where: str, options: dict[str, Any], target: str | TargetSpec,
          time_steps: int | None, trust_metadata: bool) -> Network:
    own = _own_metadata(f, where, trust_metadata)
    spec = get_target(own.get("target", target) if own else target)
    recorded = own.get("netx_options", {}) if own else {}
    for key, default in (("input_mode", "a_in"), ("spike_exp", NETX_SPIKE_EXP)):
        if options[key] is None:
            options[key] = recorded.get(key, default)
    if options["input_message_bits"] is None:
        options["input_message_bits"] = int(
            np.asarray(f.attrs.get("input_message_bits", 0)).reshape(-1)[0])
    builder = _Builder(where, spec, options, own)
    for i, g in enumerate(netx_layers(f, where)):
        builder.layer(i, g)
    return builder.network(time_steps)


class _Builder:
    """netx's ``_create`` walk over the layers, building IR nodes."""

    def __init__(self, where: str, spec: TargetSpec, options: dict[str, Any],
                 own: dict[str, Any] | None) -> None:
        self.where, self.spec, self.options, self.own = where, spec, options, own
        self.own_layers = {int(x["layer"]): x for x in own["layers"]} if own else {}
        self.inp: Input | None = None
        self.input_shape: tuple[int, ...] | None = (
            tuple(int(d) for d in options["input_shape"]) if options["input_shape"] else None)
        self.pops: list[Population] = []
        self.projs: list[Projection] = []
        self.message_bits = int(options["input_message_bits"])  # of the next layer's input
        self.flatten_next = False
        self.notes: list[str] = []
        self.count = 0  # layers netx appended

    # -- the walk ----------------------------------------------------------------------------

    def layer(self, i: int, g: h5py.Group) -> None:
        loc = f"/layer/{i}"
        kind = layer_type(g)
        if kind == "input":
            self._input(i, g, loc)
        elif kind == "flatten":
            self.flatten_next = True
        elif kind == "conv":
            self._conv(i, g, loc)
        elif kind in ("dense", "dense_rec"):
            self._dense(i, g, loc, recurrent=kind == "dense_rec")
        elif kind == "dense_comp":
            raise NetxImportError(f"{loc}: layer type 'dense_comp': netx cannot load it (its "
                                  f"_create calls create_complex_dense, which lava-dl 0.6 does not "
                                  f"define: AttributeError); a complex dense layer is a 'dense' "
                                  f"layer with weight/real and weight/imag")
        elif kind in NETX_UNIMPLEMENTED:
            raise NetxImportError(f"{loc}: {kind} is not implemented (netx refuses this layer "
                                  f"type: NotImplementedError)")
        else:
            raise NetxImportError(f"{loc}: unknown layer type {kind!r}: netx would skip it without "
                                  f"a word and connect the next layer to the previous one; sakd "
                                  f"refuses rather than run a different network")

    def _input(self, i: int, g: h5py.Group, loc: str) -> None:
        shape = shape_key(g, loc)
        if "neuron" not in g:
            if self.inp is None and not self.pops:
                self.input_shape = shape
            return
        if self.pops or self.inp is not None:
            raise NetxImportError(f"{loc}: an input layer with a neuron after the first layer: "
                                  f"netx appends it without connecting it to anything")
        mode = self.options["input_mode"]
        neuron, bits = self._neuron(g["neuron"], f"{loc}/neuron", shape, input_layer=True,
                                    bias=None)
        port = "bias" if mode == "bias" else neuron.ports[0]
        if port not in neuron.ports:
            raise NetxImportError(f"{loc}/neuron: input_mode 'bias' writes the input into the "
                                  f"neuron's bias_mant, which a {neuron.model} neuron does not have "
                                  f"(use input_mode 'a_in')")
        fields = ({**self._input_fields(shape, 0)} if self.own else
                  {"name": "input", "shape": shape, "encoding": "graded",
                   "bits": INPUT_NEURON_BITS[mode]})
        self.inp = self._make(Input, loc, **fields)
        pop = self._population(i, shape, neuron, bits, loc)
        self._add(pop, [Projection(f"layer{i}.input", self.inp.name, pop.name, "direct", 1,
                                   port=port)], bits)
        for key in ("weight", "bias"):
            if key in g:
                self.notes.append(f"{loc}/{key}: an input transform netx never applies (ignored)")

    def _source(self, loc: str, conv: bool, n_in: int | None = None) -> tuple[str, tuple[int, ...]]:
        """The previous layer's (name, shape), creating the input on the first synapse layer."""
        if self.pops:
            return self.pops[-1].name, self.pops[-1].shape
        if self.inp is None:
            if conv:
                if self.input_shape is None:
                    raise NetxImportError(
                        f"{loc}: Input shape could not be inferred (netx's own error: a conv "
                        f"layer without an input layer); pass input_shape=(C, H, W) "
                        f"(--input-shape)")
                shape = self.input_shape
            elif self.own:
                shape = tuple(self.own["input"]["shape"])
            elif self.input_shape is not None and int(np.prod(self.input_shape)) == n_in:
                # netx feeds the dense synapse's s_in (in,) directly; the declared shape is
                # that vector in C,H,W order
                shape = self.input_shape
            else:
                shape = (int(n_in),)
            bits = self.message_bits
            self.inp = self._make(Input, loc, **self._input_fields(shape, bits))
        return self.inp.name, self.inp.shape

    def _input_fields(self, shape: tuple[int, ...], bits: int) -> dict[str, Any]:
        if self.own:
            oi = self.own["input"]
            return {"name": oi["name"], "shape": shape, "encoding": oi["encoding"],
                    "bits": oi["bits"], "scale": oi["scale"]}
        if bits == 1:
            raise NetxImportError("input_message_bits 1: a 1-bit graded input; use 0 for binary "
                                  "spikes or at least 2 bits")
        if bits:
            return {"name": "input", "shape": shape, "encoding": "graded", "bits": bits}
        return {"name": "input", "shape": shape, "encoding": "spikes"}

    def _conv(self, i: int, g: h5py.Group, loc: str) -> None:
        src, src_shape = self._source(loc, conv=True)
        if len(src_shape) != 3:
            raise NetxImportError(f"{loc}: a conv layer after a layer of shape {src_shape}: netx "
                                  f"needs a (C, H, W) input here")
        shape = shape_key(g, loc)
        if "neuron" not in g:
            raise NetxImportError(f"{loc}: a conv layer without a neuron group (netx reads "
                                  f"layer['neuron']: KeyError)")
        weight = ints_key(g, "weight", loc)
        if weight.ndim == 5:
            weight = weight.reshape(weight.shape[:4])
        if weight.ndim != 4:
            raise NetxImportError(f"{loc}/weight: shape {list(weight.shape)}; a conv kernel is "
                                  f"(Cout, Cin/groups, kh, kw)")
        bias = ints_key(g, "bias", loc) if "bias" in g else None
        neuron, bits = self._neuron(g["neuron"], f"{loc}/neuron", shape, bias=bias)
        if "delay" in g:
            self.notes.append(f"{loc}/delay: netx ignores conv delays; ignored")
        proj = self._make(Projection, loc, name=f"layer{i}.synapse", source=src, target=self._name(i), kind="conv2d", weight=weight,
                          stride=pair_key(g, "stride", loc, 1), padding=pair_key(g, "padding", loc, 0),
                          dilation=pair_key(g, "dilation", loc, 1),
                          groups=int_key(g, "groups", loc) if "groups" in g else 1)
        self._check_conv_input(loc)
        pop = self._population(i, shape, neuron, bits, loc)
        self._add(pop, [proj], bits)

    def _check_conv_input(self, loc: str) -> None:
        if self.message_bits == 0 and self.pops and not self.pops[-1].binary:
            raise NetxImportError(f"{loc}: a graded layer with messageBits 0 feeds this layer: "
                                  f"Lava reads its values as spikes (bool); no IR form")

    def _dense(self, i: int, g: h5py.Group, loc: str, recurrent: bool) -> None:
        shape = (int(np.prod(shape_key(g, loc))),)
        n = shape[0]
        complex_ = isinstance(g.get("weight"), h5py.Group) and "imag" in g["weight"]
        if complex_:
            w_real = ints_key(g["weight"], "real", f"{loc}/weight")
            w_imag = ints_key(g["weight"], "imag", f"{loc}/weight")
            if w_real.ndim == 1:
                w_real, w_imag = w_real.reshape(n, -1), w_imag.reshape(n, -1)
            n_in = w_real.shape[1]
        else:
            weight = ints_key(g, "weight", loc)
            if weight.ndim == 1:
                weight = weight.reshape(n, -1)
            if weight.ndim != 2:
                raise NetxImportError(f"{loc}/weight: shape {list(weight.shape)}; a dense weight is "
                                      f"(out, in) or 1-D")
            n_in = weight.shape[1]
        src, src_shape = self._source(loc, conv=False, n_in=n_in)
        if self.pops and len(src_shape) > 1 and not self.flatten_next:
            raise NetxImportError(f"{loc}: a dense layer after a layer of shape {src_shape} without "
                                  f"a flatten layer: netx connects the ports without flattening "
                                  f"and Lava refuses the shapes")
        if int(np.prod(src_shape)) != n_in:
            raise NetxImportError(f"{loc}/weight: {n_in} inputs, but the previous layer has "
                                  f"{int(np.prod(src_shape))} neurons")
        self.flatten_next = False
        self._check_conv_input(loc)
        name = self._name(i)
        base = f"layer{i}"
        if "neuron" in g:
            neuron_group: Any = g["neuron"]
        else:
            neuron_group = None
        bias = ints_key(g, "bias", loc) if "bias" in g else None
        if complex_:
            neuron, bits = self._neuron(neuron_group, f"{loc}/neuron", shape, bias=None,
                                        complex_layer=True)
            projs = []
            for part, w, port in (("real", w_real, "a_real_in"), ("imag", w_imag, "a_imag_in")):
                dw = self._dense_weights(w, f"{loc}/weight/{part}")
                projs.append(self._make(Projection, loc, name=f"{base}.{part}", source=src,
                                        target=name, kind="dense", weight=dw.effective,
                                        weight_exp=dw.weight_exp, port=port))
            if bias is not None:
                raise NetxImportError(f"{loc}/bias: netx builds a complex dense layer's neuron "
                                      f"without a bias")
            pop = self._population(i, shape, neuron, bits, loc)
            self._add(pop, projs, bits)
            return
        neuron, bits = self._neuron(neuron_group, f"{loc}/neuron", shape, bias=bias)
        if recurrent:
            w_rec = ints_key(g, "weight_rec", loc)
            if w_rec.ndim == 1:
                w_rec = w_rec.reshape(n, -1)
            if w_rec.shape != (n, n):
                raise NetxImportError(f"{loc}/weight_rec: shape {list(w_rec.shape)}, expected "
                                      f"({n}, {n})")
        delays = self._delays(g, loc, (n, n_in)) if "delay" in g else None
        if recurrent:
            joint = np.hstack([weight, w_rec])
            dw = self._dense_weights(joint, f"{loc}/weight + weight_rec",
                                     apply_exponent=delays is None)
            parts = [(f"{base}.synapse", src, dw.effective[:, :n_in], delays),
                     (f"{base}.synapse_rec", name, dw.effective[:, n_in:],
                      None if delays is None else self._rec_delays(delays, n, loc))]
            if delays is not None and dw.weight_exp:
                self.notes.append(f"{loc}: netx passes no weight_exp to a recurrent layer's "
                                  f"delayed synapses, so they act 2^{-dw.weight_exp} times the "
                                  f"file's weights (as in Lava)")
        else:
            dw = self._dense_weights(weight, f"{loc}/weight")
            parts = [(f"{base}.synapse", src, dw.effective, delays)]
        projs = []
        for pname, psrc, w, d in parts:
            if d is None:
                projs.append(self._make(Projection, loc, name=pname, source=psrc, target=name,
                                        kind="dense", weight=w, weight_exp=dw.weight_exp))
                continue
            for value in np.unique(d):  # one projection per distinct delay (exact)
                wd = np.where(d == value, w, 0)
                if not np.any(wd):  # only zero weights carry this delay: nothing to deliver
                    continue
                projs.append(self._make(Projection, loc, name=f"{pname}.d{int(value)}",
                                        source=psrc, target=name, kind="dense", weight=wd,
                                        weight_exp=dw.weight_exp, delay=int(value)))
        if not projs:  # every weight is zero (netx would have failed on it already)
            raise NetxImportError(f"{loc}/weight: all zero")
        pop = self._population(i, shape, neuron, bits, loc)
        self._add(pop, projs, bits)

    def _dense_weights(self, w: np.ndarray, loc: str, apply_exponent: bool = True) -> Any:
        try:
            dw = netx_dense_weights(w, apply_exponent=apply_exponent)
        except NetxImportError as exc:
            raise NetxImportError(f"{loc}: {exc}") from exc
        if dw.lossy and not self.own:
            self.notes.append(f"{loc}: {dw.lossy}")
        return dw

    def _delays(self, g: h5py.Group, loc: str, wshape: tuple[int, int]) -> np.ndarray:
        d = ints_key(g, "delay", loc)
        if d.size and d.min() < 0:
            raise NetxImportError(f"{loc}/delay: negative delay {int(d.min())}")
        if d.size and d.max() > NETX_MAX_DELAY:
            self.notes.append(f"{loc}/delay: delays up to {int(d.max())} clamped to "
                              f"{NETX_MAX_DELAY}, as netx does (with a warning)")
            d = np.clip(d, 0, NETX_MAX_DELAY)
        out, n_in = wshape
        if d.ndim == 0:  # a scalar: every synapse
            return np.full(wshape, int(d), np.int64)
        if d.ndim == 1:
            if d.size == out:  # axonal delays (netx checks this first)
                return np.repeat(d.reshape(-1, 1), n_in, axis=1)
            if d.size == n_in:  # input delays
                return np.repeat(d.reshape(1, -1), out, axis=0)
            raise NetxImportError(f"{loc}/delay: {d.size} delays fit neither the {out} outputs nor "
                                  f"the {n_in} inputs (netx: 'Found invalid delay of shape')")
        if d.shape != wshape:
            raise NetxImportError(f"{loc}/delay: shape {list(d.shape)} does not match the weight "
                                  f"{list(wshape)}")
        return d

    @staticmethod
    def _rec_delays(delays: np.ndarray, n: int, loc: str) -> np.ndarray:
        if delays.shape != (n, n):
            raise NetxImportError(f"{loc}/delay: netx gives the recurrent synapse the input "
                                  f"synapse's delays {list(delays.shape)}, which do not fit its "
                                  f"({n}, {n}) weights (Lava fails)")
        return delays

    # -- neurons ------------------------------------------------------------------------------

    def _neuron(self, n: Any, loc: str, shape: tuple[int, ...], *, bias: np.ndarray | None,
                input_layer: bool = False, complex_layer: bool = False) -> tuple[Any, int]:
        """(neuron model, output message bits) of a neuron group (None: netx's default)."""
        values: dict[str, Any]
        if n is None:
            ntype = "CUBA"
            values = dict(NETX_DEFAULT_READOUT)
        else:
            ntype = text(n["type"][()]) if "type" in n else "?"
            values = {}
        bits_key = None if n is None or "messageBits" not in n else int_key(n, "messageBits", loc)
        if bits_key is not None and not self.own:
            self.notes.append(f"{loc}/messageBits = {bits_key}: read as the width of the layer's "
                              f"messages; lava-dl 0.6's netx cannot run a file with this key (its "
                              f"NetDict passes a NetDict, not the number, to Lava, whose compiler "
                              f"then fails)")

        def get(key: str) -> int:
            return int(values[key]) if n is None else int_key(n, key, loc)

        is_rf = "RF" in ntype
        if complex_layer and not is_rf:
            raise NetxImportError(f"{loc}: a complex dense layer (weight/real, weight/imag) with a "
                                  f"{ntype} neuron: netx connects a_real_in, which only RF neurons "
                                  f"have (AttributeError)")
        if is_rf and not complex_layer:
            raise NetxImportError(f"{loc}: an {ntype} neuron in a layer without complex weights: "
                                  f"netx connects its a_in, which RF neurons do not have "
                                  f"(AttributeError)")
        if ntype in ("CUBA", "LOIHI"):
            mant = self._bias(bias, shape, loc)
            neuron = self._model(CubaLif, loc, du=get("iDecay") - 1, dv=get("vDecay"),
                                 vth=get("vThMant"), bias_mant=mant, bias_exp=NETX_BIAS_EXP)
            return neuron, (bits_key or 0)
        if ntype == "SDNN":
            bits = NETX_SDNN_MESSAGE_BITS if bits_key is None else bits_key
            if bits < 1:
                raise NetxImportError(f"{loc}/messageBits: 0 on an SDNN layer: netx declares "
                                      f"binary ports for its graded messages; no IR form")
            spike_exp = self.options["spike_exp"]
            if input_layer:
                if bias is not None:
                    raise NetxImportError(f"{loc}: netx builds an SDNN input (Delta) neuron without a "
                                          f"bias")
                return self._model(Delta, loc, vth=get("vThMant"), spike_exp=spike_exp), bits
            if "sigma_output" in n:
                if bias is not None:
                    raise NetxImportError(f"{loc}: an SDNN sigma_output layer with a bias: Lava's "
                                          f"Sigma takes no bias (TypeError)")
                return self._model(Sigma, loc), bits
            mant = self._bias(bias, shape, loc)
            return self._model(SigmaDelta, loc, vth=get("vThMant"), bias_mant=mant,
                               spike_exp=spike_exp), bits
        if is_rf:
            for key in ("sinDecay", "cosDecay"):
                if key not in n:
                    raise NetxImportError(f"{loc}/{key}: missing (an RF neuron's decay)")
            s, c = netx_rf_decays(float_key(n, "sinDecay", loc), float_key(n, "cosDecay", loc))
            cls = ResonateFire if "PHASE" in ntype else ResonateFireIz
            file_vals = (float_key(n, "sinDecay", loc), float_key(n, "cosDecay", loc))
            if (s, c) != tuple(int(v) for v in file_vals):
                self.notes.append(f"{loc}: netx's float round trip turns sinDecay, cosDecay "
                                  f"{[int(v) for v in file_vals]} into {[s, c]} (as in Lava)")
            vth = get("vThMant")
            return self._model(cls, loc, sin_decay=s, cos_decay=c, vth=vth), 0
        raise NetxImportError(f"{loc}/type: neuron type {ntype!r}: netx builds no neuron for it "
                              f"(get_neuron_params returns None); netx knows CUBA, LOIHI, SDNN, "
                              f"RF, RF_IZ and RF_PHASE")

    def _bias(self, bias: np.ndarray | None, shape: tuple[int, ...], loc: str) -> np.ndarray:
        """netx's bias (bias_exp 6; scalar, per channel or per neuron in W,H,C order) as the
        IR's mantissa (scalar, (C,) or (C, H, W))."""
        if bias is None:
            return np.zeros((), np.int64)
        lo, hi = NETX_BIAS_RANGE
        if bias.size and (bias.min() < lo or bias.max() > hi):
            raise NetxImportError(f"{loc.rsplit('/', 1)[0]}/bias: values beyond int16; Lava stores "
                                  f"bias_mant as int16 and would wrap them")
        if len(shape) == 1:
            flat = bias.reshape(-1)
            return flat.reshape(()) if flat.size == 1 else flat.reshape(shape)
        c, h, w = shape
        if bias.size == c and bias.ndim <= 1:
            return bias.reshape(c)
        if bias.shape == (w, h, c):  # neuron-wise in netx's W,H,C order
            return bias.transpose(2, 1, 0).copy()
        raise NetxImportError(f"{loc.rsplit('/', 1)[0]}/bias: shape {list(bias.shape)} could "
                              f"not be broadcast to neuron of shape {[w, h, c]} (netx's error)")

    # -- nodes ----------------------------------------------------------------------------------

    def _name(self, i: int) -> str:
        meta = self.own_layers.get(i)
        return meta["population"] if meta else f"layer{i}"

    def _model(self, cls: Any, loc: str, **kw: Any) -> Any:
        try:
            return cls(**kw)
        except IRError as exc:
            raise NetxImportError(f"{loc}: {exc}") from exc

    def _make(self, cls: Any, loc: str, **kw: Any) -> Any:
        try:
            return cls(**kw)
        except IRError as exc:
            raise NetxImportError(f"{loc}: {exc}") from exc

    def _population(self, i: int, shape: tuple[int, ...], neuron: Any, bits: int,
                    loc: str) -> Population:
        meta = self.own_layers.get(i)
        name = self._name(i)
        role = "spiking"
        if meta:
            role = meta["role"]
            if isinstance(neuron, CubaLif):  # the IR's threshold and bias exponent
                neuron = self._model(CubaLif, loc, du=neuron.du, dv=neuron.dv, vth=int(meta["vth"]),
                                     **_own_bias(neuron, shape, meta, loc))
            scale = float(meta["scale"])
        else:
            vth = getattr(neuron, "vth", 0)
            scale = float(max(vth, 1)) if isinstance(neuron, CubaLif) else 1.0
        return self._make(Population, loc, name=name, shape=shape, neuron=neuron, role=role,
                          scale=scale, origin=meta["origin"] if meta else f"netx {loc}",
                          message_bits=bits if bits > 0 else None)

    def _add(self, pop: Population, projs: list[Projection], bits: int) -> None:
        self.pops.append(pop)
        self.projs.extend(projs)
        self.count += 1
        # netx: the next layer's synapse reads this layer's messages with its output bits
        self.message_bits = bits

    def network(self, time_steps: int | None) -> Network:
        if self.inp is None or not self.pops:
            raise NetxImportError(f"{self.where}: no input or no synapse layers")
        own = self.own
        if own is not None:
            metadata = dict(own.get("metadata", {}))
            steps = own["time_steps"] if "time_steps" in own else metadata.pop("time_steps", None)
            time_steps = steps if time_steps is None else time_steps
            schedule, limits = own.get("schedule", "sample"), own.get("limits", "hardware")
        else:
            metadata = {"source": "netx", "file": self.where, "netx_options": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in self.options.items()}}
            if self.notes:
                metadata["netx_notes"] = list(self.notes)
            schedule, limits = "free", "lava"
        pops, projs = list(self.pops), self.projs
        if own is not None:
            projs = self._own_projections(projs)
        last = pops[-1]
        if own is None and isinstance(last.neuron, CubaLif) and \
                last.neuron.vth >= self.spec.readout_vth:
            # never fires (netx's neuron-less dense layer): its voltage is the output
            pops[-1] = dataclasses.replace(last, role="readout", scale=1.0)
        if own is not None and schedule == "sample" and pops[-1].role != "readout":
            pops, projs = _with_count_readout(pops, projs, self.inp, self.spec)
        try:
            network = Network(self.inp, tuple(pops), tuple(projs), target=self.spec,
                              metadata=metadata, time_steps=time_steps, schedule=schedule,
                              limits=limits)
        except IRError as exc:
            hint = ("; the file says sakd wrote it, so it was probably edited (pass "
                    "trust_metadata=False to read it as netx does)" if own is not None else "")
            raise NetxImportError(f"{self.where}: the network is invalid: {exc}{hint}") from exc
        if own is not None and own.get("digest") and own["digest"] != network.digest():
            raise NetxImportError(f"{self.where}: the network does not match the digest sakd "
                                  f"recorded when it wrote the file: it was damaged or edited (a "
                                  f"layer, weight or bias changed); re-export it, or pass "
                                  f"trust_metadata=False")
        return network


    def _own_projections(self, projs: list[Projection]) -> list[Projection]:
        """Projections of a file sakd wrote, under their IR names and weight exponents."""
        names: dict[str, dict[str, Any]] = {}
        for i, meta in self.own_layers.items():
            if "projections" in meta:
                names.update(meta["projections"])
            elif "projection" in meta:  # sakd netx format 1: one projection per layer
                names[f"layer{i}.synapse"] = {"name": meta["projection"], "weight_exp": 0}
        out = []
        for proj in projs:
            info = names.get(proj.name)
            if info is None:
                raise NetxImportError(f"{self.where}: projection {proj.name!r} is not in the sakd "
                                      f"metadata: the file was edited; pass trust_metadata=False")
            changes: dict[str, Any] = {"name": info["name"]}
            if "weight_exp" in info and proj.kind == "dense":
                e = int(info["weight_exp"])
                shift = proj.weight_exp - e  # W_eff · 2^exp_eff == W_ir · 2^e
                w = proj.weight.astype(np.int64)
                if shift < 0 and np.any(w % (1 << -shift)):
                    raise NetxImportError(f"{self.where}: projection {info['name']!r}: the weights "
                                          f"do not match weight_exp {e} of the sakd metadata")
                changes.update(weight=w << shift if shift >= 0 else w >> -shift, weight_exp=e)
            out.append(self._make(Projection, self.where, **{**_fields(proj), **changes}))
        return out


def _fields(proj: Projection) -> dict[str, Any]:
    return {f.name: getattr(proj, f.name) for f in dataclasses.fields(proj)}


def _own_bias(neuron: CubaLif, shape: tuple[int, ...], meta: dict[str, Any],
              loc: str) -> dict[str, Any]:
    """The IR's (bias_mant, bias_exp) of a population sakd wrote (its metadata keeps them)."""
    exp = int(meta["bias_exp"])
    bias = neuron.bias_mant.astype(np.int64)
    shift = exp - NETX_BIAS_EXP
    mant = bias >> shift if shift >= 0 else bias << -shift
    if shift >= 0 and np.any((mant << shift) != bias):
        raise NetxImportError(f"{loc}/bias: does not match bias_exp {exp} of the sakd metadata")
    target_shape = tuple(meta["bias_shape"])
    flat = mant.reshape(-1)
    if target_shape == ():
        return {"bias_mant": flat[0] if flat.size else np.int64(0), "bias_exp": exp}
    per = np.broadcast_to(flat if flat.size > 1 else (flat[0] if flat.size else 0),
                          (target_shape[0],))
    if len(target_shape) == 1:
        return {"bias_mant": per.copy(), "bias_exp": exp}
    per = per.reshape((-1,) + (1,) * (len(target_shape) - 1))
    return {"bias_mant": np.broadcast_to(per, target_shape).copy(), "bias_exp": exp}


def _with_count_readout(pops: list[Population], projs: list[Projection], inp: Input,
                        spec: TargetSpec) -> tuple[list[Population], list[Projection]]:
    """A sample network's spiking last layer gets a spike-count readout (sakd files of 0.1)."""
    last = pops[-1]
    n = last.size
    name = "readout"
    taken = {p.name for p in pops} | {p.name for p in projs} | {inp.name}
    while name in taken:
        name += "_"
    pops = [*pops, Population(name, (n,), CubaLif.readout(spec), role="readout", scale=2.0,
                              origin=f"spike count of '{last.name}'")]
    projs = [*projs, Projection(f"{name}.count", last.name, name, "dense",
                                np.eye(n, dtype=np.int64) * 2)]
    return pops, projs
