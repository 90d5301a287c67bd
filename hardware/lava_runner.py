"""Run an IR network (``network.h5``) or a netx HDF5 file on Intel Lava's bit-accurate CPU models.

This is the reference the simulator (``sakd.hardware.simulator``) is proven against. It runs in
the Lava environment (Python 3.10, ``.venv-lava``, built by ``scripts/make_lava_env.sh``) and is
driven from the main environment by ``sakd.hardware.lava_bridge``::

    python -m sakd.hardware.lava_runner --network network.h5 --inputs x.npy --time-steps T \
        --out result.npz [--traces]
    python -m sakd.hardware.lava_runner --netx net.h5 --input-message-bits B --inputs x.npy \
        --time-steps T --out result.npz

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
import types
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
    """``lava.lib.dl.netx.hdf5``, also where torch is absent (the Lava env installs lava-dl
    without its torch dependency). netx's package ``__init__`` imports its torch-based
    sequential modules, and ``hdf5`` imports slayer's RF-neuron parameter helper (torch); neither
    is used for CUBA/LOIHI neurons. Without torch the package is entered without its __init__
    and the RF helper is replaced by one that raises (RF neurons then fail with that message)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        from lava.lib.dl.netx import hdf5

        return hdf5
    import importlib
    import importlib.util

    if "lava.lib.dl.netx.hdf5" in sys.modules:
        return sys.modules["lava.lib.dl.netx.hdf5"]
    spec = importlib.util.find_spec("lava.lib.dl.netx")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("lava.lib.dl.netx is not installed (lava-dl)")
    if "lava.lib.dl.netx" not in sys.modules:
        pkg = types.ModuleType("lava.lib.dl.netx")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__package__ = "lava.lib.dl.netx"
        sys.modules["lava.lib.dl.netx"] = pkg

    def rf_unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise NotImplementedError("RF neurons in netx need torch (lava-dl's slayer), which the "
                                  "Lava environment does not install")

    for name in ("lava.lib.dl.slayer", "lava.lib.dl.slayer.neuron", "lava.lib.dl.slayer.neuron.rf"):
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__path__ = []
            sys.modules[name] = mod
    sys.modules["lava.lib.dl.slayer.neuron.rf"].neuron_params = rf_unavailable  # type: ignore[attr-defined]
    # Lava's compiler looks for process models by importing every module of a process's parent
    # package (lava/magma/compiler/compiler_graphs.py, _find_proc_models), outside any try: the
    # torch-based sequential_modules would fail there. A placeholder with the real file name
    # satisfies that walk; the compiler's own file scan then skips the real one with a warning,
    # which is silenced here.
    seq = "lava.lib.dl.netx.sequential_modules"
    if seq not in sys.modules:
        mod = types.ModuleType(seq)
        mod.__file__ = str(Path(spec.submodule_search_locations[0]) / "sequential_modules.py")
        sys.modules[seq] = mod
    import warnings

    warnings.filterwarnings("ignore", message=r"Cannot import module .*sequential_modules")
    return importlib.import_module("lava.lib.dl.netx.hdf5")


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

    from sakd.hardware.netfile import read_network

    net = read_network(network_path)
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


def main(argv: list[str] | None = None) -> int:
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
