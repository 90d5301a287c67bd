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


#: the read options of each format the CLI exposes (``sakd.formats``: an option a format does not
#: take is an error naming the format's options)
READ_OPTION_NAMES = ("input_message_bits", "input_mode", "input_shape", "spike_exp",
                     "sparse_fc_layer", "dt", "firing", "input_encoding", "input_bits")


@dataclass(frozen=True)
class SimulateOptions:
    """``net``: an IR/NIR/netx file or an export folder. ``data``: the data set (default: the one
    the file records); or ``inputs``: a .npy of the user's own inputs (``labels``: their
    classes, for an accuracy). ``limit``: the first N samples (None: all). ``out``: the report
    path (default: ``simulate_report.json`` next to the network). ``record``: ``"all"`` or
    population names (comma-separated) whose states and messages go to ``traces`` (.npz).
    ``read``: format read options (netx: input_message_bits, input_mode, input_shape,
    spike_exp, sparse_fc_layer; NIR: dt, firing, input_encoding, input_bits), only those given.
    ``reset_interval`` / ``reset_offset``: netx's run options for a free-running network.
    ``input_scale``: x_int = round(x · scale) for the inputs."""

    net: Path
    data: str | None = None
    split: str = "test"
    limit: int | None = None
    batch: int | None = None
    device: str = "cpu"
    data_root: str | None = None
    out: Path | None = None
    time_steps: int | None = None
    inputs: Path | None = None
    labels: Path | None = None
    input_scale: float | None = None
    record: str | None = None
    traces: Path | None = None
    read: dict[str, Any] = field(default_factory=dict)
    reset_interval: int | None = None
    reset_offset: int = 0


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
    """``simulate_report.json``. ``on_chip_accuracy`` is None for inputs without labels;
    ``assumptions``: every choice the run made that the file does not fix (how inputs were
    encoded, dt, the schedule, netx's options); ``run``: the schedule and its options."""

    network: str | None
    network_digest: str
    samples: int
    time_steps: int
    latency: int
    on_chip_accuracy: float | None  # %
    throughput: Throughput
    float_agreement: FloatAgreement | None
    layers: dict[str, dict[str, float]]
    notes: list[str] = field(default_factory=list)
    source: str = ""
    assumptions: list[str] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)
    traces: str | None = None
    #: a detector or segmenter: its task, on-chip and float-SNN figures (mAP / mIoU) on the same
    #: images and what the host does after the readouts (sakd.app.dense.DenseFigures)
    dense: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def validate_options(options: SimulateOptions) -> None:
    count_option(options.limit, "--limit")
    count_option(options.batch, "--batch")
    count_option(options.time_steps, "--time-steps")
    count_option(options.reset_interval, "--reset-interval")
    if options.device not in ("cpu",) and not str(options.device).startswith("cuda"):
        raise JobError(f"--device {options.device!r}: choose cpu (numpy) or cuda (torch)")
    if options.out is not None:
        check_output_file(options.out)
    if options.traces is not None:
        check_output_file(options.traces, "--traces")
    if options.inputs is not None and options.data is not None:
        raise JobError("give --inputs (your own arrays) or --data (a data set), not both")
    if options.labels is not None and options.inputs is None:
        raise JobError("--labels go with --inputs")
    unknown = sorted(set(options.read) - set(READ_OPTION_NAMES))
    if unknown:  # pragma: no cover - the CLI passes only known names
        raise JobError(f"unknown read option(s) {unknown}")


def report_path(options: SimulateOptions) -> Path:
    return Path(options.out) if options.out else resolve_network_path(options.net).parent / REPORT_NAME


def process_group(device: str = "cpu") -> Any:
    """The torch.distributed environment (``sakd.train.distributed.DistEnv``) of a launch by
    torchrun with several processes (the group is joined here: Gloo on CPUs, NCCL on GPUs);
    None when this process runs alone."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from sakd.train.distributed import init_distributed

    return init_distributed("cuda" if str(device).startswith("cuda") else "cpu")


def simulate_sharded(network: Any, x: np.ndarray, *, sequence: bool = False, device: str = "cpu",
                     progress: Callable[[int, int], Any] | None = None, **kwargs: Any) -> Any:
    """``sakd.hardware.simulator.simulate`` of ``x`` (numpy backend on the CPU, torch on CUDA);
    under torchrun with several processes the samples are sharded: rank r simulates the r-th
    of W consecutive, nearly equal sample ranges (on its own GPU with NCCL), the results are
    gathered with ``torch.distributed.all_gather_object`` and joined in rank order
    (``concatenate_results``), so every rank holds what one process computes, bit for bit:
    samples are independent and every count is an integer per sample, moved, never summed in
    floating point. ``progress`` is called on rank 0, for its shard."""
    from sakd.hardware.simulator import concatenate_results, simulate

    backend = "numpy" if device == "cpu" else "torch"
    env = process_group(device)
    if env is None:
        return simulate(network, x, sequence=sequence, backend=backend, device=device,
                        progress=progress, **kwargs)
    import torch.distributed as dist

    n = int(x.shape[1] if sequence else x.shape[0])
    lo, hi = n * env.rank // env.world_size, n * (env.rank + 1) // env.world_size
    shard = x[:, lo:hi] if sequence else x[lo:hi]
    here = str(env.device) if backend == "torch" else device
    part = simulate(network, shard, sequence=sequence, backend=backend, device=here,
                    progress=progress if env.is_main else None, **kwargs) if hi > lo else None
    parts: list[Any] = [None] * env.world_size
    dist.all_gather_object(parts, part)
    return concatenate_results([p for p in parts if p is not None])


def run_split(network: Any, data: str, *, split: str = "test", limit: int | None = None,
              batch: int | None = None, device: str = "cpu", data_root: str | None = None,
              time_steps: int | None = None, record: Sequence[str] = (),
              progress: Callable[[int, int], Any] | None = None,
              reset_interval: int | None = None, reset_offset: int = 0,
              sharded: bool = False) -> SimulationRun:
    """Encode a data split for ``network`` and simulate it (``sharded``: over the processes of
    a torchrun launch, ``simulate_sharded``)."""
    from sakd.hardware.simulator import simulate

    T = network.steps_for(time_steps)
    if network.metadata.get("task") in ("detection", "segmentation"):
        from sakd.app.dense import load_dense_samples

        samples = load_dense_samples(network, split, limit, data_root)
    else:
        samples = load_samples(data, split, limit, data_root)
    expected = tuple(network.input.shape)
    if tuple(samples.x.shape[1:]) != expected:
        raise JobError(f"data set '{data}' gives inputs of shape {tuple(samples.x.shape[1:])} but "
                       f"the network expects {expected}")
    encoded = network.input.encode(samples.x.numpy())
    backend = "numpy" if device == "cpu" else "torch"
    start = time.perf_counter()
    if sharded:
        result = simulate_sharded(network, encoded, device=device, time_steps=T,
                                  batch_size=batch, record=record, progress=progress,
                                  reset_interval=reset_interval, reset_offset=reset_offset)
    else:
        result = simulate(network, encoded, time_steps=T, backend=backend, device=device,
                          batch_size=batch, record=record, progress=progress,
                          reset_interval=reset_interval, reset_offset=reset_offset)
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
        notes=[*run.samples.notes, *notes], source=f"split {run.samples.split!r}",
        run=run_description(result))


def _format_takes(net: Path, option: str) -> bool:
    from sakd.formats import detect_format

    try:
        return option in detect_format(resolve_network_path(net)).read_options
    except SakdError:
        return False


def run_description(result: Any) -> dict[str, Any]:
    """The schedule a simulation ran with (for the report)."""
    out: dict[str, Any] = {"schedule": result.schedule, "steps": result.time_steps}
    if result.schedule == "free":
        out.update(reset_interval=result.reset_interval, reset_offset=result.reset_offset)
    return out


def file_assumptions(network: Any) -> list[str]:
    """What the reader assumed for a file of another tool (NIR import notes, netx options and
    notes), one sentence each."""
    meta = network.metadata
    out: list[str] = []
    nir = meta.get("nir_import")
    if isinstance(nir, dict):
        inp = nir.get("input") if isinstance(nir.get("input"), dict) else {}
        encoding = inp.get("encoding")
        if encoding == "graded":
            encoding = f"graded ({inp.get('bits')} bits, scale {inp.get('scale')})"
        out.append(f"NIR: dt = {nir.get('dt')} s, spike rule v {nir.get('spike_rule')} "
                   f"threshold, {nir.get('integration')}, input {encoding}")
        out.extend(str(n) for n in nir.get("notes", []))
    netx = meta.get("netx_options")
    if isinstance(netx, dict):
        shown = ", ".join(f"{k} = {v}" for k, v in netx.items() if v not in (None, False))
        out.append(f"netx: read as lava-dl's netx.hdf5.Network builds it ({shown}); the network "
                   f"runs free from the zero state")
        out.extend(str(n) for n in meta.get("netx_notes", []))
    return out


def write_traces(path: Path, result: Any, network: Any) -> Path:
    """``<population>/<state or s>`` arrays, (batch, steps, *shape), C,H,W; ``<population>/output``
    (batch, *shape) for the outputs; ``predictions`` when there is one output. Atomic."""
    import os
    import tempfile

    arrays: dict[str, np.ndarray] = {}
    for name, tr in result.traces.items():
        for key, value in tr.items():
            arrays[f"{name}/{key}"] = np.moveaxis(np.asarray(value), 1, 0).astype(
                np.uint8 if key == "s" and value.dtype == bool else np.int64)
    for name, value in result.outputs.items():
        arrays[f"{name}/output"] = np.asarray(value)
    if result.predictions is not None:
        arrays["predictions"] = np.asarray(result.predictions)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def simulate_job(options: SimulateOptions,
                 progress: Callable[[int, int], Any] | None = None) -> SimulateReport:
    """``sakd simulate``: run, compare with the float SNN where possible, write the report.
    Under torchrun with several processes the samples are sharded over them
    (``simulate_sharded``) and rank 0 writes the report, the same as one process writes
    (its throughput apart)."""
    from sakd.app.user_inputs import parse_record

    validate_options(options)
    env = process_group(options.device)
    main = env is None or env.is_main
    path = report_path(options)
    check_output_file(path)
    read = dict(options.read)
    if options.input_scale is not None and _format_takes(options.net, "input_scale"):
        read["input_scale"] = options.input_scale  # NIR: the graded input's scale
    network = read_network_file(options.net, time_steps=options.time_steps, **read)
    if options.reset_interval is not None and network.schedule != "free":
        raise JobError("--reset-interval applies to free-running networks (netx files of other "
                       "tools); this network resets every T steps by its own schedule")
    assumptions = file_assumptions(network)
    record = parse_record(options.record, network) if options.record else ()
    if options.traces is not None and not record:
        record = tuple(p.name for p in network.populations)
    if options.inputs is not None:
        report = _simulate_inputs(network, options, record, assumptions, progress)
    else:
        data = options.data or network.metadata.get("dataset")
        if not data:
            raise JobError("the network file does not name its data set; pass --data, or "
                           "--inputs X.npy with your own inputs")
        if network.metadata.get("task") in ("detection", "segmentation"):
            from sakd.app.dense import simulate_dense_split

            report, result = simulate_dense_split(network, data, options, record, progress)
            report.assumptions = assumptions + report.assumptions
            if options.traces is not None:
                report.traces = str(write_traces(options.traces, result, network))
            atomic_write_json(path, report.to_dict())
            return report
        full_record = record or tuple(p.name for p in network.populations if not p.is_readout)
        run = run_split(network, data, split=options.split, limit=options.limit,
                        batch=options.batch, device=options.device, data_root=options.data_root,
                        time_steps=options.time_steps, record=full_record, progress=progress,
                        reset_interval=options.reset_interval, reset_offset=options.reset_offset,
                        sharded=True)
        # the float SNN on rank 0 only: the other ranks write no report
        agreement, why = float_agreement(run) if main else (None, None)
        report = make_report(run, agreement, [why] if why else [])
        report.assumptions = assumptions + report.assumptions
        report.source = f"data set {data!r}, split {options.split!r}"
        if options.traces is not None and main:
            report.traces = str(write_traces(options.traces, run.result, network))
    if main:
        atomic_write_json(path, report.to_dict())
    return report


def _simulate_inputs(network: Any, options: SimulateOptions, record: tuple[str, ...],
                     assumptions: list[str],
                     progress: Callable[[int, int], Any] | None) -> SimulateReport:
    """``--inputs X.npy``: the user's own arrays, encoded and simulated."""
    from sakd.app.user_inputs import load_inputs

    inputs = load_inputs(options.inputs, network, input_scale=options.input_scale,
                         labels=options.labels, time_steps=options.time_steps)
    steps = inputs.steps if inputs.sequence else options.time_steps
    T = network.steps_for(steps)
    x = inputs.x
    if options.limit is not None:
        x = x[:, :options.limit] if inputs.sequence else x[:options.limit]
    start = time.perf_counter()
    result = simulate_sharded(network, x, time_steps=T, sequence=inputs.sequence,
                              device=options.device, batch_size=options.batch, record=record,
                              progress=progress, reset_interval=options.reset_interval,
                              reset_offset=options.reset_offset)
    seconds = time.perf_counter() - start
    n = int(x.shape[1] if inputs.sequence else x.shape[0])
    accuracy = None
    if inputs.labels is not None:
        if result.predictions is None:
            raise JobError("--labels: the network has several outputs, so there is no single "
                           "prediction to score")
        accuracy = 100.0 * float((result.predictions == inputs.labels[:n]).mean())
    synops = sum(float(p.synops.sum()) for p in result.counts.projections.values())
    report = SimulateReport(
        network=network.metadata.get("arch_name") or network.metadata.get("arch"),
        network_digest=network.digest(), samples=n, time_steps=T, latency=network.latency,
        on_chip_accuracy=accuracy,
        throughput=Throughput(seconds, n / seconds, synops / seconds, result.backend),
        float_agreement=None, layers=result.counts.mean_per_sample(),
        notes=[] if accuracy is not None else ["no --labels: no accuracy"],
        source=f"inputs {inputs.source}", assumptions=[*assumptions, *inputs.assumptions],
        run=run_description(result))
    env = process_group(options.device)
    if options.traces is not None and (env is None or env.is_main):
        report.traces = str(write_traces(options.traces, result, network))
    return report
