"""Bring your own model: export a torch/spikingjelly SNN that sakd did not build.

A researcher's own spiking network (spikingjelly ``LIFNode``/``IFNode``/``ParametricLIFNode``
with conv, linear, batch norm, pooling, flatten and residual adds; multi-step or single-step)
goes through the same lowering as a sakd checkpoint (``sakd.export``: trace, fold BN, lower
pooling and residuals, quantize, balance latency) and is written the same way
(``sakd.app.export.write_export``: network.h5, NIR, netx where sequential, ONNX, and
``export_report.json``, into a staged folder that replaces ``out_dir`` whole).

Two entries:

- Python: ``export_module(module, out_dir, time_steps=..., input_shape=..., normalize=...)``;
- the CLI: ``sakd export --model package.module:factory --weights W.pt -o OUT ...``
  (``ModelSource`` + ``OwnModelOptions`` -> ``export_model_file``). The factory is the user's
  own code: it is imported and run as is.

What the module cannot tell is given: T (unless forward repeats its input over a fixed T), the
input's shape (C, H, W) or (N,), and its value range, as ``input_range=(lo, hi)`` of the values
the module receives or as ``normalize=(mean, std)`` of pixels in [0, 1]; or a sakd data set name
(``data='digits'``), which gives all three defaults and lets ``calibrate`` and
``sakd simulate OUT`` find test samples. Every check is made before the lowering starts, and
the traced graph is run against the module itself (``sakd.export.trace.check_traced_module``)
before anything is written.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sakd.app.common import JobError, check_shape, parse_shape
from sakd.app.export import ExportOptions, ExportResult, validate_options, write_export
from sakd.hardware.errors import MissingFileError
from sakd.hardware.ir import DEFAULT_GRADED_BITS
from sakd.hardware.target import DEFAULT_TARGET

#: inputs the traced graph is checked on when no example input is given
CHECK_SAMPLES = 8
CHECK_SEED = 0


@dataclass(frozen=True)
class OwnModelOptions:
    """How to export a user's module: what the module cannot tell, and the options of
    ``ExportOptions`` (formats None: every format that can express the network; calibrate N:
    simulate N test samples of ``data``, -1 or None: all, 0: none)."""

    out_dir: Path
    time_steps: int | None = None
    input_shape: tuple[int, ...] | None = None
    input_range: tuple[float, float] | None = None
    normalize: tuple[Sequence[float] | float, Sequence[float] | float] | None = None
    data: str | None = None
    classes: Sequence[str] | int | None = None
    formats: tuple[str, ...] | None = None
    target: str = DEFAULT_TARGET.name
    input_bits: int = DEFAULT_GRADED_BITS
    calibrate: int | None = 0
    data_root: str | None = None


@dataclass(frozen=True)
class ModelSource:
    """Where the module comes from (the CLI): ``model`` is ``package.module:factory`` or
    ``path/to/file.py:factory`` (the factory: a function or class, called with ``model_args``
    as keyword arguments, that returns the nn.Module); ``weights`` a state dict file
    (``torch.save(model.state_dict(), path)``), loaded with ``weights_only=True`` and
    ``load_state_dict(strict=True)``."""

    model: str
    weights: Path
    model_args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InputSpec:
    """The resolved input: shape, value range, normalization (or None), classes, data set."""

    shape: tuple[int, ...]
    value_range: tuple[float, float]
    normalization: dict[str, list[float]] | None
    classes: tuple[str, ...] | None
    data: str | None


# ---------------------------------------------------------------------------------------------
# entries
# ---------------------------------------------------------------------------------------------


def export_module(module: Any, out_dir: str | os.PathLike[str], *, time_steps: int | None = None,
                  input_shape: Sequence[int] | None = None, example_input: Any = None,
                  input_range: tuple[float, float] | None = None,
                  normalize: tuple[Any, Any] | None = None, data: str | None = None,
                  classes: Sequence[str] | int | None = None,
                  formats: Sequence[str] | None = None, target: str = DEFAULT_TARGET.name,
                  input_bits: int = DEFAULT_GRADED_BITS, calibrate: int | None = 0,
                  data_root: str | None = None,
                  progress: Callable[[str], Any] | None = None) -> ExportResult:
    """Export your own spiking ``module`` (a torch ``nn.Module`` of spikingjelly neurons and
    layers) to ``out_dir``: the same files and report as ``sakd export CKPT``.

    - ``time_steps``: T, the steps per sample (may be omitted when forward repeats its input
      ``x.unsqueeze(0).repeat(T, 1, ...)`` itself);
    - ``input_shape`` (C, H, W) or (N,), or ``example_input`` ``[B, *shape]`` (normalized, as
      the module receives it: the traced graph is then checked on it);
    - the input's value range: ``input_range=(lo, hi)`` (what the module receives), or
      ``normalize=(mean, std)`` (numbers or per-channel lists) of [0, 1] pixels;
    - ``data``: a sakd data set name (``sakd.data.DATASETS``): the default shape, normalization
      and class names, and the test samples of ``calibrate`` and ``sakd simulate``;
    - ``classes``: class names, or their number (checked against the readout's size).

    The module is not modified (the export reads its parameters and runs a copy in eval mode:
    BN running statistics), apart from its spikingjelly neuron states, which are reset as
    between samples. Raises a ``SakdError`` (``ExportError`` naming the module, ``JobError`` naming
    the option) before any file is written.
    """
    options = OwnModelOptions(
        out_dir=Path(out_dir), time_steps=time_steps,
        input_shape=None if input_shape is None else tuple(input_shape),
        input_range=None if input_range is None else tuple(input_range),
        normalize=normalize, data=data, classes=classes,
        formats=None if formats is None else tuple(formats), target=target,
        input_bits=input_bits, calibrate=calibrate, data_root=data_root)
    return export_own_model(module, options, example_input=example_input, progress=progress)


def export_model_file(source: ModelSource, options: OwnModelOptions,
                      progress: Callable[[str], Any] | None = None) -> ExportResult:
    """``sakd export --model ... --weights ...``: check the options, build the module with the
    factory, load the weights, then ``export_own_model``."""
    say = progress or (lambda _msg: None)
    export_options(options, f"--model {source.model}")
    resolve_input(options)
    weights = load_state_dict_file(source.weights)
    say(f"building {source.model}")
    module = build_module(source.model, source.model_args)
    load_weights(module, weights, source.weights)
    described = {"kind": "own model", "model": source.model, "weights": str(source.weights),
                 "model_args": json.loads(json.dumps(dict(source.model_args), default=str))}
    return export_own_model(module, options, progress=progress, source=described,
                            label=str(source.weights))


def export_own_model(module: Any, options: OwnModelOptions, *, example_input: Any = None,
                     progress: Callable[[str], Any] | None = None,
                     source: dict[str, Any] | None = None, label: str | None = None) -> ExportResult:
    """The job behind ``export_module`` and ``export_model_file`` (see the module docstring)."""
    import torch
    from torch import nn

    from sakd.export.float_module import GraphSNN
    from sakd.export.lower import lower
    from sakd.export.trace import check_traced_module, trace_module

    say = progress or (lambda _msg: None)
    if not isinstance(module, nn.Module):
        raise JobError(f"export_module expects a torch nn.Module, got {type(module).__name__}")
    name = type(module).__name__
    checked = export_options(options, label or f"python: {name}")
    if options.time_steps is not None:
        _positive_int(options.time_steps, "time_steps (--time-steps)")
    example = None
    if example_input is not None:
        example = torch.as_tensor(example_input).detach()
        if example.dim() < 2 or not example.is_floating_point() or not bool(torch.isfinite(example).all()):
            raise JobError(f"example_input: give a finite float batch [B, *shape], got shape "
                           f"{tuple(example.shape)} of {example.dtype}")
        if options.input_shape is not None and tuple(example.shape[1:]) != tuple(options.input_shape):
            raise JobError(f"example_input has shape {tuple(example.shape[1:])} per sample but "
                           f"input_shape is {tuple(options.input_shape)}")
    spec = resolve_input(options, None if example is None else tuple(example.shape[1:]))
    if checked.calibrate != 0 and spec.data is None:
        raise JobError("--calibrate needs test samples: name the data set (--data / data=)")
    say(f"tracing {name}")
    traced = trace_module(module, spec.shape, options.time_steps)
    readout = traced.graph[traced.graph.output.inputs[0]].shape
    if len(readout) != 1:
        raise JobError(f"{name}'s output has shape {readout} per sample "
                       f"({traced.graph.output.inputs[0]}); a classifier ends in a linear layer "
                       "or a flat spiking layer (its spike counts)")
    if spec.classes is not None and readout[0] != len(spec.classes):
        raise JobError(f"{len(spec.classes)} classes were given but {name}'s output has shape "
                       f"{readout} ({traced.graph.output.inputs[0]})")
    if example is None:
        gen = torch.Generator().manual_seed(CHECK_SEED)
        lo, hi = spec.value_range
        example = lo + (hi - lo) * torch.rand((CHECK_SAMPLES, *spec.shape), generator=gen,
                                              dtype=torch.float64)
    say("checking the traced graph against the module")
    check = check_traced_module(traced, module, example)
    classes = list(spec.classes) if spec.classes is not None else [str(k) for k in range(readout[0])]
    metadata: dict[str, Any] = {
        "classes": classes, "num_classes": len(classes), "arch_name": name,
        "input_range": list(spec.value_range),
        "source": {**(source or {"kind": "own model", "model": f"python: {type(module).__module__}."
                                                              f"{type(module).__qualname__}"}),
                   "class": f"{type(module).__module__}.{type(module).__qualname__}",
                   "step_mode": traced.step_mode, "convention": traced.convention(),
                   "spike_count_readout": traced.spike_count_readout,
                   "neurons": {k: {**v, "tau": None if math.isinf(v["tau"]) else v["tau"]}
                               for k, v in traced.neurons.items()},
                   "trace_check": check},
    }
    if spec.data is not None:
        metadata["dataset"] = spec.data
    if spec.normalization is not None:
        metadata["normalization"] = spec.normalization
    say("lowering (fold BN, quantize, balance latency)")
    low = lower(traced, input_shape=spec.shape, input_range=spec.value_range,
                input_bits=checked.input_bits, target=checked.target, metadata=metadata)
    float_model = GraphSNN(traced.graph, traced.time_steps)
    return write_export(low, checked, float_model, spec.shape, spec.data, None, say)


# ---------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------


def export_options(options: OwnModelOptions, label: str) -> ExportOptions:
    """The ``ExportOptions`` of ``options`` (formats, target, input bits, calibrate and the
    output folder checked as for a checkpoint); ``label`` stands in the report's
    ``checkpoint`` field."""
    return validate_options(ExportOptions(
        checkpoint=Path(label), out_dir=Path(options.out_dir), formats=options.formats,
        target=options.target, input_bits=options.input_bits,
        calibrate=None if options.calibrate == -1 else options.calibrate,
        data_root=options.data_root))


def resolve_input(options: OwnModelOptions, example_shape: tuple[int, ...] | None = None) -> InputSpec:
    """Shape, value range, normalization and classes from the options, the example input and
    the data set (explicit options first; a conflict with the data set is an error)."""
    info = None
    if options.data is not None:
        from sakd.data import load_splits

        info = load_splits(options.data, options.data_root, augment=False).info
    shape = options.input_shape or example_shape
    if shape is not None:
        shape = check_shape(shape, "input shape (--input-shape)")
    if info is not None:
        data_shape = (info.in_channels, *info.image_size)
        if shape is not None and shape != data_shape:
            raise JobError(f"input shape {shape} differs from the {info.name} data set's "
                           f"{data_shape}")
        shape = data_shape
    if shape is None:
        raise JobError("give the input's shape (--input-shape C,H,W or N; input_shape= or "
                       "example_input= in Python), or a data set (--data)")
    if options.input_range is not None and options.normalize is not None:
        raise JobError("give the input's range (--input-range) or its normalization "
                       "(--normalize), not both")
    normalization = None
    if options.input_range is not None:
        value_range = _range(options.input_range)
    elif options.normalize is not None:
        normalization = _normalization(options.normalize, shape)
        value_range = _normalized_range(normalization)
    elif info is not None:
        normalization = {"mean": list(info.mean), "std": list(info.std)}
        value_range = _normalized_range(normalization)
    else:
        raise JobError("the module cannot tell its input's value range: give --input-range LO,HI "
                       "(the values it receives) or --normalize MEAN,STD (of [0, 1] pixels), or "
                       "a data set (--data)")
    classes = options.classes
    if isinstance(classes, bool):
        raise JobError(f"--classes {classes!r}: give class names or their number")
    if isinstance(classes, int):
        _positive_int(classes, "--classes")
        classes = tuple(str(k) for k in range(classes))
    elif classes is not None:
        classes = tuple(str(c) for c in classes)
        if not classes or len(set(classes)) != len(classes):
            raise JobError(f"--classes {','.join(classes)}: give distinct class names")
    elif info is not None and info.class_names:
        classes = tuple(info.class_names)
    return InputSpec(shape, value_range, normalization, classes, options.data)


def _positive_int(value: Any, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise JobError(f"{option} {value!r}: give a positive integer")
    return value


def _range(value: Sequence[Any]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise JobError(f"--input-range {value!r}: give two numbers LO,HI") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise JobError(f"--input-range {lo:g},{hi:g}: give finite numbers with LO < HI")
    return lo, hi


def _normalization(value: Any, shape: tuple[int, ...]) -> dict[str, list[float]]:
    try:
        mean, std = value
        mean = [float(v) for v in (mean if isinstance(mean, (list, tuple)) else [mean])]
        std = [float(v) for v in (std if isinstance(std, (list, tuple)) else [std])]
    except (TypeError, ValueError):
        raise JobError(f"--normalize {value!r}: give MEAN,STD (numbers, or per-channel lists)") from None
    channels = shape[0] if len(shape) == 3 else 1
    for label, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise JobError(f"--normalize: {len(values)} {label} values for {channels} channels")
        if not all(math.isfinite(v) for v in values):
            raise JobError(f"--normalize: the {label} must be finite numbers")
    if not all(s > 0 for s in std):
        raise JobError(f"--normalize: std {std} must be > 0")
    return {"mean": mean, "std": std}


def _normalized_range(normalization: dict[str, list[float]]) -> tuple[float, float]:
    from sakd.data.common import normalized_range

    mean, std = normalization["mean"], normalization["std"]
    if len(mean) != len(std):  # one value broadcast over the channels
        n = max(len(mean), len(std))
        mean, std = mean * (n // len(mean)), std * (n // len(std))
    return normalized_range(mean, std)


# ---------------------------------------------------------------------------------------------
# the CLI's strings
# ---------------------------------------------------------------------------------------------


def _numbers(text: str, option: str, kind: type = float) -> list[Any]:
    parts = [p.strip() for p in str(text).split(",")]
    try:
        return [kind(p) for p in parts]
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise JobError(f"{option} {text}: give comma-separated {what}") from None


def parse_range(text: str | None) -> tuple[float, float] | None:
    """``--input-range LO,HI``."""
    if text is None:
        return None
    values = _numbers(text, "--input-range")
    if len(values) != 2:
        raise JobError(f"--input-range {text}: give two numbers LO,HI")
    return _range(values)


def parse_normalize(text: str | None) -> tuple[list[float], list[float]] | None:
    """``--normalize MEAN,STD``; per channel ``M1:M2:M3,S1:S2:S3``."""
    if text is None:
        return None
    parts = str(text).split(",")
    if len(parts) != 2:
        raise JobError(f"--normalize {text}: give MEAN,STD (per channel: M1:M2:M3,S1:S2:S3)")
    try:
        mean, std = ([float(v) for v in p.split(":")] for p in parts)
    except ValueError:
        raise JobError(f"--normalize {text}: give numbers MEAN,STD (per channel: "
                       "M1:M2:M3,S1:S2:S3)") from None
    return mean, std


def parse_classes(text: str | None) -> tuple[str, ...] | int | None:
    """``--classes N`` or ``--classes NAME,NAME,...``."""
    if text is None:
        return None
    text = str(text).strip()
    if text.isdigit():
        return int(text)
    return tuple(p.strip() for p in text.split(","))


def parse_model_args(items: Sequence[str] | None) -> dict[str, Any]:
    """``--model-arg KEY=VALUE`` (repeatable): keyword arguments of the factory, each VALUE read
    as YAML (``4`` an int, ``0.5`` a float, ``true`` a bool, ``[8, 16]`` a list, else text)."""
    import yaml

    args: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise JobError(f"--model-arg {item}: give KEY=VALUE with KEY a Python identifier")
        if key in args:
            raise JobError(f"--model-arg {key} is given twice")
        try:
            args[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            args[key] = raw
    return args


def own_model_request(checkpoint: Path | None, *, model: str | None, weights: Path | None,
                      model_args: Sequence[str] | None, input_shape: str | None,
                      time_steps: int | None, input_range: str | None, normalize: str | None,
                      data: str | None, classes: str | None, out_dir: Path,
                      formats: tuple[str, ...] | None, target: str, input_bits: int,
                      calibrate: int | None, data_root: str | None,
                      ) -> tuple[ModelSource, OwnModelOptions] | None:
    """``sakd export``'s two forms: None for a checkpoint export (``sakd export CKPT``; the
    options of an own model are then refused), else the source and options of
    ``sakd export --model package.module:factory --weights W.pt``."""
    own = {"--weights": weights, "--model-arg": model_args or None, "--input-shape": input_shape,
           "--time-steps": time_steps, "--input-range": input_range, "--normalize": normalize,
           "--data": data, "--classes": classes}
    if model is None:
        if checkpoint is None:
            raise JobError("give a student checkpoint (sakd export CKPT) or your own model "
                           "(sakd export --model package.module:factory --weights W.pt)")
        given = [k for k, v in own.items() if v is not None]
        if given:
            raise JobError(f"{', '.join(given)} apply to --model only; a sakd checkpoint records "
                           "its input, normalization and T")
        return None
    if checkpoint is not None:
        raise JobError(f"give a checkpoint ({checkpoint}) or --model {model}, not both")
    if weights is None:
        raise JobError(f"--model {model} needs --weights W.pt (a state dict: "
                       "torch.save(model.state_dict(), 'W.pt'))")
    source = ModelSource(model, Path(weights), parse_model_args(model_args))
    options = OwnModelOptions(
        out_dir=Path(out_dir), time_steps=time_steps,
        input_shape=None if input_shape is None else parse_shape(input_shape, "--input-shape"),
        input_range=parse_range(input_range), normalize=parse_normalize(normalize), data=data,
        classes=parse_classes(classes), formats=formats, target=target, input_bits=input_bits,
        calibrate=calibrate, data_root=data_root)
    return source, options


# ---------------------------------------------------------------------------------------------
# the factory and the weights (the user's own code runs here)
# ---------------------------------------------------------------------------------------------


def _where(exc: BaseException) -> str:
    """`` (at file:line)``: the innermost frame of an exception that lies outside this module
    (the user's code, or the library it called); empty when the error is the call itself."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename != __file__:
            found = tb
        tb = tb.tb_next
    return "" if found is None else f" (at {found.tb_frame.f_code.co_filename}:{found.tb_lineno})"


def import_object(spec: str, option: str = "--model") -> Any:
    """``package.module:attr`` (the current folder is searched first, as ``python -m`` does) or
    ``path/to/file.py:attr``; ``attr`` may be dotted (``Class.build``)."""
    module_name, sep, attr = str(spec).rpartition(":")
    if not sep or not module_name or not attr:
        raise JobError(f"{option} {spec}: give package.module:factory or path/to/file.py:factory")
    try:
        if module_name.endswith(".py"):
            obj = _import_file(Path(module_name), option, spec)
        else:
            added = str(Path.cwd())
            sys.path.insert(0, added)
            try:
                obj = importlib.import_module(module_name)
            finally:
                if added in sys.path:
                    sys.path.remove(added)
    except JobError:
        raise
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise JobError(f"{option} {spec}: no module named '{missing}' (looked in the current "
                           f"folder and on sys.path)") from exc
        raise JobError(f"{option} {spec}: importing '{module_name}' failed: {exc} (a module "
                       "your code imports)") from exc
    except Exception as exc:  # the user's own module failed while importing
        raise JobError(f"{option} {spec}: importing '{module_name}' raised "
                       f"{type(exc).__name__}: {exc}{_where(exc)}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise JobError(f"{option} {spec}: '{getattr(obj, '__name__', module_name)}' has no "
                           f"attribute '{part}'")
        obj = getattr(obj, part)
    return obj


def _import_file(path: Path, option: str, spec: str) -> Any:
    if not path.is_file():
        raise MissingFileError(f"{option} {spec}: no file {path}")
    name = f"sakd_own_model_{path.stem}"
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise JobError(f"{option} {spec}: {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(loader_spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # its sibling modules import as they would under `python file.py`
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def build_module(spec: str, model_args: Mapping[str, Any] | None = None) -> Any:
    """Import the factory named by ``spec`` and call it with ``model_args``: an nn.Module."""
    from torch import nn

    factory = import_object(spec)
    if isinstance(factory, nn.Module):
        raise JobError(f"--model {spec} is an nn.Module instance; name the function or class "
                       "that builds it (called with --model-arg keyword arguments)")
    if not callable(factory):
        raise JobError(f"--model {spec} is a {type(factory).__name__}, not a function or class "
                       "that returns an nn.Module")
    kwargs = dict(model_args or {})
    shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    try:
        module = factory(**kwargs)
    except Exception as exc:  # the user's factory
        raise JobError(f"--model {spec}: calling it as {spec.rpartition(':')[2]}({shown}) raised "
                       f"{type(exc).__name__}: {exc}{_where(exc)}") from exc
    if not isinstance(module, nn.Module):
        raise JobError(f"--model {spec} returned a {type(module).__name__}, not a torch nn.Module")
    return module


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A state dict (parameter name -> tensor) from ``path``, loaded with ``weights_only=True``."""
    import pickle

    import torch

    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"--weights {path}: no such file")
    if path.is_dir():
        raise JobError(f"--weights {path} is a folder; give the state dict file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        import zipfile

        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None and not zipfile.is_zipfile(path):
            raise JobError(f"--weights {path}: not a torch file (torch.save writes a zip "
                           "archive; torch.load(weights_only=True) cannot read it)") from exc
        what = f" ({found.group(1)})" if found else ""
        raise JobError(f"--weights {path}: torch.load(weights_only=True) refused it: it holds "
                       f"Python objects, not only tensors{what}, e.g. a whole pickled module; "
                       "save the state dict: torch.save(model.state_dict(), path)") from exc
    except Exception as exc:  # not a torch file at all (zip, pickle and EOF errors of many kinds)
        raise JobError(f"--weights {path}: not a torch file ({type(exc).__name__}: "
                       f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from exc
    if not isinstance(obj, Mapping):
        raise JobError(f"--weights {path} holds a {type(obj).__name__}, not a state dict (a dict "
                       "of parameter names to tensors: torch.save(model.state_dict(), path))")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        keys = ", ".join(repr(k) for k in list(obj)[:5])
        hint = next((f"; its '{k}' entry may be the state dict" for k in ("state_dict", "model",
                     "model_state", "net") if isinstance(obj.get(k), Mapping)), "")
        raise JobError(f"--weights {path} is a dict but not a state dict: {bad[0]!r} holds a "
                       f"{type(obj[bad[0]]).__name__}, not a tensor (keys: {keys}){hint}")
    return dict(obj)


def load_weights(module: Any, state: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """``module.load_state_dict(state, strict=True)``, after naming the first missing and
    unexpected keys and shape mismatches (if any: an error, nothing loaded)."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} (the model's: {tuple(expected[k].shape)})"
              for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected),
                         ("shape mismatch", shapes)):
        if items:
            more = f" and {len(items) - 3} more" if len(items) > 3 else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:3])}{more}")
    if problems:
        raise JobError(f"--weights {path} does not fit {type(module).__name__}: "
                       f"{'; '.join(problems)}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise JobError(f"--weights {path}: load_state_dict(strict=True) failed: "
                       f"{' '.join(str(exc).split())}") from exc


__all__ = ["ModelSource", "OwnModelOptions", "build_module", "export_model_file", "export_module",
           "export_own_model", "load_state_dict_file", "load_weights", "own_model_request"]
