"""Experiment configuration: YAML file -> ``--set key=value`` overrides -> a validated, resolved
config that is written next to the outputs.

Every section is a dataclass; unknown keys and values of the wrong type are errors that name the
key (with the closest valid spelling), never silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sakd.errors import SakdError
from sakd.hardware.ir import DEFAULT_GRADED_BITS
from sakd.hardware.target import DEFAULT_TARGET, TARGETS
from sakd.models.settings import LIFSettings

#: the energy profiles priced unless the config says otherwise
DEFAULT_ENERGY_PROFILES = ("loihi", "cmos45-fp32")


class ConfigError(SakdError):
    """A config key or value that cannot be used; the message names it."""


@dataclass
class DataConfig:
    name: str = "digits"
    root: str | None = None  # None: the data set's default location
    batch_size: int = 64  # per process
    eval_batch_size: int = 256
    workers: int = 0
    augment: bool = True
    val_fraction: float = 0.1  # stratified hold-out of the training split used to pick "best"
    download: bool = False  # let torchvision download CIFAR (never done unless asked)
    train_subset: int | None = None  # keep a stratified subset of this many training samples
    # detection / segmentation sets (task != classification; docs/detection.md)
    image_size: int | None = None  # canvas side: scenes default 64, VOC/COCO 320 (letterboxed)
    train_scenes: int | None = None  # generated scenes: training scenes (default 2000)
    test_scenes: int | None = None  # generated scenes: test scenes (default 500)
    year: str | None = None  # VOC ("2012", "2007") or COCO ("2017"); None: the loader's default


@dataclass
class OptimConfig:
    epochs: int = 10
    optimizer: Literal["sgd", "adamw", "adam"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 5e-3
    momentum: float = 0.9  # SGD only
    nesterov: bool = True  # SGD only
    scheduler: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = 0
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # auto: bf16/fp16 on CUDA, off on CPU
    grad_clip: float | None = None


@dataclass
class ModelConfig:
    arch: str = "convnet"


@dataclass
class TeacherConfig:
    arch: str | None = None  # None: the student architecture's natural ANN teacher
    checkpoint: str | None = None  # a `sakd teacher` checkpoint
    weights: str | None = None  # a torchvision-format state-dict file
    train: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class StudentConfig:
    time_steps: int = 4
    neuron: LIFSettings = field(default_factory=LIFSettings)
    init: Literal["teacher", "scratch"] = "teacher"  # level-1 transfer or random init
    # start from this student checkpoint's weights instead (fine-tuning, e.g. with qat)
    init_checkpoint: str | None = None
    # quantization-aware training: the forward pass uses the export's integer weights, biases
    # and input (straight-through gradients), so what the chip runs is what is trained
    qat: bool = False
    train: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class DistillConfig:
    kd: Literal["both", "logits", "features", "none"] = "both"
    logit_weight: float = 1.0  # c
    temperature: float = 1.0  # tau of the logits KD
    feature_weight: float = 1.0  # w_f (constant), or beta of the step schedule
    feature_schedule: Literal["constant", "step", "step-batch"] = "constant"
    feature_epochs: int = 10  # step schedule: beta for the first N epochs ...
    feature_floor: float = 0.01  # ... then this floor
    taps: list[str] | None = None  # module names; None: the architecture's stage outputs
    box_weight: float = 1.0  # detection: weight of the box KD (GIoU + centerness KL)
    adapter_kernel: Literal[1, 3] = 1


@dataclass
class ExportConfig:
    target: str = DEFAULT_TARGET.name
    input_bits: int = DEFAULT_GRADED_BITS  # signed width of the graded input x_int = round(x * Q)


@dataclass
class EnergyConfig:
    # profile names (hardware/profiles) or YAML files, priced by `sakd energy` and the pipeline
    profiles: list[str] = field(default_factory=lambda: list(DEFAULT_ENERGY_PROFILES))


#: what a run learns: the data set's kind, the architecture's family and the metric follow it
TASKS = ("classification", "detection", "segmentation")
#: the registry families of each task (sakd.models.registry)
TASK_FAMILIES = {"detection": ("detection",), "segmentation": ("segmentation",)}


@dataclass
class Config:
    name: str = "run"
    seed: int = 0
    task: Literal["classification", "detection", "segmentation"] = "classification"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# building a dataclass tree from plain data, strictly


# a decimal number with an optional exponent: what YAML 1.2 reads as a float
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert only lossless cases (int -> float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is Literal:
        # YAML reads `true`/`false` as booleans; literal options are strings or ints
        candidate = str(value).lower() if isinstance(value, bool) else value
        if candidate in args:
            return candidate
        raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is float:
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            # YAML 1.1 (PyYAML) reads exponent forms without a dot, e.g. 1e-3, as strings
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported field type {_type_name(tp)}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {names}"
            raise ConfigError(f"unknown config key '{prefix}{key}'{hint}")
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    try:
        return cls(**kwargs)
    except SakdError as exc:  # a section's own checks (e.g. LIFSettings)
        raise ConfigError(f"{prefix}{exc}") from exc


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"'{'.'.join(parts[: i + 1])}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"student.train.lr=0.01"`` -> ``("student.train.lr", 0.01)``; values are read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': value is not valid YAML ({exc})") from exc
    return key, value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults), apply ``key=value`` overrides, validate."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(tree, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
    for text in overrides or []:
        key, value = parse_override(text)
        _set_dotted(tree, key, value)
    config = from_dict(Config, tree)
    validate(config)
    return config


def validate(config: Config) -> None:
    """Range checks that a type alone cannot express."""
    checks = [
        (config.student.time_steps >= 1, "student.time_steps", "must be >= 1"),
        (config.data.batch_size >= 1, "data.batch_size", "must be >= 1"),
        (config.data.eval_batch_size >= 1, "data.eval_batch_size", "must be >= 1"),
        (config.data.workers >= 0, "data.workers", "must be >= 0"),
        (0.0 <= config.data.val_fraction < 1.0, "data.val_fraction", "must be in [0, 1)"),
        (config.data.train_subset is None or config.data.train_subset >= 1, "data.train_subset",
         "must be >= 1 or null"),
        (config.distill.temperature > 0, "distill.temperature", "must be > 0"),
        (config.distill.logit_weight >= 0, "distill.logit_weight", "must be >= 0"),
        (config.distill.feature_weight >= 0, "distill.feature_weight", "must be >= 0"),
        (config.distill.feature_floor >= 0, "distill.feature_floor", "must be >= 0"),
        (config.distill.box_weight >= 0, "distill.box_weight", "must be >= 0"),
        (config.distill.feature_epochs >= 0, "distill.feature_epochs", "must be >= 0"),
    ]
    for section in ("teacher", "student"):
        train: OptimConfig = getattr(config, section).train
        checks += [
            (train.epochs >= 0, f"{section}.train.epochs", "must be >= 0"),
            (train.lr > 0, f"{section}.train.lr", "must be > 0"),
            (train.weight_decay >= 0, f"{section}.train.weight_decay", "must be >= 0"),
            (train.warmup_epochs >= 0, f"{section}.train.warmup_epochs", "must be >= 0"),
            (train.grad_clip is None or train.grad_clip > 0, f"{section}.train.grad_clip",
             "must be > 0 or null"),
        ]
    for ok, key, why in checks:
        if not ok:
            raise ConfigError(f"{key} {why} (got {_lookup(config, key)!r})")
    if config.export.target not in TARGETS:
        raise ConfigError(f"export.target {config.export.target!r} is not a known target; "
                          f"choose one of {', '.join(sorted(TARGETS))}")
    spec = TARGETS[config.export.target]
    if not 2 <= config.export.input_bits <= spec.max_message_bits:
        raise ConfigError(f"export.input_bits must be in [2, {spec.max_message_bits}] (signed "
                          f"graded messages of {spec.name}; got {config.export.input_bits})")
    if not config.energy.profiles:
        raise ConfigError("energy.profiles is empty; name at least one profile")
    if config.teacher.checkpoint and config.teacher.weights:
        raise ConfigError("teacher.checkpoint and teacher.weights are exclusive; give one")
    validate_task(config)


def validate_task(config: Config) -> None:
    """The task, the data set and the architectures must agree (before any data is loaded)."""
    from sakd.data.detection import DENSE_DATASETS
    from sakd.models import arch_spec

    task, data = config.task, config.data.name
    dense = task != "classification"
    if dense and data not in DENSE_DATASETS:
        raise ConfigError(f"task {task} needs a detection/segmentation data set "
                          f"({', '.join(DENSE_DATASETS)}), but data.name is {data!r}")
    if not dense and data in DENSE_DATASETS:
        raise ConfigError(f"data.name {data!r} is a detection/segmentation set; set task: "
                          f"detection or task: segmentation")
    for key, arch in (("model.arch", config.model.arch), ("teacher.arch", config.teacher.arch)):
        if arch is None:
            continue
        try:
            family = arch_spec(arch).family
        except SakdError:  # an unknown name: the job that builds it says so, with suggestions
            continue
        if dense and family not in TASK_FAMILIES[task]:
            raise ConfigError(f"{key} {arch!r} is a {family} architecture, not a {task} one; "
                              f"`sakd models` lists the {task} family")
        if not dense and family in ("detection", "segmentation"):
            raise ConfigError(f"{key} {arch!r} is a {family} architecture but task is "
                              f"classification; set task: {family}")
    if dense:
        for key in ("image_size", "train_scenes", "test_scenes"):
            value = getattr(config.data, key)
            if value is not None and value < 1:
                raise ConfigError(f"data.{key} must be >= 1 or null (got {value})")
        if config.data.train_subset is not None:
            raise ConfigError("data.train_subset applies to classification sets; for generated "
                              "scenes set data.train_scenes")
        if config.student.qat:
            raise ConfigError(f"student.qat: quantization-aware training is for classifiers; "
                              f"a {task} student is quantized at export")
    elif any(getattr(config.data, k) is not None for k in ("image_size", "train_scenes",
                                                          "test_scenes", "year")):
        raise ConfigError("data.image_size, train_scenes, test_scenes and year apply to "
                          "detection/segmentation sets (task: detection | segmentation)")


def _lookup(config: Config, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def with_teacher(config: Config, checkpoint: str | Path) -> Config:
    """``config`` with its teacher taken from a `sakd teacher` checkpoint."""
    teacher = dataclasses.replace(config.teacher, checkpoint=str(checkpoint), weights=None)
    return dataclasses.replace(config, teacher=teacher)


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from sakd.io import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(config.to_dict(), sort_keys=False))


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a Config from its ``to_dict()`` form (e.g. from a checkpoint)."""
    config = from_dict(Config, data)
    validate(config)
    return config
