"""``sakd eval``: the accuracy of a checkpoint and, for an SNN, each LIF layer's firing rate; for
a QAT checkpoint both the float forward and the integer one (what the chip computes), labelled."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sakd.app.common import JobError, check_output_file, count_option


@dataclass(frozen=True)
class EvalOptions:
    checkpoint: Path
    split: str = "test"
    data_root: str | None = None
    batch_size: int = 256
    device: str = "auto"
    json_out: Path | None = None


@dataclass
class EvalResult:
    """Accuracy (%) and mean loss over ``samples``; ``integer_accuracy``: a QAT checkpoint's
    accuracy with the export's integer weights, bias and input (the chip's), beside the float
    forward's ``accuracy``."""

    checkpoint: str
    arch: str
    kind: str  # "ANN" | "SNN T=..."
    data: str
    split: str
    accuracy: float | None
    loss: float | None
    samples: int
    firing_rates: dict[str, float] = field(default_factory=dict)
    qat: bool = False
    integer_accuracy: float | None = None
    integer_loss: float | None = None
    #: detection / segmentation: the task and its figures (mAP in [0, 1], or mIoU and pixel
    #: accuracy); ``accuracy`` and ``loss`` are then None (a dense task has no top-1 accuracy)
    task: str = "classification"
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def validate_options(options: EvalOptions) -> None:
    if options.split not in ("test", "val", "train"):
        raise JobError(f"--split {options.split!r}: choose test, val or train")
    count_option(options.batch_size, "--batch-size")
    path = Path(options.checkpoint)
    if path.is_dir():
        raise JobError(f"{path} is a folder; give a checkpoint file (e.g. {path / 'best.pt'})")
    if options.json_out is not None:
        check_output_file(options.json_out, "--json")


def evaluate_job(options: EvalOptions) -> EvalResult:
    from sakd.app.train import prepare_qat
    from sakd.config import config_from_dict
    from sakd.data import load_splits
    from sakd.hardware.atomic import atomic_write_json
    from sakd.train.distributed import init_distributed
    from sakd.train.evaluate import evaluate
    from sakd.train.jobs import load_network

    validate_options(options)
    env = init_distributed(options.device)
    network, record = load_network(options.checkpoint)
    if record.get("task", "classification") != "classification":
        return _evaluate_dense(options, network, record, env)
    data_cfg = record["config"]["data"]
    splits = load_splits(data_cfg["name"], options.data_root or data_cfg["root"], augment=False,
                         val_fraction=data_cfg["val_fraction"])
    dataset = {"test": splits.test, "val": splits.val, "train": splits.train}[options.split]
    if dataset is None:
        raise JobError(f"split '{options.split}' does not exist for this run (the run kept no "
                       f"validation split: val_fraction = 0)")
    figures = evaluate(network.to(env.device), dataset, env, batch_size=options.batch_size,
                       firing_rates=network.is_spiking)
    result = EvalResult(
        checkpoint=str(options.checkpoint), arch=record["arch"],
        kind=f"SNN T={network.time_steps}" if network.is_spiking else "ANN",
        data=data_cfg["name"], split=options.split, accuracy=figures["acc"],
        loss=figures["loss"], samples=figures["n"],
        firing_rates=figures.get("firing_rates", {}), qat=bool(record.get("qat")))
    if result.qat:
        config = config_from_dict(record["config"])
        handle = prepare_qat(network.cpu(), config, splits.info)
        integer = evaluate(network.to(env.device), dataset, env, batch_size=options.batch_size)
        handle.disable()
        result.integer_accuracy, result.integer_loss = integer["acc"], integer["loss"]
    if options.json_out and env.is_main:
        atomic_write_json(options.json_out, result.to_dict())
    return result


def _evaluate_dense(options: EvalOptions, network: Any, record: dict[str, Any], env: Any) -> EvalResult:
    """``sakd eval`` of a detector (mAP) or segmenter (mIoU) on its data set's split."""
    from sakd.config import config_from_dict
    from sakd.hardware.atomic import atomic_write_json
    from sakd.train.dense import dense_data, evaluator

    config = config_from_dict(record["config"])
    if options.data_root:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, root=options.data_root))
    splits = dense_data(dataclasses.replace(
        config, data=dataclasses.replace(config.data, augment=False)))
    dataset = {"test": splits.test, "val": splits.val, "train": splits.train}[options.split]
    if dataset is None:
        raise JobError(f"split '{options.split}' does not exist for this run (the run kept no "
                       f"validation split: val_fraction = 0)")
    figures = evaluator(config.task, splits.info.class_names)(
        network.to(env.device), dataset, env, batch_size=options.batch_size,
        firing_rates=network.is_spiking)
    rates = figures.pop("firing_rates", {})
    samples = int(figures.pop("n"))
    figures.pop("iou_per_class", None)
    result = EvalResult(
        checkpoint=str(options.checkpoint), arch=record["arch"],
        kind=f"SNN T={network.time_steps}" if network.is_spiking else "ANN",
        data=config.data.name, split=options.split, accuracy=None, loss=None,
        samples=samples, firing_rates=rates, task=config.task,
        metrics={k: float(v) for k, v in figures.items()})
    if options.json_out and env.is_main:
        atomic_write_json(options.json_out, result.to_dict())
    return result
