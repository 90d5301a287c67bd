"""``sakd verify``: the same samples through sakd's bit-accurate simulator and references —
Lava's fixed-point models (the IR rebuilt from lava-nc processes, and the netx file through
lava-dl's own ``netx.hdf5.Network``), onnxruntime, and independent NIR readers — with the pass
rule of each (stated here and in docs/verification.md; the tests use the same functions):

- **Lava**: bit-exact, every population's spikes (and u, v where recorded) at every step, and
  the readout's final v; the first divergence is named (population, step, sample, neuron).
- **ONNX**: the float model through onnxruntime against torch. A sample whose logits differ by
  more than ``atol`` passes only when a membrane potential came within ``FLIP_MARGIN`` of a
  threshold (float32 rounding moved one spike: ``threshold_flips``); any other difference is a
  real mismatch (``unexplained``) and fails. The ANN teacher has no thresholds: every sample over
  ``atol`` fails.
- **NIR**: at least one independent reader loads the file, and every reader using NIR's rule
  (``v > θ``) agrees with the simulator's predictions on at least ``NIR_AGREEMENT`` of the samples.
- **float** (reported, no pass rule): the float SNN of the checkpoint against the simulator,
  per readout: how often the largest channel at each location is the same (a classifier's
  class; a segmenter's class per pixel of its readout map; a detector's best class per point)
  and the readouts' differences. The integer network is the quantized float SNN, so their
  differences are the quantization's (docs/verification.md), not a failure.

A prediction is the channel of the largest value at each location of a readout
(``location_predictions``): one per sample for a classifier's ``(K,)`` readout, one per pixel of
a ``(K, H, W)`` readout map; agreements are over every (sample, location). Detection and
segmentation exports are verified on the test split of their run's config (``sakd.app.dense``);
a reference that cannot apply to an export (a format it skipped, Lava's one-readout runner on a
detector) is refused before any work, with the reason (``check_references``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sakd.app.common import JobError, check_output_file, count_option, load_samples

#: prediction agreement (independent NIR reader vs sakd's simulator) below which --nir fails
NIR_AGREEMENT = 0.99
REPORT_NAME = "verify_report.json"


# ---------------------------------------------------------------------------------------------
# comparisons against Lava
# ---------------------------------------------------------------------------------------------


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


def compare_runs(network: Any, result: Any, reference: Any, reference_name: str,
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


def verify_lava(export_dir: Path, samples: int, data_root: str | None = None) -> list[Comparison]:
    """IR (and netx, if present) through Lava's fixed-point simulation against sakd's simulator."""
    from sakd.formats import get_format
    from sakd.formats.netx import netx_chain
    from sakd.hardware.lava_bridge import run_lava
    from sakd.hardware.netfile import read_network
    from sakd.hardware.simulator import simulate

    ir_path = export_dir / get_format("ir").file_name
    network = read_network(ir_path)
    x, _ = verification_samples(network, samples, data_root)
    encoded = network.input.encode(x.numpy())
    T = network.steps_for()
    result = simulate(network, encoded, record=[p.name for p in network.populations])
    comparisons = [compare_runs(network, result, run_lava(ir_path, encoded, T, traces=True),
                                "lava (IR -> lava-nc processes, Loihi2SimCfg fixed_pt)")]
    netx_path = export_dir / get_format("netx").file_name
    if netx_path.exists():
        lava = run_lava(netx_path, encoded, T, netx=True, input_message_bits=network.input.bits)
        layers = [name for name in lava.names if name.startswith("layer")]
        pops = [layer.pop.name for layer in netx_chain(network, or_as_conv=True)]
        comparison = compare_runs(network, result, lava, "lava-dl netx.hdf5.Network (fixed_pt)",
                                  dict(zip(pops, layers)))
        comparison.notes.append("netx layers are matched to populations in network order; u/v "
                                "traces compared where the runner recorded them")
        comparisons.append(comparison)
    return comparisons


def verification_samples(network: Any, samples: int, data_root: str | None = None) -> tuple[Any, Any]:
    """The first ``samples`` test samples of the data set recorded in the network file: images
    and labels; for a detector or segmenter the test split rebuilt from its run's config, and
    its targets (``sakd.app.dense.load_dense_samples``)."""
    from sakd.app.dense import load_dense_samples, task_of

    if task_of(network) != "classification":
        found = load_dense_samples(network, "test", samples, data_root)
        return found.x, found.y
    data = network.metadata.get("dataset")
    if not data:
        raise JobError("the network file does not name its data set; verify needs one")
    found = load_samples(data, "test", samples, data_root)
    return found.x, found.y


def location_predictions(values: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The channel of the largest value at each location of a readout of ``shape``: int64
    ``[B]`` for a ``(K,)`` readout (a classifier's class), ``[B, H, W]`` for a ``(K, H, W)``
    map. ``values``: ``[B, *shape]`` or ``[B, prod(shape)]`` (C,H,W order); ties: lowest index."""
    array = np.asarray(values)
    return array.reshape(len(array), *shape).argmax(axis=1).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------------------------


@dataclass
class OnnxCheck:
    """onnxruntime against torch on one float model (``check_onnx``) and the verdict."""

    model: str  # student | teacher
    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    prediction_agreement: float
    disagreements: int
    atol: float
    samples_over_atol: int
    threshold_flips: int
    unexplained: int
    flip_margin: float
    ok: bool


def onnx_verdict(check: dict[str, Any]) -> bool:
    """The ONNX pass rule (module docstring): every sample over ``atol`` is a spike flipped at a
    threshold by float32 rounding; none is unexplained."""
    return int(check["unexplained"]) == 0


def verify_onnx(export_dir: Path, samples: int, data_root: str | None = None) -> list[OnnxCheck]:
    """onnxruntime on the exported float SNN (and ANN teacher) against torch."""
    from sakd.formats import get_format
    from sakd.formats.onnx import check_onnx
    from sakd.hardware.netfile import read_network
    from sakd.train.jobs import load_network

    network = read_network(export_dir / get_format("ir").file_name)
    checkpoint = network.metadata.get("checkpoint")
    if not checkpoint or not Path(checkpoint).exists():
        raise JobError(f"the checkpoint recorded in the network file ({checkpoint}) is missing; "
                       "ONNX verification compares against it")
    onnx_path = export_dir / get_format("onnx").file_name
    if not onnx_path.exists():
        raise JobError(f"no ONNX file at {onnx_path}; export with --formats onnx (or auto)")
    x, _ = verification_samples(network, samples, data_root)
    snn, record = load_network(checkpoint)
    models = [("student", snn, onnx_path)]
    teacher_ckpt = (record.get("teacher") or {}).get("checkpoint")
    teacher_path = export_dir / f"teacher{onnx_path.suffix}"
    if teacher_path.exists() and teacher_ckpt and Path(teacher_ckpt).exists():
        models.append(("teacher", load_network(teacher_ckpt)[0], teacher_path))
    out = []
    for name, model, path in models:
        check = check_onnx(model, path, x)
        out.append(OnnxCheck(model=name, ok=onnx_verdict(check), **check))
    return out


# ---------------------------------------------------------------------------------------------
# NIR
# ---------------------------------------------------------------------------------------------


@dataclass
class NirReaderResult:
    reader: str
    spike_rule: str  # ">" (NIR's) or ">=" (spikingjelly's own, reported only)
    assumptions: list[str]
    loaded: bool
    error: str | None = None
    seconds: float | None = None
    agreement_vs_simulator: float | None = None
    max_readout_diff_vs_simulator: float | None = None
    agreement_vs_float_snn: float | None = None
    agreement_vs_float_snn_on_stable: float | None = None
    accuracy: float | None = None


@dataclass
class NirCheck:
    """``verify --nir``: the exported NIR file through independent readers."""

    file: str
    samples: int
    time_steps: int
    reader: str | None
    agreement_vs_simulator: float | None
    agreement_vs_float_snn: float | None
    simulator_vs_float_snn: float | None
    quantization: dict[str, Any] | None
    threshold: float
    ok: bool
    assumptions: list[str]
    readers: dict[str, NirReaderResult]


def verify_nir(export_dir: Path, samples: int, data_root: str | None = None) -> NirCheck:
    """The exported ``network.nir`` through independent readers, against sakd's simulator (on the
    IR, ``network.h5``) and the float SNN of the checkpoint: prediction agreement per reader.

    Readers: spikingjelly's ``import_from_nir`` read by NIR's rule ``v > θ`` (``spikingjelly``)
    and by its own ``v ≥ θ`` (``spikingjelly (own rule)``, reported only), and nirtorch's
    interpreter with NIR's neuron equations (``nirtorch``).

    **> vs ≥.** NIR (and Lava, and sakd's simulator) fire on ``v > θ``; spikingjelly's neurons,
    and so the float SNN, on ``v ≥ θ``. The file is the integer network, whose voltages lie on a
    lattice (multiples of 1/64 before a decay), so they land exactly on θ often: read with
    spikingjelly's own rule, the file is another network. With NIR's rule both readers give the
    simulator's predictions.

    **vs the float SNN.** The file is the quantized network: its agreement with the float SNN is
    the lowering's. The ``quantization`` entry separates that loss: ``stable`` samples are those
    whose float-SNN prediction survives running the float SNN with the chip's (dequantized)
    weights and input (for a readout map, predictions are per location: ``stable_samples``
    then counts stable (sample, location) pairs).
    """
    import nir
    import torch

    from sakd.app import nir_readers as readers_mod
    from sakd.app.dense import task_of
    from sakd.data.common import normalized_range
    from sakd.formats import get_format
    from sakd.formats.nir import DEFAULT_DT
    from sakd.hardware.netfile import read_network
    from sakd.hardware.simulator import simulate

    nir_path = export_dir / get_format("nir").file_name
    if not nir_path.exists():
        raise JobError(f"no NIR file at {nir_path}; export with --formats nir (or auto)")
    network = read_network(export_dir / get_format("ir").file_name)
    x, labels = verification_samples(network, samples, data_root)
    encoded = network.input.encode(x.numpy())
    T = network.steps_for()
    graph = nir.read(str(nir_path))
    try:
        dt = float(graph.metadata.get("dt", DEFAULT_DT))
    except (TypeError, ValueError):
        dt = DEFAULT_DT
    read_dt = readers_mod.reader_dt(graph, dt)
    readout = network.readout
    sim = simulate(network, encoded)
    sim_v = np.asarray(sim.readouts[readout.name], dtype=np.float64)
    sim_pred = location_predictions(sim_v, readout.shape)
    sim_out = sim_v.reshape(len(encoded), -1) / (1 << network.target.act_shift)
    dense = task_of(network) != "classification"

    float_pred = quantization = stable = None
    checkpoint = network.metadata.get("checkpoint")
    norm = network.metadata.get("normalization") or {}
    if checkpoint and Path(checkpoint).exists() and norm.get("mean"):
        from sakd.app.dense import float_readouts
        from sakd.export.graph import run_graph
        from sakd.export.lower import lower
        from sakd.export.quantize import dequantized_graph
        from sakd.train.jobs import load_network

        snn, _ = load_network(checkpoint)
        float_pred = location_predictions(float_readouts(snn.eval(), x)[readout.name].numpy(),
                                          readout.shape)
        low = lower(snn, input_shape=tuple(network.input.shape),
                    input_range=normalized_range(norm["mean"], norm["std"]),
                    input_bits=network.input.bits, target=network.target)
        xq = torch.as_tensor(encoded, dtype=torch.float64) / low.quantized.input.scale
        deq = run_graph(dequantized_graph(low.quantized), xq, T).outputs[readout.name]
        deq_pred = location_predictions(deq.numpy(), readout.shape)
        stable = deq_pred == float_pred
        quantization = {"float_vs_dequantized": float(stable.mean()),
                        "stable_samples": int(stable.sum()),
                        "simulator_vs_float_on_stable": _agree(sim_pred[stable], float_pred[stable])}

    versions = {name: readers_mod.package_version(name) for name in ("nir", "nirtorch", "spikingjelly")}
    common = [f"dt = {read_dt!r} (the file's {dt!r} at the precision of its time constants)",
              f"run for T = {T} steps on the encoded integer input x_int; NIR edges are "
              "instantaneous ('layered' timing): NIR step t is the float SNN's step t and the "
              "simulator's window step t of each population",
              "prediction = the channel of the largest final voltage (sum over T) at each "
              "location of the readout (a classifier: its class; a (K, H, W) map: a class per "
              "location; ties -> lowest index); voltages in v_int/64"]
    runs: dict[str, tuple[Callable[[], Any], str, str, list[str]]] = {
        "spikingjelly": (
            lambda: readers_mod.run_nir_spikingjelly(graph, encoded, T, read_dt, strict=True),
            f"spikingjelly {versions['spikingjelly']} nir_exchange.import_from_nir "
            f"(nirtorch {versions['nirtorch']})", ">",
            [f"unadapted import_from_nir(file, dt={dt!r}): "
             f"{readers_mod.try_direct_import(nir_path, dt)}",
             "the trailing readout (I/LI/CubaLI; not mapped by spikingjelly) is evaluated by "
             "NIR's Euler equations on the imported graph's output",
             "thresholds raised to the next float64 so that spikingjelly's v >= theta' is "
             "NIR's v > theta"]),
        "spikingjelly (own rule)": (
            lambda: readers_mod.run_nir_spikingjelly(graph, encoded, T, read_dt, strict=False),
            f"spikingjelly {versions['spikingjelly']} import_from_nir, its own rule", ">=",
            ["as 'spikingjelly' but firing on v >= theta (spikingjelly's convention, not NIR's): "
             "reported, not checked"]),
        "nirtorch": (
            lambda: readers_mod.run_nir_nirtorch(graph, encoded, T, read_dt),
            f"nirtorch {versions['nirtorch']} nir_to_torch with NIR's neuron equations", ">",
            ["Affine and Flatten maps replaced (nirtorch 2.6 defaults: Affine drops the bias; "
             "Flatten counts the batch axis)"]),
    }
    readers: dict[str, NirReaderResult] = {}
    for name, (run, reader, rule, notes) in runs.items():
        entry = NirReaderResult(reader=reader, spike_rule=rule, assumptions=notes, loaded=False)
        start = time.perf_counter()
        try:
            out = np.asarray(run(), dtype=np.float64).reshape(len(encoded), -1)
        except Exception as exc:  # an independent reader's refusal is a result, reported
            entry.error = f"{type(exc).__name__}: {exc}"
            readers[name] = entry
            continue
        pred = location_predictions(out, readout.shape)
        entry.loaded = True
        entry.seconds = time.perf_counter() - start
        entry.agreement_vs_simulator = _agree(pred, sim_pred)
        entry.max_readout_diff_vs_simulator = float(np.abs(out - sim_out).max())
        entry.agreement_vs_float_snn = _agree(pred, float_pred)
        entry.accuracy = None if dense else _agree(pred, labels.numpy())
        if stable is not None:
            entry.agreement_vs_float_snn_on_stable = _agree(pred[stable], float_pred[stable])
        readers[name] = entry
    checked = [r for r in readers.values() if r.spike_rule == ">"]
    loaded = [r for r in checked if r.loaded]
    ok = bool(loaded) and all(r.agreement_vs_simulator >= NIR_AGREEMENT for r in loaded)
    primary = next((name for name, r in readers.items() if r.loaded and r.spike_rule == ">"), None)
    return NirCheck(
        file=str(nir_path), samples=len(encoded), time_steps=T, reader=primary,
        agreement_vs_simulator=readers[primary].agreement_vs_simulator if primary else None,
        agreement_vs_float_snn=readers[primary].agreement_vs_float_snn if primary else None,
        simulator_vs_float_snn=_agree(sim_pred, float_pred), quantization=quantization,
        threshold=NIR_AGREEMENT, ok=ok,
        assumptions=[*common,
                     "spike rule: NIR, Lava and the simulator fire on v > theta; spikingjelly and "
                     "the float SNN on v >= theta. The integer network's voltages land exactly on "
                     "theta often, so readers are run with NIR's rule; spikingjelly's own rule is "
                     "reported"],
        readers=readers)


def _agree(a: Any, b: Any) -> float | None:
    if a is None or b is None:
        return None
    a, b = np.asarray(a), np.asarray(b)
    return float((a == b).mean()) if len(a) else None


# ---------------------------------------------------------------------------------------------
# the float SNN, per readout
# ---------------------------------------------------------------------------------------------


@dataclass
class ReadoutAgreement:
    """The float SNN against the simulator on one readout, over every (sample, location).
    Values are the readout's mean over T in the float model's units (the simulator's
    ``v / (64 · scale · T)``)."""

    readout: str
    shape: list[int]
    locations: int  # per sample: 1 for a (K,) readout, H x W for a (K, H, W) map
    #: fraction of the compared (sample, location) pairs whose largest channel (the predicted
    #: class) is the same; None for a readout that is not class scores
    argmax_agreement: float | None
    #: (sample, location) pairs compared: all, or a detector's candidate points; None for a
    #: readout that is not class scores
    argmax_compared: int | None
    max_abs_diff: float
    mean_abs_diff: float
    float_max_abs: float  # the largest |float value|: the scale of the differences
    correlation: float | None  # Pearson, over every value; None when either side is constant


@dataclass
class FloatCheck:
    """``verify --float``: the float SNN of the checkpoint against sakd's simulator on the same
    samples, per readout. Reported, no pass rule (the difference is the quantization's)."""

    checkpoint: str
    samples: int
    time_steps: int
    readouts: list[ReadoutAgreement]
    assumptions: list[str]


def readout_agreement(name: str, shape: tuple[int, ...], chip: np.ndarray, reference: np.ndarray,
                      classes: bool, threshold: float | None = None) -> ReadoutAgreement:
    """``chip`` and ``reference`` ``[B, *shape]`` (float) compared as ``ReadoutAgreement``.
    ``classes``: the channels are class scores (their argmax is compared); ``threshold``: then
    compare only the locations whose best class logit passes it on either side (None: all)."""
    chip = np.asarray(chip, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if chip.size != reference.size or reference.size != len(reference) * int(np.prod(shape)):
        raise JobError(f"readout '{name}': the simulator gives {chip.shape[1:]} per sample, the "
                       f"float SNN {reference.shape[1:]}, the network {shape}: the checkpoint "
                       f"is not this network's")
    chip, reference = chip.reshape(len(chip), *shape), reference.reshape(len(reference), *shape)
    diff = np.abs(chip - reference)
    agreement, compared = None, None
    if classes:
        same = location_predictions(chip, shape) == location_predictions(reference, shape)
        if threshold is not None:
            same = same[(chip.max(axis=1) > threshold) | (reference.max(axis=1) > threshold)]
        agreement, compared = (float(same.mean()) if same.size else None), int(same.size)
    a, b = chip.ravel(), reference.ravel()
    correlation = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else None
    return ReadoutAgreement(name, list(shape), int(np.prod(shape[1:])) if len(shape) > 1 else 1,
                            agreement, compared, float(diff.max()), float(diff.mean()),
                            float(np.abs(reference).max()), correlation)


def verify_float(export_dir: Path, samples: int, data_root: str | None = None) -> FloatCheck:
    """The float SNN of the checkpoint the network file names and sakd's simulator on the same
    test samples, every readout compared (``readout_agreement``)."""
    from sakd.app.dense import class_readouts, float_readouts
    from sakd.formats import get_format
    from sakd.hardware.netfile import read_network
    from sakd.hardware.simulator import simulate
    from sakd.hardware.simulator.runner import readout_to_float
    from sakd.train.jobs import load_network

    network = read_network(export_dir / get_format("ir").file_name)
    checkpoint = str(network.metadata.get("checkpoint"))
    x, _ = verification_samples(network, samples, data_root)
    T = network.steps_for()
    result = simulate(network, network.input.encode(x.numpy()))
    snn, _ = load_network(checkpoint)
    reference = float_readouts(snn.eval(), x)
    missing = [p.name for p in network.readouts if p.name not in reference]
    if missing:
        raise JobError(f"the checkpoint {checkpoint} has no readout {', '.join(missing)} of this "
                       f"network (its readouts: {', '.join(reference)}): it is not this network's")
    classes = class_readouts(network)
    rows = [readout_agreement(p.name, tuple(p.shape),
                              readout_to_float(network, result.readouts[p.name], T, readout=p.name),
                              reference[p.name].numpy(), p.name in classes, classes.get(p.name))
            for p in network.readouts]
    return FloatCheck(checkpoint, len(x), T, rows, assumptions=[
        "float SNN: the checkpoint's model on the same normalized images, each readout the mean "
        "over T of its per-step values; simulator: the readout's v / (64 x scale x T)",
        "prediction = the channel of the largest value at each location (ties -> lowest index), "
        "compared on class-score readouts only: a classifier's, a segmenter's (every location), "
        "a detector's cls_logits (the points whose best class logit passes the detector's score "
        "threshold on either side; elsewhere every logit is low and the largest a near tie)",
        "the integer network is the quantized float SNN (8-bit weights and input): these "
        "differences are the quantization's, reported, not a pass rule"])


# ---------------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyOptions:
    export_dir: Path
    lava: bool = False
    onnx: bool = False
    nir: bool = False
    samples: int = 16
    data_root: str | None = None
    out: Path | None = None
    float_snn: bool = False  # --float: the float SNN against the simulator, per readout


@dataclass
class VerifyReport:
    """``verify_report.json``; ``ok``: every requested reference passed its rule."""

    export_dir: str
    samples: int
    network_digest: str
    ok: bool
    lava: list[Comparison] | None = None
    onnx: list[OnnxCheck] | None = None
    nir: NirCheck | None = None
    float_snn: FloatCheck | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def validate_options(options: VerifyOptions) -> Path:
    if not (options.lava or options.onnx or options.nir or options.float_snn):
        raise JobError("choose at least one reference: --lava, --onnx, --nir and/or --float")
    count_option(options.samples, "--samples")
    folder = Path(options.export_dir)
    if not folder.is_dir():
        raise JobError(f"{folder} is not an export folder (run `sakd export CKPT -o {folder}`)")
    out = Path(options.out) if options.out else folder / REPORT_NAME
    check_output_file(out)
    if options.lava:
        from sakd.hardware.lava_bridge import require_lava_environment

        require_lava_environment()  # before any work: a LavaUnavailable says how to build it
    return out


def _skipped_reason(folder: Path, fmt: str) -> str | None:
    """Why the export in ``folder`` did not write format ``fmt`` (its export_report.json), or
    None when the report does not say."""
    import json

    from sakd.app.export import REPORT_NAME as EXPORT_REPORT

    try:
        skipped = json.loads((folder / EXPORT_REPORT).read_text()).get("skipped") or {}
    except (OSError, ValueError, AttributeError):
        return None
    reason = skipped.get(fmt) if isinstance(skipped, dict) else None
    return str(reason) if reason else None


def check_references(options: VerifyOptions, network: Any) -> None:
    """Every requested reference can run on this export, checked before any of them runs: its
    file is there (else the export's reason for skipping it), Lava's runner gets one readout,
    the float SNN's checkpoint is at hand. A JobError names the option and the reason."""
    from sakd.formats import get_format

    folder = Path(options.export_dir)
    for option, wanted, fmt in (("--onnx", options.onnx, "onnx"), ("--nir", options.nir, "nir")):
        path = folder / get_format(fmt).file_name
        if wanted and not path.exists():
            why = _skipped_reason(folder, fmt)
            raise JobError(f"{option}: no {fmt.upper()} file at {path}; " + (
                f"the export could not write one: {why}" if why else
                f"export with --formats {fmt} (or auto)"))
    if options.nir and len(network.readouts) != 1:
        names = ", ".join(p.name for p in network.readouts)
        raise JobError(f"--nir: this network has {len(network.readouts)} readouts ({names}); the "
                       f"NIR check compares one readout; use --float (per readout)")
    if options.lava and len(network.readouts) != 1:
        names = ", ".join(p.name for p in network.readouts)
        raise JobError(f"--lava: this network has {len(network.readouts)} readouts ({names}); the "
                       f"Lava reference runner reads one readout population, so Lava cannot check "
                       f"it; use --float (the float SNN against the simulator, per readout)")
    checkpoint = network.metadata.get("checkpoint")
    for option, wanted in (("--float", options.float_snn), ("--onnx", options.onnx)):
        if wanted and (not checkpoint or not Path(checkpoint).exists()):
            raise JobError(f"{option}: the checkpoint recorded in the network file ({checkpoint}) "
                           f"is missing; {option} compares against it")


def verify_job(options: VerifyOptions, progress: Callable[[str], Any] | None = None) -> VerifyReport:
    """Run every requested reference; write ``verify_report.json``."""
    from sakd.app.common import read_network_file
    from sakd.hardware.atomic import atomic_write_json

    out = validate_options(options)
    say = progress or (lambda _msg: None)
    folder = Path(options.export_dir)
    network = read_network_file(folder)
    check_references(options, network)
    report = VerifyReport(export_dir=str(folder), samples=options.samples,
                          network_digest=network.digest(), ok=True)
    if options.lava:
        say("running Lava (IR and netx) and the simulator on the same samples")
        report.lava = verify_lava(folder, options.samples, options.data_root)
        report.ok &= all(c.identical for c in report.lava)
    if options.onnx:
        say("running onnxruntime against torch")
        report.onnx = verify_onnx(folder, options.samples, options.data_root)
        report.ok &= all(c.ok for c in report.onnx)
    if options.nir:
        say("running the NIR file through independent readers")
        report.nir = verify_nir(folder, options.samples, options.data_root)
        report.ok &= report.nir.ok
    if options.float_snn:  # reported: no pass rule
        say("running the float SNN and the simulator on the same samples")
        report.float_snn = verify_float(folder, options.samples, options.data_root)
    atomic_write_json(out, report.to_dict())
    return report
