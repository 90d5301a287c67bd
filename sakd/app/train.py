"""``sakd teacher`` and ``sakd distill``: the training jobs (sakd.train) with what training itself
must not know wired in — the chip's quantizer for QAT — and every later stage's options checked
before the first epoch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sakd.app.common import check_output_dir
from sakd.config import Config, ConfigError


@dataclass(frozen=True)
class TrainOptions:
    config: Config
    out_dir: Path
    resume: bool = False
    device: str = "auto"
    progress: bool = True


def prepare_qat(snn: Any, config: Config, info: Any) -> Any:
    """Quantization-aware training: the student's forward runs the export's integer weights,
    bias and input (``sakd.export.qat``); state-dict keys are unchanged, BN statistics frozen."""
    from sakd.data.common import input_value_range
    from sakd.export.qat import enable_qat

    return enable_qat(snn, input_shape=(info.in_channels, *info.image_size),
                      input_range=input_value_range(info), input_bits=config.export.input_bits,
                      target=config.export.target)


def validate_run_dir(out_dir: Path, resume: bool) -> None:
    """The run folder: writable; with ``--resume`` it must hold a run to continue."""
    check_output_dir(out_dir)
    if resume and not (Path(out_dir) / "last.pt").exists():
        raise ConfigError(f"--resume: {out_dir} holds no run to continue (no last.pt); drop "
                          f"--resume to start one")


def validate_training(config: Config, kind: str) -> None:
    """What the config must say for a training job, before the data set is loaded."""
    train = config.teacher.train if kind == "teacher" else config.student.train
    if train.epochs < 1:
        raise ConfigError(f"{kind}.train.epochs is {train.epochs}: a {kind} run needs at least "
                          f"one epoch")


def train_teacher_job(options: TrainOptions) -> Any:
    """Train the ANN teacher (``FitResult``)."""
    from sakd.train.distributed import init_distributed
    from sakd.train.jobs import train_teacher

    validate_training(options.config, "teacher")
    validate_run_dir(options.out_dir, options.resume)
    env = init_distributed(options.device)
    return train_teacher(options.config, options.out_dir, env, resume=options.resume,
                         progress=options.progress)


def distill_job(options: TrainOptions) -> Any:
    """Train the SNN student: level-1 transfer, then SAKD (``FitResult``)."""
    from sakd.train.distributed import init_distributed
    from sakd.train.jobs import distill_student

    validate_training(options.config, "student")
    validate_run_dir(options.out_dir, options.resume)
    env = init_distributed(options.device)
    return distill_student(options.config, options.out_dir, env, resume=options.resume,
                           progress=options.progress, prepare_qat=prepare_qat)
