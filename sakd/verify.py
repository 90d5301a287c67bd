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
    x, y, info = load_samples(data, "test", samples, data_root)
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
    """netx layer names (``layer{i}``, the input layer excluded) in the IR's population order."""
    layers = [name for name in lava.names if name.startswith("layer")]
    pops = [p.name for p in network.populations]
    if len(layers) != len(pops):
        layers = layers[-len(pops):]
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
