"""Run an IR network (``network.h5``) or a netx HDF5 file on Intel Lava's bit-accurate CPU models.

This is the reference the simulator (``sakd.hardware.simulator``) is proven against. It runs in
the Lava environment (Python 3.10, ``.venv-lava``, built by ``scripts/make_lava_env.sh``) and is
driven from the main environment by ``sakd.hardware.lava_bridge``::

    python -m sakd.hardware.lava_runner --network network.h5 --inputs x.npy --time-steps T \
        --out result.npz [--traces]
    python -m sakd.hardware.lava_runner --netx net.h5 --input-message-bits B --inputs x.npy \
        --time-steps T --out result.npz
    python -m sakd.hardware.lava_runner --netx-reference jobs.json --out-dir DIR

The third mode (``run_netx_reference``, driven by ``lava_bridge.run_netx_reference``) runs a
netx file free-running as a lava-dl user would build it and records every layer's messages and
every neuron state Var after every step; see that function.

Run it from a directory other than the repository root (the repository's own ``sakd/`` folder
would shadow the Lava environment's ``sakd`` package, which maps only ``sakd.hardware``).

Imports numpy, h5py, lava (with scipy.sparse, a Lava dependency that ``Sparse`` weights need),
lava.lib.dl.netx and ``sakd.hardware``. The Lava imports are inside functions, so the pure helpers
(``conv2d_matrix``) import anywhere.

How an IR network becomes Lava processes (docs/ir.md, shared/spec/fixed-point.md):

- input: a ``RingBuffer`` source holding every sample's input steps (int32; graded values or 0/1).
- population: the process its neuron model builds (``NeuronModel.lava_process``; CUBA-LIF: a
  ``LIFReset`` of shape ``(N,)`` — the population flattened in C,H,W order, so no layout
  transposition is needed anywhere — with the exact integer ``du``, ``dv``, ``vth``,
  ``bias_mant`` (broadcast to the full shape, flattened) and ``bias_exp``; a readout gets
  ``vth = target.readout_vth``, 2^17: ``v > 2^23`` is impossible under the 24-bit clip, so it
  never fires). Reset interval T, offset ``(1 + latency) mod T``: the IR's staggered reset,
  which is part of its semantics even for one sample.
- dense projection: ``Dense`` (``DelayDense`` with a constant delay matrix when delay > 0).
- conv2d projection: expanded to a ``Sparse`` (``DelaySparse``) matrix in PyTorch
  cross-correlation order, C,H,W flattening on both sides. Lava's ``Conv`` is not used: it takes
  (W,H,C) layouts and true convolution, ignores weight_exp, and has no delayed form; the Sparse
  expansion is exact (fixed-point.md §1.5). The one difference from the IR's conv semantics: the
  IR wraps a conv's per-step sum to 24 bits, Sparse does not; the sum cannot reach 2^23 unless a
  neuron has more than 32768 active synapses of weight 256 in one step.
- upsample projection: its synapse list (``sakd.hardware.ir.upsample_synapses``: one synapse per
  target neuron and channel of its group) as a ``Sparse`` (``DelaySparse``) matrix, which
  applies ``weight_exp`` as ``Dense`` does (fixed-point.md §1.2) and does not wrap: exactly the
  IR's upsample semantics.
- every synapse gets ``sign_mode=MIXED``, ``num_weight_bits=8`` and the projection's
  ``weight_exp``: Lava then keeps every even weight in [-256, 254] unchanged (letting Lava derive
  the sign mode would clip -256 to -255 in an all-non-positive matrix); ``num_message_bits`` is
  the input's ``bits`` for a projection out of a graded input, else 0 (binary spikes).
- fan-in: every projection's ``a_out`` connects to its target's ``a_in`` (Lava sums them).

Samples: ONE network build for a chunk of samples (``--chunk``, default 256). Sample k occupies
``S = T * ceil((T + L) / T)`` steps starting at global step ``k*S + 1``: the input's T steps,
then zeros. S is a multiple of T so that every LIFReset phase lines up with the sample's local
step. After a sample's ``T + L`` steps the runner reads the readout's ``v`` and the spike sinks,
runs the rest of S (if any), then zeroes every piece of state (LIF ``u``, ``v``; every synapse's
``a_buff`` / Conv's ``a_buf``) with ``Var.set``: the next sample starts exactly as a freshly built
network would. This is bit-identical to one build per sample (the tests check it against the
simulator over several samples) and avoids Lava's ~1 s compile and process start per sample.

Outputs (npz, mirroring the simulator's ``SimulationResult``):

- ``spikes_{i}``: uint8 [T+L, B, *shape] of population i (``meta.names[i]``), sakd layout;
- ``readout_v``: int64 [B, *shape], the readout's (IR) or last layer's (netx) v at step T+L;
- with ``--traces``: ``u_{i}``, ``v_{i}``: int64 [T+L, B, *shape] (values after the step);
- ``meta``: JSON text (names, shapes, readout, T, L, steps per sample, timings, samples/s).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sakd.hardware.errors import SakdError


class LavaInputError(SakdError):
    """Inputs or options the Lava runner cannot use."""


# ---------------------------------------------------------------------------------------------
# pure helpers (numpy only)
# ---------------------------------------------------------------------------------------------


def conv2d_matrix(
    input_shape: tuple[int, int, int],
    weight: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """A PyTorch conv2d (cross-correlation) as a sparse matrix in COO form.

    Returns ``rows, cols, values, (n_out, n_in)`` with ``out.flatten() = M @ in.flatten()`` for an
    input (C, H, W) and output (Cout, Ho, Wo), both flattened in C,H,W order. Entries whose weight
    is zero, and taps that fall into the zero padding, are left out; each (row, col) pair occurs
    at most once.
    """
    c_in, h, w = (int(d) for d in input_shape)
    weight = np.asarray(weight)
    c_out, cin_g, kh, kw = weight.shape
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cout_g = c_out // groups
    co, ci, ky, kx, oy, ox = np.meshgrid(
        np.arange(c_out), np.arange(cin_g), np.arange(kh), np.arange(kw),
        np.arange(ho), np.arange(wo), indexing="ij", sparse=True,
    )
    iy = oy * sh - ph + ky * dh
    ix = ox * sw - pw + kx * dw
    cin = (co // cout_g) * cin_g + ci
    shape6 = (c_out, cin_g, kh, kw, ho, wo)
    vals = np.broadcast_to(weight[:, :, :, :, None, None], shape6)
    keep = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w) & (vals != 0)
    keep = np.broadcast_to(keep, shape6)
    rows = np.broadcast_to((co * ho + oy) * wo + ox, shape6)[keep]
    cols = np.broadcast_to((cin * h + iy) * w + ix, shape6)[keep]
    return (rows.astype(np.int64), cols.astype(np.int64), vals[keep].astype(np.int64),
            (c_out * ho * wo, c_in * h * w))


def steps_per_sample(time_steps: int, latency: int) -> int:
    """S: the smallest multiple of T that holds the T + L steps of one sample."""
    return time_steps * math.ceil((time_steps + latency) / time_steps)


def integer_inputs(inputs: Any) -> np.ndarray:
    """The encoded inputs (x_int) as int64; floats only when every value is a finite integer."""
    x = np.asarray(inputs)
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise LavaInputError("inputs must be integers (the encoded x_int), got non-integer floats")
    elif x.dtype.kind not in "iub":
        raise LavaInputError(f"inputs must be an integer array, got dtype {x.dtype}")
    return x.astype(np.int64)


def sample_inputs(inputs: np.ndarray, input_shape: tuple[int, ...], time_steps: int) -> np.ndarray:
    """[T, B, *shape] int64 from a static [B, *shape] or a sequence [T, B, *shape] input."""
    x = integer_inputs(inputs)
    nd = len(input_shape)
    if x.ndim == nd + 1 and tuple(x.shape[1:]) == tuple(input_shape):
        return np.broadcast_to(x[None], (time_steps,) + x.shape).copy()
    if x.ndim == nd + 2 and tuple(x.shape[2:]) == tuple(input_shape):
        if x.shape[0] != time_steps:
            raise LavaInputError(f"a sequence input has {x.shape[0]} steps, expected T = {time_steps}")
        return x
    raise LavaInputError(
        f"inputs of shape {x.shape} fit neither a static [B, *{tuple(input_shape)}] nor a "
        f"sequence [T={time_steps}, B, *{tuple(input_shape)}] input"
    )


# ---------------------------------------------------------------------------------------------
# Lava imports
# ---------------------------------------------------------------------------------------------


def _import_netx_hdf5() -> Any:
    """``lava.lib.dl.netx.hdf5``: lava-dl's netx, with the torch it needs (the Lava environment
    installs both: scripts/make_lava_env.sh). An environment without it gets an ImportError that
    says how to rebuild it."""
    try:
        from lava.lib.dl.netx import hdf5
    except ImportError as exc:
        raise ImportError(f"lava-dl's netx cannot be imported ({exc}); rebuild the Lava "
                          f"environment with `make lava-env`") from exc
    return hdf5


# ---------------------------------------------------------------------------------------------
# the run loop shared by both modes
# ---------------------------------------------------------------------------------------------


class _Recorded:
    """One recorded population: its name, sakd shape, the Lava process whose u/v are traced, the
    OutPort feeding its sink, and a function from Lava data [..., steps] to sakd [steps, *shape]."""

    def __init__(self, name: str, shape: tuple[int, ...], neuron: Any, out_port: Any,
                 to_sakd: Callable[[np.ndarray], np.ndarray]) -> None:
        self.name, self.neuron, self.out_port, self.to_sakd = name, neuron, out_port, to_sakd
        self.shape = tuple(int(d) for d in shape)
        self.sink: Any = None
        self.monitors: dict[str, Any] = {}


def _zero(var: Any) -> None:
    var.set(np.zeros(var.shape))


def _run_chunk(
    source: Any,
    recorded: list[_Recorded],
    readout: _Recorded,
    state_vars: list[Any],
    n_samples: int,
    time_steps: int,
    latency: int,
    traces: bool,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, dict[str, np.ndarray]], dict[str, float]]:
    """Connect sinks (and monitors), compile, run ``n_samples`` samples, read everything back."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.monitor.process import Monitor

    T, L = time_steps, latency
    S = steps_per_sample(T, L)
    n_rec = T + L
    for rec in recorded:
        rec.sink = Sink(shape=tuple(rec.out_port.shape), buffer=S)
        rec.out_port.connect(rec.sink.a_in)
        if traces:
            for var in ("u", "v"):
                mon = Monitor()
                mon.probe(getattr(rec.neuron, var), n_samples * S)
                rec.monitors[var] = mon

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    source.create_runtime(run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    timings["compile_s"] = time.perf_counter() - t0

    spikes = {rec.name: np.zeros((n_rec, n_samples) + rec.shape, np.uint8) for rec in recorded}
    readout_v = np.zeros((n_samples,) + readout.shape, np.int64)
    t0 = time.perf_counter()
    try:
        for k in range(n_samples):
            source.run(condition=RunSteps(num_steps=n_rec))
            readout_v[k] = readout.to_sakd(readout.neuron.v.get()[..., None])[0]
            last = k == n_samples - 1
            if n_rec < S and not last:
                source.run(condition=RunSteps(num_steps=S - n_rec))
            for rec in recorded:
                data = rec.sink.data.get()[..., :n_rec]
                spikes[rec.name][:, k] = rec.to_sakd(data)
            if not last:
                for var in state_vars:
                    _zero(var)
        timings["run_s"] = time.perf_counter() - t0
        trace_data: dict[str, dict[str, np.ndarray]] = {}
        if traces:
            t1 = time.perf_counter()
            for var in ("u", "v"):
                trace_data[var] = {}
                for rec in recorded:
                    mon = rec.monitors[var]
                    raw = next(iter(next(iter(mon.get_data().values())).values()))  # [steps, ...]
                    raw = np.moveaxis(np.asarray(raw), 0, -1)  # [..., n_samples*S] (Lava layout)
                    out = np.zeros((n_rec, n_samples) + rec.shape, np.int64)
                    for k in range(n_samples):
                        out[:, k] = rec.to_sakd(raw[..., k * S:k * S + n_rec])
                    trace_data[var][rec.name] = out
            timings["traces_s"] = time.perf_counter() - t1
    finally:
        source.stop()
    return spikes, readout_v, trace_data, timings


def _chunked_run(build: Callable[[np.ndarray], tuple], x_seq: np.ndarray, time_steps: int,
                 latency: int, traces: bool, chunk: int) -> tuple[list[_Recorded], dict, dict]:
    """Build and run the network once per chunk of samples; concatenate along the batch axis."""
    B = x_seq.shape[1]
    parts: list[tuple] = []
    timings: dict[str, float] = {"build_s": 0.0, "compile_s": 0.0, "run_s": 0.0, "traces_s": 0.0}
    recorded: list[_Recorded] = []
    for start in range(0, B, chunk):
        xs = x_seq[:, start:start + chunk]
        t0 = time.perf_counter()
        source, recorded, readout, state_vars = build(xs)
        timings["build_s"] += time.perf_counter() - t0
        spikes, rv, tr, tm = _run_chunk(source, recorded, readout, state_vars, xs.shape[1],
                                        time_steps, latency, traces)
        for key, value in tm.items():
            timings[key] = timings.get(key, 0.0) + value
        parts.append((spikes, rv, tr))
    names = [rec.name for rec in recorded]
    out = {
        "spikes": {n: np.concatenate([p[0][n] for p in parts], axis=1) for n in names},
        "readout_v": np.concatenate([p[1] for p in parts], axis=0),
        "traces": ({var: {n: np.concatenate([p[2][var][n] for p in parts], axis=1) for n in names}
                    for var in ("u", "v")} if traces else {}),
    }
    return recorded, out, timings


def _source_data(x_seq: np.ndarray, S: int, to_lava: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """RingBuffer data [..., n*S] (int32): sample k's T steps at k*S .. k*S+T-1, zeros after."""
    T, n = x_seq.shape[:2]
    first = to_lava(x_seq[0, 0])
    data = np.zeros(first.shape + (n * S,), np.int32)
    for k in range(n):
        for t in range(T):
            data[..., k * S + t] = to_lava(x_seq[t, k])
    return data


# ---------------------------------------------------------------------------------------------
# IR networks
# ---------------------------------------------------------------------------------------------


def run_ir(network_path: str | Path, inputs: np.ndarray, time_steps: int, *, traces: bool = False,
           chunk: int = 256) -> dict[str, Any]:
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.sparse.process import DelaySparse, Sparse
    from lava.utils.weightutils import SignMode
    from scipy.sparse import csr_matrix

    from sakd.hardware.ir import upsample_synapses
    from sakd.hardware.netfile import read_network

    net = read_network(network_path)
    if net.schedule != "sample" or net.limits != "hardware" or any(
            p.neuron.model != "cuba_lif" for p in net.populations):
        raise LavaInputError(f"{network_path}: run_ir runs sakd's own sample networks of CUBA-LIF "
                             f"populations under hardware limits (even weights in [-256, 254], "
                             f"which num_weight_bits 8 keeps exact); this one is a "
                             f"{net.schedule} network under {net.limits} limits: run the netx file "
                             f"it came from with run_netx_reference")
    spec = net.target_spec
    T = int(time_steps)
    if T < 1:
        raise LavaInputError(f"time steps must be >= 1, got {T}")
    L = net.latency
    lat = net.latencies
    S = steps_per_sample(T, L)
    x_seq = sample_inputs(inputs, net.input.shape, T)
    lo, hi = net.input.value_range
    if x_seq.size and (x_seq.min() < lo or x_seq.max() > hi):
        raise LavaInputError(f"inputs hold values outside [{lo}, {hi}], the range of input "
                         f"'{net.input.name}' ({net.input.encoding}, {net.input.bits} bits)")
    graded = net.input.encoding == "graded"
    order = list(net.topological_order())

    def build(xs: np.ndarray) -> tuple:
        source = Source(data=_source_data(xs, S, lambda a: a.reshape(-1)))
        lifs: dict[str, Any] = {}
        recorded: list[_Recorded] = []
        state_vars: list[Any] = []
        for name in order:
            pop = net.population(name)
            n = pop.size
            lif = pop.neuron.lava_process(n, pop.shape, spec, pop.is_readout, T,
                                          (1 + lat[name]) % T)
            lifs[name] = lif
            state_vars += [lif.u, lif.v]
            recorded.append(_Recorded(name, pop.shape, lif, lif.s_out,
                                      lambda d, shp=pop.shape: np.moveaxis(d, -1, 0).reshape((-1,) + shp)))
        for proj in net.projections:
            src_port = source.s_out if proj.source == net.input.name else lifs[proj.source].s_out
            kw = {
                "num_message_bits": int(net.input.bits) if (graded and proj.source == net.input.name) else 0,
                "sign_mode": SignMode.MIXED,
                "num_weight_bits": 8,
                "weight_exp": int(proj.weight_exp),
            }
            d = int(proj.delay)
            if proj.kind == "dense":
                w = np.asarray(proj.weight, np.int32)
                if d == 0:
                    syn = Dense(weights=w, **kw)
                else:
                    syn = DelayDense(weights=w, delays=np.full(w.shape, d, dtype=int), max_delay=d, **kw)
            else:
                if proj.kind == "upsample":  # its synapse list: one per target and channel
                    rows, cols, vals, shape = upsample_synapses(
                        net.source_shape(proj.source), proj.weight, proj.groups)
                else:
                    rows, cols, vals, shape = conv2d_matrix(
                        net.source_shape(proj.source), proj.weight, proj.stride, proj.padding,
                        proj.dilation, proj.groups)
                w = csr_matrix((vals.astype(np.int32), (rows, cols)), shape=shape)
                if d == 0:
                    syn = Sparse(weights=w, **kw)
                else:
                    delays = csr_matrix((np.full(rows.shape, d, dtype=int), (rows, cols)), shape=shape)
                    syn = DelaySparse(weights=w, delays=delays, max_delay=d, **kw)
            src_port.connect(syn.s_in)
            syn.a_out.connect(lifs[proj.target].a_in)
            state_vars.append(syn.a_buff)
        readout = next(r for r in recorded if r.name == net.readout.name)
        return source, recorded, readout, state_vars

    return _timed_run(build, x_seq, T, L, S, traces, chunk, mode="ir", path=network_path,
                      readout=lambda recorded: net.readout.name)


# ---------------------------------------------------------------------------------------------
# netx HDF5 files
# ---------------------------------------------------------------------------------------------


def _whc_to_chw(d: np.ndarray) -> np.ndarray:
    """Lava data [W, H, C, steps] or [N, steps] -> [steps, C, H, W] or [steps, N]."""
    d = np.moveaxis(d, -1, 0)
    if d.ndim == 4:
        d = d.transpose(0, 3, 2, 1)
    return d


def run_netx(netx_path: str | Path, inputs: np.ndarray, time_steps: int, *,
             input_message_bits: int = 0, reset_offset: int = 1, traces: bool = False,
             chunk: int = 256) -> dict[str, Any]:
    """Run a netx HDF5 file loaded by ``lava.lib.dl.netx.hdf5.Network`` with
    ``reset_interval=T`` and ``reset_offset`` (default 1: layer k, the (k+1)-th synapse layer,
    resets at step ``(k + 2) mod T``, the IR's staggered reset). Inputs are in sakd layout
    (C, H, W) or (N,); layer spikes come back in the same layout, named ``layer{i}`` after their
    ``/layer/{i}`` group."""
    import h5py
    from lava.proc.io.source import RingBuffer as Source

    hdf5 = _import_netx_hdf5()
    T = int(time_steps)

    # which /layer/{i} groups become netx layers (the same walk as netx's _create)
    group_ids: list[int] = []
    with h5py.File(netx_path, "r") as f:
        layers = f["layer"]
        for i in range(len(layers)):
            kind = layers[str(i)]["type"][()]
            kind = (kind[0] if np.ndim(kind) else kind)
            kind = kind.decode("ascii") if isinstance(kind, bytes) else str(kind)
            if kind in ("conv", "dense", "dense_rec") or (kind == "input" and "neuron" in layers[str(i)]):
                group_ids.append(i)

    probe = hdf5.Network(net_config=str(netx_path), input_message_bits=input_message_bits,
                         reset_interval=T, reset_offset=reset_offset)
    in_shape_lava = tuple(probe.inp.shape)
    L = len(probe.layers)
    S = steps_per_sample(T, L)
    in_shape = in_shape_lava[::-1] if len(in_shape_lava) == 3 else in_shape_lava
    x_seq = sample_inputs(inputs, in_shape, T)
    to_lava = (lambda a: a.transpose(2, 1, 0)) if len(in_shape) == 3 else (lambda a: a)
    first = [probe]

    def build(xs: np.ndarray) -> tuple:
        net = first.pop() if first else hdf5.Network(
            net_config=str(netx_path), input_message_bits=input_message_bits,
            reset_interval=T, reset_offset=reset_offset)
        source = Source(data=_source_data(xs, S, to_lava))
        source.s_out.connect(net.inp)
        recorded: list[_Recorded] = []
        state_vars: list[Any] = []
        for gid, layer in zip(group_ids, net.layers):
            shape_lava = tuple(layer.out.shape)
            shape = shape_lava[::-1] if len(shape_lava) == 3 else shape_lava
            recorded.append(_Recorded(f"layer{gid}", shape, layer.neuron, layer.out, _whc_to_chw))
            state_vars += [layer.neuron.u, layer.neuron.v]
            for attr in ("synapse", "synapse_rec"):
                syn = getattr(layer, attr, None)
                if syn is not None:
                    state_vars.append(syn.a_buff if hasattr(syn, "a_buff") else syn.a_buf)
        return source, recorded, recorded[-1], state_vars

    return _timed_run(build, x_seq, T, L, S, traces, chunk, mode="netx", path=netx_path,
                      readout=lambda recorded: recorded[-1].name,
                      input_message_bits=input_message_bits, reset_offset=reset_offset)


def _timed_run(build: Callable, x_seq: np.ndarray, T: int, L: int, S: int, traces: bool,
               chunk: int, *, mode: str, path: Any, readout: Callable[[list], str],
               **extra: Any) -> dict[str, Any]:
    """Run every chunk (``_chunked_run``) and describe the run: recorded names and shapes, the
    readout's name (``readout(recorded)``), T, L, S, the mode's ``extra`` fields and timings."""
    t0 = time.perf_counter()
    recorded, out, timings = _chunked_run(build, x_seq, T, L, traces, chunk)
    total = time.perf_counter() - t0
    meta = {"mode": mode, "network": str(path), "names": [r.name for r in recorded],
            "shapes": [list(r.shape) for r in recorded], "readout": readout(recorded),
            "time_steps": T, "latency": L, "steps_per_sample": S, "samples": int(x_seq.shape[1]),
            **extra, **timings, "total_s": total,
            "samples_per_s": x_seq.shape[1] / total if total > 0 else None}
    return {**out, "meta": meta}


# ---------------------------------------------------------------------------------------------
# free-running reference runs of netx files (every layer, every state variable, every step)
# ---------------------------------------------------------------------------------------------

#: the input modes of :func:`run_netx_reference`
NETX_INPUT_MODES = ("port", "a_in", "bias")
#: what a netx reference run records: every layer, or only the last one
NETX_RECORD = ("all", "output")

#: the state Vars recorded per neuron process (Lava's names), in this order
NETX_RECORDED_STATE: dict[str, tuple[str, ...]] = {
    "LIF": ("u", "v"),
    "LIFReset": ("u", "v"),
    "Delta": ("act", "residue"),
    "SigmaDelta": ("sigma", "act", "residue"),
    "Sigma": ("sigma",),
    "RF": ("real", "imag"),
    "RF_IZ": ("real", "imag"),
}

#: every Var a step of the neuron's fixed-point model writes (all int32 in the models). Between
#: two samples of one build they are zeroed, with the synapse buffers: ``error`` (cum_error
#: only, which netx never enables) and Delta's ``sigma`` (unused by PyDeltaModelFixed) stay 0 in
#: a netx network, but are zeroed anyway so that nothing a step writes can leak.
NETX_NEURON_STATE: dict[str, tuple[str, ...]] = {
    "LIF": ("u", "v"),
    "LIFReset": ("u", "v"),
    "Delta": ("sigma", "act", "residue", "error"),
    "SigmaDelta": ("sigma", "act", "residue", "error"),
    "Sigma": ("sigma",),
    "RF": ("real", "imag"),
    "RF_IZ": ("real", "imag"),
}

#: block attributes holding a synapse process (Dense/Sparse/DelayDense/DelaySparse: ``a_buff``,
#: Conv: ``a_buf``): RecurrentDense has two, ComplexDense a real and an imaginary one
NETX_SYNAPSE_ATTRS = ("synapse", "synapse_rec", "real_synapse", "imag_synapse")

_INT16 = (-(1 << 15), (1 << 15) - 1)
_INT32 = (-(1 << 31), (1 << 31) - 1)


class NetxReferenceFailure(SakdError):
    """netx or Lava refused or failed on a netx file; ``stage`` is ``build`` (netx's
    ``Network(...)``), ``compile`` or ``run``, ``cause`` the exception's type name."""

    def __init__(self, message: str, *, stage: str, cause: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.cause = cause


def netx_group_kinds(netx_path: str | Path) -> list[tuple[int, str, bool]]:
    """``(i, type, has_neuron)`` for every ``/layer/{i}`` group, in file order."""
    import h5py

    out: list[tuple[int, str, bool]] = []
    with h5py.File(netx_path, "r") as f:
        if "layer" not in f:
            raise NetxReferenceFailure(f"{netx_path}: no /layer group (not a netx file)",
                                       stage="build", cause="KeyError")
        layers = f["layer"]
        for i in range(len(layers)):
            if str(i) not in layers:
                raise NetxReferenceFailure(f"{netx_path}: /layer/{i} is missing (netx reads "
                                           f"groups 0..{len(layers) - 1})", stage="build",
                                           cause="KeyError")
            g = layers[str(i)]
            kind = g["type"][()]
            kind = kind[0] if np.ndim(kind) else kind
            kind = kind.decode("ascii") if isinstance(kind, bytes) else str(kind)
            out.append((i, kind, "neuron" in g))
    return out


def netx_layer_groups(netx_path: str | Path) -> list[int]:
    """The ``/layer/{i}`` index of every layer ``Network.layers`` holds, in order: netx (with
    ``skip_layers=0``) makes a layer of every conv, dense and dense_rec group and of an input
    group with a neuron; flatten groups and neuron-less input groups make none."""
    return [i for i, kind, has_neuron in netx_group_kinds(netx_path)
            if kind in ("conv", "dense", "dense_rec", "dense_comp")
            or (kind == "input" and has_neuron)]


def _lava_to_sakd_axes(ndim: int) -> tuple[int, ...]:
    """Lava's layout is sakd's with the axes reversed ((W,H,C) <-> (C,H,W); (N,) unchanged)."""
    return tuple(range(ndim - 1, -1, -1))


def _build_netx(netx_path: str, kwargs: dict[str, Any]) -> tuple[Any, list[str], str]:
    """``netx.hdf5.Network(**kwargs)``; returns it with the warnings and the stdout netx gave
    (``optimize_weight_bits`` prints its clipping warnings). Any exception netx raises becomes a
    :class:`NetxReferenceFailure` naming it."""
    import contextlib
    import io
    import warnings

    hdf5 = _import_netx_hdf5()
    buf = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(buf):
        warnings.simplefilter("always")
        try:
            net = hdf5.Network(net_config=netx_path, **kwargs)
        except Exception as exc:  # netx's own refusal: name it, keep its message
            raise NetxReferenceFailure(
                f"netx refused {netx_path}: {type(exc).__name__}: {exc}", stage="build",
                cause=type(exc).__name__) from exc
    notes = [str(w.message) for w in caught
             if "sequential_modules" not in str(w.message)]
    return net, notes, buf.getvalue()


def _var_params(proc: Any, skip: tuple[str, ...]) -> dict[str, Any]:
    """The scalar (size-1) Vars of a process, by name, from their init values."""
    out: dict[str, Any] = {}
    for var in getattr(proc, "vars", []):
        if var.name in skip:
            continue
        try:
            value = np.asarray(var.init)
        except Exception:  # pragma: no cover - a Var without a plain init
            continue
        if value.size >= 1 and value.dtype.kind in "iubf" and np.all(value == value.flat[0]):
            item = value.flat[0].item()  # a scalar, or the same value for every neuron
            out[var.name] = int(item) if float(item).is_integer() else float(item)
    return out


class _NetxLayerInfo:
    """One netx layer: its name, neuron, recorded and zeroed Vars, shapes and description."""

    def __init__(self, name: str, group: int, layer: Any) -> None:
        self.name, self.group, self.layer = name, group, layer
        self.neuron = layer.neuron
        self.kind = type(self.neuron).__name__
        if self.kind not in NETX_RECORDED_STATE:
            raise NetxReferenceFailure(
                f"/layer/{group}: netx built a {self.kind} neuron, which the reference does "
                f"not know how to record", stage="build", cause="NotImplementedError")
        self.recorded = NETX_RECORDED_STATE[self.kind]
        self.lava_shape = tuple(int(d) for d in self.neuron.s_out.shape)
        self.shape = tuple(self.lava_shape[i] for i in _lava_to_sakd_axes(len(self.lava_shape)))
        self.synapses: list[Any] = [s for s in (getattr(layer, a, None) for a in NETX_SYNAPSE_ATTRS)
                                    if s is not None]
        # Vars zeroed between samples: the neuron's state and every synapse buffer
        self.zeroed: list[Any] = [getattr(self.neuron, v) for v in NETX_NEURON_STATE[self.kind]]
        for syn in self.synapses:
            self.zeroed.append(syn.a_buff if hasattr(syn, "a_buff") else syn.a_buf)

    def describe(self) -> dict[str, Any]:
        neuron = self.neuron
        params = _var_params(neuron, NETX_NEURON_STATE[self.kind])
        for key in ("reset_interval", "reset_offset"):
            try:
                params[key] = int(neuron.proc_params[key])
            except (KeyError, TypeError, AttributeError):
                pass
        synapses = []
        for syn in self.synapses:
            info: dict[str, Any] = {"process": type(syn).__name__}
            for key in ("weight_exp", "num_weight_bits", "max_delay", "sign_mode"):
                try:
                    value = syn.proc_params[key]
                except (KeyError, TypeError):
                    continue
                info[key] = None if value is None else int(value)
            info.update(_var_params(syn, ("a_buff", "a_buf")))
            synapses.append(info)
        return {"name": self.name, "group": self.group, "block": type(self.layer).__name__,
                "neuron": self.kind, "shape": list(self.shape), "lava_shape": list(self.lava_shape),
                "recorded": ["s", *self.recorded], "output_message_bits":
                int(self.layer.output_message_bits or 0), "neuron_params": params,
                "synapses": synapses}


def _recorder_types() -> tuple[type, type]:
    """The recorder process and its model base (built on first use: Lava imports are lazy)."""
    global _RECORDER_TYPES
    if _RECORDER_TYPES is not None:
        return _RECORDER_TYPES
    from lava.magma.core.model.py.model import PyLoihiProcessModel
    from lava.magma.core.process.ports.ports import InPort, RefPort
    from lava.magma.core.process.process import AbstractProcess

    class NetxRecorder(AbstractProcess):
        """Records, after every step, what each layer's neuron sent (an InPort on its s_out, as
        Lava's Monitor does for an OutPort) and its state Vars (RefPort reads in the post
        management phase, as Monitor does for a Var), into .npy memory maps: Monitor's data
        travel back through Var.get one element per message, too slow for whole traces. At the
        last step of every sample but the last it writes zeros into every state Var (the next
        input's bias in bias mode) and waits for the writes, so the next sample starts from the
        state of a freshly built network."""

        def __init__(self, *, s_shapes: list[tuple[int, ...]], ref_shapes: list[tuple[int, ...]],
                     **params: Any) -> None:
            super().__init__(s_shapes=s_shapes, ref_shapes=ref_shapes, **params)
            for i, shape in enumerate(s_shapes):
                setattr(self, f"s{i}", InPort(shape=shape))
            for j, shape in enumerate(ref_shapes):
                setattr(self, f"r{j}", RefPort(shape=shape))

    class RecorderModelBase(PyLoihiProcessModel):
        def __init__(self, proc_params: Any) -> None:
            super().__init__(proc_params)
            p = self.proc_params
            self._n, self._S, self._steps = int(p["samples"]), int(p["S"]), int(p["steps"])
            self._s_files = [np.lib.format.open_memmap(path, mode="w+", dtype=np.int64,
                                                       shape=(self._n, self._steps) + tuple(shp))
                             for path, shp in zip(p["s_files"], p["s_shapes"])]
            self._r_files = {j: np.lib.format.open_memmap(path, mode="w+", dtype=np.int64,
                                                          shape=(self._n, self._steps) + tuple(p["ref_shapes"][j]))
                             for j, path in p["read_files"].items()}
            self._zero = {int(j): np.zeros(tuple(p["ref_shapes"][j]), np.dtype(p["ref_dtypes"][j]))
                          for j in p["zero"]}
            self._bias = p.get("bias")  # (ref index, [n, *shape] int16) or None

        def _where(self) -> tuple[int, int]:
            k, local = divmod(self.time_step - 1, self._S)
            return k, local

        def run_spk(self) -> None:
            k, local = self._where()
            for i, mem in enumerate(self._s_files):
                data = getattr(self, f"s{i}").recv()
                if local < self._steps:
                    mem[k, local] = data

        def post_guard(self) -> bool:
            return True

        def run_post_mgmt(self) -> None:
            k, local = self._where()
            if local < self._steps:
                for j, mem in self._r_files.items():
                    mem[k, local] = getattr(self, f"r{j}").read()
            if local == self._S - 1 and k < self._n - 1:
                written = []
                for j, zeros in self._zero.items():
                    port = getattr(self, f"r{j}")
                    port.write(zeros)
                    written.append(port)
                if self._bias is not None:
                    j, data = self._bias
                    port = getattr(self, f"r{j}")
                    port.write(np.asarray(data[k + 1], np.int16))
                    written.append(port)
                for port in written:  # a read: the writes are applied before the next step
                    port.wait()
            if self.time_step == self._n * self._S:
                for mem in (*self._s_files, *self._r_files.values()):
                    mem.flush()

    _RECORDER_TYPES = (NetxRecorder, RecorderModelBase)
    return _RECORDER_TYPES


_RECORDER_TYPES: tuple[type, type] | None = None


def _recorder_model(proc: Any, n_s: int, ref_dtypes: list[str]) -> type:
    """A model class for one recorder instance: its ports are class attributes, so the class is
    made for the instance's port count and dtypes (a RefPort's dtype is the dtype a write
    arrives in, and Lava's VarPort rebinds the Var to the written array: it must be the Var's
    own dtype, int32 for every state Var, int16 for bias_mant)."""
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.ports import PyInPort, PyRefPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

    _, base = _recorder_types()
    attrs: dict[str, Any] = {f"s{i}": LavaPyType(PyInPort.VEC_DENSE, np.int32) for i in range(n_s)}
    for j, dtype in enumerate(ref_dtypes):
        attrs[f"r{j}"] = LavaPyType(PyRefPort.VEC_DENSE, np.dtype(dtype).type)
    model = type("PyNetxRecorderModel", (base,), attrs)
    return implements(proc=type(proc), protocol=LoihiProtocol)(requires(CPU)(tag("fixed_pt")(model)))


def _reference_inputs(inputs: Any, shape: tuple[int, ...], steps: int, mode: str,
                      input_message_bits: int, where: str) -> np.ndarray:
    """[steps, B, *shape] int64 in sakd layout, checked for what the mode can carry."""
    x = integer_inputs(inputs)
    nd = len(shape)
    if x.ndim == nd + 1 and tuple(x.shape[1:]) == shape:
        x = np.broadcast_to(x[None], (steps,) + x.shape)
    elif x.ndim == nd + 2 and tuple(x.shape[2:]) == shape:
        if x.shape[0] != steps:
            raise LavaInputError(f"inputs have {x.shape[0]} steps, expected steps = {steps}")
    else:
        raise LavaInputError(
            f"inputs of shape {x.shape} fit neither [steps={steps}, B, *{shape}] nor a static "
            f"[B, *{shape}] input ({where}, sakd layout)")
    if x.shape[1] < 1:
        raise LavaInputError("inputs hold no samples (B = 0)")
    if mode == "bias":
        if np.any(x != x[:1]):
            raise LavaInputError("input_mode 'bias' takes one static input per sample (written "
                                 "into bias_mant once), but the inputs change over the steps")
        lo, hi = _INT16
        if x.size and (x.min() < lo or x.max() > hi):
            raise LavaInputError(f"input_mode 'bias': bias_mant is int16 in Lava (values outside "
                                 f"[{lo}, {hi}] would wrap silently); got [{x.min()}, {x.max()}]")
    else:
        lo, hi = _INT32
        if x.size and (x.min() < lo or x.max() > hi):
            raise LavaInputError(f"inputs outside int32 (the source's dtype): [{x.min()}, {x.max()}]")
        if mode == "port" and input_message_bits == 0 and x.size and not np.isin(x, (0, 1)).all():
            raise LavaInputError(
                "binary input (input_message_bits 0): netx's first synapse counts any nonzero "
                "value as one spike; give 0/1 spikes, or graded values with input_message_bits > 0")
    return np.ascontiguousarray(x)


def run_netx_reference(
    netx_path: str | Path,
    inputs: Any,
    steps: int,
    *,
    input_mode: str = "port",
    input_message_bits: int | None = None,
    reset_interval: int | None = None,
    reset_offset: int = 0,
    spike_exp: int = 6,
    sparse_fc_layer: bool = False,
    samples_per_build: int | None = None,
    monitor_check: bool = False,
    zero_state: bool = True,
    record: str = "all",
    workdir: str | Path | None = None,
) -> dict[str, Any]:
    """Run a netx file free-running, as a lava-dl user would, and record every layer.

    The network is ``lava.lib.dl.netx.hdf5.Network(net_config=path, reset_interval=...,
    reset_offset=..., spike_exp=..., sparse_fc_layer=...)`` (plus ``input_message_bits`` when it
    is not None: netx's default 0 otherwise) on ``Loihi2SimCfg(select_tag="fixed_pt")`` — the
    configuration of lava-dl's netx tutorials (PilotNet LIF/SDNN ``run``), which selects the
    fixed-point/bit-accurate models; netx's own unit tests use a RunConfig that picks the first
    'fixed_pt' model, the same models.

    ``inputs``: [steps, B, *input_shape] (or a static [B, *input_shape]) integers in sakd layout
    (C,H,W or (N,)); moved to Lava's reversed layout (W,H,C) and back. ``input_mode``:

    - ``"port"``: a ``RingBuffer`` source (int32) feeds ``net.inp``, the first synapse's input
      (graded when input_message_bits > 0; 0/1 spikes otherwise). Refused when the first layer
      is an input block with a neuron: netx leaves that block's InPort unconnected.
    - ``"a_in"``: the source feeds ``net.in_layer.neuron.a_in`` (lava-dl's PilotNet tutorials);
      the input shape is that neuron's.
    - ``"bias"``: each sample's static input is that neuron's ``bias_mant`` (int16; lava-dl's
      tinynet test), set as the Var's init for the first sample of a build and written for the
      next ones; refused for neurons without bias_mant.

    Timing (read in Lava's source, checked by the tests): a RingBuffer sends ``data[..., t-1]``
    at step t (source.py), and a message sent in step t is received in the same step t. So an
    input on ``a_in`` at step t is in the neuron's state after step t; through ``net.inp`` it
    passes the first synapse, which sends at step t what it accumulated at t-1 (dense/conv
    models), so it reaches the first neuron at step t+1; a bias acts from step 1.

    Recorded, for every layer ``layer{i}`` (i: its ``/layer/{i}`` group), as int64
    [steps, B, *shape] in sakd layout: ``s``, what its neuron's ``s_out`` sent at step t, and
    the neuron's state Vars (NETX_RECORDED_STATE) after step t (read in the post-management
    phase of step t, as Lava's Monitor does).

    Samples: one build holds ``samples_per_build`` samples (default: all; 1 gives one fresh
    build per sample). Sample k runs global steps ``k*S+1 .. (k+1)*S``, where S is ``steps``
    rounded up to a multiple of ``reset_interval`` (so that every LIFReset phase is the one a
    fresh build has); the input is zero after ``steps``. At the last step of each sample every
    neuron state Var and every synapse buffer (Dense/Sparse/DelayDense/DelaySparse ``a_buff``,
    Conv ``a_buf``, both synapses of RecurrentDense and ComplexDense) is set to zero, so the
    next sample starts as a freshly built network does (a test proves it against fresh builds).

    ``record``: ``"all"`` (every layer) or ``"output"`` (only the last layer: what a lava-dl
    user reads; the speed benchmarks time this, since recording every layer costs Lava as much
    as the run).

    ``zero_state=False`` skips the zeroing (only to show what would leak from one sample into
    the next). ``monitor_check``: also probe every recorded Var and s_out with Lava's own ``Monitor`` (one
    process each, read back through Var.get: slow, for small networks) and report in
    ``meta["monitor_check"]`` whether each equals the recorder's trace (it must).

    Returns ``{"layers": {name: {var: array}}, "meta": {...}}``; the meta holds the names, each
    layer's description (block, neuron process, shapes, parameters, synapse processes), the
    options with netx's defaults filled in, netx's warnings and timings.
    """
    import shutil
    import tempfile

    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer as Source

    t_start = time.perf_counter()
    netx_path = str(netx_path)
    steps = int(steps)
    if steps < 1:
        raise LavaInputError(f"steps must be >= 1, got {steps}")
    if input_mode not in NETX_INPUT_MODES:
        raise LavaInputError(f"input_mode must be one of {NETX_INPUT_MODES}, got {input_mode!r}")
    if reset_interval is not None and int(reset_interval) < 1:
        raise LavaInputError(f"reset_interval must be None or >= 1, got {reset_interval}")
    if input_message_bits is not None and int(input_message_bits) < 0:
        raise LavaInputError(f"input_message_bits must be None or >= 0, got {input_message_bits}")
    if samples_per_build is not None and int(samples_per_build) < 1:
        raise LavaInputError(f"samples_per_build must be None or >= 1, got {samples_per_build}")
    if record not in NETX_RECORD:
        raise LavaInputError(f"record must be one of {NETX_RECORD}, got {record!r}")
    if not Path(netx_path).exists():
        raise LavaInputError(f"no such netx file: {netx_path}")

    kwargs: dict[str, Any] = {"reset_interval": None if reset_interval is None else int(reset_interval),
                              "reset_offset": int(reset_offset), "spike_exp": int(spike_exp),
                              "sparse_fc_layer": bool(sparse_fc_layer)}
    if input_message_bits is not None:
        kwargs["input_message_bits"] = int(input_message_bits)
    imb = int(kwargs.get("input_message_bits", 0))
    kinds = netx_group_kinds(netx_path)
    groups = netx_layer_groups(netx_path)

    timings = {"build_s": 0.0, "compile_s": 0.0, "run_s": 0.0, "read_s": 0.0}
    t0 = time.perf_counter()
    net, notes, printed = _build_netx(netx_path, kwargs)
    timings["build_s"] += time.perf_counter() - t0
    if len(groups) != len(net.layers):
        raise NetxReferenceFailure(
            f"{netx_path}: netx made {len(net.layers)} layers from groups {groups}; the "
            f"reference cannot name them", stage="build", cause="RuntimeError")

    def layer_infos(network: Any) -> list[_NetxLayerInfo]:
        return [_NetxLayerInfo(f"layer{g}", g, layer) for g, layer in zip(groups, network.layers)]

    def recorded_infos(all_infos: list[_NetxLayerInfo]) -> list[_NetxLayerInfo]:
        return all_infos if record == "all" else all_infos[-1:]

    infos = layer_infos(net)
    first = infos[0]
    netx_input = type(net.in_layer).__name__ == "Input" and \
        type(net.in_layer).__module__.startswith("lava.lib.dl.netx")
    if input_mode == "port":
        if netx_input:
            raise LavaInputError(
                f"input_mode 'port': the first layer (/layer/{first.group}) is an input block "
                f"with a {first.kind} neuron, and netx does not connect the network's InPort to "
                f"it (lava-dl: 'the input must be handled through neuron's bias'); use "
                f"input_mode 'a_in' or 'bias'")
        lava_in = tuple(int(d) for d in net.inp.shape)
        where = "net.inp"
    elif input_mode == "a_in":
        if not hasattr(net.in_layer.neuron, "a_in"):
            raise LavaInputError(f"input_mode 'a_in': the {first.kind} neuron of /layer/"
                                 f"{first.group} has no a_in port")
        lava_in = tuple(int(d) for d in net.in_layer.neuron.a_in.shape)
        where = f"/layer/{first.group}'s {first.kind} a_in"
    else:
        if not hasattr(net.in_layer.neuron, "bias_mant"):
            raise LavaInputError(f"input_mode 'bias': the {first.kind} neuron of /layer/"
                                 f"{first.group} has no bias_mant (only CUBA/LOIHI LIF neurons "
                                 f"have one)")
        lava_in = tuple(int(d) for d in net.in_layer.neuron.bias_mant.shape)
        where = f"/layer/{first.group}'s {first.kind} bias_mant"
    in_shape = tuple(lava_in[i] for i in _lava_to_sakd_axes(len(lava_in)))
    x = _reference_inputs(inputs, in_shape, steps, input_mode, imb, where)
    B = x.shape[1]
    R = kwargs["reset_interval"]
    S = steps if R is None else R * math.ceil(steps / R)
    chunk = B if samples_per_build is None else min(int(samples_per_build), B)
    to_lava = _lava_to_sakd_axes(len(in_shape))  # reversing is its own inverse

    out = {info.name: {var: np.zeros((steps, B) + info.shape, np.int64)
                       for var in ("s", *info.recorded)} for info in recorded_infos(infos)}
    monitor_report: dict[str, bool] = {}
    tmp = Path(tempfile.mkdtemp(prefix="netx-ref-", dir=workdir))
    try:
        for start in range(0, B, chunk):
            xs = x[:, start:start + chunk]
            n = xs.shape[1]
            if start > 0:
                t0 = time.perf_counter()
                net, _, _ = _build_netx(netx_path, kwargs)
                timings["build_s"] += time.perf_counter() - t0
                infos = layer_infos(net)
            lava_x = xs.transpose((0, 1) + tuple(2 + a for a in to_lava))  # [steps, n, *lava]
            if input_mode == "bias":
                net.in_layer.neuron.bias_mant.init = lava_x[0, 0].astype(np.int16)
            else:
                data = np.zeros(lava_in + (n * S,), np.int32)
                for k in range(n):
                    data[..., k * S:k * S + steps] = np.moveaxis(lava_x[:, k], 0, -1)
                source = Source(data=data)
                if input_mode == "port":
                    source.s_out.connect(net.inp)
                else:
                    source.s_out.connect(net.in_layer.neuron.a_in)

            # the recorder: an InPort per layer's s_out, a RefPort per state Var / buffer
            rec_infos = recorded_infos(infos)
            s_shapes = [info.lava_shape for info in rec_infos]
            refs: list[Any] = []
            read_files: dict[int, str] = {}
            reads: list[tuple[str, str, int]] = []
            zero: list[int] = []
            for info in infos:
                recorded = ({id(getattr(info.neuron, v)): v for v in info.recorded}
                            if info.name in out else {})
                for var in info.zeroed:
                    j = len(refs)
                    refs.append(var)
                    if zero_state:
                        zero.append(j)
                    if id(var) in recorded:
                        read_files[j] = str(tmp / f"{info.name}.{var.name}.{start}.npy")
                        reads.append((info.name, var.name, j))
            bias = None
            if input_mode == "bias":
                bias = (len(refs), lava_x[0].astype(np.int16))
                refs.append(net.in_layer.neuron.bias_mant)
            dtypes = ["int16" if (bias is not None and j == bias[0]) else "int32"
                      for j in range(len(refs))]
            rec_cls, _ = _recorder_types()
            s_files = [str(tmp / f"{info.name}.s.{start}.npy") for info in rec_infos]
            recorder = rec_cls(s_shapes=s_shapes, ref_shapes=[tuple(v.shape) for v in refs],
                               samples=n, S=S, steps=steps, s_files=s_files,
                               read_files=read_files, zero=zero, ref_dtypes=dtypes, bias=bias)
            for i, info in enumerate(rec_infos):
                info.neuron.s_out.connect(getattr(recorder, f"s{i}"))
            for j, var in enumerate(refs):
                getattr(recorder, f"r{j}").connect_var(var)
            monitors: dict[tuple[str, str], Any] = {}
            if monitor_check:
                from lava.proc.monitor.process import Monitor

                for info in rec_infos:
                    for var in ("s", *info.recorded):
                        mon = Monitor()
                        mon.probe(info.neuron.s_out if var == "s" else getattr(info.neuron, var), n * S)
                        monitors[(info.name, var)] = mon
            model = _recorder_model(recorder, len(rec_infos), dtypes)
            cfg = Loihi2SimCfg(select_tag="fixed_pt",
                               exception_proc_model_map={recorder: model, type(recorder): model})

            workers = _lava_workers()
            t0 = time.perf_counter()
            try:
                net.create_runtime(run_cfg=cfg)
            except Exception as exc:
                _end_new_workers(workers)  # a failed build leaves Lava's workers waiting
                raise NetxReferenceFailure(f"Lava could not compile the network of {netx_path}: "
                                           f"{type(exc).__name__}: {exc}", stage="compile",
                                           cause=type(exc).__name__) from exc
            timings["compile_s"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            try:
                net.run(condition=RunSteps(num_steps=n * S))
            except Exception as exc:
                _end_new_workers(workers)
                raise NetxReferenceFailure(f"Lava failed running {netx_path}: "
                                           f"{type(exc).__name__}: {exc}", stage="run",
                                           cause=type(exc).__name__) from exc
            timings["run_s"] += time.perf_counter() - t0
            monitored = {key: np.asarray(next(iter(next(iter(mon.get_data().values())).values())))
                         for key, mon in monitors.items()}
            net.stop()
            _end_new_workers(workers)
            t0 = time.perf_counter()
            for info, path in zip(rec_infos, s_files):
                out[info.name]["s"][:, start:start + n] = _memmap_to_sakd(path)
            for name, var, j in reads:
                out[name][var][:, start:start + n] = _memmap_to_sakd(read_files[j])
            timings["read_s"] += time.perf_counter() - t0
            for (name, var), raw in monitored.items():  # [n*S, *lava] -> [steps, n, *sakd]
                nd = raw.ndim - 1
                per = np.stack([raw[k * S:k * S + steps] for k in range(n)], axis=1)
                per = per.transpose((0, 1) + tuple(2 + a for a in _lava_to_sakd_axes(nd)))
                same = bool(np.array_equal(per, out[name][var][:, start:start + n]))
                monitor_report[f"{name}.{var}"] = monitor_report.get(f"{name}.{var}", True) and same
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    total = time.perf_counter() - t_start
    options = {"steps": steps, "input_mode": input_mode, "input_message_bits": imb,
               "reset_interval": kwargs["reset_interval"], "reset_offset": kwargs["reset_offset"],
               "spike_exp": kwargs["spike_exp"], "sparse_fc_layer": kwargs["sparse_fc_layer"],
               "samples_per_build": chunk, "zero_state": bool(zero_state), "record": record}
    meta = {"mode": "netx-reference", "network": netx_path, "names": [i.name for i in infos],
            "recorded_layers": list(out),
            "groups": [{"group": i, "type": kind, "neuron": has} for i, kind, has in kinds],
            "layers": [info.describe() for info in infos], "input_shape": list(in_shape),
            "input_lava_shape": list(lava_in), "samples": int(B), "steps": steps,
            "steps_per_sample": S, "options": options, "netx_kwargs": kwargs,
            "run_config": "Loihi2SimCfg(select_tag='fixed_pt')", "netx_warnings": notes,
            "netx_stdout": printed.strip(), **timings, "total_s": total,
            "monitor_check": monitor_report if monitor_check else None,
            "samples_per_s": B / total if total > 0 else None}
    return {"layers": out, "meta": meta}


def _lava_workers() -> set[Any]:
    import multiprocessing

    return set(multiprocessing.active_children())


def _end_new_workers(before: set[Any], grace: float = 2.0) -> None:
    """End the worker processes Lava started since ``before`` (after ``stop`` they are gone;
    after a failed compile or run they would wait forever, and Python waits for them at exit)."""
    import multiprocessing

    new = [p for p in multiprocessing.active_children() if p not in before]
    deadline = time.monotonic() + grace
    while any(p.is_alive() for p in new) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in new:  # Lava's SystemProcess.join takes no timeout: multiprocessing's own does
        if p.is_alive():
            p.kill()
            multiprocessing.Process.join(p, grace)


def _memmap_to_sakd(path: str) -> np.ndarray:
    """A recorder file [n, steps, *lava_shape] as [steps, n, *sakd_shape] int64."""
    data = np.load(path, allow_pickle=False)
    nd = data.ndim - 2
    return np.ascontiguousarray(
        data.transpose((1, 0) + tuple(2 + a for a in _lava_to_sakd_axes(nd)))).astype(np.int64)


def run_netx_reference_jobs(jobs_path: str | Path, out_dir: str | Path) -> list[dict[str, Any]]:
    """The ``--netx-reference`` mode: run every job of a JSON file (``{"jobs": [{"path",
    "inputs" (a .npy next to the JSON file), "steps", options...}]}``) in this one process
    (netx's import takes seconds), writing ``ref_{k}.npz`` or ``error_{k}.json`` per job."""
    import traceback

    jobs_path, out_dir = Path(jobs_path), Path(out_dir)
    spec = json.loads(jobs_path.read_text())
    done: list[dict[str, Any]] = []
    for k, job in enumerate(spec["jobs"]):
        job = dict(job)
        inputs = np.load(jobs_path.parent / job.pop("inputs"), allow_pickle=False)
        path = job.pop("path")
        try:
            result = run_netx_reference(path, inputs, int(job.pop("steps")), **job,
                                        workdir=out_dir)
        except Exception as exc:  # one job's failure is reported; the next job runs
            kind = ("input" if isinstance(exc, LavaInputError)
                    else "netx" if isinstance(exc, NetxReferenceFailure) else "lava")
            err = {"kind": kind, "type": type(exc).__name__, "message": str(exc),
                   "stage": getattr(exc, "stage", None),
                   "cause": getattr(exc, "cause", type(exc).__name__),
                   "traceback": "".join(traceback.format_exception(type(exc), exc,
                                                                   exc.__traceback__))[-4000:]}
            (out_dir / f"error_{k}.json").write_text(json.dumps(err))
            done.append({"job": k, "error": err["message"]})
            print(f"netx reference job {k} ({path}): {err['type']}: {err['message']}",
                  file=sys.stderr)
            continue
        write_netx_reference(result, out_dir / f"ref_{k}.npz")
        m = result["meta"]
        done.append({"job": k, "total_s": m["total_s"]})
        print(f"netx reference job {k} ({path}): {m['samples']} samples x {m['steps']} steps in "
              f"{m['total_s']:.2f} s (build {m['build_s']:.2f} s, compile {m['compile_s']:.2f} s, "
              f"run {m['run_s']:.2f} s)", file=sys.stderr)
    return done


def write_netx_reference(result: dict[str, Any], path: str | Path) -> Path:
    """``L{i}.{var}`` arrays (layer i of ``meta.names``) and the meta as JSON text."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(result["meta"], default=_json_default))}
    names = result["meta"]["names"]
    for name, layer in result["layers"].items():
        for var, data in layer.items():
            arrays[f"L{names.index(name)}.{var}"] = data
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------
# output and CLI
# ---------------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_result(result: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    names = result["meta"]["names"]
    arrays: dict[str, np.ndarray] = {"readout_v": result["readout_v"],
                                     "meta": np.array(json.dumps(result["meta"], default=_json_default))}
    for i, name in enumerate(names):
        arrays[f"spikes_{i}"] = result["spikes"][name]
        if result["traces"]:
            arrays[f"u_{i}"] = result["traces"]["u"][name]
            arrays[f"v_{i}"] = result["traces"]["v"][name]
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def watch_parent(parent: int, cleanup: str | None, interval: float = 0.5) -> None:
    """A daemon thread: once ``parent`` is gone (the runner is re-parented), remove ``cleanup``
    and SIGKILL the runner's process group — itself and every Lava worker it started (the bridge
    starts the runner as a group leader). A parent killed by SIGKILL leaves nothing behind."""
    import os
    import shutil
    import signal
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="sakd-parent-watch", daemon=True).start()


def _main_netx_reference(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sakd.hardware.lava_runner --netx-reference",
        description="Free-running reference runs of netx files: every layer's messages and "
                    "neuron state after every step (run_netx_reference), one job after another.")
    parser.add_argument("--netx-reference", required=True, metavar="JOBS.json",
                        help='{"jobs": [{"path", "inputs" (.npy next to JOBS.json), "steps", '
                             'input_mode, input_message_bits, reset_interval, reset_offset, '
                             'spike_exp, sparse_fc_layer, samples_per_build, monitor_check}]}')
    parser.add_argument("--out-dir", required=True,
                        help="where ref_{k}.npz (or error_{k}.json) is written for job k")
    parser.add_argument("--parent", type=int, default=None,
                        help="the pid that started the runner (see the other mode)")
    parser.add_argument("--cleanup", default=None, help="a folder to remove if the parent dies")
    args = parser.parse_args(argv)
    if args.parent is not None:
        watch_parent(args.parent, args.cleanup)
    done = run_netx_reference_jobs(args.netx_reference, args.out_dir)
    ok = sum("error" not in d for d in done)
    print(f"lava: {ok} of {len(done)} netx reference jobs done", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--netx-reference" or a.startswith("--netx-reference=") for a in argv):
        return _main_netx_reference(argv)
    parser = argparse.ArgumentParser(
        prog="python -m sakd.hardware.lava_runner",
        description="Run an IR network or a netx HDF5 file on Lava's bit-accurate CPU models.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--network", help="IR network file (network.h5)")
    what.add_argument("--netx", help="netx HDF5 file")
    parser.add_argument("--inputs", required=True,
                        help=".npy of integer inputs: static [B, *shape] or sequence [T, B, *shape]")
    parser.add_argument("--time-steps", type=int, required=True, help="T")
    parser.add_argument("--out", required=True, help="result .npz")
    parser.add_argument("--traces", action="store_true", help="also record u and v of every population")
    parser.add_argument("--input-message-bits", type=int, default=0,
                        help="netx only: graded input bits (0: binary spikes)")
    parser.add_argument("--reset-offset", type=int, default=1,
                        help="netx only: netx's reset_offset (1 gives the IR's staggered reset)")
    parser.add_argument("--chunk", type=int, default=256, help="samples per network build")
    parser.add_argument("--parent", type=int, default=None,
                        help="the pid that started the runner: when it dies, the runner removes "
                             "--cleanup and ends its process group (Lava's workers with it)")
    parser.add_argument("--cleanup", default=None, help="a folder to remove if the parent dies")
    args = parser.parse_args(argv)
    if args.chunk < 1:
        parser.error("--chunk must be >= 1")
    if args.parent is not None:
        watch_parent(args.parent, args.cleanup)

    inputs = np.load(args.inputs, allow_pickle=False)
    if args.network:
        result = run_ir(args.network, inputs, args.time_steps, traces=args.traces, chunk=args.chunk)
    else:
        result = run_netx(args.netx, inputs, args.time_steps,
                          input_message_bits=args.input_message_bits,
                          reset_offset=args.reset_offset, traces=args.traces, chunk=args.chunk)
    write_result(result, args.out)
    m = result["meta"]
    print(f"lava: {m['samples']} samples x {m['steps_per_sample']} steps in {m['total_s']:.2f} s "
          f"(build {m['build_s']:.2f} s, compile {m['compile_s']:.2f} s, run {m['run_s']:.2f} s; "
          f"{m['samples_per_s']:.2f} samples/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
