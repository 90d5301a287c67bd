"""NIR reader: a NIR graph (ours, or one exported by spikingjelly, snnTorch, Norse, sinabs...)
into an IR network, quantizing float weights (``import_nir``, ``read_nir``; conventions in
``sakd.formats.nir``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sakd.export.quantize import largest_even_scale
from sakd.formats.nir.common import (
    FIRING_RULES,
    GENERATOR,
    NIR_FORMAT,
    NIR_FORMAT_VERSION,
    NirImportError,
    as_array,
    graph_signature,
    int_pair,
    metadata_text,
    node_error,
    uniform,
)
from sakd.formats.nir.compose import LinearOp, compose, full_bias
from sakd.hardware.errors import MissingFileError, SakdError
from sakd.hardware.integrity import IntegrityError, sealed_kind
from sakd.hardware.ir import (
    Input,
    IRError,
    Network,
    Population,
    Projection,
    conv2d_output_shape,
)
from sakd.hardware.neurons import CubaLif
from sakd.hardware.target import DEFAULT_TARGET, TargetSpec, get_target

#: relative float noise forgiven in limits computed from a file's float32 parameters
FLOAT_NOISE = 1e-6

SPIKING = ("LIF", "IF", "CubaLIF")
INTEGRATING = ("LI", "CubaLI", "I")
LINEAR = ("Affine", "Linear", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d", "Delay")
REFUSED = {
    "Threshold": "a bare threshold without neuron dynamics has no IR form (the IR's neurons "
                 "are CUBA-LIF populations)",
    "Scale": "an elementwise scaling node has no IR form; fold it into the neighbouring "
             "weights before exporting",
    "Conv1d": "a 1-D convolution: the IR has 2-D convolutions only",
    "NIRGraph": "a nested graph (e.g. a recurrent layer such as snnTorch's RLeaky/RSynaptic): "
                "the IR is feed-forward",
    "Identity": "an Identity node is not part of NIR's serialisable set",
}


@dataclass
class NirImport:
    """What ``import_nir`` returns: the IR network and what was assumed to get it."""

    network: Network
    assumptions: dict[str, Any] = field(default_factory=dict)


def finite(name: str, node: Any, what: str, value: Any) -> np.ndarray:
    """A node's array as float64, refused (naming the node) when it holds NaN or infinities."""
    arr = as_array(value)
    if not np.all(np.isfinite(arr)):
        raise node_error(name, node, f"{what} holds NaN or infinite values")
    return arr


def load_graph(source: Any) -> tuple[Any, str]:
    """A NIR graph (returned as is) or file (read with ``nir.read``) and where it came from;
    every problem with a file is a :class:`NirImportError` naming it."""
    import nir

    if isinstance(source, nir.NIRGraph):
        return source, "<graph>"
    path = Path(source)
    if not path.exists():
        raise MissingFileError(f"{path}: no such NIR file")
    try:  # before the HDF5 library parses anything (it can hang on some damaged metadata)
        kind = sealed_kind(path)
    except IntegrityError as exc:
        raise NirImportError(str(exc)) from exc
    if kind not in (None, "nir"):
        raise NirImportError(f"{path}: a {kind} file sakd wrote, not a NIR file")
    try:
        import h5py

        with h5py.File(path, "r") as f:
            if "node" not in f or "version" not in f:
                raise NirImportError(f"{path}: not a NIR file (no 'version' dataset and 'node' "
                                     f"group)")
        graph = nir.read(path, type_check=False)
    except NirImportError:
        raise
    except Exception as exc:  # h5py/OSError on a truncated file, KeyError/ValueError in nir
        raise NirImportError(f"{path}: not a readable NIR file (truncated or damaged?): "
                             f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(graph, nir.NIRGraph):
        raise NirImportError(f"{path}: the root node is a {type(graph).__name__}, not a graph")
    return graph, str(path)


def _check_reset_convention(name: str, meta: Any, node: Any = None) -> None:
    """Refuse a reset by subtraction that the producer recorded in metadata (NIR has no form
    for it, so the neuron equations alone would silently change the network)."""
    if not isinstance(meta, dict):
        return
    for key, value in meta.items():
        text = metadata_text(value)
        if "reset" in str(key).lower() and isinstance(text, str):
            low = text.lower()
            if "sub" in low or "soft" in low:
                what = f"NIR node '{name}' ({type(node).__name__})" if node is not None else "the graph"
                raise NirImportError(
                    f"{what}: metadata {key!r} = {text!r} records a reset by subtraction; NIR "
                    f"(and the IR) reset v to v_reset, so the file would compute something else",
                    node=name if node is not None else None)


def topological_order(graph: Any) -> list[str]:
    """Kahn's order; a cycle is a recurrent edge, refused (the IR is feed-forward)."""
    nodes = graph.nodes
    indeg = dict.fromkeys(nodes, 0)
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in graph.edges:
        if a not in nodes or b not in nodes:
            missing = a if a not in nodes else b
            raise NirImportError(f"edge ({a!r}, {b!r}) names the unknown node '{missing}'",
                                 node=missing)
        if a == b:
            raise NirImportError(f"NIR node '{a}': recurrent edge ({a} -> {a}); the IR is "
                                 f"feed-forward", node=a)
        indeg[b] += 1
        succ[a].append(b)
    ready = [n for n in nodes if indeg[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for m in succ[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
    if len(order) < len(nodes):
        left = {n for n in nodes if indeg[n] > 0}
        # walk predecessors inside the leftover set until a node repeats: that closes a cycle
        pred = {n: [a for a, b in graph.edges if b == n and a in left] for n in left}
        start = min(left)
        seen = [start]
        while True:
            prev = pred[seen[-1]][0]
            if prev in seen:
                cycle = list(reversed(seen[seen.index(prev):]))
                break
            seen.append(prev)
        a, b = cycle[-1], cycle[0]
        raise NirImportError(
            f"NIR node '{b}': recurrent edge ({a} -> {b}) closes the cycle "
            f"{' -> '.join(cycle + [cycle[0]])}; the IR is feed-forward", node=b)
    return order


def _shapes(graph: Any, order: list[str]) -> dict[str, tuple[int, ...]]:
    """Output shape of every node, from the Input's shape (the file's own types are not
    trusted: NIR 1.0.8 infers grouped convolutions wrongly)."""
    import nir

    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        preds[b].append(a)
    out: dict[str, tuple[int, ...]] = {}
    for name in order:
        node = graph.nodes[name]
        if isinstance(node, nir.Input):
            shape = tuple(int(d) for d in np.asarray(node.input_type["input"]).reshape(-1))
            if not shape or min(shape) <= 0:
                raise node_error(name, node, f"input shape {shape} is not a list of positive sizes")
            out[name] = shape
            continue
        ins = [out[p] for p in preds[name]]
        if not ins:
            raise node_error(name, node, "has no input edge (only the Input node may be a root)")
        if any(s != ins[0] for s in ins):
            detail = ", ".join(f"'{p}' {out[p]}" for p in preds[name])
            raise node_error(name, node, f"converging inputs of different shapes: {detail}")
        shape = ins[0]
        if isinstance(node, (nir.Affine, nir.Linear)):
            w = np.asarray(node.weight)
            if w.ndim != 2:
                raise node_error(name, node, f"weight of shape {w.shape} is not (out, in)")
            if shape != (w.shape[1],):
                hint = " (a Flatten node is missing?)" if len(shape) > 1 else ""
                raise node_error(name, node, f"reads an input of shape {shape}, its weight "
                                  f"{w.shape} needs ({w.shape[1]},){hint}")
            out[name] = (int(w.shape[0]),)
        elif isinstance(node, nir.Conv2d):
            w = np.asarray(node.weight)
            if w.ndim != 4 or len(shape) != 3:
                raise node_error(name, node, f"weight {w.shape} on input {shape}: a Conv2d "
                                  f"needs a (Cout, Cin/groups, kh, kw) weight and a (C, H, W) input")
            conv = _conv_params(name, node, shape)
            out[name] = conv2d_output_shape(shape, w.shape, conv["stride"], conv["padding"],
                                            conv["dilation"])
        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            if len(shape) != 3:
                raise node_error(name, node, f"pools a {len(shape)}-D input {shape}; needs (C, H, W)")
            k = int_pair(node.kernel_size, name, node, "kernel_size")
            s = int_pair(node.stride, name, node, "stride")
            p = int_pair(node.padding, name, node, "padding")
            out[name] = conv2d_output_shape(shape, (shape[0], 1, *k), s, p)
        elif isinstance(node, nir.Flatten):
            out[name] = (int(np.prod(shape)),)
        else:  # neurons, Delay, Output keep the shape
            out[name] = shape
    return out


def _conv_params(name: str, node: Any, in_shape: tuple[int, ...]) -> dict[str, Any]:
    w = np.asarray(node.weight)
    stride = int_pair(node.stride, name, node, "stride")
    dilation = int_pair(node.dilation, name, node, "dilation")
    padding = node.padding
    if isinstance(padding, bytes):
        padding = padding.decode()
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same" and stride == (1, 1) and all(
                (dilation[i] * (w.shape[2 + i] - 1)) % 2 == 0 for i in range(2)):
            padding = tuple(dilation[i] * (w.shape[2 + i] - 1) // 2 for i in range(2))
        else:
            raise node_error(name, node, f"padding {padding!r} with stride {stride} and kernel "
                              f"{w.shape[2:]} has no symmetric integer padding")
    else:
        padding = int_pair(padding, name, node, "padding")
    groups = int(np.asarray(node.groups).reshape(-1)[0])
    if groups < 1 or in_shape[0] % groups or in_shape[0] // groups != w.shape[1] or w.shape[0] % groups:
        raise node_error(name, node, f"weight {w.shape} with groups {groups} does not fit an "
                          f"input of {in_shape[0]} channels")
    return {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


@dataclass
class _Path:
    """One path of linear nodes from a source (Input or spiking neuron) into a population."""

    source: str  # the NIR node whose output feeds the path
    nodes: list[str]  # linear NIR nodes, source side first


def _paths_into(graph: Any, entry: str, preds: dict[str, list[str]], sources: set[str]) -> list[_Path]:
    out: list[_Path] = []

    def walk(node: str, suffix: list[str]) -> None:
        for p in preds[node]:
            if p in sources:
                out.append(_Path(p, list(reversed(suffix))))
            elif type(graph.nodes[p]).__name__ in LINEAR:
                walk(p, suffix + [p])
            else:
                raise node_error(p, graph.nodes[p], f"feeds '{node}' but is neither a synapse "
                                  f"node nor a spiking neuron; an integrating neuron "
                                  f"(LI/CubaLI/I) can only be the readout")
    walk(entry, [])
    return out


def _path_op(graph: Any, path: _Path, shapes: dict[str, tuple[int, ...]], dt: float,
             used_bias: set[str], report_notes: list[str]) -> tuple[LinearOp, int, list[str]]:
    """Compose the path's nodes into one op; returns (op, delay steps, synapse node names)."""
    import nir

    shape = shapes[path.source]
    ops: list[LinearOp] = []
    delay = 0
    synapses: list[str] = []
    for name in path.nodes:
        node = graph.nodes[name]
        new_shape = shapes[name]
        if isinstance(node, nir.Delay):
            d = uniform(name, node, "delay", node.delay)
            steps = d / dt
            if steps < 0 or abs(steps - round(steps)) > 1e-6 * max(1.0, abs(steps)):
                raise node_error(name, node, f"delay {d:g} s is not a whole number of steps of "
                                  f"dt = {dt:g} s")
            delay += round(steps)
        elif isinstance(node, nir.Flatten):
            if int(node.start_dim) != 0 or int(node.end_dim) != -1:
                report_notes.append(f"Flatten '{name}' (start_dim={int(node.start_dim)}, "
                                    f"end_dim={int(node.end_dim)}) taken as flattening the whole "
                                    f"(C, H, W) sample in C,H,W order")
        elif isinstance(node, (nir.Affine, nir.Linear)):
            bias = None
            if isinstance(node, nir.Affine) and name not in used_bias:
                bias = finite(name, node, "bias", node.bias).reshape(-1)
                if bias.shape != (new_shape[0],):
                    bias = np.broadcast_to(bias, (new_shape[0],)).copy()
                used_bias.add(name)
            ops.append(LinearOp("dense", finite(name, node, "weight", node.weight), bias, (int(np.prod(shape)),), new_shape))
            synapses.append(name)
        elif isinstance(node, nir.Conv2d):
            conv = _conv_params(name, node, shape)
            bias = None
            if name not in used_bias:
                bias = np.broadcast_to(finite(name, node, "bias", node.bias).reshape(-1), (new_shape[0],)).copy()
                used_bias.add(name)
            ops.append(LinearOp("conv", finite(name, node, "weight", node.weight), bias, shape, new_shape, conv["stride"],
                           conv["padding"], conv["dilation"], conv["groups"]))
            synapses.append(name)
        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            k = int_pair(node.kernel_size, name, node, "kernel_size")
            s = int_pair(node.stride, name, node, "stride")
            p = int_pair(node.padding, name, node, "padding")
            factor = 1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (k[0] * k[1])
            c = shape[0]
            ops.append(LinearOp("conv", np.full((c, 1, *k), factor), None, shape, new_shape, s, p,
                           (1, 1), c, pool=k if (s == k and p == (0, 0)) else None))
            synapses.append(name)
        shape = new_shape
    if not ops:  # a neuron straight into a neuron: an identity projection
        if len(shape) == 3:
            c = shape[0]
            ops.append(LinearOp("conv", np.ones((c, 1, 1, 1)), None, shape, shape, groups=c))
        else:
            n = int(np.prod(shape))
            ops.append(LinearOp("dense", np.eye(n), None, (n,), (n,)))
    op = ops[0]
    try:
        for nxt in ops[1:]:
            op = compose(op, nxt)
    except ValueError as exc:
        raise NirImportError(
            f"the chain {' -> '.join([path.source, *path.nodes])} cannot be composed into one "
            f"projection: {exc}; fold it before exporting", node=path.nodes[0]) from exc
    if len(synapses) > 1:
        report_notes.append(f"chain {' -> '.join(synapses)} composed into one "
                            f"{'convolution' if op.kind == 'conv' else 'dense'} projection")
    return op, delay, synapses


# ---------------------------------------------------------------------------------------------
# reading: neurons → population parameters
# ---------------------------------------------------------------------------------------------


@dataclass
class _Neuron:
    """A population's continuous-time parameters read at dt (module docstring)."""

    node: str  # the NIR neuron node emitting the population's output
    entry: str  # where its synaptic input arrives (an LI current stage, or the node itself)
    kind: str  # NIR type of ``node`` (with "LI+" prefix for a merged current stage)
    fires: bool
    alpha: float  # current decay per step (1: no current state)
    c_in: float  # I += alpha * (c_in * X - I)
    beta: float  # voltage decay per step
    c_v: float  # v += -beta*v + c_v*I + beta*v_leak
    v_leak: np.ndarray
    theta: float | None
    in_bias: float = 0.0  # a constant input of the current stage (LI v_leak / r), into X


def _neuron(graph: Any, name: str, dt: float, current: str | None = None) -> _Neuron:
    import nir

    node = graph.nodes[name]
    _check_reset_convention(name, getattr(node, "metadata", None), node)
    theta = None
    if isinstance(node, (nir.LIF, nir.IF, nir.CubaLIF)):
        theta = uniform(name, node, "v_threshold", node.v_threshold)
        reset = as_array(node.v_reset if node.v_reset is not None else 0.0)
        if np.any(reset != 0):
            raise node_error(name, node, f"v_reset = {reset.reshape(-1)[0]:g}: the IR resets v "
                              f"to 0 (shift the voltage before exporting)")
        if theta <= 0:
            raise node_error(name, node, f"v_threshold = {theta:g} must be positive")
    if isinstance(node, (nir.LIF, nir.LI)):
        tau = uniform(name, node, "tau", node.tau)
        r = uniform(name, node, "r", node.r)
        beta = _decay(name, node, "tau", tau, dt)
        n = _Neuron(name, name, type(node).__name__, isinstance(node, nir.LIF), 1.0, 1.0, beta,
                    beta * r, finite(name, node, "v_leak", node.v_leak), theta)
    elif isinstance(node, (nir.IF, nir.I)):
        r = uniform(name, node, "r", node.r)
        n = _Neuron(name, name, type(node).__name__, isinstance(node, nir.IF), 1.0, 1.0, 0.0,
                    dt * r, np.zeros(()), theta)
    elif isinstance(node, (nir.CubaLIF, nir.CubaLI)):
        tau_syn = uniform(name, node, "tau_syn", node.tau_syn)
        tau_mem = uniform(name, node, "tau_mem", node.tau_mem)
        r = uniform(name, node, "r", node.r)
        w_in = uniform(name, node, "w_in", node.w_in)
        alpha = _decay(name, node, "tau_syn", tau_syn, dt)
        beta = _decay(name, node, "tau_mem", tau_mem, dt)
        n = _Neuron(name, name, type(node).__name__, isinstance(node, nir.CubaLIF), alpha, w_in,
                    beta, beta * r, finite(name, node, "v_leak", node.v_leak), theta)
    else:  # pragma: no cover - callers pass neuron nodes only
        raise node_error(name, node, "is not a neuron")
    if current is not None:  # an LI stage in front: it is the synaptic current
        if n.alpha != 1.0:
            raise node_error(current, graph.nodes[current], f"an LI feeding the current-based "
                              f"'{name}' would be a third state variable; the IR has two")
        li = graph.nodes[current]
        tau = uniform(current, li, "tau", li.tau)
        r = uniform(current, li, "r", li.r)
        n.alpha = _decay(current, li, "tau", tau, dt)
        n.c_in = r
        leak = finite(current, li, "v_leak", li.v_leak)
        if np.any(leak != 0):
            if r == 0:
                raise node_error(current, li, "v_leak with r = 0 has no IR form")
            n.in_bias = uniform(current, li, "v_leak", leak) / r
        n.entry = current
        n.kind = f"LI+{n.kind}"
    return n


def _resolve_dt(graph: Any, dt: float | None, notes: list[str], nir: Any) -> float:
    """dt for a file of another tool (``import_nir``'s docstring): the argument, else the
    graph's metadata, else 1/r of its IF and I nodes; an error naming the option otherwise."""
    integrators = {name: node for name, node in graph.nodes.items()
                   if isinstance(node, (nir.IF, nir.I))}
    implied: dict[float, list[str]] = {}
    for name, node in integrators.items():
        r = uniform(name, node, "r", node.r)
        if r > 0:
            implied.setdefault(1.0 / float(r), []).append(name)
    if dt is not None:
        for value, names in implied.items():
            if not math.isclose(value, dt, rel_tol=1e-9):
                notes.append(f"IF/I node(s) {', '.join(names)} have r = {1 / value:g}, which "
                             f"means dt = {value:g} s by NIR's convention; read at dt = {dt:g} s "
                             f"as asked")
        return dt
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    if "dt" in meta:
        try:
            value = float(np.asarray(meta["dt"]).reshape(-1)[0])
        except (TypeError, ValueError, IndexError) as exc:
            raise NirImportError(f"the graph's metadata dt = {meta['dt']!r} is not a number; "
                                 f"pass dt (--dt)") from exc
        notes.append(f"dt = {value:g} s from the graph's metadata")
        return value
    if len(implied) == 1:
        value, names = next(iter(implied.items()))
        notes.append(f"dt = {value:g} s from the IF/I nodes' r = {1 / value:g} (NIR's convention "
                     f"r = 1/dt; {', '.join(names)})")
        return value
    if len(implied) > 1:
        listed = "; ".join(f"r = {1 / v:g} ({', '.join(n)})" for v, n in implied.items())
        raise NirImportError(f"the IF/I nodes imply different dt ({listed}); pass dt (--dt)")
    raise NirImportError("the file does not determine dt: it has no IF or I node (whose r is "
                         "1/dt by NIR's convention) and no dt in its metadata; pass dt (--dt): "
                         "spikingjelly and snnTorch write LIF nodes for dt = 1e-4 s, sinabs for "
                         "dt = 1")


def _decay(name: str, node: Any, what: str, tau: float, dt: float) -> float:
    if not tau > 0:
        raise node_error(name, node, f"{what} = {tau:g} must be positive")
    x = dt / tau
    if x > 1.0 + 1e-6:
        raise node_error(name, node, f"{what} = {tau:g} s is shorter than dt = {dt:g} s: forward "
                          f"Euler overshoots (dt/{what} = {x:.3g} > 1). Wrong dt? (spikingjelly "
                          f"and snnTorch write for dt = 1e-4, sinabs for dt = 1)")
    return min(x, 1.0)


# ---------------------------------------------------------------------------------------------
# reading: the network
# ---------------------------------------------------------------------------------------------


@dataclass
class _PopPlan:
    name: str
    neuron: _Neuron | None  # None: an integrating readout made for a projection into Output
    shape: tuple[int, ...]
    role: str
    paths: list[tuple[str, LinearOp, int, list[str]]] = field(default_factory=list)  # source, op, delay, nodes
    extra: str = ""  # "spike-count readout"


def import_nir(
    source: Any,
    *,
    dt: float | None = None,
    firing: str = ">",
    input_encoding: str | None = None,
    input_bits: int | None = None,
    input_scale: float | None = None,
    target: str | TargetSpec = DEFAULT_TARGET,
    time_steps: int | None = None,
    trust_metadata: bool = True,
) -> NirImport:
    """Read a NIR graph or file into an IR network, by NIR's equations at ``dt`` (module
    docstring). Returns the network and the assumptions made.

    ``dt`` (seconds per step): None takes it from the file — sakd's own metadata, a numeric
    ``dt`` in the graph's metadata, or its IF / I nodes, whose ``r`` is 1/dt by NIR's convention
    for discrete integrators (sinabs writes r = 1: dt = 1; spikingjelly r = 1e4: dt = 1e-4);
    where the file does not determine it (only LIF nodes, or IF nodes that disagree) the error
    names ``dt`` (``--dt``) rather than guess.

    ``firing``: ``">"`` (NIR's and Lava's rule, default) or ``">="`` (the source framework's,
    for spikingjelly/sinabs files). ``input_encoding``: ``"spikes"`` (default for files from
    others) or ``"graded"`` with ``input_bits`` (default 8) and ``input_scale`` (x_int =
    round(x · scale); default 2^(bits−1) − 1, i.e. |x| ≤ 1). Our own files (metadata
    ``generator = "sakd"``) use their recorded dt, timing, input and names unless
    ``trust_metadata=False``.
    """
    import nir

    if firing not in FIRING_RULES:
        raise NirImportError(f"firing must be one of {FIRING_RULES}, got {firing!r}")
    graph, where = load_graph(source)
    try:
        return _import(graph, where, dt=dt, firing=firing, input_encoding=input_encoding,
                       input_bits=input_bits, input_scale=input_scale, target=target,
                       time_steps=time_steps, trust_metadata=trust_metadata, nir=nir)
    except NirImportError as exc:
        if where != "<graph>" and not str(exc).startswith(where):
            raise NirImportError(f"{where}: {exc}", node=exc.node) from exc
        raise
    except SakdError as exc:
        raise NirImportError(f"{where}: {exc}") from exc
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, AssertionError,
            ArithmeticError) as exc:  # a damaged graph: values of the wrong kind or shape
        raise NirImportError(f"{where}: the NIR graph is damaged or inconsistent "
                             f"({type(exc).__name__}: {exc})") from exc


def read_nir(source: Any, **kwargs: Any) -> Network:
    """``import_nir(source, **kwargs).network``; for files from others the assumptions are also
    in ``network.metadata["nir_import"]``."""
    return import_nir(source, **kwargs).network


#: what sakd's own metadata must hold (files of sakd 0.1 lack "graph", "digest", "time_steps")
_OWN_KEYS = ("format", "version", "dt", "timing", "target", "input", "output", "populations",
             "projections", "metadata")


def _own_metadata(graph: Any) -> dict[str, Any] | None:
    """The sakd metadata of a file sakd wrote; None for a file from another framework. Present
    but unreadable (damaged JSON, missing keys, a structure that no longer matches the graph) is
    an error, never a silent fall-back to reading the file as a foreign one."""
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    marked = any(isinstance(getattr(n, "metadata", None), dict)
                 and metadata_text(n.metadata.get("generator")) == GENERATOR
                 for n in graph.nodes.values())
    if metadata_text(meta.get("generator")) != GENERATOR and "sakd" not in meta and not marked:
        return None
    how = "pass trust_metadata=False to read it as a file from another framework"
    try:
        data = json.loads(metadata_text(meta["sakd"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise NirImportError(f"the file says sakd wrote it, but its sakd metadata is missing or "
                             f"unreadable ({type(exc).__name__}: {exc}); {how}") from exc
    missing = [k for k in _OWN_KEYS if not isinstance(data, dict) or k not in data]
    if missing or data.get("format") != NIR_FORMAT:
        raise NirImportError(f"the file's sakd metadata is damaged (missing {missing} or not "
                             f"format {NIR_FORMAT!r}); {how}")
    if "graph" in data and data["graph"] != graph_signature(graph.nodes, graph.edges):
        raise NirImportError(f"the graph's nodes or edges differ from the ones sakd wrote (a "
                             f"node or edge was added, removed or changed type after export); "
                             f"re-export it, or {how}")
    return data


def _import(graph: Any, where: str, *, dt: float, firing: str, input_encoding: str | None,
            input_bits: int | None, input_scale: float | None, target: str | TargetSpec,
            time_steps: int | None, trust_metadata: bool, nir: Any) -> NirImport:
    spec = get_target(target)
    unity = spec.decay_unity
    own = _own_metadata(graph) if trust_metadata else None
    notes: list[str] = []
    timing = "layered"
    if own is not None:
        if own.get("version", 0) > NIR_FORMAT_VERSION:
            raise NirImportError(f"written by a newer sakd (sakd-nir {own.get('version')}); "
                                 f"upgrade, or pass trust_metadata=False")
        if dt is not None and float(own["dt"]) != dt:
            notes.append(f"dt = {own['dt']:g} s from the file's sakd metadata (argument {dt:g})")
        dt = float(own["dt"])
        timing = own.get("timing", "layered")
        target = own.get("target", target)
        spec = get_target(target)
    else:
        _check_reset_convention("<graph>", graph.metadata if isinstance(graph.metadata, dict) else {})
    if dt is not None and not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise NirImportError(f"dt must be a positive number of seconds, got {dt!r}")

    # -- node types --------------------------------------------------------------------------
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if kind in REFUSED:
            raise node_error(name, node, REFUSED[kind])
        if kind not in ("Input", "Output", *SPIKING, *INTEGRATING, *LINEAR):
            raise node_error(name, node, "unknown node type; the reader maps Input, Output, "
                              "Affine, Linear, Conv2d, Flatten, SumPool2d, AvgPool2d, Delay, "
                              "LIF, IF, CubaLIF, LI, CubaLI and I")
    order = topological_order(graph)
    inputs = [n for n in order if isinstance(graph.nodes[n], nir.Input)]
    outputs = [n for n in order if isinstance(graph.nodes[n], nir.Output)]
    if len(inputs) != 1:
        raise NirImportError(f"the graph has {len(inputs)} Input nodes; the IR has exactly one input")
    if len(outputs) != 1:
        raise NirImportError(f"the graph has {len(outputs)} Output nodes; the IR has exactly one "
                             f"readout")
    shapes = _shapes(graph, order)
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    succs: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        preds[b].append(a)
        succs[a].append(b)
    in_node, out_node = inputs[0], outputs[0]
    if succs[out_node]:
        raise node_error(out_node, graph.nodes[out_node], "the Output node has outgoing edges")
    if len(preds[out_node]) != 1:
        raise node_error(out_node, graph.nodes[out_node],
                          f"{len(preds[out_node])} edges into Output; the readout is one node")

    if own is None:  # the structure is readable: now the time step
        dt = _resolve_dt(graph, dt, notes, nir)
        if not (math.isfinite(dt) and dt > 0):
            raise NirImportError(f"dt must be a positive number of seconds, got {dt!r}")

    # -- neurons (an LI feeding exactly one neuron, and nothing else, is its synaptic current)
    current_of: dict[str, str] = {}
    for name in order:
        node = graph.nodes[name]
        if isinstance(node, nir.LI) and len(succs[name]) == 1:
            nxt = succs[name][0]
            if (isinstance(graph.nodes[nxt], (nir.IF, nir.I, nir.LIF, nir.LI))
                    and preds[nxt] == [name]):
                current_of[nxt] = name
    neurons: dict[str, _Neuron] = {}
    for name in order:
        node = graph.nodes[name]
        if type(node).__name__ in SPIKING + INTEGRATING and name not in current_of.values():
            neurons[name] = _neuron(graph, name, dt, current_of.get(name))
    readout_feed = preds[out_node][0]
    for name, n in neurons.items():
        if not n.fires and name != readout_feed:
            raise node_error(name, graph.nodes[name], "an integrating neuron (no threshold) "
                              "inside the network: its output is a voltage, the IR's "
                              "populations emit binary spikes; only the readout may integrate")
    spiking_sources = {in_node} | {n for n, x in neurons.items() if x.fires}

    # -- populations -------------------------------------------------------------------------
    plans: dict[str, _PopPlan] = {}
    for name in order:
        if name in neurons:
            n = neurons[name]
            plans[name] = _PopPlan(name, n, shapes[name], "spiking" if n.fires else "readout")
    readout_name: str
    if readout_feed in neurons and not neurons[readout_feed].fires:
        readout_name = readout_feed
    elif readout_feed in neurons:  # spiking neuron into Output: count its spikes
        readout_name = _fresh("readout", graph.nodes)
        plans[readout_name] = _PopPlan(readout_name, None, shapes[readout_feed], "readout",
                                       extra="spike-count readout")
        notes.append(f"'{readout_feed}' spikes into Output: added the readout '{readout_name}' "
                     f"(identity weights 2, du = {unity - 1}, dv = 0) whose v counts its spikes "
                     f"(prediction = argmax of the spike counts)")
    elif readout_feed == in_node:
        raise node_error(out_node, graph.nodes[out_node], "the Input feeds Output directly; "
                          "there is no network to import")
    else:  # a projection into Output: an integrating readout of its output
        readout_name = _fresh(f"{out_node}.readout", graph.nodes)
        plans[readout_name] = _PopPlan(readout_name, None, shapes[readout_feed], "readout",
                                       extra="integrating readout")
        notes.append(f"'{readout_feed}' ({type(graph.nodes[readout_feed]).__name__}) feeds Output "
                     f"directly: added the integrating readout '{readout_name}' (du = "
                     f"{unity - 1}, dv = 0): prediction = argmax of the output summed over time")

    used_bias: dict[str, set[str]] = {}
    for pname, plan in plans.items():
        used = used_bias.setdefault(pname, set())
        if plan.extra == "spike-count readout":
            n = int(np.prod(plan.shape))
            op = LinearOp("dense", np.eye(n), None, (n,), (n,))
            plan.paths.append((readout_feed, op, 0, []))
            continue
        if plan.extra == "integrating readout":
            paths = _paths_into(graph, out_node, preds, spiking_sources)
        else:
            paths = _paths_into(graph, plan.neuron.entry, preds, spiking_sources)
        for path in paths:
            op, delay, syn = _path_op(graph, path, shapes, dt, used, notes)
            if op.out_shape != plan.shape and int(np.prod(op.out_shape)) != int(np.prod(plan.shape)):
                raise NirImportError(f"population '{pname}' {plan.shape}: its input from "
                                     f"'{path.source}' has shape {op.out_shape}", node=pname)
            plan.paths.append((path.source, op, delay, syn))

    return _build(graph, plans, readout_name, neurons, in_node, shapes, own, dt, timing, firing,
                  input_encoding, input_bits, input_scale, spec, notes, where, time_steps)


def _fresh(name: str, taken: Any) -> str:
    cand, i = name, 1
    while cand in taken:
        cand = f"{name}_{i}"
        i += 1
    return cand


def _build(graph: Any, plans: dict[str, _PopPlan], readout_name: str, neurons: dict[str, _Neuron],
           in_node: str, shapes: dict[str, tuple[int, ...]], own: dict[str, Any] | None, dt: float,
           timing: str, firing: str, input_encoding: str | None, input_bits: int | None,
           input_scale: float | None, spec: TargetSpec, notes: list[str], where: str,
           time_steps: int | None) -> NirImport:
    unity = spec.decay_unity
    act = float(1 << spec.act_shift)
    half_w = spec.weight_max // 2

    # -- input ---------------------------------------------------------------------------------
    if own is not None:
        oi = own["input"]
        inp = Input(oi["name"], tuple(shapes[in_node]), oi["encoding"], oi["bits"], oi["scale"])
        q = 1.0  # the graph takes the encoded integers
    else:
        encoding = input_encoding or "spikes"
        if encoding == "spikes":
            inp = Input(in_node, shapes[in_node], "spikes")
            q = 1.0
        elif encoding == "graded":
            bits = int(input_bits or 8)
            scale = float(input_scale) if input_scale else float((1 << (bits - 1)) - 1)
            inp = Input(in_node, shapes[in_node], "graded", bits, scale)
            q = scale
        else:
            raise NirImportError(f"input_encoding must be 'spikes' or 'graded', got {encoding!r}")
    max_x = 1 if inp.encoding == "spikes" else (1 << (inp.bits - 1))

    own_pops = {p["node"]: p for p in own["populations"]} if own else {}
    own_projs = {p["node"]: p for p in own["projections"]} if own else {}
    name_of = {in_node: inp.name}
    for pname in plans:
        name_of[pname] = own_pops[pname]["name"] if pname in own_pops else pname

    taken = set(name_of.values())
    populations: list[Population] = []
    projections: list[tuple[Projection, str, str]] = []  # (projection, source node, target node)
    pop_report: dict[str, Any] = {}
    for pname, plan in plans.items():
        n = plan.neuron
        if n is None:  # an added readout: v sums 64·X per step
            n = _Neuron(pname, pname, "added", False, 1.0, 1.0, 0.0, 1.0, np.zeros(()), None)
        du = round(unity * n.alpha) - 1
        dv = round(unity * n.beta)
        if not 0 <= du <= unity - 1:
            raise NirImportError(f"population '{pname}': dt/tau_syn = {n.alpha:.3g} rounds to "
                                 f"du = {du}, outside 0..{unity - 1} (tau_syn > 4096·dt?)", node=pname)
        g = n.c_v * n.alpha * n.c_in  # synaptic input X -> u per step, in v units
        if n.fires is False and plan.role == "spiking":  # pragma: no cover - excluded above
            raise NirImportError(f"population '{pname}' does not fire", node=pname)
        # biases: from the paths' synapse nodes (through the current) and from v_leak
        bias = np.zeros(plan.shape)
        for _, op, _, _ in plan.paths:
            fb = full_bias(op)
            if fb is not None:
                bias = bias + fb.reshape(plan.shape) * n.c_v * n.c_in
        if n.in_bias:
            bias = bias + n.in_bias * n.c_v * n.c_in
        leak = _fit(n.v_leak, plan.shape, pname) * n.beta
        bias = bias + leak
        if n.alpha < 1.0 and np.any(bias - leak):
            notes.append(f"population '{pname}': a bias passing through the leaky synaptic "
                         f"current (dt/tau_syn = {n.alpha:.3g}) is applied at its steady state")

        effective = []
        for src, op, delay, syn in plan.paths:
            w_eff = op.weight * g / (q if src == in_node else 1.0)
            effective.append((src, op, delay, syn, w_eff))
        theta = n.theta
        limits: dict[str, float] = {}
        if own is not None:
            scale = 1
            limited_by = "sakd file: integer network (scale 1)"
        elif plan.extra == "spike-count readout":
            scale, limited_by = 2, "spike-count readout (weights 2)"
        else:
            max_w = max((float(np.abs(w).max()) for *_, w in effective if w.size), default=0.0)
            limits["weight range"] = 2 * half_w / max_w if max_w > 0 else math.inf
            if theta is not None:
                limits["threshold range"] = spec.vth_max / theta
            for src, _op, _, syn, w in effective:
                if src == in_node and inp.encoding == "graded":
                    rows = float(np.abs(w.reshape(w.shape[0], -1)).sum(1).max())
                    if rows > 0:
                        limits[f"graded input sum ({'/'.join(syn) or src})"] = (
                            spec.max_synaptic_input / (rows * max_x))
            bmax = float(np.abs(bias).max()) if bias.size else 0.0
            if bmax > 0:
                limits["bias range"] = spec.bias_mant_max * (1 << spec.bias_exp_max) / (act * bmax)
            limited_by = min(limits, key=limits.get) if limits else "none"
            scale = largest_even_scale(limits[limited_by], FLOAT_NOISE) if limits else 2
            if not math.isfinite(limits.get(limited_by, math.inf)):
                scale, limited_by = 2, "no weights (scale 2)"
            if scale < 2 and limits[limited_by] >= 1 - 1e-6:
                scale = 1  # odd, but the only integer scale that fits
            if scale < 1:
                raise NirImportError(
                    f"population '{name_of[pname]}': no integer scale >= 1 fits the target "
                    f"({limited_by} allows {limits[limited_by]:.3g}); weights, bias and "
                    f"threshold are too far apart (wrong dt?)", node=pname)

        # weights
        clipped = 0
        sq_err, total = 0.0, 0
        for src, op, delay, syn, w in effective:
            if own is not None:
                meta = own_projs.get(syn[0]) if len(syn) == 1 else None
                exp = int(meta["weight_exp"]) if meta else 0
                w_int = np.rint(w / 2.0 ** exp)
                if np.any(np.abs(w / 2.0 ** exp - w_int) > 1e-3):
                    raise NirImportError(f"sakd file: weights of '{'/'.join(syn)}' are not the "
                                         f"integers sakd writes; pass trust_metadata=False",
                                         node=syn[0] if syn else pname)
            else:
                exp = 0
                w_int = 2.0 * np.rint(w * scale / 2.0)
                bad = (w_int < spec.weight_min) | (w_int > spec.weight_max)
                clipped += int(bad.sum())
                w_int = np.clip(w_int, spec.weight_min, spec.weight_max)
                if w.size and np.abs(w).max() > 0:
                    sq_err += float((((w_int / scale) - w) ** 2).sum() / np.abs(w).max() ** 2)
                total += w.size
            try:
                proj = _projection(op, w_int.astype(np.int64), exp, delay, syn, src, pname,
                                   own_projs, name_of, taken)
            except IRError as exc:
                raise NirImportError(f"projection into '{name_of[pname]}' from "
                                     f"{'/'.join(syn) or src}: {exc}",
                                     node=syn[0] if syn else pname) from exc
            projections.append((proj, src, pname))

        # threshold, bias
        if plan.role == "readout":
            vth = spec.readout_vth
        elif own is not None:
            vth = round(theta)
        elif firing == ">=":
            vth = math.ceil(scale * theta - 1e-9) - 1
        else:
            vth = round(scale * theta)
        b_int = np.rint(bias * act * scale)
        meta = own_pops.get(pname)
        if meta is not None:
            exp = int(meta["bias_exp"])
            mant = b_int / (1 << exp)
            if np.any(mant != np.rint(mant)):
                raise NirImportError(f"sakd file: the bias of '{meta['name']}' does not match its "
                                     f"bias_exp {exp}; pass trust_metadata=False", node=pname)
            mant = _compress_bias(np.rint(mant).astype(np.int64), tuple(meta["bias_shape"]))
            bias_clipped = 0
        else:
            mant, exp, bias_clipped = _quantize_bias(b_int, spec)
            mant = _compress_bias(mant, None)
        try:
            populations.append(Population(
                name=name_of[pname], shape=plan.shape,
                neuron=CubaLif(du=du, dv=dv, vth=vth, bias_mant=mant, bias_exp=exp),
                role=plan.role,
                scale=float(meta["scale"]) if meta else float(scale),
                origin=meta["origin"] if meta else f"nir:{n.kind} '{n.node}'" if plan.neuron
                else f"nir:{plan.extra}"))
        except IRError as exc:
            raise NirImportError(f"population '{name_of[pname]}': {exc}", node=pname) from exc
        pop_report[name_of[pname]] = {
            "nir_node": n.node if plan.neuron else None, "nir_type": n.kind if plan.neuron else plan.extra,
            "du": du, "dt_over_tau_syn": n.alpha, "du_exact": abs(unity * n.alpha - (du + 1)) < 1e-3,
            "dv": dv, "dt_over_tau_mem": n.beta, "dv_exact": abs(unity * n.beta - dv) < 1e-3,
            "gain": g, "theta": theta, "vth": vth, "scale": scale, "limited_by": limited_by,
            "weights": total, "weights_clipped": clipped, "biases_clipped": bias_clipped,
            "weight_rms_error": math.sqrt(sq_err / total) if total else 0.0,
        }
        if not pop_report[name_of[pname]]["du_exact"] or not pop_report[name_of[pname]]["dv_exact"]:
            notes.append(f"population '{name_of[pname]}': decays rounded to 1/{unity} "
                         f"(du + 1 = {unity * n.alpha:.4g} -> {du + 1}, dv = {unity * n.beta:.4g} "
                         f"-> {dv})")

    # -- latency: delays ---------------------------------------------------------------------
    own_delay = {p["name"]: int(p["delay"]) for p in own["projections"]} if own else {}
    latency: dict[str, int] = {in_node: 0}
    final: list[Projection] = []
    by_target: dict[str, list[tuple[Projection, str]]] = {}
    for proj, src, tgt in projections:
        by_target.setdefault(tgt, []).append((proj, src))
    for pname in plans:  # plans are in topological order
        incoming = by_target.get(pname, [])
        if not incoming:
            raise NirImportError(f"population '{name_of[pname]}' has no input", node=pname)
        if timing == "lava" or (own and all(p.name in own_delay for p, _ in incoming)):
            lat = {latency[src] + 1 + (own_delay.get(p.name, p.delay) if own else p.delay)
                   for p, src in incoming}
            if len(lat) > 1:
                raise NirImportError(f"population '{name_of[pname]}': its inputs arrive with "
                                     f"different latencies {sorted(lat)} (timing {timing!r})",
                                     node=pname)
            latency[pname] = lat.pop()
        else:
            latency[pname] = max(latency[src] + 1 + p.delay for p, src in incoming)
        for p, src in incoming:
            delay = latency[pname] - latency[src] - 1
            if delay > spec.max_delay:
                raise NirImportError(f"projection '{p.name}' needs a delay of {delay} steps; the "
                                     f"target allows {spec.max_delay}", node=p.name)
            final.append(_replace_delay(p, delay))

    # keep our own files' projection order
    if own:
        rank = {p["name"]: i for i, p in enumerate(own["projections"])}
        final.sort(key=lambda p: rank.get(p.name, len(rank)))
        prank = {p["name"]: i for i, p in enumerate(own["populations"])}
        populations.sort(key=lambda p: prank.get(p.name, len(prank)))
    nir_meta = metadata_text(graph.metadata if isinstance(graph.metadata, dict) else {})
    assumptions = {
        "source": where, "own_file": own is not None, "dt": dt,
        "integration": "forward Euler; current first, then voltage with the new current",
        "spike_rule": firing if own is None else ">",
        "timing": timing, "input": {"name": inp.name, "encoding": inp.encoding, "bits": inp.bits,
                                    "scale": inp.scale},
        "populations": pop_report, "notes": notes,
    }
    if own is not None:
        metadata = dict(own.get("metadata", {}))
        # files of sakd 0.1 kept T in the network metadata, newer ones beside it
        steps = own["time_steps"] if "time_steps" in own else metadata.pop("time_steps", None)
        if time_steps is None:
            time_steps = steps
    else:
        nir_meta.pop("sakd", None)
        metadata = {"source": "nir", "nir_metadata": nir_meta, "nir_import": assumptions}
    try:
        network = Network(inp, tuple(populations), tuple(final), target=spec, metadata=metadata,
                          time_steps=time_steps)
    except IRError as exc:
        raise NirImportError(f"the imported network is invalid: {exc}", node=exc.node) from exc
    if own is not None and own.get("digest") and own["digest"] != network.digest():
        raise NirImportError(f"{where}: the network does not match the digest sakd recorded when "
                             f"it wrote the file: it was damaged or edited (a node added, removed "
                             f"or changed); re-export it, or pass trust_metadata=False to read it "
                             f"as a file from another framework")
    return NirImport(network, assumptions)


def _fit(arr: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A neuron parameter as an array of the population's shape (a scalar, that shape, or the
    same number of values flattened)."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.size == 1:
        return np.full(shape, float(arr.reshape(-1)[0]))
    if arr.size == int(np.prod(shape)):
        return arr.reshape(shape)
    raise NirImportError(f"NIR node '{name}': a parameter of shape {arr.shape} does not fit its "
                         f"input of shape {shape}", node=name)


def _compress_bias(mant: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    """The smallest bias form: a scalar, per channel of the first axis, or the full shape;
    ``shape``: the form to use (our own files)."""
    if shape is not None:
        if shape == ():
            return np.asarray(mant.reshape(-1)[0] if mant.size else 0)
        if len(shape) == 1 and mant.ndim > 1:
            return mant.reshape(mant.shape[0], -1)[:, 0]
        return mant
    flat = mant.reshape(-1)
    if flat.size == 0 or np.all(flat == flat[0]):
        return np.asarray(flat[0] if flat.size else 0)
    if mant.ndim > 1:
        per = mant.reshape(mant.shape[0], -1)
        if np.all(per == per[:, :1]):
            return per[:, 0].copy()
    return mant


def _quantize_bias(b_int: np.ndarray, spec: TargetSpec) -> tuple[np.ndarray, int, int]:
    """``bias_mant << bias_exp ≈ b_int`` (the effective bias in v_int units), by the target's
    rule (``TargetSpec.split_bias``)."""
    if not np.any(b_int):
        return np.zeros(b_int.shape, np.int64), 6, 0
    return spec.split_bias(b_int)


def _projection(op: LinearOp, w_int: np.ndarray, exp: int, delay: int, syn: list[str], src: str,
                tgt: str, own_projs: dict[str, Any], name_of: dict[str, str],
                taken: set[str]) -> Projection:
    meta = own_projs.get(syn[0]) if len(syn) == 1 else None
    if meta is not None:
        name = meta["name"]
    else:  # the synapse node's name; made unique where one node feeds several populations
        base = "+".join(syn) if syn else f"{name_of.get(src, src)}->{name_of.get(tgt, tgt)}"
        name = base
        if name in taken:
            name = f"{base}[{name_of.get(src, src)}->{name_of.get(tgt, tgt)}]"
        name = _fresh(name, taken)
    taken.add(name)
    common = {"name": name, "source": name_of.get(src, src), "target": name_of.get(tgt, tgt),
                  "delay": delay}
    if op.kind == "dense":
        return Projection(kind="dense", weight=w_int.reshape(w_int.shape[0], -1), weight_exp=exp,
                          **common)
    groups = op.groups
    weight = w_int
    if meta is not None and int(meta["groups"]) > 1 and groups == 1:
        groups = int(meta["groups"])
        weight = _shrink_groups(w_int, groups, name)
    return Projection(kind="conv2d", weight=weight, stride=op.stride, padding=op.padding,
                      dilation=op.dilation, groups=groups, **common)


def _shrink_groups(weight: np.ndarray, groups: int, name: str) -> np.ndarray:
    """Inverse of ``_expand_groups`` (our own files): the diagonal blocks, checking the rest is 0."""
    cout, cin = weight.shape[:2]
    cout_g, cin_g = cout // groups, cin // groups
    out = np.empty((cout, cin_g) + weight.shape[2:], weight.dtype)
    check = weight.copy()
    for g in range(groups):
        rows, cols = slice(g * cout_g, (g + 1) * cout_g), slice(g * cin_g, (g + 1) * cin_g)
        out[rows] = weight[rows, cols]
        check[rows, cols] = 0
    if np.any(check):
        raise NirImportError(f"sakd file: the kernel of '{name}' is not block-diagonal for "
                             f"{groups} groups; pass trust_metadata=False", node=name)
    return out


def _replace_delay(proj: Projection, delay: int) -> Projection:
    if proj.delay == delay:
        return proj
    return Projection(name=proj.name, source=proj.source, target=proj.target, kind=proj.kind,
                      weight=proj.weight, weight_exp=proj.weight_exp, delay=delay,
                      stride=proj.stride, padding=proj.padding, dilation=proj.dilation,
                      groups=proj.groups)


__all__ = ["NirImport", "import_nir", "load_graph", "read_nir", "topological_order"]
