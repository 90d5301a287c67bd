"""``sakd simulate``: a network file (or export folder) on the bit-accurate simulator over a data
split: on-chip accuracy, exact counts, throughput and, where the float SNN is at hand, the
agreement with it (``simulate_report.json``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sakd.app.common import (
    JobError,
    Samples,
    check_output_file,
    count_option,
    load_samples,
    read_network_file,
    resolve_network_path,
)
from sakd.hardware.atomic import atomic_write_json
from sakd.hardware.errors import SakdError

REPORT_NAME = "simulate_report.json"


@dataclass(frozen=True)
class SimulateOptions:
    """``net``: an IR/NIR/netx file or an export folder. ``data``: the data set (default: the one
    the file records). ``limit``: the first N samples (None: all). ``out``: the report path
    (default: ``simulate_report.json`` next to the network)."""

    net: Path
    data: str | None = None
    split: str = "test"
    limit: int | None = None
    batch: int | None = None
    device: str = "cpu"
    data_root: str | None = None
    out: Path | None = None
    time_steps: int | None = None


@dataclass
class Throughput:
    seconds: float
    samples_per_s: float
    synops_per_s: float
    backend: str


@dataclass
class FloatAgreement:
    """The integer network against the float SNN (same samples): prediction agreement and per
    population the fraction of (neuron, step) spikes that differ."""

    checkpoint: str | None
    float_accuracy: float  # %
    prediction_agreement: float  # %
    spike_mismatch: dict[str, float]


@dataclass
class SimulationRun:
    """One simulation of a data split (what later stages need): the samples, the result."""

    network: Any
    samples: Samples
    result: Any  # SimulationResult
    seconds: float
    time_steps: int

    @property
    def labels(self) -> np.ndarray:
        return self.samples.y.numpy()

    @property
    def accuracy(self) -> float:
        return 100.0 * float((self.result.predictions == self.labels).mean())


@dataclass
class SimulateReport:
    """``simulate_report.json``."""

    network: str | None
    network_digest: str
    samples: int
    time_steps: int
    latency: int
    on_chip_accuracy: float  # %
    throughput: Throughput
    float_agreement: FloatAgreement | None
    layers: dict[str, dict[str, float]]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def validate_options(options: SimulateOptions) -> None:
    count_option(options.limit, "--limit")
    count_option(options.batch, "--batch")
    if options.device not in ("cpu",) and not str(options.device).startswith("cuda"):
        raise JobError(f"--device {options.device!r}: choose cpu (numpy) or cuda (torch)")
    if options.out is not None:
        check_output_file(options.out)


def report_path(options: SimulateOptions) -> Path:
    return Path(options.out) if options.out else resolve_network_path(options.net).parent / REPORT_NAME


def run_split(network: Any, data: str, *, split: str = "test", limit: int | None = None,
              batch: int | None = None, device: str = "cpu", data_root: str | None = None,
              time_steps: int | None = None, record: Sequence[str] = (),
              progress: Callable[[int, int], Any] | None = None) -> SimulationRun:
    """Encode a data split for ``network`` and simulate it."""
    from sakd.hardware.simulator import simulate

    T = network.steps_for(time_steps)
    samples = load_samples(data, split, limit, data_root)
    expected = tuple(network.input.shape)
    if tuple(samples.x.shape[1:]) != expected:
        raise JobError(f"data set '{data}' gives inputs of shape {tuple(samples.x.shape[1:])} but "
                       f"the network expects {expected}")
    encoded = network.input.encode(samples.x.numpy())
    backend = "numpy" if device == "cpu" else "torch"
    start = time.perf_counter()
    result = simulate(network, encoded, time_steps=T, backend=backend, device=device,
                      batch_size=batch, record=record, progress=progress)
    return SimulationRun(network, samples, result, time.perf_counter() - start, T)


def compare_with_float(float_graph: Any, network: Any, x: Any, result: Any
                       ) -> tuple[np.ndarray, dict[str, dict[str, float]]]:
    """The float SNN (``float_graph``) on ``x``: its predictions and, for every population whose
    spikes ``result`` recorded, the fraction of (neuron, step) spikes in the population's window
    that differ from the integer network's, with both firing rates."""
    from sakd.export.graph import run_graph

    T = result.time_steps
    float_run = run_graph(float_graph, x.double(), T, record=True)
    layers = {}
    for name, spikes in float_run.spikes.items():
        if name not in result.traces:
            continue
        lat = network.latencies[name]
        chip = np.asarray(result.traces[name]["s"])[lat:lat + T].astype(bool)
        ref = spikes.numpy().astype(bool)
        layers[name] = {"spike_mismatch": float((chip != ref).mean()),
                        "float_rate": float(ref.mean()), "chip_rate": float(chip.mean())}
    return float_run.logits.argmax(1).numpy(), layers


def float_agreement(run: SimulationRun, float_graph: Any = None) -> tuple[FloatAgreement | None, str | None]:
    """Compare the simulation with the float SNN. The float graph is the lowering's or, when
    not given, rebuilt from the checkpoint named in the file's metadata. An optional step:
    returns (None, why) when there is no readable checkpoint, never fails the simulation."""
    network = run.network
    checkpoint = network.metadata.get("checkpoint")
    if float_graph is None:
        if not checkpoint:
            return None, "no float SNN to compare with (the file names no checkpoint)"
        if not Path(checkpoint).exists():
            return None, f"the checkpoint named in the file ({checkpoint}) is not here: float agreement skipped"
        from sakd.data.common import input_value_range
        from sakd.export.lower import lower
        from sakd.train.jobs import load_network

        try:
            snn, _ = load_network(checkpoint)
            float_graph = lower(snn, input_shape=tuple(network.input.shape),
                                input_range=input_value_range(run.samples.info),
                                input_bits=network.input.bits, target=network.target).float_graph
        except SakdError as exc:
            return None, f"the checkpoint named in the file cannot be used ({exc}): float agreement skipped"
    float_pred, layers = compare_with_float(float_graph, network, run.samples.x, run.result)
    return FloatAgreement(
        checkpoint=checkpoint,
        float_accuracy=100.0 * float((float_pred == run.labels).mean()),
        prediction_agreement=100.0 * float((float_pred == run.result.predictions).mean()),
        spike_mismatch={name: row["spike_mismatch"] for name, row in layers.items()}), None


def make_report(run: SimulationRun, agreement: FloatAgreement | None,
                notes: Sequence[str] = ()) -> SimulateReport:
    network, result = run.network, run.result
    synops = sum(float(p.synops.sum()) for p in result.counts.projections.values())
    n = len(run.samples)
    return SimulateReport(
        network=network.metadata.get("arch_name") or network.metadata.get("arch"),
        network_digest=network.digest(), samples=n, time_steps=run.time_steps,
        latency=network.latency, on_chip_accuracy=run.accuracy,
        throughput=Throughput(run.seconds, n / run.seconds, synops / run.seconds, result.backend),
        float_agreement=agreement, layers=result.counts.mean_per_sample(),
        notes=[*run.samples.notes, *notes])


def simulate_job(options: SimulateOptions,
                 progress: Callable[[int, int], Any] | None = None) -> SimulateReport:
    """``sakd simulate``: run, compare with the float SNN where possible, write the report."""
    validate_options(options)
    path = report_path(options)
    check_output_file(path)
    network = read_network_file(options.net, time_steps=options.time_steps)
    data = options.data or network.metadata.get("dataset")
    if not data:
        raise JobError("the network file does not name its data set; pass --data")
    record = [p.name for p in network.populations if not p.is_readout]
    run = run_split(network, data, split=options.split, limit=options.limit, batch=options.batch,
                    device=options.device, data_root=options.data_root,
                    time_steps=options.time_steps, record=record, progress=progress)
    agreement, why = float_agreement(run)
    report = make_report(run, agreement, [why] if why else [])
    atomic_write_json(path, report.to_dict())
    return report
