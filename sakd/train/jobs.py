"""The training jobs behind the CLI: train an ANN teacher, distill a SAKD student, and load
either back from its checkpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from sakd.config import Config, ConfigError, dump_config
from sakd.data import DatasetInfo, DataSplits, load_splits
from sakd.data.common import subset_train
from sakd.distill import (
    ClassificationTask,
    DistillationTask,
    FeatureWeight,
    SAKDStudent,
    check_taps_match,
)
from sakd.models import LIFSettings, Network, arch_spec, build_model, spikify
from sakd.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state_strict,
    read_state_dict_file,
)
from sakd.train.dense import (
    SELECT_METRIC,
    check_classes,
    dense_data,
    distillation_task,
    evaluator,
    plain_task,
)
from sakd.train.distributed import DistEnv
from sakd.train.trainer import FitResult, Trainer, seed_everything


def load_data(config: Config) -> DataSplits:
    """The splits of ``config``'s data set (a ``DenseSplits`` for detection/segmentation)."""
    if config.task != "classification":
        return dense_data(config)
    d = config.data
    splits = load_splits(d.name, d.root, d.augment, d.val_fraction, d.download)
    if d.train_subset is not None:
        splits = subset_train(splits, d.train_subset)
    return splits


def model_args(info: DatasetInfo) -> dict[str, Any]:
    return {"num_classes": info.num_classes, "in_channels": info.in_channels,
            "image_size": list(info.image_size)}


def _wrap(module: torch.nn.Module, env: DistEnv) -> torch.nn.Module:
    if not env.distributed:
        return module
    if env.device.type == "cuda":
        module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return DDP(module, device_ids=[env.device.index])
    # Gloo on the CPU: SyncBatchNorm needs CUDA, so BN statistics stay per process here
    return DDP(module)


def _example(info: DatasetInfo) -> torch.Tensor:
    return torch.zeros(2, info.in_channels, *info.image_size)


# ---------------------------------------------------------------------------------------------
# teacher


def train_teacher(config: Config, run_dir: str | Path, env: DistEnv, resume: bool = False,
                  progress: bool = True, splits: DataSplits | None = None) -> FitResult:
    """Train the ANN teacher of ``config`` (architecture: teacher.arch or the student's)."""
    seed_everything(config.seed)
    splits = splits or load_data(config)
    arch = config.teacher.arch or arch_spec(config.model.arch).teacher
    args = model_args(splits.info)
    ann = build_model(arch, **args).to(env.device)
    wrapped = _wrap(ann, env)

    def describe() -> dict[str, Any]:
        return {"kind": "teacher", "arch": arch, "model_args": args, "time_steps": 0,
                "task": config.task, "config": config.to_dict(), "data": splits.info.to_dict()}

    task = (ClassificationTask(wrapped) if config.task == "classification"
            else plain_task(config.task, wrapped))
    trainer = Trainer(task=task, trainable=ann, network=ann, splits=splits,
                      batch_size=config.data.batch_size, eval_batch_size=config.data.eval_batch_size,
                      workers=config.data.workers, optim=config.teacher.train, env=env,
                      run_dir=run_dir, seed=config.seed, describe=describe, progress=progress,
                      on_start=_config_writer(config, run_dir),
                      evaluator=evaluator(config.task, splits.info.class_names),
                      metric=SELECT_METRIC[config.task])
    return trainer.fit(resume=resume)


def _config_writer(config: Config, run_dir: str | Path):
    """Write the resolved config into the run directory, once the trainer has accepted it (a
    refused overwrite or resume must leave the run's own config.yaml untouched)."""
    return lambda: dump_config(config, Path(run_dir) / "config.yaml")


def load_teacher(config: Config, info: DatasetInfo, student_arch: str) -> tuple[Network, dict]:
    """The frozen ANN teacher: from a sakd teacher checkpoint or a torchvision-format file."""
    if config.teacher.checkpoint:
        record = load_checkpoint(config.teacher.checkpoint, kind="teacher")
        if config.teacher.arch and config.teacher.arch != record["arch"]:
            raise ConfigError(f"teacher.arch is {config.teacher.arch} but the teacher checkpoint "
                              f"{config.teacher.checkpoint} holds a {record['arch']}: drop "
                              f"teacher.arch (the checkpoint says what it is) or pass the "
                              f"{config.teacher.arch} checkpoint")
        held = record.get("task", "classification")
        if held != config.task:
            raise ConfigError(f"the teacher checkpoint {config.teacher.checkpoint} was trained "
                              f"for {held} but this run's task is {config.task}")
        ann = build_model(record["arch"], **record["model_args"])
        load_state_strict(ann, record["state_dict"], config.teacher.checkpoint)
        source = {"checkpoint": str(config.teacher.checkpoint), "arch": record["arch"]}
    elif config.teacher.weights:
        arch = config.teacher.arch or arch_spec(student_arch).teacher
        ann = build_model(arch, **model_args(info))
        load_state_strict(ann, read_state_dict_file(config.teacher.weights), config.teacher.weights)
        source = {"weights": str(config.teacher.weights), "arch": arch}
    else:
        raise ConfigError("this run needs a teacher: pass --teacher CKPT (a `sakd teacher` "
                          "checkpoint) or --teacher-weights PATH (a torchvision state dict), or "
                          "set distill.kd=none and student.init=scratch for the baseline")
    if config.task != "classification":
        check_classes(ann, info.num_classes, info.name, "teacher")
    elif ann.classifier.out_features != info.num_classes:
        raise CheckpointError(f"the teacher predicts {ann.classifier.out_features} classes but "
                              f"{info.name} has {info.num_classes}")
    return ann.eval().requires_grad_(False), source


# ---------------------------------------------------------------------------------------------
# student


def build_student(config: Config, info: DatasetInfo, teacher: Network | None) -> Network:
    """Level 1: the SNN of ``model.arch``, with the teacher's weights when student.init=teacher."""
    ann = build_model(config.model.arch, **model_args(info))
    snn = spikify(ann, config.student.time_steps, config.student.neuron)
    if config.student.init == "teacher":
        if teacher is None:
            raise ConfigError("student.init=teacher needs a teacher (--teacher or --teacher-weights)")
        load_state_strict(snn, teacher.state_dict(), f"teacher ({type(teacher).__name__})")
    return snn


def _load_student_weights(snn: Network, path: str, config: Config) -> dict[str, Any]:
    """Fine-tuning: start from a student checkpoint of the same architecture and T. Returns the
    checkpoint record (its ``trainable`` state holds the stage adapters, see _restore_adapters)."""
    record = load_checkpoint(path, kind="student")
    if record["arch"] != config.model.arch or int(record["time_steps"]) != config.student.time_steps:
        raise ConfigError(f"student.init_checkpoint {path} is a {record['arch']} with "
                          f"T={record['time_steps']}; this run trains a {config.model.arch} with "
                          f"T={config.student.time_steps}")
    load_state_strict(snn, record["state_dict"], path)
    return record


def _restore_adapters(student: SAKDStudent, record: dict[str, Any] | None) -> bool:
    """Give a fine-tuning run (e.g. ``--qat --from``) the stage adapters its starting checkpoint
    was distilled with, so that feature KD resumes where it stopped instead of restarting from
    random adapters (whose large initial loss would first pull the student away from the
    teacher's features). Only when every adapter tensor is there with the same shape (same taps,
    same adapter kernel); otherwise the adapters stay freshly initialized. Returns whether it
    restored them."""
    if record is None or not student.tap_names:
        return False
    prefix = "adapters."
    saved = {k[len(prefix):]: v for k, v in (record.get("trainable") or {}).items()
             if k.startswith(prefix)}
    wanted = student.adapters.state_dict()
    if set(saved) != set(wanted) or any(saved[k].shape != v.shape for k, v in wanted.items()):
        return False
    student.adapters.load_state_dict(saved)
    return True


#: ``prepare_qat(snn, config, info)``: make the SNN's forward run the chip's integers (the app
#: passes ``sakd.export.qat``; training itself knows no chip)
QatHook = Callable[[Network, Config, DatasetInfo], Any]


def distill_student(config: Config, run_dir: str | Path, env: DistEnv, resume: bool = False,
                    progress: bool = True, splits: DataSplits | None = None,
                    prepare_qat: QatHook | None = None) -> FitResult:
    """SAKD level 2 (or the from-scratch baseline with distill.kd=none). ``prepare_qat``:
    called on the student when ``student.qat`` is set (quantization-aware training)."""
    seed_everything(config.seed)
    splits = splits or load_data(config)
    info = splits.info
    kd = config.distill.kd
    needs_teacher = kd != "none" or config.student.init == "teacher"
    teacher, teacher_source = (load_teacher(config, info, config.model.arch) if needs_teacher
                               else (None, {}))
    snn = build_student(config, info, teacher)
    start = (_load_student_weights(snn, config.student.init_checkpoint, config)
             if config.student.init_checkpoint else None)
    if config.student.qat:
        if prepare_qat is None:
            raise ConfigError("student.qat=true needs the chip's quantizer; run the job through "
                              "`sakd distill --qat` (sakd.app.train)")
        prepare_qat(snn, config, info)
    uses_features = kd in ("both", "features")
    taps = list(config.distill.taps or snn.stage_names) if uses_features else []
    if uses_features and not taps:
        raise ConfigError(f"{config.model.arch} has no default feature taps; set distill.taps")
    shapes = (check_taps_match(snn, teacher, taps, _example(info)) if uses_features
              else {})
    student = SAKDStudent(snn, taps, config.distill.adapter_kernel, shapes)
    adapters_from = config.student.init_checkpoint if _restore_adapters(student, start) else None
    student.to(env.device)
    if teacher is not None:
        teacher.to(env.device)
    schedule = FeatureWeight(config.distill.feature_schedule, config.distill.feature_weight,
                             config.distill.feature_epochs, config.distill.feature_floor)
    if config.task == "classification":
        task = DistillationTask(_wrap(student, env), teacher, kd, config.distill.logit_weight,
                                config.distill.temperature, schedule, taps)
    else:
        task = distillation_task(config.task, _wrap(student, env), teacher, config, schedule, taps)
    settings = config.student.neuron

    def describe() -> dict[str, Any]:
        return {"kind": "student", "arch": config.model.arch, "model_args": model_args(info),
                "time_steps": config.student.time_steps, "neuron": dataclasses.asdict(settings),
                "task": config.task,
                "config": config.to_dict(), "data": info.to_dict(), "teacher": teacher_source,
                "kd": kd, "taps": taps, "qat": config.student.qat,
                "adapters_from": adapters_from}

    trainer = Trainer(task=task, trainable=student, network=snn, splits=splits,
                      batch_size=config.data.batch_size, eval_batch_size=config.data.eval_batch_size,
                      workers=config.data.workers, optim=config.student.train, env=env,
                      run_dir=run_dir, seed=config.seed, describe=describe, progress=progress,
                      on_start=_config_writer(config, run_dir),
                      evaluator=evaluator(config.task, info.class_names),
                      metric=SELECT_METRIC[config.task])
    return trainer.fit(resume=resume)


# ---------------------------------------------------------------------------------------------
# loading


def load_network(path: str | Path) -> tuple[Network, dict[str, Any]]:
    """Rebuild the Network (ANN teacher or SNN student) of a checkpoint, in eval mode."""
    record = load_checkpoint(path)
    ann = build_model(record["arch"], **record["model_args"])
    if record["kind"] == "student":
        network = spikify(ann, int(record["time_steps"]), LIFSettings(**record["neuron"]))
    elif record["kind"] == "teacher":
        network = ann
    else:
        raise CheckpointError(f"{path}: unknown checkpoint kind '{record['kind']}'")
    load_state_strict(network, record["state_dict"], str(path))
    return network.eval(), record
