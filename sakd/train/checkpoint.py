"""Checkpoints: plain tensors and built-in types only, so they load with ``weights_only=True``;
written atomically; validated on load with errors that name the file and the problem."""

from __future__ import annotations

import pickle
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

import sakd
from sakd.errors import SakdError
from sakd.io import atomic_path

FORMAT = "sakd-checkpoint"
VERSION = 1


class CheckpointError(SakdError):
    """A checkpoint that is missing, truncated, of another format or of another model."""


def git_hash() -> str:
    """The exporter's commit, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format, version and provenance) atomically."""
    record = {"format": FORMAT, "version": VERSION, "sakd_version": sakd.__version__,
              "git_hash": git_hash(), **payload}
    with atomic_path(path) as tmp:
        torch.save(record, tmp)


def _torch_load(path: Path, what: str, todo: str) -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into a CheckpointError.

    torch raises many types for a file that is not one of its own (a text file gives a
    ``KeyError`` from the legacy unpickler), so anything but an interrupt is caught here.
    """
    with open(path, "rb") as handle:
        head = handle.read(2)
    # torch.save writes a zip archive (torch >= 1.6) or, in the legacy format, a pickle stream
    if not zipfile.is_zipfile(path) and not (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
        raise CheckpointError(f"{what} {path} is truncated or not a torch file (neither a whole "
                              f"torch zip archive nor a legacy pickle); {todo}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is long (and asks to file an issue with torch): keep what was refused
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in lines if "Unsupported global" in line), None)
        if reason is None:
            after = [i for i, line in enumerate(lines) if "WeightsUnpickler error" in line]
            tail = lines[after[0]].split("WeightsUnpickler error:")[-1].strip() if after else ""
            reason = tail or (lines[after[0] + 1] if after and after[0] + 1 < len(lines)
                              else "objects of an unsupported type")
        reason = reason.split(". ")[0]
        raise CheckpointError(
            f"{what} {path} holds objects other than tensors and built-in types ({reason}); sakd "
            f"loads with weights_only=True and never executes pickled code: {todo}") from exc
    except Exception as exc:  # RuntimeError, EOFError, KeyError, OSError, BadZipFile, ...
        reason = "unrecognised content" if isinstance(exc, KeyError) else _first_sentence(exc)
        raise CheckpointError(f"{what} {path} is truncated or not a torch file ({reason}); "
                              f"{todo}") from exc


def _first_sentence(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].split(". ")[0] if text else type(exc).__name__


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load and validate a sakd checkpoint without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    record = _torch_load(path, "checkpoint", "re-run the training or pick another checkpoint")
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a sakd checkpoint (for a torchvision-format state "
                              "dict use --teacher-weights)")
    if int(record.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path} was written by a newer sakd (checkpoint version "
                              f"{record['version']} > {VERSION}); upgrade sakd")
    for key in ("kind", "arch", "state_dict", "model_args"):
        if key not in record:
            raise CheckpointError(f"checkpoint {path} lacks '{key}'")
    if kind is not None and record["kind"] != kind:
        raise CheckpointError(f"{path} holds a {record['kind']} but a {kind} was expected")
    return record


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with an error that names the first bad key."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        detail = (f"missing {missing[:3]}" if missing else "") + \
                 (f" unexpected {unexpected[:3]}" if unexpected else "")
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: {detail.strip()} "
                              "(is it for another architecture?)")
    for key, tensor in state.items():
        if own[key].shape != tensor.shape:
            raise CheckpointError(f"{source}: '{key}' has shape {tuple(tensor.shape)} but the model "
                                  f"expects {tuple(own[key].shape)} (another width or number of classes?)")
    model.load_state_dict(state, strict=True)


def read_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A torchvision/timm-format state dict (optionally under 'state_dict' or 'model', with a
    DDP 'module.' prefix), loaded without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    obj = _torch_load(path, "weights file", "pass a state dict saved with torch.save")
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        obj = obj["state_dict"]
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}
