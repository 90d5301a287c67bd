"""``sakd export``: a trained SNN checkpoint -> the IR (fold BN, quantize, lower) -> every file
format that can express it (``sakd.formats``) and ``export_report.json``.

The export folder is written whole: the files go into a staging folder beside it, which then
replaces the old folder in one rename, so a failed or killed export never leaves new files beside
an older export's (or an older export's simulate, energy and verify reports beside a new
network). Only a new folder, an empty one, or a sakd export folder is replaced.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sakd.app.common import JobError, check_output_dir, count_option
from sakd.hardware.atomic import atomic_write_json
from sakd.hardware.ir import DEFAULT_GRADED_BITS
from sakd.hardware.target import DEFAULT_TARGET, get_target

REPORT_NAME = "export_report.json"
#: the file that marks a folder as a sakd export (replaceable by a new export)
EXPORT_MARKER = REPORT_NAME


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how. ``formats``: format names (``sakd formats``), or None for every
    format that can express the network. ``calibrate``: simulate that many test samples (None:
    all) and compare with the float SNN (0: none)."""

    checkpoint: Path
    out_dir: Path
    formats: tuple[str, ...] | None = None
    target: str = DEFAULT_TARGET.name
    input_bits: int = DEFAULT_GRADED_BITS
    calibrate: int | None = 0
    data_root: str | None = None


@dataclass
class Calibration:
    """The integer network against the float SNN on test samples."""

    samples: int
    split: str
    float_accuracy: float  # %
    chip_accuracy: float  # %
    predictions_changed: int
    layers: dict[str, dict[str, float]]  # population -> spike_mismatch, float_rate, chip_rate


@dataclass
class ExportReport:
    """``export_report.json``: what was written, what was not and why, and what the quantizer
    did to every population."""

    checkpoint: str
    target: str
    network_digest: str
    files: dict[str, str]
    skipped: dict[str, str]
    notes: dict[str, list[str]]
    latency: int
    time_steps: int
    input: dict[str, Any]
    populations: list[dict[str, Any]]
    delays: dict[str, int]
    metadata: dict[str, Any]
    calibration: Calibration | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ExportResult:
    out_dir: Path
    report: ExportReport
    lowering: Any  # sakd.export.lower.Lowering
    network: Any  # sakd.hardware.ir.Network

    @property
    def files(self) -> dict[str, str]:
        return self.report.files


def validate_options(options: ExportOptions) -> ExportOptions:
    """Every option checked before any work (also by ``pipeline``, before training)."""
    from sakd.formats import formats
    from sakd.hardware.errors import SakdError

    known = formats()
    if options.formats is not None:
        if not options.formats:
            raise JobError("--formats is empty; give format names or 'auto'")
        unknown = [f for f in options.formats if f not in known]
        if unknown:
            raise JobError(f"unknown export format(s) {', '.join(unknown)}; choose from "
                           f"{', '.join(known)} (or auto)")
    try:
        get_target(options.target)
    except SakdError as exc:
        raise JobError(f"--target: {exc}") from exc
    spec = get_target(options.target)
    if isinstance(options.input_bits, bool) or not isinstance(options.input_bits, int) \
            or not 2 <= options.input_bits <= spec.max_message_bits:
        raise JobError(f"--input-bits {options.input_bits!r}: a graded input needs 2 to "
                       f"{spec.max_message_bits} bits (signed) on {spec.name}")
    calibrate = options.calibrate
    if calibrate is not None:
        count_option(calibrate, "--calibrate", allow_all=True, allow_zero=True)
    check_export_folder(options.out_dir)
    return options


def check_export_folder(out_dir: Path) -> None:
    """``out_dir`` may be replaced by an export: new, empty, or a sakd export folder."""
    out_dir = check_output_dir(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / EXPORT_MARKER).exists():
        raise JobError(f"-o {out_dir} holds files that are not a sakd export (no "
                       f"{EXPORT_MARKER}); an export replaces its folder whole, so choose a new "
                       f"or empty folder")


def export_checkpoint(options: ExportOptions,
                      progress: Callable[[str], Any] | None = None) -> ExportResult:
    """Lower a student checkpoint and write the requested formats plus ``export_report.json``
    (module docstring: the folder is replaced whole)."""
    from sakd.export.lower import lower
    from sakd.train.jobs import load_network

    validate_options(options)
    say = progress or (lambda _msg: None)
    network, record = load_network(options.checkpoint)
    if not network.is_spiking:
        raise JobError(f"{options.checkpoint} is an ANN teacher checkpoint; export lowers a "
                       f"spiking student (a `sakd distill` checkpoint)")
    info = checkpoint_dataset(record, options.checkpoint)
    from sakd.data.common import input_value_range

    dense = record.get("task", "classification") != "classification"
    if dense and options.calibrate != 0:
        raise JobError(f"--calibrate compares class predictions; {options.checkpoint} is a "
                       f"{record['task']} network: run `sakd simulate` on the export for its "
                       f"on-chip and float figures")

    metadata = {"dataset": info.name, "classes": list(info.class_names),
                "num_classes": info.num_classes,
                "normalization": {"mean": list(info.mean), "std": list(info.std)},
                "model_args": record.get("model_args", {}), "arch_name": record.get("arch"),
                "checkpoint": str(Path(options.checkpoint).resolve()),
                "neuron": record.get("neuron", {})}
    if dense:  # a detector or segmenter: its task and config instead of a classifier's fields
        from sakd.app.dense import export_metadata

        for key in ("classes", "num_classes", "model_args"):
            metadata.pop(key)
        metadata["class_names"] = list(info.class_names)
        metadata.update(export_metadata(record))
    shape = (info.in_channels, *info.image_size)
    say("lowering (fold BN, quantize, balance latency)")
    low = lower(network, input_shape=shape, input_range=input_value_range(info),
                input_bits=options.input_bits, target=options.target, metadata=metadata)
    teacher = (record.get("teacher") or {}).get("checkpoint")
    return write_export(low, options, network, shape, info.name, teacher, say)


def write_export(low: Any, options: ExportOptions, float_model: Any, shape: tuple[int, ...],
                 data: str | None, teacher: str | None, say: Callable[[str], Any]) -> ExportResult:
    """Write a lowering into ``options.out_dir`` (staged, replaced whole): every wanted format
    (``float_model`` for the float-model formats), the calibration on ``data``'s test split when
    asked, and ``export_report.json``. Shared by ``export_checkpoint`` and
    ``sakd.app.own_model`` (a user's own module)."""
    ir = low.network
    with staged_folder(options.out_dir) as stage:
        files, skipped, notes = write_formats(ir, stage, options.formats, float_model, shape,
                                              teacher, say)
        calibration = None
        if options.calibrate != 0:
            say("calibrating on the test split")
            calibration = calibrate_lowering(low, float_model, data, options.calibrate,
                                             options.data_root)
        report = ExportReport(
            checkpoint=str(options.checkpoint), target=ir.target.name,
            network_digest=ir.digest(),
            files={k: str(Path(options.out_dir) / Path(v).name) for k, v in files.items()},
            skipped=skipped, notes=notes, latency=low.latency, time_steps=int(ir.time_steps),
            input=vars(low.quantized.input), populations=[r.to_dict() for r in low.quantized.report],
            delays={k: v for k, v in low.delays.items() if v}, metadata=low.metadata,
            calibration=calibration)
        atomic_write_json(stage / REPORT_NAME, report.to_dict())
    return ExportResult(Path(options.out_dir), report, low, ir)


def write_formats(network: Any, folder: Path, wanted: Sequence[str] | None, float_model: Any,
                  input_shape: tuple[int, ...], teacher_checkpoint: str | None,
                  say: Callable[[str], Any]) -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    """Write ``network`` (and the float model, for float-model formats) in every wanted format
    (None: every format that can express it; a format that cannot is then skipped with the
    reason, while a format asked for by name is an error). Returns (files, skipped, notes)."""
    from sakd.formats import formats
    from sakd.formats.base import FormatError
    from sakd.train.jobs import load_network

    auto = wanted is None
    files: dict[str, str] = {}
    skipped: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    for name, fmt in formats().items():
        if not auto and name not in wanted:
            continue
        if fmt.write is None:
            continue
        path = folder / fmt.file_name
        if fmt.writes == "float model" and network.metadata.get("task") in ("detection",
                                                                             "segmentation"):
            why = (f"the {fmt.title} writer takes a classifier's float model (one logits "
                   f"tensor); this {network.metadata['task']} network has its own readouts")
            if not auto:
                raise JobError(f"--formats {name}: {why}")
            skipped[name] = why
            continue
        say(f"writing {fmt.title}")
        if fmt.writes == "float model":
            fmt.write(float_model, path, example_input_shape=(1, *input_shape))
            files[name] = str(path)
            if teacher_checkpoint and Path(teacher_checkpoint).exists():  # the ANN teacher beside it
                teacher, _ = load_network(teacher_checkpoint)
                teacher_path = folder / f"teacher{Path(fmt.file_name).suffix}"
                fmt.write(teacher, teacher_path, example_input_shape=(1, *input_shape))
                files[f"{name}-teacher"] = str(teacher_path)
            continue
        try:
            fmt.write(network, path)
        except FormatError as exc:
            if not auto:
                raise JobError(f"--formats {name}: {exc}") from exc
            skipped[name] = str(exc)
            continue
        files[name] = str(path)
        if fmt.notes is not None and (found := fmt.notes(network)):
            notes[name] = found
    return files, skipped, notes


@contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """A fresh staging folder beside ``out_dir`` that replaces it on success (the old folder is
    moved aside, the stage renamed into place, the old one removed); removed on any failure,
    Ctrl-C included, so ``out_dir`` keeps its old contents."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.stage-*"):  # left by a killed export
        shutil.rmtree(stale, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.stage-", dir=out_dir.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / out_dir.name)
    os.replace(stage, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def checkpoint_dataset(record: dict[str, Any], checkpoint: str | Path) -> Any:
    """The data set a checkpoint was trained on (``DatasetInfo``)."""
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
        raise JobError(f"{checkpoint}: the checkpoint does not record its data set "
                       f"(missing {exc}); re-save it with this version of sakd") from exc


def calibrate_lowering(low: Any, network: Any, data: str, limit: int | None,
                       data_root: str | None = None) -> Calibration:
    """Simulate ``limit`` test samples (None: all) on the integer network and compare with the
    float SNN: predictions changed, and per population the fraction of (neuron, step) spikes
    that differ."""
    from sakd.app.common import load_samples
    from sakd.app.simulate import compare_with_float
    from sakd.hardware.simulator import simulate

    samples = load_samples(data, "test", limit, data_root)
    ir = low.network
    names = [p.name for p in ir.populations if not p.is_readout]
    result = simulate(ir, ir.input.encode(samples.x.numpy()), record=names)
    float_pred, layers = compare_with_float(low.float_graph, ir, samples.x, result)
    labels = samples.y.numpy()
    return Calibration(
        samples=len(labels), split="test",
        float_accuracy=100.0 * float((float_pred == labels).mean()),
        chip_accuracy=100.0 * float((result.predictions == labels).mean()),
        predictions_changed=int((result.predictions != float_pred).sum()),
        layers=layers)


__all__ = ["Calibration", "ExportOptions", "ExportReport", "ExportResult", "export_checkpoint",
           "validate_options", "write_export"]
