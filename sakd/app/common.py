"""What several jobs share: option checks made before any work starts (counts, output
locations), the evaluation samples of a data set, and finding and reading a network file."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sakd.errors import SakdError
from sakd.hardware.errors import MissingFileError
from sakd.hardware.ir import Network


class JobError(SakdError):
    """A job cannot run as asked; the message names the option or file and says what to do."""


# ---------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------


def count_option(value: int | None, option: str, *, allow_all: bool = False,
                 allow_zero: bool = False) -> int | None:
    """A sample count given on the command line: a positive integer (or 0 when ``allow_zero``;
    -1 for "all" when ``allow_all``, returned as None; None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobError(f"{option} must be an integer, got {value!r}")
    if allow_all and value == -1:
        return None
    if value < 0 or (value == 0 and not allow_zero):
        what = "a positive integer" + (" or 0" if allow_zero else "") + (" (-1: all)" if allow_all else "")
        raise JobError(f"{option} {value} is invalid: give {what}")
    return value


def check_output_file(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """A file the job will write: not a folder, its folder creatable and writable. Checked
    before any work, so that a long run never ends in a failed write."""
    path = Path(path)
    if path.is_dir():
        raise JobError(f"{option} {path} is a folder; give a file path")
    _check_writable_folder(path.parent, option, path)
    return path


def check_output_dir(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """A folder the job will write into: not a file, creatable and writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise JobError(f"{option} {path} is a file; give a folder")
    _check_writable_folder(path, option, path)
    return path


def _check_writable_folder(folder: Path, option: str, given: Path) -> None:
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise JobError(f"{option} {given}: {existing} is a file, so the folder cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise JobError(f"{option} {given}: {existing} is not writable")
    try:  # os.access is not the whole truth (root, read-only mounts, /proc): try a file
        fd, name = tempfile.mkstemp(prefix=".sakd-write-check-", dir=existing)
    except OSError as exc:
        raise JobError(f"{option} {given}: cannot write into {existing}: "
                       f"{exc.strerror or exc}") from exc
    os.close(fd)
    os.unlink(name)


# ---------------------------------------------------------------------------------------------
# samples
# ---------------------------------------------------------------------------------------------


@dataclass
class Samples:
    """Normalized inputs [N, C, H, W] and labels of a split, and how many were asked for."""

    x: Any  # torch.Tensor
    y: Any  # torch.Tensor
    info: Any  # sakd.data.DatasetInfo
    split: str
    available: int
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.x.shape[0])


def check_split(split: str) -> None:
    if split not in ("train", "val", "test"):
        raise JobError(f"unknown split '{split}'; choose train, val or test")


def take_split(splits: Any, split: str, limit: int | None, what: str,
               noun: str) -> tuple[Any, int, list[str]]:
    """``(dataset, n, notes)``: the split's data set, how many of it to use (``limit``, None:
    all) and a note when the limit is above its size. An empty split is an error."""
    dataset = {"train": splits.train, "val": splits.val, "test": splits.test}[split]
    if dataset is None or len(dataset) == 0:
        raise JobError(f"the {split} split of {what} is empty")
    available = len(dataset)
    n = available if limit is None else min(limit, available)
    notes = []
    if limit is not None and limit > available:
        notes.append(f"--limit {limit} is more than the {available} {noun} of the {split} split: "
                     f"all {available} are used")
    return dataset, n, notes


def load_samples(data: str, split: str, limit: int | None, root: str | None = None) -> Samples:
    """The first ``limit`` samples (None: all) of a split, without augmentation. A limit above
    the split's size is noted, not an error."""
    import torch

    from sakd.data import load_splits

    check_split(split)
    splits = load_splits(data, root, augment=False, val_fraction=0.1 if split == "val" else 0.0)
    dataset, n, notes = take_split(splits, split, limit, f"'{data}'", "samples")
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(n)),
                                         batch_size=512, shuffle=False)
    xs, ys = zip(*loader)
    return Samples(torch.cat(xs), torch.cat(ys), splits.info, split, len(dataset), notes)


# ---------------------------------------------------------------------------------------------
# network files
# ---------------------------------------------------------------------------------------------


def resolve_network_path(path: str | os.PathLike[str]) -> Path:
    """A network file, or an export folder (its ``network.h5``)."""
    from sakd.formats import get_format

    path = Path(path)
    if path.is_dir():
        folder, path = path, path / get_format("ir").file_name
        if not path.exists():
            raise MissingFileError(f"{folder} holds no {path.name}; give a network file or an "
                                   f"export folder (`sakd export CKPT -o DIR` makes one)")
    if not path.exists():
        raise MissingFileError(f"no network file at {path}; run `sakd export CKPT -o DIR` first")
    return path


def read_network_file(path: str | os.PathLike[str], **options: Any) -> Network:
    """An IR, NIR or netx file (or an export folder) as an IR network; ``options``: the format's
    read options (``sakd.formats``)."""
    from sakd.formats import read_any

    return read_any(resolve_network_path(path), **options)


def check_shape(value: Any, option: str) -> tuple[int, ...]:
    """An input shape: (C, H, W) or (N,), positive integers, no batch or time axis."""
    shape = tuple(value)
    if len(shape) not in (1, 3) or not all(isinstance(d, int) and not isinstance(d, bool)
                                          and d >= 1 for d in shape):
        raise JobError(f"{option} {','.join(str(d) for d in shape) or '(empty)'}: give C,H,W or "
                       "N (positive integers, no batch or time axis)")
    return shape


def parse_shape(text: str, option: str) -> tuple[int, ...]:
    """``C,H,W`` (or ``N``) from the command line."""
    try:
        shape = tuple(int(part.strip()) for part in str(text).split(","))
    except ValueError:
        raise JobError(f"{option} {text}: give integers separated by commas, e.g. 3,32,32") from None
    return check_shape(shape, option)

