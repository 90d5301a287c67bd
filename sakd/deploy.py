"""Deployment jobs behind ``sakd export``, ``sakd simulate`` and ``sakd energy``: a trained SNN
checkpoint -> the hardware IR and its files -> the bit-accurate simulator -> counts and energy.

The IR file carries what the later stages need (metadata): the data set and its normalization,
the architecture and its arguments, T, the classes, the input quantization and the checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sakd.data.common import input_value_range
from sakd.errors import SakdError
from sakd.io import atomic_write_json

FORMATS = ("ir", "nir", "netx", "onnx")
FILE_NAMES = {"ir": "network.h5", "nir": "network.nir", "netx": "network.netx.h5",
              "onnx": "student.onnx"}


input_range = input_value_range  # the normalized input's (min, max): what the input scale covers


class DeployError(SakdError):
    """A deployment step cannot run as asked; the message says what to do."""


# ---------------------------------------------------------------------------------------------
# data


def _split_tensors(dataset, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(dataset) if limit is None or limit < 0 else min(limit, len(dataset))
    if n == 0:
        raise DeployError("no samples to run (the split is empty or --limit is 0)")
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(n)),
                                         batch_size=512, shuffle=False)
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def load_samples(data: str, split: str, limit: int | None, root: str | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Normalized images [N, C, H, W] and labels of a split (no augmentation)."""
    from sakd.data import load_splits

    splits = load_splits(data, root, augment=False, val_fraction=0.1 if split == "val" else 0.0)
    datasets = {"train": splits.train, "val": splits.val, "test": splits.test}
    if split not in datasets or datasets[split] is None:
        raise DeployError(f"unknown or empty split '{split}'; choose train, val or test")
    x, y = _split_tensors(datasets[split], limit)
    return x, y, splits.info


# ---------------------------------------------------------------------------------------------
# export


@dataclass
class ExportResult:
    out_dir: Path
    files: dict[str, str]
    skipped: dict[str, str]
    report: dict[str, Any]
    lowering: Any


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, *,
                      formats: Sequence[str] | str = "auto", target: str = "loihi2",
                      input_bits: int = 8, calibrate: int = 0, data_root: str | None = None
                      ) -> ExportResult:
    """Lower a student checkpoint and write the requested formats plus ``export_report.json``.

    ``formats``: a list from FORMATS, or ``auto`` = every format this network can be expressed
    in (netx only for sequential networks; the reason is recorded when it is not written).
    ``calibrate``: simulate that many test samples (-1: all) and compare with the float SNN.
    """
    from sakd.export.lower import lower
    from sakd.hardware.netfile import write_network
    from sakd.train.jobs import load_network

    auto = formats == "auto"
    wanted = list(FORMATS) if auto else [f.strip() for f in formats]
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise DeployError(f"unknown export format(s) {unknown}; choose from {', '.join(FORMATS)}")
    network, record = load_network(checkpoint)
    if not network.is_spiking:
        raise DeployError(f"{checkpoint} is an ANN teacher checkpoint; export lowers a spiking "
                          "student (a `sakd distill` checkpoint)")
    info = _dataset_info(record, checkpoint)
    metadata = {"dataset": info.name, "classes": list(info.class_names),
                "num_classes": info.num_classes, "normalization": {"mean": list(info.mean),
                                                                   "std": list(info.std)},
                "model_args": record.get("model_args", {}), "arch_name": record.get("arch"),
                "checkpoint": str(Path(checkpoint).resolve()), "neuron": record.get("neuron", {})}
    shape = (info.in_channels, *info.image_size)
    low = lower(network, input_shape=shape, input_range=input_value_range(info), input_bits=input_bits,
                target=target, metadata=metadata)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    skipped: dict[str, str] = {}
    notes: dict[str, list[str]] = {}  # format -> what it holds that the hardware cannot run as is
    for fmt in wanted:
        path = out / FILE_NAMES[fmt]
        if fmt == "ir":
            write_network(low.network, path)
        elif fmt == "nir":
            from sakd.export.nir_io import write_nir

            write_nir(low.network, path)
        elif fmt == "netx":
            from sakd.export.netx_io import NetxExportError, netx_hardware_notes, write_netx

            try:
                write_netx(low.network, path)
                if hardware_notes := netx_hardware_notes(low.network):
                    notes["netx"] = hardware_notes
            except NetxExportError as exc:
                if not auto:
                    raise DeployError(str(exc)) from exc
                skipped[fmt] = str(exc)
                continue
        elif fmt == "onnx":
            from sakd.export.onnx_export import export_onnx

            export_onnx(network, path, example_input_shape=(1, *shape))
            teacher_ckpt = (record.get("teacher") or {}).get("checkpoint")
            if teacher_ckpt and Path(teacher_ckpt).exists():  # the ANN teacher beside it
                teacher, _ = load_network(teacher_ckpt)
                export_onnx(teacher, out / "teacher.onnx", example_input_shape=(1, *shape))
                files["onnx-teacher"] = str(out / "teacher.onnx")
        files[fmt] = str(path)
    report: dict[str, Any] = {"checkpoint": str(checkpoint), "target": target, "files": files,
                              "skipped": skipped, "notes": notes, **low.report()}
    if calibrate:
        report["calibration"] = calibrate_lowering(low, network, info.name, calibrate, data_root)
    atomic_write_json(out / "export_report.json", report)
    return ExportResult(out, files, skipped, report, low)


def _dataset_info(record: dict[str, Any], checkpoint: str | Path):
    from sakd.data.common import DatasetInfo

    data = record.get("data")
    try:
        return DatasetInfo(name=data["name"], num_classes=int(data["num_classes"]),
                           in_channels=int(data["in_channels"]),
                           image_size=tuple(int(v) for v in data["image_size"]),
                           mean=tuple(float(v) for v in data["mean"]),
                           std=tuple(float(v) for v in data["std"]),
                           class_names=tuple(data.get("class_names", ())))
    except (TypeError, KeyError, ValueError) as exc:
        raise DeployError(f"{checkpoint}: the checkpoint does not record its data set "
                          f"(missing {exc}); re-save it with this version of sakd") from exc


def compare_with_float(float_graph, network, x: torch.Tensor, result, time_steps: int
                       ) -> tuple[np.ndarray, dict[str, dict[str, float]]]:
    """The float SNN (``float_graph``) on ``x``: its predictions and, for every population whose
    spikes ``result`` recorded, the fraction of (neuron, step) spikes in the population's window
    that differ from the integer network's, with both firing rates."""
    from sakd.export.graph import run_graph

    float_run = run_graph(float_graph, x.double(), time_steps, record=True)
    layers = {}
    for name, spikes in float_run.spikes.items():
        if name not in result.traces:
            continue
        lat = network.latencies[name]
        chip = np.asarray(result.traces[name]["s"])[lat:lat + time_steps].astype(bool)
        ref = spikes.numpy().astype(bool)
        layers[name] = {"spike_mismatch": float((chip != ref).mean()),
                        "float_rate": float(ref.mean()), "chip_rate": float(chip.mean())}
    return float_run.logits.argmax(1).numpy(), layers


def calibrate_lowering(low, network, data: str, limit: int, data_root: str | None = None
                       ) -> dict[str, Any]:
    """Simulate ``limit`` test samples on the integer network and compare with the float SNN:
    predictions changed, and per population the fraction of (neuron, step) spikes that differ."""
    from sakd.hardware.simulator import simulate

    x, y, _ = load_samples(data, "test", limit, data_root)
    T = network.time_steps
    names = [p.name for p in low.network.populations if not p.is_readout]
    result = simulate(low.network, low.network.input.encode(x.numpy()), time_steps=T, record=names)
    float_pred, layers = compare_with_float(low.float_graph, low.network, x, result, T)
    labels = y.numpy()
    return {"samples": len(labels), "split": "test",
            "float_accuracy": 100.0 * float((float_pred == labels).mean()),
            "chip_accuracy": 100.0 * float((result.predictions == labels).mean()),
            "predictions_changed": int((result.predictions != float_pred).sum()),
            "layers": layers}


# ---------------------------------------------------------------------------------------------
# simulate


def resolve_network_path(path: str | Path) -> Path:
    """An IR file, or a folder holding ``network.h5`` (an export directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAMES["ir"]
    if not path.exists():
        raise DeployError(f"no network file at {path}; run `sakd export CKPT -o DIR` first")
    return path


def read_any_network(path: str | Path, *, dt: float | None = None):
    """IR, NIR or netx file -> IR Network (format detected from the file)."""
    from sakd.export.inspect import detect_format

    path = resolve_network_path(path)
    kind = detect_format(path)
    if kind == "sakd-ir":
        from sakd.hardware.netfile import read_network

        return read_network(path)
    if kind == "nir":
        from sakd.export.nir_io import read_nir

        return read_nir(path, **({"dt": dt} if dt else {}))
    from sakd.export.netx_io import read_netx

    return read_netx(path)


def simulate_dataset(network, data: str, *, split: str = "test", limit: int | None = None,
                     batch: int | None = None, device: str = "cpu", data_root: str | None = None,
                     time_steps: int | None = None, record: Sequence[str] = (),
                     progress: Callable[[int, int], Any] | None = None) -> dict[str, Any]:
    """Encode a data split for ``network`` and simulate it; accuracy, throughput and the result."""
    from sakd.hardware.simulator import simulate

    T = int(time_steps or network.metadata.get("time_steps") or 0)
    if T < 1:
        raise DeployError("the network file does not record T; pass --time-steps")
    x, y, info = load_samples(data, split, limit, data_root)
    expected = tuple(network.input.shape)
    if tuple(x.shape[1:]) != expected:
        raise DeployError(f"data set '{data}' gives inputs of shape {tuple(x.shape[1:])} but the "
                          f"network expects {expected}")
    encoded = network.input.encode(x.numpy())
    backend = "numpy" if device == "cpu" else "torch"
    start = time.perf_counter()
    result = simulate(network, encoded, time_steps=T, backend=backend, device=device,
                      batch_size=batch, record=record, progress=progress)
    seconds = time.perf_counter() - start
    labels = y.numpy()
    synops = sum(float(p.synops.sum()) for p in result.counts.projections.values())
    return {"x": x, "labels": labels, "result": result, "seconds": seconds, "info": info,
            "accuracy": 100.0 * float((result.predictions == labels).mean()),
            "samples_per_s": len(labels) / seconds, "synops_per_s": synops / seconds,
            "time_steps": T}


def float_agreement(network, run: dict[str, Any], float_graph=None) -> dict[str, Any] | None:
    """Compare the simulation with the float SNN: prediction agreement and per-population spike
    mismatch. The float graph is the lowering's (``Lowering.float_graph``) or, when not given,
    rebuilt from the checkpoint named in the file's metadata (None when there is none)."""
    checkpoint = network.metadata.get("checkpoint")
    if float_graph is None:
        if not checkpoint or not Path(checkpoint).exists():
            return None
        from sakd.export.lower import lower
        from sakd.train.jobs import load_network

        snn, _ = load_network(checkpoint)
        float_graph = lower(snn, input_shape=tuple(network.input.shape),
                            input_range=input_value_range(run["info"]),
                            input_bits=network.input.bits).float_graph
    float_pred, layers = compare_with_float(float_graph, network, run["x"], run["result"],
                                            run["time_steps"])
    return {"checkpoint": checkpoint,
            "float_accuracy": 100.0 * float((float_pred == run["labels"]).mean()),
            "prediction_agreement": 100.0 * float((float_pred == run["result"].predictions).mean()),
            "spike_mismatch": {name: row["spike_mismatch"] for name, row in layers.items()}}


def simulate_report(network, run: dict[str, Any], agreement: dict[str, Any] | None,
                    path: Path | None) -> dict[str, Any]:
    counts = run["result"].counts
    report = {
        "network": network.metadata.get("arch_name") or network.metadata.get("arch"),
        "samples": len(run["labels"]), "time_steps": run["time_steps"],
        "latency": network.latency, "on_chip_accuracy": run["accuracy"],
        "throughput": {"seconds": run["seconds"], "samples_per_s": run["samples_per_s"],
                       "synops_per_s": run["synops_per_s"], "backend": run["result"].backend},
        "float_agreement": agreement,
        "layers": counts.mean_per_sample(),
    }
    if path is not None:
        atomic_write_json(path, report)
    return report


# ---------------------------------------------------------------------------------------------
# energy


def ann_macs_for(network) -> dict[str, int] | None:
    """The teacher ANN's MACs per layer for one sample (same architecture as the student)."""
    from sakd.models import arch_spec, build_model
    from sakd.models.macs import count_ann_macs

    arch = network.metadata.get("arch_name")
    args = network.metadata.get("model_args")
    if not arch or not args:
        return None
    teacher_arch = arch_spec(arch).teacher
    ann = build_model(teacher_arch, **args)
    return count_ann_macs(ann, tuple(network.input.shape))
