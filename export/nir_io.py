"""NIR (Neuromorphic Intermediate Representation, ``nir`` 1.0.x) writer and reader for the IR.

Writing (``ir_to_nir``, ``write_nir``) turns any IR network into a NIR graph that stands on its
own; reading (``import_nir``, ``read_nir``) turns a NIR graph (ours, or one exported by
spikingjelly, snnTorch, Norse, sinabs...) back into an IR network, quantizing float weights.

Conventions (shared/spec/fixed-point.md §3)
-------------------------------------------

**Time.** NIR is continuous-time. Both directions use **forward Euler at a time step dt** and,
for the current-based neuron, update the current first and then the voltage with the new current:

    I[t] = I[t-1] + (dt/τ_syn)·(−I[t-1] + w_in·X[t])
    v[t] = v[t-1] + (dt/τ_mem)·(v_leak − v[t-1] + r·I[t]);   spike iff v[t] > v_threshold; v ← v_reset

The writer uses ``dt = 1e-4`` (``DEFAULT_DT``), the convention of spikingjelly's and snnTorch's
exporters and of NIR's Lava examples, so that their importers read our files at their defaults.
(Only τ/dt matters; one dt across writer, reader and peers avoids a silent factor of 10.)

**Loihi neuron → NIR** (fixed-point.md §3.3): dt/τ_syn = (du + 1)/4096, dt/τ_mem = dv/4096,
w_in = τ_syn/dt, r = τ_mem/dt, v_leak = 0, v_reset = 0. Then Euler gives exactly Lava's
recursion ``u = (1 − (du+1)/4096)·u + X``, ``v = (1 − dv/4096)·v + u`` (without the truncation
toward zero of each decay product). The node used for each population is the faithful one:

| population | NIR node(s) |
|---|---|
| spiking, dv > 0 | ``CubaLIF`` |
| spiking, dv = 0, du = 4095 | ``IF(r = 1/dt)`` (τ_mem = ∞ has no finite CubaLIF form) |
| spiking, dv = 0, du < 4095 | ``LI(τ_syn, r = 1/α)`` → ``IF`` (the LI is the synaptic current) |
| readout, dv > 0 | ``CubaLI`` (never fires) |
| readout, dv = 0, du = 4095 | ``I(r = 1/dt)`` (integrator: v sums its input) |
| readout, dv = 0, du < 4095 | ``LI`` → ``I`` |

**Units: the graph is the integer network.** Currents and voltages are in *weight units*:
``I = u_int / 64`` and ``v = v_int / 64`` (Lava's ``act_shift = 6``). So the Affine/Linear/Conv2d
weights are the IR's integer weights (times ``2^weight_exp`` for dense projections; the floor of a
negative exponent is not represented), ``v_threshold = vth`` (an integer: ``v_int > vth << 6``
⟺ ``v > vth``), and a population's bias ``bias_mant << bias_exp`` enters as ``(bias_mant <<
bias_exp) / 64`` per step, exactly (a power-of-two division). The graph's input is the encoded
integer input ``x_int`` of the IR (``clip(round(x · input.scale))`` for a graded input, recorded
in the metadata). A population's float scale S (``v_int ≈ 64·S·V_float``) is in the metadata:
divide by S to get the float SNN's units.

**Bias.** NIR's neurons have no bias input: the bias goes into the ``bias`` of one incoming
Affine/Conv2d node (the first projection into the population; a per-neuron bias of a
convolutional population, which Conv2d's per-channel bias cannot hold, goes into ``v_leak``
instead: ``β·v_leak`` per step). With du < 4095 the bias goes into ``v_leak`` (an Affine bias
would be filtered by the synaptic current); with du < 4095 and dv = 0 a nonzero bias has no exact
NIR form and is refused.

**Timing.** NIR edges are instantaneous: a NIR time step runs the graph from input to output
(snnTorch, spikingjelly, Norse and nirtorch execute it so). The IR adds one step per synapse and
balances converging paths with projection delays; shifting each population by its latency ℓ_p
maps one onto the other exactly (population p's window ``1 + ℓ_p .. T + ℓ_p`` ↔ NIR steps 1..T),
so in the default ``timing="layered"`` the IR's delays are implicit: **no Delay nodes**, and the
reader re-derives them by balancing. (A ``Delay`` of d·dt on a residual shortcut would put it one
step out of line in every layered backend.) ``timing="lava"`` writes the IR's delays as ``Delay``
nodes of ``delay·dt`` after each projection with delay > 0, for backends that add one step per
synapse node as Lava's Dense/Conv do; the reader then takes them literally.

**Other NIR 1.0.8 quirks.** ``Conv2d``'s type inference uses ``Cin/groups`` as the input's
channels, so a grouped convolution fails ``nir.read`` with type checking: grouped convolutions
are written with ``groups = 1`` and a block-diagonal kernel (exact). A dense projection from a
(C,H,W) source reads it through a ``Flatten(start_dim=0)`` node (C,H,W order, as the IR).

**Metadata** (advisory per NIR; the graph stands on its own): ``generator = "sakd"``, ``dt``,
``timing``, ``units`` and ``sakd`` (JSON: the IR's names, scales, origins, bias exponents, groups,
delays, input encoding, target and network metadata). The reader uses it **only for our own
files**, for what the equations cannot give back (names, scales, origins, the bias_exp split,
groups, non-minimal delays, the input encoding and the metadata), so that reading our own file
returns a network that ``equals`` the original. ``trust_metadata=False`` reads it like any file.

Reading files from others
-------------------------

``import_nir(path_or_graph, dt=1e-4, ...)`` reads the graph by the equations above at the given
dt. spikingjelly and snnTorch write for dt = 1e-4 (``r = τ/dt``; IF with ``r = 1/dt``); sinabs
writes for dt = 1 (IF with ``r = 1``): pass ``dt=1`` for sinabs files. Supported: ``Input``,
``Output``, ``Affine``, ``Linear``, ``Conv2d``, ``Flatten``, ``SumPool2d``/``AvgPool2d`` (folded
into the adjacent projection; on their own they become a depthwise projection), ``Delay``,
neurons ``LIF``, ``IF``, ``CubaLIF`` (spiking) and ``LI``, ``CubaLI``, ``I`` (only as the readout,
or an ``LI`` as the synaptic current of the next neuron), and converging edges (summed). A chain
of linear nodes between two neurons becomes one projection (composed exactly; conv structure is
kept for pool+conv, otherwise a dense matrix up to 2^24 entries).

- Per population: α = dt/τ_syn (1 without a current state) → ``du = round(4096 α) − 1``;
  β = dt/τ_mem → ``dv = round(4096 β)`` (0 for IF/I); the gain g from the synaptic input to v per
  step (LIF: β·r; IF: dt·r; CubaLIF: α·w_in·β·r). Decays are rounded to 1/4096 (reported).
- Float weights get one integer scale S per population, as the exporter does
  (sakd.export.quantize): the largest even S with every ``|S·g·W| ≤ 254``, ``S·θ ≤ 2^17 − 1``,
  (graded input) the worst synaptic sum within 2^17 − 1, and the bias within range;
  ``W_int = 2·round(S·g·W/2)``, ``vth = round(S·θ)``, bias ``≈ 64·S·(g·b + β·v_leak)``.
- Spike rule: NIR's ``v > θ`` is Lava's strict ``>``, kept by default. ``firing=">="`` reads the
  file as its source framework meant it (spikingjelly and sinabs fire on ``v ≥ θ``):
  ``vth = ceil(S·θ) − 1``, exact when v moves in multiples of 64 (IF with integer weights).
- Readout: an integrating node (``LI``/``CubaLI``/``I``) before ``Output`` becomes the readout; a
  spiking neuron before ``Output`` keeps its spikes and gets a spike-count readout (identity
  weights 2, du = 4095, dv = 0: argmax of the spike counts); a projection straight into
  ``Output`` becomes an integrating readout (argmax of the summed output).
- Not representable, refused with :class:`NirImportError` naming the node: ``Threshold``,
  ``Scale``, ``Conv1d``, nested graphs (recurrent layers), recurrent edges, unknown nodes,
  ``v_reset ≠ 0``, non-uniform τ/θ/r/w_in, τ < dt (Euler unstable), a reset by subtraction
  recorded in metadata, an integrating node inside the network.
- A bias that passes through a leaky synaptic current (α < 1) is applied at its steady-state
  value (reported): the IR adds the bias to v directly.

The network's ``metadata["nir_import"]`` (foreign files) and ``NirImport.assumptions`` say what
was assumed: dt, spike rule, timing, input encoding, rounded decays, scales, clipped weights.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sakd.hardware.atomic import atomic_path
from sakd.hardware.ir import (
    Input,
    IRError,
    Network,
    Population,
    Projection,
    conv2d_output_shape,
)
from sakd.hardware.target import TargetSpec, get_target

#: the writer's time step (seconds) and the reader's default: spikingjelly's and snnTorch's
DEFAULT_DT = 1e-4
GENERATOR = "sakd"
NIR_FORMAT = "sakd-nir"
NIR_FORMAT_VERSION = 1
TIMINGS = ("layered", "lava")
FIRING_RULES = (">", ">=")
#: largest dense matrix (entries) the reader builds when a chain cannot stay a convolution
MAX_DENSE_ENTRIES = 1 << 24

UNITS = ("integer network: weights are the IR's integer weights; currents and voltages are "
         "u_int/64 and v_int/64; v_threshold = vth; an Affine/Conv2d bias (or beta*v_leak) is "
         "(bias_mant << bias_exp)/64 per step; the input is the encoded integer input")


class NirExportError(ValueError):
    """An IR network that has no exact NIR form; the message names the node and the reason."""


class NirImportError(ValueError):
    """A NIR graph (or file) that does not map onto the IR; ``node`` names the NIR node."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


class _Names:
    """NIR node names: the IR's names where possible (HDF5 forbids '/'), unique."""

    def __init__(self, reserved: Iterable[str]) -> None:
        self.used: set[str] = set()
        self.reserved = {self._clean(n) for n in reserved}

    @staticmethod
    def _clean(name: str) -> str:
        name = name.replace("/", "|")
        return name if name not in ("", ".") else f"_{name}"

    def take(self, name: str, own: bool = False) -> str:
        """A unique name near ``name``; ``own``: the IR node's own name (reserved for it)."""
        base = self._clean(name)
        cand, i = base, 1
        while cand in self.used or (not own and cand in self.reserved):
            cand = f"{base}_{i}"
            i += 1
        self.used.add(cand)
        return cand


def _f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _expand_groups(weight: np.ndarray, groups: int) -> np.ndarray:
    """(Cout, Cin/g, kh, kw) grouped kernel → (Cout, Cin, kh, kw) block-diagonal kernel."""
    if groups == 1:
        return weight
    cout, cin_g, kh, kw = weight.shape
    cout_g = cout // groups
    full = np.zeros((cout, cin_g * groups, kh, kw), dtype=weight.dtype)
    for g in range(groups):
        full[g * cout_g:(g + 1) * cout_g, g * cin_g:(g + 1) * cin_g] = weight[g * cout_g:(g + 1) * cout_g]
    return full


def _channel_bias(pop: Population) -> np.ndarray | None:
    """The effective bias per channel of the first axis when it is constant over the rest of
    the shape (else None)."""
    full = pop.effective_bias()
    if full.ndim == 1:
        return full
    flat = full.reshape(full.shape[0], -1)
    return flat[:, 0].copy() if np.all(flat == flat[:, :1]) else None


def ir_to_nir(network: Network, *, dt: float = DEFAULT_DT, timing: str = "layered") -> Any:
    """The NIR graph of ``network`` (see the module docstring for units and timing).

    Raises :class:`NirExportError` naming the node for the few IR features without an exact NIR
    form (a nonzero bias with du < 4095 and dv = 0; a dense projection into a (C,H,W)
    population)."""
    import nir

    if not isinstance(network, Network):
        raise TypeError(f"ir_to_nir needs a Network, got {type(network).__name__}")
    if timing not in TIMINGS:
        raise ValueError(f"timing must be one of {TIMINGS}, got {timing!r}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
    spec = network.target_spec
    unity = spec.decay_unity
    act = float(1 << spec.act_shift)
    names = _Names([network.input.name, *(p.name for p in network.populations),
                    *(p.name for p in network.projections)])
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []

    inp = network.input
    inp_node = names.take(inp.name, own=True)
    nodes[inp_node] = nir.Input(input_type={"input": np.array(inp.shape)})
    exit_of: dict[str, str] = {inp.name: inp_node}  # IR node -> NIR node emitting its output
    entry_of: dict[str, str] = {}  # population -> NIR node its projections feed
    pop_meta: list[dict[str, Any]] = []

    # bias placement: per population, the projection whose Affine/Conv2d carries the bias
    bias_proj: dict[str, str] = {}
    v_leak_bias: dict[str, np.ndarray] = {}
    for pop in network.populations:
        bias = pop.effective_bias()
        if not np.any(bias):
            continue
        incoming = network.projections_into(pop.name)
        if pop.du != unity - 1:
            if pop.dv == 0:
                raise NirExportError(
                    f"population '{pop.name}': a nonzero bias with du = {pop.du} < {unity - 1} "
                    f"and dv = 0 has no exact NIR form (an Affine bias would pass through the "
                    f"leaky synaptic current; a non-leaky neuron has no v_leak)")
            v_leak_bias[pop.name] = bias
            continue
        per_channel = _channel_bias(pop)
        ordered = sorted(incoming, key=lambda p: p.delay)  # a delayed bias would start late
        choice = next((p for p in ordered if p.kind == "dense" or per_channel is not None), None)
        if choice is not None:
            bias_proj[pop.name] = choice.name
        elif pop.dv > 0:
            v_leak_bias[pop.name] = bias
        else:
            raise NirExportError(
                f"population '{pop.name}': a per-neuron bias on a population fed only by "
                f"convolutions, with dv = 0: Conv2d's bias is per channel and an IF has no "
                f"v_leak; no exact NIR form")

    for pop in network.populations:
        shape = pop.shape
        alpha = (pop.du + 1) / unity
        beta = pop.dv / unity
        tau_syn = dt / alpha
        v_leak = np.zeros(shape)
        if pop.name in v_leak_bias:  # β·v_leak per step = bias/64
            v_leak = v_leak_bias[pop.name] / act / beta

        def full(value: float, shape: tuple[int, ...] = shape) -> np.ndarray:
            return _f32(np.full(shape, value))

        chain: list[tuple[str, Any]] = []
        if pop.dv == 0 and pop.du != unity - 1:  # the synaptic current as an LI stage
            chain.append((f"{pop.name}.current",
                          nir.LI(tau=full(tau_syn), r=full(1.0 / alpha), v_leak=full(0.0))))
        if pop.is_readout:
            if pop.dv > 0:
                tau_mem = dt / beta
                chain.append((pop.name, nir.CubaLI(
                    tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / dt),
                    v_leak=_f32(v_leak), w_in=full(tau_syn / dt))))
            else:
                chain.append((pop.name, nir.I(r=full(1.0 / dt))))
        elif pop.dv > 0:
            tau_mem = dt / beta
            chain.append((pop.name, nir.CubaLIF(
                tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / dt),
                v_leak=_f32(v_leak), v_threshold=full(float(pop.vth)), v_reset=full(0.0),
                w_in=full(tau_syn / dt))))
        else:
            chain.append((pop.name, nir.IF(r=full(1.0 / dt), v_threshold=full(float(pop.vth)),
                                           v_reset=full(0.0))))
        chain_names = []
        for name, node in chain:
            nname = names.take(name, own=name == pop.name)
            nodes[nname] = node
            chain_names.append(nname)
        for a, b in itertools.pairwise(chain_names):
            edges.append((a, b))
        entry_of[pop.name] = chain_names[0]
        exit_of[pop.name] = chain_names[-1]
        pop_meta.append({"name": pop.name, "node": chain_names[-1], "entry": chain_names[0],
                         "role": pop.role, "scale": pop.scale, "origin": pop.origin,
                         "bias_exp": pop.bias_exp, "bias_shape": list(pop.bias_mant.shape),
                         "bias_in": "affine" if pop.name in bias_proj else
                         ("v_leak" if pop.name in v_leak_bias else "none")})

    flatten_of: dict[str, str] = {}
    proj_meta: list[dict[str, Any]] = []
    for proj in network.projections:
        src_shape = network.source_shape(proj.source)
        pop = network.population(proj.target)
        src_node = exit_of[proj.source]
        carries_bias = bias_proj.get(pop.name) == proj.name
        if proj.kind == "dense":
            if len(pop.shape) != 1:
                raise NirExportError(
                    f"projection '{proj.name}': a dense projection into the {len(pop.shape)}-D "
                    f"population '{pop.name}' {pop.shape}: NIR has no unflatten node")
            weight = _f32(proj.weight * 2.0 ** proj.weight_exp)
            if len(src_shape) != 1:
                if proj.source not in flatten_of:
                    fname = names.take(f"{proj.source}.flatten")
                    nodes[fname] = nir.Flatten(input_type={"input": np.array(src_shape)},
                                               start_dim=0, end_dim=-1)
                    edges.append((src_node, fname))
                    flatten_of[proj.source] = fname
                src_node = flatten_of[proj.source]
            if carries_bias:
                bias = np.broadcast_to(pop.effective_bias().reshape(-1) / act, (weight.shape[0],))
                node = nir.Affine(weight=weight, bias=_f32(bias))
            else:
                node = nir.Linear(weight=weight)
        else:
            bias = np.zeros(proj.weight.shape[0])
            if carries_bias:
                bias = np.broadcast_to(_channel_bias(pop) / act, bias.shape)
            node = nir.Conv2d(
                input_shape=tuple(int(d) for d in src_shape[1:]),
                weight=_f32(_expand_groups(proj.weight, proj.groups)),
                stride=tuple(proj.stride), padding=tuple(proj.padding),
                dilation=tuple(proj.dilation), groups=1, bias=_f32(bias))
        pname = names.take(proj.name, own=True)
        nodes[pname] = node
        edges.append((src_node, pname))
        last = pname
        if timing == "lava" and proj.delay > 0:
            dname = names.take(f"{proj.name}.delay")
            nodes[dname] = nir.Delay(delay=_f32(np.full(pop.shape, proj.delay * dt)))
            edges.append((pname, dname))
            last = dname
        edges.append((last, entry_of[pop.name]))
        proj_meta.append({"name": proj.name, "node": pname, "source": proj.source,
                          "target": proj.target, "kind": proj.kind, "groups": proj.groups,
                          "weight_exp": proj.weight_exp, "delay": proj.delay})

    out_node = names.take("output")
    nodes[out_node] = nir.Output(output_type={"output": np.array(network.readout.shape)})
    edges.append((exit_of[network.readout.name], out_node))

    sakd_meta = {
        "format": NIR_FORMAT, "version": NIR_FORMAT_VERSION, "dt": dt, "timing": timing,
        "target": network.target,
        "input": {"name": inp.name, "node": inp_node, "shape": list(inp.shape),
                  "encoding": inp.encoding, "bits": inp.bits, "scale": inp.scale},
        "output": out_node, "populations": pop_meta, "projections": proj_meta,
        "latency": network.latency, "metadata": network.metadata,
    }
    metadata = {
        "generator": GENERATOR, "dt": float(dt), "timing": timing, "units": UNITS,
        "integration": "forward Euler; current first, then voltage with the new current",
        "spike_rule": "v > v_threshold (strict, as Lava); v <- v_reset = 0; the current is kept",
        "sakd": json.dumps(sakd_meta, sort_keys=True),
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=True)


def write_nir(network: Network, path: str | os.PathLike[str], *, dt: float = DEFAULT_DT,
              timing: str = "layered") -> Path:
    """Write ``network`` as a NIR file (``nir.write``, gzip) atomically. Returns the path."""
    import nir

    graph = ir_to_nir(network, dt=dt, timing=timing)
    path = Path(path)
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
    return path


# ---------------------------------------------------------------------------------------------
# reading: the graph
# ---------------------------------------------------------------------------------------------

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


def _node_error(name: str, node: Any, why: str) -> NirImportError:
    return NirImportError(f"NIR node '{name}' ({type(node).__name__}): {why}", node=name)


def _load(source: Any) -> tuple[Any, str]:
    import nir

    if isinstance(source, nir.NIRGraph):
        return source, "<graph>"
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such NIR file")
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


def _metadata_text(value: Any) -> Any:
    """NIR metadata as JSON-able values (numpy scalars/arrays, bytes)."""
    if isinstance(value, dict):
        return {str(k): _metadata_text(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_metadata_text(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _check_reset_convention(name: str, meta: Any, node: Any = None) -> None:
    """Refuse a reset by subtraction that the producer recorded in metadata (NIR has no form
    for it, so the neuron equations alone would silently change the network)."""
    if not isinstance(meta, dict):
        return
    for key, value in meta.items():
        text = _metadata_text(value)
        if "reset" in str(key).lower() and isinstance(text, str):
            low = text.lower()
            if "sub" in low or "soft" in low:
                what = f"NIR node '{name}' ({type(node).__name__})" if node is not None else "the graph"
                raise NirImportError(
                    f"{what}: metadata {key!r} = {text!r} records a reset by subtraction; NIR "
                    f"(and the IR) reset v to v_reset, so the file would compute something else",
                    node=name if node is not None else None)


def _topological(graph: Any) -> list[str]:
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


def _arr(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _uniform(name: str, node: Any, what: str, value: Any) -> float:
    arr = _arr(value)
    if arr.size == 0:
        raise _node_error(name, node, f"{what} is empty")
    first = float(arr.reshape(-1)[0])
    if not np.all(np.isfinite(arr)):
        raise _node_error(name, node, f"{what} holds NaN or infinite values")
    if not np.allclose(arr, first, rtol=1e-6, atol=0.0):
        raise _node_error(name, node, f"{what} differs between neurons (min {arr.min():g}, max "
                          f"{arr.max():g}); an IR population has one value")
    return first


def _pair(value: Any, name: str, node: Any, what: str) -> tuple[int, int]:
    arr = np.asarray(value).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or np.any(arr != np.round(arr.astype(np.float64))):
        raise _node_error(name, node, f"{what} {value!r} is not an integer or a pair")
    return int(arr[0]), int(arr[1])


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
                raise _node_error(name, node, f"input shape {shape} is not a list of positive sizes")
            out[name] = shape
            continue
        ins = [out[p] for p in preds[name]]
        if not ins:
            raise _node_error(name, node, "has no input edge (only the Input node may be a root)")
        if any(s != ins[0] for s in ins):
            detail = ", ".join(f"'{p}' {out[p]}" for p in preds[name])
            raise _node_error(name, node, f"converging inputs of different shapes: {detail}")
        shape = ins[0]
        if isinstance(node, (nir.Affine, nir.Linear)):
            w = np.asarray(node.weight)
            if w.ndim != 2:
                raise _node_error(name, node, f"weight of shape {w.shape} is not (out, in)")
            if shape != (w.shape[1],):
                hint = " (a Flatten node is missing?)" if len(shape) > 1 else ""
                raise _node_error(name, node, f"reads an input of shape {shape}, its weight "
                                  f"{w.shape} needs ({w.shape[1]},){hint}")
            out[name] = (int(w.shape[0]),)
        elif isinstance(node, nir.Conv2d):
            w = np.asarray(node.weight)
            if w.ndim != 4 or len(shape) != 3:
                raise _node_error(name, node, f"weight {w.shape} on input {shape}: a Conv2d "
                                  f"needs a (Cout, Cin/groups, kh, kw) weight and a (C, H, W) input")
            conv = _conv_params(name, node, shape)
            out[name] = conv2d_output_shape(shape, w.shape, conv["stride"], conv["padding"],
                                            conv["dilation"])
        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            if len(shape) != 3:
                raise _node_error(name, node, f"pools a {len(shape)}-D input {shape}; needs (C, H, W)")
            k = _pair(node.kernel_size, name, node, "kernel_size")
            s = _pair(node.stride, name, node, "stride")
            p = _pair(node.padding, name, node, "padding")
            out[name] = conv2d_output_shape(shape, (shape[0], 1, *k), s, p)
        elif isinstance(node, nir.Flatten):
            out[name] = (int(np.prod(shape)),)
        else:  # neurons, Delay, Output keep the shape
            out[name] = shape
    return out


def _conv_params(name: str, node: Any, in_shape: tuple[int, ...]) -> dict[str, Any]:
    w = np.asarray(node.weight)
    stride = _pair(node.stride, name, node, "stride")
    dilation = _pair(node.dilation, name, node, "dilation")
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
            raise _node_error(name, node, f"padding {padding!r} with stride {stride} and kernel "
                              f"{w.shape[2:]} has no symmetric integer padding")
    else:
        padding = _pair(padding, name, node, "padding")
    groups = int(np.asarray(node.groups).reshape(-1)[0])
    if groups < 1 or in_shape[0] % groups or in_shape[0] // groups != w.shape[1] or w.shape[0] % groups:
        raise _node_error(name, node, f"weight {w.shape} with groups {groups} does not fit an "
                          f"input of {in_shape[0]} channels")
    return {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


# ---------------------------------------------------------------------------------------------
# reading: linear chains → projections
# ---------------------------------------------------------------------------------------------


@dataclass
class _Op:
    """A linear map on one sample: a convolution (PyTorch cross-correlation) or a dense matrix
    over the C,H,W-flattened input. ``pool``: (kh, kw) when this is a pooling with stride ==
    kernel and no padding (eligible for exact conv composition)."""

    kind: str
    weight: np.ndarray
    bias: np.ndarray | None
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    pool: tuple[int, int] | None = None


def _conv_matrix(op: _Op) -> np.ndarray:
    """The dense (n_out, n_in) matrix of a convolution op (float64)."""
    import torch
    import torch.nn.functional as F

    n_in, n_out = int(np.prod(op.in_shape)), int(np.prod(op.out_shape))
    if n_in * n_out > MAX_DENSE_ENTRIES:
        raise ValueError(f"a {n_out} x {n_in} dense matrix exceeds {MAX_DENSE_ENTRIES} entries")
    eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *op.in_shape)
    out = F.conv2d(eye, torch.as_tensor(op.weight, dtype=torch.float64), None, op.stride,
                   op.padding, op.dilation, op.groups)
    return out.reshape(n_in, n_out).T.numpy()


def _full_bias(op: _Op) -> np.ndarray | None:
    """The bias as a flat (n_out,) vector."""
    if op.bias is None:
        return None
    if op.kind == "dense":
        return op.bias.reshape(-1)
    return np.repeat(op.bias, int(np.prod(op.out_shape[1:])))


def _as_dense(op: _Op) -> _Op:
    if op.kind == "dense":
        return op
    return _Op("dense", _conv_matrix(op), _full_bias(op), op.in_shape, op.out_shape)


def _compose(a: _Op, b: _Op) -> _Op:
    """``b ∘ a`` (a first), exactly; a convolution where the pair is pooling + convolution."""
    if a.kind == "conv" and b.kind == "conv":
        c = _compose_conv(a, b)
        if c is not None:
            return c
    da, db = _as_dense(a), _as_dense(b)
    weight = db.weight @ da.weight
    bias = None
    if da.bias is not None or db.bias is not None:
        bias = np.zeros(weight.shape[0])
        if da.bias is not None:
            bias = bias + db.weight @ da.bias
        if db.bias is not None:
            bias = bias + db.bias
    return _Op("dense", weight, bias, a.in_shape, b.out_shape)


def _compose_conv(a: _Op, b: _Op) -> _Op | None:
    """Pooling (stride = kernel, no padding) then conv, or conv then such a pooling, as one
    convolution; None when the pair has no exact convolution form."""
    if a.pool is not None and b.dilation == (1, 1):
        kh, kw = a.pool
        factor = a.weight.reshape(-1)[0]
        h, w = a.in_shape[1:]
        if b.padding != (0, 0) and (h % kh or w % kw):
            return None  # padded rows of the pooled map would be real rows of the input
        weight = np.repeat(np.repeat(b.weight, kh, axis=2), kw, axis=3) * factor
        stride = (b.stride[0] * kh, b.stride[1] * kw)
        padding = (b.padding[0] * kh, b.padding[1] * kw)
        op = _Op("conv", weight, b.bias, a.in_shape, b.out_shape, stride, padding, (1, 1), b.groups)
    elif b.pool is not None and a.dilation == (1, 1):
        kh, kw = b.pool
        factor = b.weight.reshape(-1)[0]
        sh, sw = a.stride
        cout, cin_g, k1, k2 = a.weight.shape
        weight = np.zeros((cout, cin_g, sh * (kh - 1) + k1, sw * (kw - 1) + k2))
        for i in range(kh):
            for j in range(kw):
                weight[:, :, sh * i:sh * i + k1, sw * j:sw * j + k2] += a.weight * factor
        bias = None if a.bias is None else a.bias * factor * kh * kw
        op = _Op("conv", weight, bias, a.in_shape, b.out_shape, (sh * kh, sw * kw), a.padding,
                 (1, 1), a.groups)
    else:
        return None
    try:
        shape = conv2d_output_shape(op.in_shape, op.weight.shape, op.stride, op.padding, op.dilation)
    except ValueError:
        return None
    return op if shape == op.out_shape else None


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
                raise _node_error(p, graph.nodes[p], f"feeds '{node}' but is neither a synapse "
                                  f"node nor a spiking neuron; an integrating neuron "
                                  f"(LI/CubaLI/I) can only be the readout")
    walk(entry, [])
    return out


def _path_op(graph: Any, path: _Path, shapes: dict[str, tuple[int, ...]], dt: float,
             used_bias: set[str], report_notes: list[str]) -> tuple[_Op, int, list[str]]:
    """Compose the path's nodes into one op; returns (op, delay steps, synapse node names)."""
    import nir

    shape = shapes[path.source]
    ops: list[_Op] = []
    delay = 0
    synapses: list[str] = []
    for name in path.nodes:
        node = graph.nodes[name]
        new_shape = shapes[name]
        if isinstance(node, nir.Delay):
            d = _uniform(name, node, "delay", node.delay)
            steps = d / dt
            if steps < 0 or abs(steps - round(steps)) > 1e-6 * max(1.0, abs(steps)):
                raise _node_error(name, node, f"delay {d:g} s is not a whole number of steps of "
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
                bias = _arr(node.bias).reshape(-1)
                if bias.shape != (new_shape[0],):
                    bias = np.broadcast_to(bias, (new_shape[0],)).copy()
                used_bias.add(name)
            ops.append(_Op("dense", _arr(node.weight), bias, (int(np.prod(shape)),), new_shape))
            synapses.append(name)
        elif isinstance(node, nir.Conv2d):
            conv = _conv_params(name, node, shape)
            bias = None
            if name not in used_bias:
                bias = np.broadcast_to(_arr(node.bias).reshape(-1), (new_shape[0],)).copy()
                used_bias.add(name)
            ops.append(_Op("conv", _arr(node.weight), bias, shape, new_shape, conv["stride"],
                           conv["padding"], conv["dilation"], conv["groups"]))
            synapses.append(name)
        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            k = _pair(node.kernel_size, name, node, "kernel_size")
            s = _pair(node.stride, name, node, "stride")
            p = _pair(node.padding, name, node, "padding")
            factor = 1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (k[0] * k[1])
            c = shape[0]
            ops.append(_Op("conv", np.full((c, 1, *k), factor), None, shape, new_shape, s, p,
                           (1, 1), c, pool=k if (s == k and p == (0, 0)) else None))
            synapses.append(name)
        shape = new_shape
    if not ops:  # a neuron straight into a neuron: an identity projection
        if len(shape) == 3:
            c = shape[0]
            ops.append(_Op("conv", np.ones((c, 1, 1, 1)), None, shape, shape, groups=c))
        else:
            n = int(np.prod(shape))
            ops.append(_Op("dense", np.eye(n), None, (n,), (n,)))
    op = ops[0]
    try:
        for nxt in ops[1:]:
            op = _compose(op, nxt)
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
        theta = _uniform(name, node, "v_threshold", node.v_threshold)
        reset = _arr(node.v_reset if node.v_reset is not None else 0.0)
        if np.any(reset != 0):
            raise _node_error(name, node, f"v_reset = {reset.reshape(-1)[0]:g}: the IR resets v "
                              f"to 0 (shift the voltage before exporting)")
        if theta <= 0:
            raise _node_error(name, node, f"v_threshold = {theta:g} must be positive")
    if isinstance(node, (nir.LIF, nir.LI)):
        tau = _uniform(name, node, "tau", node.tau)
        r = _uniform(name, node, "r", node.r)
        beta = _decay(name, node, "tau", tau, dt)
        n = _Neuron(name, name, type(node).__name__, isinstance(node, nir.LIF), 1.0, 1.0, beta,
                    beta * r, _arr(node.v_leak), theta)
    elif isinstance(node, (nir.IF, nir.I)):
        r = _uniform(name, node, "r", node.r)
        n = _Neuron(name, name, type(node).__name__, isinstance(node, nir.IF), 1.0, 1.0, 0.0,
                    dt * r, np.zeros(()), theta)
    elif isinstance(node, (nir.CubaLIF, nir.CubaLI)):
        tau_syn = _uniform(name, node, "tau_syn", node.tau_syn)
        tau_mem = _uniform(name, node, "tau_mem", node.tau_mem)
        r = _uniform(name, node, "r", node.r)
        w_in = _uniform(name, node, "w_in", node.w_in)
        alpha = _decay(name, node, "tau_syn", tau_syn, dt)
        beta = _decay(name, node, "tau_mem", tau_mem, dt)
        n = _Neuron(name, name, type(node).__name__, isinstance(node, nir.CubaLIF), alpha, w_in,
                    beta, beta * r, _arr(node.v_leak), theta)
    else:  # pragma: no cover - callers pass neuron nodes only
        raise _node_error(name, node, "is not a neuron")
    if current is not None:  # an LI stage in front: it is the synaptic current
        if n.alpha != 1.0:
            raise _node_error(current, graph.nodes[current], f"an LI feeding the current-based "
                              f"'{name}' would be a third state variable; the IR has two")
        li = graph.nodes[current]
        tau = _uniform(current, li, "tau", li.tau)
        r = _uniform(current, li, "r", li.r)
        n.alpha = _decay(current, li, "tau", tau, dt)
        n.c_in = r
        leak = _arr(li.v_leak)
        if np.any(leak != 0):
            if r == 0:
                raise _node_error(current, li, "v_leak with r = 0 has no IR form")
            n.in_bias = _uniform(current, li, "v_leak", leak) / r
        n.entry = current
        n.kind = f"LI+{n.kind}"
    return n


def _decay(name: str, node: Any, what: str, tau: float, dt: float) -> float:
    if not tau > 0:
        raise _node_error(name, node, f"{what} = {tau:g} must be positive")
    x = dt / tau
    if x > 1.0 + 1e-6:
        raise _node_error(name, node, f"{what} = {tau:g} s is shorter than dt = {dt:g} s: forward "
                          f"Euler overshoots (dt/{what} = {x:.3g} > 1). Wrong dt? (spikingjelly "
                          f"and snnTorch write for dt = 1e-4, sinabs for dt = 1)")
    return min(x, 1.0)


# ---------------------------------------------------------------------------------------------
# reading: the network
# ---------------------------------------------------------------------------------------------


def _largest_even(limit: float) -> int:
    """The largest even integer <= limit, forgiving float noise (a float32 τ of 2·dt gives
    dt/τ = 0.50000001, which must not turn a limit of exactly 256 into 254)."""
    if not math.isfinite(limit):
        return 1 << 16
    return int(2 * math.floor(limit * (1 + 1e-6) / 2.0))


@dataclass
class _PopPlan:
    name: str
    neuron: _Neuron | None  # None: an integrating readout made for a projection into Output
    shape: tuple[int, ...]
    role: str
    paths: list[tuple[str, _Op, int, list[str]]] = field(default_factory=list)  # source, op, delay, nodes
    extra: str = ""  # "spike-count readout"


def import_nir(
    source: Any,
    *,
    dt: float = DEFAULT_DT,
    firing: str = ">",
    input_encoding: str | None = None,
    input_bits: int | None = None,
    input_scale: float | None = None,
    target: str = "loihi2",
    trust_metadata: bool = True,
) -> NirImport:
    """Read a NIR graph or file into an IR network, by NIR's equations at ``dt`` (module
    docstring). Returns the network and the assumptions made.

    ``firing``: ``">"`` (NIR's and Lava's rule, default) or ``">="`` (the source framework's,
    for spikingjelly/sinabs files). ``input_encoding``: ``"spikes"`` (default for files from
    others) or ``"graded"`` with ``input_bits`` (default 8) and ``input_scale`` (x_int =
    round(x · scale); default 2^(bits−1) − 1, i.e. |x| ≤ 1). Our own files (metadata
    ``generator = "sakd"``) use their recorded dt, timing, input and names unless
    ``trust_metadata=False``.
    """
    import nir

    if firing not in FIRING_RULES:
        raise ValueError(f"firing must be one of {FIRING_RULES}, got {firing!r}")
    graph, where = _load(source)
    try:
        return _import(graph, where, dt=dt, firing=firing, input_encoding=input_encoding,
                       input_bits=input_bits, input_scale=input_scale, target=target,
                       trust_metadata=trust_metadata, nir=nir)
    except NirImportError as exc:
        if where != "<graph>" and not str(exc).startswith(where):
            raise NirImportError(f"{where}: {exc}", node=exc.node) from exc
        raise


def read_nir(source: Any, **kwargs: Any) -> Network:
    """``import_nir(source, **kwargs).network``; for files from others the assumptions are also
    in ``network.metadata["nir_import"]``."""
    return import_nir(source, **kwargs).network


def _own_metadata(graph: Any) -> dict[str, Any] | None:
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    if _metadata_text(meta.get("generator")) != GENERATOR or "sakd" not in meta:
        return None
    try:
        data = json.loads(_metadata_text(meta["sakd"]))
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != NIR_FORMAT:
        return None
    return data


def _import(graph: Any, where: str, *, dt: float, firing: str, input_encoding: str | None,
            input_bits: int | None, input_scale: float | None, target: str,
            trust_metadata: bool, nir: Any) -> NirImport:
    spec = get_target(target)
    unity = spec.decay_unity
    own = _own_metadata(graph) if trust_metadata else None
    notes: list[str] = []
    timing = "layered"
    if own is not None:
        if own.get("version", 0) > NIR_FORMAT_VERSION:
            raise NirImportError(f"written by a newer sakd (sakd-nir {own.get('version')}); "
                                 f"upgrade, or pass trust_metadata=False")
        if float(own["dt"]) != dt:
            notes.append(f"dt = {own['dt']:g} s from the file's sakd metadata (argument {dt:g})")
        dt = float(own["dt"])
        timing = own.get("timing", "layered")
        target = own.get("target", target)
        spec = get_target(target)
    else:
        _check_reset_convention("<graph>", graph.metadata if isinstance(graph.metadata, dict) else {})
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")

    # -- node types --------------------------------------------------------------------------
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if kind in REFUSED:
            raise _node_error(name, node, REFUSED[kind])
        if kind not in ("Input", "Output", *SPIKING, *INTEGRATING, *LINEAR):
            raise _node_error(name, node, "unknown node type; the reader maps Input, Output, "
                              "Affine, Linear, Conv2d, Flatten, SumPool2d, AvgPool2d, Delay, "
                              "LIF, IF, CubaLIF, LI, CubaLI and I")
    order = _topological(graph)
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
        raise _node_error(out_node, graph.nodes[out_node], "the Output node has outgoing edges")
    if len(preds[out_node]) != 1:
        raise _node_error(out_node, graph.nodes[out_node],
                          f"{len(preds[out_node])} edges into Output; the readout is one node")

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
            raise _node_error(name, graph.nodes[name], "an integrating neuron (no threshold) "
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
        raise _node_error(out_node, graph.nodes[out_node], "the Input feeds Output directly; "
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
            op = _Op("dense", np.eye(n), None, (n,), (n,))
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
                  input_encoding, input_bits, input_scale, spec, notes, where)


def _fresh(name: str, taken: Any) -> str:
    cand, i = name, 1
    while cand in taken:
        cand = f"{name}_{i}"
        i += 1
    return cand


def _build(graph: Any, plans: dict[str, _PopPlan], readout_name: str, neurons: dict[str, _Neuron],
           in_node: str, shapes: dict[str, tuple[int, ...]], own: dict[str, Any] | None, dt: float,
           timing: str, firing: str, input_encoding: str | None, input_bits: int | None,
           input_scale: float | None, spec: TargetSpec, notes: list[str], where: str) -> NirImport:
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
            raise ValueError(f"input_encoding must be 'spikes' or 'graded', got {encoding!r}")
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
            fb = _full_bias(op)
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
            scale = _largest_even(limits[limited_by]) if limits else 2
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
                name=name_of[pname], shape=plan.shape, du=du, dv=dv, vth=vth, bias_mant=mant,
                bias_exp=exp, role=plan.role,
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
    nir_meta = _metadata_text(graph.metadata if isinstance(graph.metadata, dict) else {})
    assumptions = {
        "source": where, "own_file": own is not None, "dt": dt,
        "integration": "forward Euler; current first, then voltage with the new current",
        "spike_rule": firing if own is None else ">",
        "timing": timing, "input": {"name": inp.name, "encoding": inp.encoding, "bits": inp.bits,
                                    "scale": inp.scale},
        "populations": pop_report, "notes": notes,
    }
    if own is not None:
        metadata = own.get("metadata", {})
        target = own.get("target", spec.name)
    else:
        nir_meta.pop("sakd", None)
        metadata = {"source": "nir", "nir_metadata": nir_meta, "nir_import": assumptions}
        target = spec.name
    try:
        network = Network(inp, tuple(populations), tuple(final), target, metadata)
    except IRError as exc:
        raise NirImportError(f"the imported network is invalid: {exc}", node=exc.node) from exc
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


def _projection(op: _Op, w_int: np.ndarray, exp: int, delay: int, syn: list[str], src: str,
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


__all__ = [
    "DEFAULT_DT",
    "NirExportError",
    "NirImport",
    "NirImportError",
    "import_nir",
    "ir_to_nir",
    "read_nir",
    "write_nir",
]
