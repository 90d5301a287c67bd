"""``sakd verify``: run the same samples through sakd's bit-accurate simulator and a reference
(Lava's fixed-point models, onnxruntime, an independent NIR reader) and report, per population,
whether the results are identical — with the first divergence when they are not."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Divergence:
    """The first (step, sample, neuron) where two runs differ, in step order."""

    population: str
    quantity: str  # spikes | u | v | readout_v
    step: int | None  # 1-based simulation step (None for the final readout voltage)
    sample: int
    neuron: list[int]
    sakd: int
    reference: int


@dataclass
class PopulationCheck:
    population: str
    identical: bool
    steps: int
    compared: list[str] = field(default_factory=list)  # quantities compared
    first_divergence: Divergence | None = None


@dataclass
class Comparison:
    reference: str
    samples: int
    identical: bool
    populations: list[PopulationCheck]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_divergence(ours: np.ndarray, theirs: np.ndarray, population: str, quantity: str,
                     stepped: bool = True) -> Divergence | None:
    """The first differing element of two [steps, B, *shape] (or [B, *shape]) arrays."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if ours.shape != theirs.shape:
        return Divergence(population, f"{quantity} (shape {ours.shape} vs {theirs.shape})", None,
                          0, [], 0, 0)
    diff = np.argwhere(ours.astype(np.int64) != theirs.astype(np.int64))
    if not len(diff):
        return None
    index = tuple(int(i) for i in diff[0])  # argwhere is in C order: step first, then sample
    if stepped:
        step, sample, neuron = index[0] + 1, index[1], list(index[2:])
    else:
        step, sample, neuron = None, index[0], list(index[1:])
    return Divergence(population, quantity, step, sample, neuron, int(ours[index]), int(theirs[index]))


def compare_runs(network, result, reference, reference_name: str,
                 names: dict[str, str] | None = None) -> Comparison:
    """Compare a ``SimulationResult`` (with traces of every population) and a reference run
    exposing ``traces`` ({name: {"s", ["u", "v"]}}) and ``readout_v``. ``names`` maps our
    population names to the reference's (e.g. netx ``layer{i}``)."""
    names = names or {p.name: p.name for p in network.populations}
    checks: list[PopulationCheck] = []
    ref_traces = reference.traces
    for pop in network.populations:
        ref_name = names.get(pop.name)
        ours = result.traces.get(pop.name)
        if ref_name is None or ref_name not in ref_traces or ours is None:
            continue
        theirs = ref_traces[ref_name]
        compared, divergence = [], None
        for quantity, key in (("spikes", "s"), ("u", "u"), ("v", "v")):
            if key in theirs and key in ours:
                compared.append(quantity)
                divergence = divergence or first_divergence(ours[key], theirs[key], pop.name, quantity)
        checks.append(PopulationCheck(pop.name, divergence is None, int(np.asarray(ours["s"]).shape[0]),
                                      compared, divergence))
    readout = network.readout.name
    divergence = first_divergence(result.readout_v, reference.readout_v, readout, "readout_v",
                                  stepped=False)
    for check in checks:
        if check.population == readout:
            check.compared.append("readout_v")
            check.first_divergence = check.first_divergence or divergence
            check.identical = check.first_divergence is None
    identical = all(c.identical for c in checks) and divergence is None
    return Comparison(reference_name, int(result.readout_v.shape[0]), identical, checks)


def load_verification_samples(network, samples: int, data_root: str | None = None):
    """The first ``samples`` test samples of the data set recorded in the network file."""
    from sakd.deploy import DeployError, load_samples

    data = network.metadata.get("dataset")
    if not data:
        raise DeployError("the network file does not name its data set; verify needs one")
    x, y, _ = load_samples(data, "test", samples, data_root)
    return x, y


def verify_lava(export_dir: Path, samples: int, data_root: str | None = None) -> list[Comparison]:
    """IR (and netx, if present) through Lava's fixed-point simulation against sakd's simulator."""
    from sakd.deploy import FILE_NAMES
    from sakd.hardware.lava_bridge import run_lava
    from sakd.hardware.netfile import read_network
    from sakd.hardware.simulator import simulate

    ir_path = export_dir / FILE_NAMES["ir"]
    network = read_network(ir_path)
    x, _ = load_verification_samples(network, samples, data_root)
    encoded = network.input.encode(x.numpy())
    T = int(network.metadata["time_steps"])
    result = simulate(network, encoded, time_steps=T,
                      record=[p.name for p in network.populations])
    comparisons = [compare_runs(network, result, run_lava(ir_path, encoded, T, traces=True),
                                "lava (IR -> lava-nc processes, Loihi2SimCfg fixed_pt)")]
    netx_path = export_dir / FILE_NAMES["netx"]
    if netx_path.exists():
        lava = run_lava(netx_path, encoded, T, netx=True, input_message_bits=network.input.bits)
        comparison = compare_runs(network, result, lava, "lava-dl netx.hdf5.Network (fixed_pt)",
                                  _netx_names(network, lava))
        comparison.notes.append("netx layers are matched to populations in network order; u/v "
                                "traces compared where the runner recorded them")
        comparisons.append(comparison)
    return comparisons


def _netx_names(network, lava) -> dict[str, str]:
    """netx layer names (``layer{i}``: spiking layers only, in file order) for the IR's
    populations in chain order (the order ``write_netx`` wrote them)."""
    from sakd.export.netx_io import netx_chain

    layers = [name for name in lava.names if name.startswith("layer")]
    pops = [pop.name for _, pop in netx_chain(network, or_as_conv=True)]
    return dict(zip(pops, layers))


def verify_onnx(export_dir: Path, samples: int, data_root: str | None = None) -> dict[str, Any]:
    """onnxruntime on the exported float SNN (and ANN teacher) against torch."""
    from sakd.deploy import FILE_NAMES, DeployError
    from sakd.export.onnx_export import check_onnx
    from sakd.hardware.netfile import read_network
    from sakd.train.jobs import load_network

    network = read_network(export_dir / FILE_NAMES["ir"])
    checkpoint = network.metadata.get("checkpoint")
    if not checkpoint or not Path(checkpoint).exists():
        raise DeployError(f"the checkpoint recorded in the network file ({checkpoint}) is missing; "
                          "ONNX verification compares against it")
    x, _ = load_verification_samples(network, samples, data_root)
    snn, record = load_network(checkpoint)
    out = {"student": check_onnx(snn, export_dir / FILE_NAMES["onnx"], x)}
    teacher_ckpt = (record.get("teacher") or {}).get("checkpoint")
    if (export_dir / "teacher.onnx").exists() and teacher_ckpt and Path(teacher_ckpt).exists():
        teacher, _ = load_network(teacher_ckpt)
        out["teacher"] = check_onnx(teacher, export_dir / "teacher.onnx", x)
    return out


# ---------------------------------------------------------------------------------------------
# NIR: the exported file through independent readers


#: prediction agreement (independent NIR reader vs sakd's simulator) below which ``verify --nir``
#: fails
NIR_AGREEMENT = 0.99
_READOUT_NODES = ("I", "LI", "CubaLI")


class _NirNeuron:
    """One NIR neuron node by NIR's own equations (primitives.md), forward Euler at ``dt``,
    current first, then the voltage with the new current, float64:

        I ← I + (dt/τ_syn)·(−I + w_in·x)                         (CubaLI/CubaLIF)
        v ← v + (dt/τ)·(v_leak − v + r·I)   (LI/LIF/CubaLI/CubaLIF),   v ← v + dt·r·I (I/IF)
        z = v > v_threshold;  v ← v_reset where z                   (IF/LIF/CubaLIF)

    Written from the NIR specification, not from sakd's simulator or NIR writer. Parameters may
    be per neuron (any shape with the neuron's number of elements) or uniform."""

    SPIKING = ("IF", "LIF", "CubaLIF")

    def __init__(self, node: Any, dt: float) -> None:
        self.kind = type(node).__name__
        get = lambda name: np.asarray(getattr(node, name), dtype=np.float64)
        self.dt = dt
        self.alpha = dt / get("tau_syn") if self.kind.startswith("Cuba") else None
        self.w_in = get("w_in") if self.kind.startswith("Cuba") else None
        tau = {"LI": "tau", "LIF": "tau", "CubaLI": "tau_mem", "CubaLIF": "tau_mem"}.get(self.kind)
        self.beta = dt / get(tau) if tau else None
        self.r = get("r")
        self.v_leak = get("v_leak") if tau else None
        self.theta = get("v_threshold") if self.kind in self.SPIKING else None
        self.v_reset = get("v_reset") if self.kind in self.SPIKING else None

    @staticmethod
    def _fit(param: np.ndarray, like):
        import torch

        p = torch.as_tensor(param, dtype=torch.float64)
        return p.reshape(()) if p.numel() == 1 else p.reshape(like.shape[1:])

    def step(self, x, state):
        """(output, new state) for one step; ``state`` None: all zeros."""
        import torch

        x = x.to(torch.float64)
        fit = lambda p: self._fit(p, x)
        current, v = state if state is not None else (torch.zeros_like(x), torch.zeros_like(x))
        if self.alpha is not None:
            current = current + fit(self.alpha) * (-current + fit(self.w_in) * x)
            drive = current
        else:
            drive = x
        if self.beta is not None:
            v = v + fit(self.beta) * (fit(self.v_leak) - v + fit(self.r) * drive)
        else:
            v = v + self.dt * fit(self.r) * drive
        if self.theta is None:
            return v, (current, v)
        spikes = v > fit(self.theta)
        v = torch.where(spikes, fit(self.v_reset).expand_as(v), v)
        return spikes.to(torch.float64), (current, v)


def _nirtorch_neuron_module(node: Any, dt: float):
    from torch import nn

    class NirNeuron(nn.Module):  # nirtorch passes the state of a module with a `state` argument
        def __init__(self) -> None:
            super().__init__()
            self.neuron = _NirNeuron(node, dt)

        def forward(self, x, state=None):
            return self.neuron.step(x, state)

    return NirNeuron()


def _reader_dt(graph: Any, dt: float) -> float:
    """``dt`` at the precision of the file's time constants. Our writer stores τ as float32, so
    τ_syn = dt is float32(1e-4) < 1e-4: read at float64 dt, spikingjelly refuses the file (τ_syn
    < dt) and dt/τ_mem·r misses 1 by ~1e-8, which moves a voltage that lies exactly on the
    threshold (common in an integer network) to one side. float32(dt) gives the exact ratios."""
    import nir

    for node in graph.nodes.values():
        for name in ("tau", "tau_syn", "tau_mem"):
            value = getattr(node, name, None)
            if isinstance(node, nir.NIRNode) and isinstance(value, np.ndarray):
                return float(np.asarray(dt, dtype=value.dtype))
    return float(dt)


def _split_readout(graph: Any) -> tuple[Any, list[tuple[str, Any]]]:
    """The graph without its trailing integrating nodes (I/LI/CubaLI just before Output, which
    spikingjelly's importer does not map), and that chain, first node first. The graph's output
    is then the chain's input, e.g. the readout Affine's output at each step."""
    import nir

    output = next(name for name, node in graph.nodes.items() if isinstance(node, nir.Output))
    chain: list[tuple[str, Any]] = []
    last = output
    while True:
        sources = [s for s, d in graph.edges if d == last]
        if len(sources) != 1 or type(graph.nodes[sources[0]]).__name__ not in _READOUT_NODES:
            break
        last = sources[0]
        chain.insert(0, (last, graph.nodes[last]))
    if not chain:
        return graph, []
    dropped = {name for name, _ in chain}
    feed = [s for s, d in graph.edges if d == chain[0][0]]
    edges = [(s, d) for s, d in graph.edges if s not in dropped and d not in dropped]
    edges += [(s, output) for s in feed]
    nodes = {name: node for name, node in graph.nodes.items() if name not in dropped}
    return nir.NIRGraph(nodes, edges, metadata=dict(graph.metadata)), chain


def _strict_thresholds(graph: Any) -> Any:
    """A copy whose spiking thresholds are raised to the next float64 above θ: a reader that
    fires on ``v ≥ θ'`` (spikingjelly) then fires exactly on NIR's ``v > θ`` in float64."""
    import copy

    import nir

    graph = copy.deepcopy(graph)
    for node in graph.nodes.values():
        if isinstance(node, (nir.IF, nir.LIF, nir.CubaLIF)):
            node.v_threshold = np.nextafter(np.asarray(node.v_threshold, np.float64), np.inf)
    return graph


def run_nir_spikingjelly(graph: Any, x_int: np.ndarray, time_steps: int, dt: float,
                         strict: bool = True) -> np.ndarray:
    """Run a NIR graph through spikingjelly's ``import_from_nir`` (nirtorch's interpreter with
    spikingjelly's node maps and neurons), step by step for ``time_steps`` steps on the static
    input ``x_int``; returns the final value of the graph's output (the readout voltage).

    Adaptations (the file is not changed): ``dt`` at float32 (``_reader_dt``); a trailing
    I/LI/CubaLI readout, which spikingjelly does not map, is evaluated by NIR's equations on the
    imported graph's per-step output; ``strict``: thresholds at the next float64 above θ so that
    spikingjelly's ``v ≥ θ`` is NIR's ``v > θ`` (``strict=False``: spikingjelly's own rule)."""
    import torch
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    body, chain = _split_readout(graph)
    if strict:
        body = _strict_thresholds(body)
    module = import_from_nir(body, dt=dt, dtype=torch.float64)
    readout = [_NirNeuron(node, dt) for _, node in chain]
    x = torch.as_tensor(np.asarray(x_int), dtype=torch.float64)
    state, states, out = None, [None] * len(readout), None
    with torch.no_grad():
        for _ in range(time_steps):
            out, state = module(x, state)
            for i, neuron in enumerate(readout):
                out, states[i] = neuron.step(out, states[i])
    return out.numpy()


def run_nir_nirtorch(graph: Any, x_int: np.ndarray, time_steps: int, dt: float) -> np.ndarray:
    """Run a NIR graph through nirtorch's interpreter (``nirtorch.nir_to_torch``: graph wiring,
    summed converging edges, state passing) with the neuron equations of ``_NirNeuron`` (NIR's,
    ``v > θ``). Two of nirtorch 2.6's default maps are replaced: ``Affine`` (it never loads the
    bias: ``module.weight.bias = ...``, fixed upstream in NIRTorch PR #55) and ``Flatten`` (it
    passes ``start_dim`` to torch unchanged, flattening the batch axis; NIR's dimensions exclude
    the batch, as NIR's type inference and spikingjelly read them)."""
    import nir
    import nirtorch
    import torch
    from torch import nn

    def affine(node):
        module = nn.Linear(node.weight.shape[-1], node.weight.shape[-2], bias=True)
        module.weight.data = torch.from_numpy(np.asarray(node.weight))
        module.bias.data = torch.from_numpy(np.asarray(node.bias))
        return module

    def flatten(node):
        start, end = int(node.start_dim), int(node.end_dim)
        return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)

    node_map = {nir.Affine: affine, nir.Flatten: flatten}
    for kind in ("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF"):
        node_map[getattr(nir, kind)] = lambda node: _nirtorch_neuron_module(node, dt)
    module = nirtorch.nir_to_torch(graph, node_map, dtype=torch.float64)
    x = torch.as_tensor(np.asarray(x_int), dtype=torch.float64)
    state, out = None, None
    with torch.no_grad():
        for _ in range(time_steps):
            out, state = module(x, state)
    return out.numpy()


def _try_direct_import(path: Path, dt: float) -> str:
    """spikingjelly's ``import_from_nir`` on the file as written, without adaptations."""
    try:
        from spikingjelly.activation_based.nir_exchange import import_from_nir

        import_from_nir(str(path), dt=dt)
    except Exception as exc:  # reported
        return f"fails: {type(exc).__name__}: {exc}"
    return "loads"


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def verify_nir(export_dir: Path, samples: int, data_root: str | None = None) -> dict[str, Any]:
    """The exported ``network.nir`` through independent readers, against sakd's simulator (on the
    IR, ``network.h5``) and the float SNN of the checkpoint: prediction agreement per reader.

    Readers: spikingjelly's ``import_from_nir`` read by NIR's rule ``v > θ`` (``spikingjelly``)
    and by its own ``v ≥ θ`` (``spikingjelly (own rule)``, reported only), and nirtorch's
    interpreter with NIR's neuron equations (``nirtorch``). ``ok``: at least one reader loaded the
    file and every reader using NIR's rule agrees with the simulator on ≥ 99 % of the samples.

    **> vs ≥.** NIR (and Lava, and sakd's simulator) fire on ``v > θ``; spikingjelly's neurons,
    and so the float SNN, on ``v ≥ θ``. The file is the integer network, whose voltages lie on a
    lattice (multiples of 1/64 before a decay), so they land exactly on θ often: read with
    spikingjelly's own rule, the file is another network (measured on digits test ConvNets:
    0.6-0.8 % of the predictions differ from the simulator's, readout voltages by hundreds of
    v-units; with NIR's rule both readers give the simulator's predictions, readouts within 2e-4).

    **vs the float SNN.** The file is the quantized network: its agreement with the float SNN is
    the lowering's (8-bit weights, graded input), i.e. the simulator's once a reader reproduces it. The
    ``quantization`` entry separates that loss: ``stable`` samples are those whose float-SNN
    prediction survives running the float SNN with the chip's (dequantized) weights and input.
    """
    import time

    import nir
    import torch

    from sakd.deploy import FILE_NAMES, DeployError
    from sakd.export.graph import run_graph
    from sakd.hardware.netfile import read_network
    from sakd.hardware.simulator import simulate

    nir_path = export_dir / FILE_NAMES["nir"]
    if not nir_path.exists():
        raise DeployError(f"no NIR file at {nir_path}; export with --formats nir (or auto)")
    network = read_network(export_dir / FILE_NAMES["ir"])
    x, labels = load_verification_samples(network, samples, data_root)
    encoded = network.input.encode(x.numpy())
    T = int(network.metadata["time_steps"])
    graph = nir.read(str(nir_path))
    try:
        dt = float(graph.metadata.get("dt", 1e-4))
    except (TypeError, ValueError):
        dt = 1e-4
    read_dt = _reader_dt(graph, dt)
    sim = simulate(network, encoded, time_steps=T)
    sim_pred = np.asarray(sim.predictions)
    sim_out = np.asarray(sim.readout_v, dtype=np.float64) / (1 << network.target_spec.act_shift)

    float_pred = quantization = None
    checkpoint = network.metadata.get("checkpoint")
    if checkpoint and Path(checkpoint).exists():
        from sakd.export.lower import lower
        from sakd.export.quantize import dequantized_graph
        from sakd.train.jobs import load_network

        snn, _ = load_network(checkpoint)
        with torch.no_grad():
            float_pred = snn(x).argmax(1).numpy()
        low = lower(snn, input_shape=tuple(network.input.shape), input_range=_input_range(network),
                    input_bits=network.input.bits, target=network.target)
        xq = torch.as_tensor(encoded, dtype=torch.float64) / low.quantized.input.scale
        deq_pred = run_graph(dequantized_graph(low.quantized), xq, T).logits.argmax(1).numpy()
        stable = deq_pred == float_pred
        quantization = {"float_vs_dequantized": float(stable.mean()),
                        "stable_samples": int(stable.sum()),
                        "simulator_vs_float_on_stable": _agree(sim_pred[stable], float_pred[stable])}

    versions = {"nir": _package_version("nir"), "nirtorch": _package_version("nirtorch"),
                "spikingjelly": _package_version("spikingjelly")}
    common = [f"dt = {read_dt!r} (the file's {dt!r} at the precision of its time constants)",
              f"run for T = {T} steps on the encoded integer input x_int; NIR edges are "
              "instantaneous ('layered' timing): NIR step t is the float SNN's step t and the "
              "simulator's window step t of each population",
              "prediction = argmax of the readout's final voltage (sum over T; ties -> lowest "
              "index); voltages in v_int/64"]
    runs = {
        "spikingjelly": (lambda: run_nir_spikingjelly(graph, encoded, T, read_dt, strict=True),
                         f"spikingjelly {versions['spikingjelly']} nir_exchange.import_from_nir "
                         f"(nirtorch {versions['nirtorch']})", ">",
                         ["the trailing readout (I/LI/CubaLI; not mapped by spikingjelly) is "
                          "evaluated by NIR's Euler equations on the imported graph's output",
                          "thresholds raised to the next float64 so that spikingjelly's v >= "
                          "theta' is NIR's v > theta"]),
        "spikingjelly (own rule)": (
            lambda: run_nir_spikingjelly(graph, encoded, T, read_dt, strict=False),
            f"spikingjelly {versions['spikingjelly']} import_from_nir, its own rule", ">=",
            ["as 'spikingjelly' but firing on v >= theta (spikingjelly's convention, not NIR's): "
             "reported, not checked"]),
        "nirtorch": (lambda: run_nir_nirtorch(graph, encoded, T, read_dt),
                     f"nirtorch {versions['nirtorch']} nir_to_torch with NIR's neuron equations",
                     ">", ["Affine and Flatten maps replaced (nirtorch 2.6 defaults: Affine drops "
                           "the bias; Flatten counts the batch axis)"]),
    }
    readers: dict[str, Any] = {}
    for name, (run, reader, rule, notes) in runs.items():
        if name == "spikingjelly":  # what the unadapted importer says of the file
            notes = [f"unadapted import_from_nir(file, dt={dt!r}): "
                     f"{_try_direct_import(nir_path, dt)}", *notes]
        entry: dict[str, Any] = {"reader": reader, "spike_rule": rule, "assumptions": notes}
        start = time.perf_counter()
        try:
            out = np.asarray(run(), dtype=np.float64).reshape(len(encoded), -1)
        except Exception as exc:  # an independent reader's refusal is a result
            entry.update(loaded=False, error=f"{type(exc).__name__}: {exc}")
            readers[name] = entry
            continue
        pred = out.argmax(1)
        entry.update(loaded=True, seconds=time.perf_counter() - start,
                     agreement_vs_simulator=_agree(pred, sim_pred),
                     max_readout_diff_vs_simulator=float(np.abs(out - sim_out).max()),
                     agreement_vs_float_snn=_agree(pred, float_pred),
                     accuracy=_agree(pred, labels.numpy()))
        if quantization is not None:
            entry["agreement_vs_float_snn_on_stable"] = _agree(pred[stable], float_pred[stable])
        readers[name] = entry
    checked = [r for r in readers.values() if r["spike_rule"] == ">"]
    loaded = [r for r in checked if r["loaded"]]
    ok = bool(loaded) and all(r["agreement_vs_simulator"] >= NIR_AGREEMENT for r in loaded)
    primary = next((name for name, r in readers.items() if r["loaded"] and r["spike_rule"] == ">"),
                   None)
    return {
        "file": str(nir_path), "samples": len(encoded), "time_steps": T,
        "reader": primary,
        "agreement_vs_simulator": readers[primary]["agreement_vs_simulator"] if primary else None,
        "agreement_vs_float_snn": readers[primary]["agreement_vs_float_snn"] if primary else None,
        "simulator_vs_float_snn": _agree(sim_pred, float_pred),
        "quantization": quantization, "threshold": NIR_AGREEMENT, "ok": ok,
        "assumptions": [
            *common,
            "spike rule: NIR, Lava and the simulator fire on v > theta; spikingjelly and the "
            "float SNN on v >= theta. The integer network's voltages land exactly on theta "
            "often, so readers are run with NIR's rule; spikingjelly's own rule is reported"],
        "readers": readers,
    }


def _agree(a, b) -> float | None:
    if a is None or b is None:
        return None
    a, b = np.asarray(a), np.asarray(b)
    return float((a == b).mean()) if len(a) else None


def _input_range(network) -> tuple[float, float]:
    """The normalized input's range from the file's metadata (what the export's graded-input
    quantization covered)."""
    from sakd.data.common import normalized_range
    from sakd.deploy import DeployError

    norm = network.metadata.get("normalization") or {}
    if not norm.get("mean"):
        raise DeployError("the network file does not record its input normalization")
    return normalized_range(norm["mean"], norm["std"])
