"""File formats, one registry: each format (``base.Format``) declares its name, suffixes,
``detect``, ``read``, ``write``, ``inspect`` and what it supports. ``sakd export`` writes every
format that can express the network, ``inspect``/``simulate``/``verify`` detect a file's format
from its contents, and ``sakd formats`` / docs/support.md print the support matrix.

Adding a format: a module (``sakd/formats/<format>.py``) with a ``FORMAT`` record, registered
in ``_FORMAT_MODULES`` below.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from sakd.formats.base import Format, FormatError, Inspection, Support
from sakd.hardware.errors import MissingFileError
from sakd.hardware.integrity import sealed_kind
from sakd.hardware.ir import Network

#: the registered formats, in the order export writes them and detection tries them
_FORMAT_MODULES = ("sakd.formats.ir", "sakd.formats.nir", "sakd.formats.netx", "sakd.formats.onnx")
_REGISTRY: dict[str, Format] = {}


def formats() -> dict[str, Format]:
    """Every registered format by name (imported on first use: NIR, ONNX and torch load lazily)."""
    if not _REGISTRY:
        for module in _FORMAT_MODULES:
            fmt = importlib.import_module(module).FORMAT
            _REGISTRY[fmt.name] = fmt
    return dict(_REGISTRY)


def get_format(name: str) -> Format:
    """The format called ``name``; an error lists the known ones."""
    known = formats()
    if name not in known:
        raise FormatError(f"unknown format {name!r}; known formats: {', '.join(known)}")
    return known[name]


def detect_format(path: str | os.PathLike[str]) -> Format:
    """The format of a file, from its contents (IR, NIR, netx, ONNX); an error names the file."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such file")
    if path.is_dir():
        raise FormatError(f"{path}: is a folder, not a network file")
    kind = sealed_kind(path)  # a file sakd wrote says what it is (checked before HDF5 parses it)
    if kind is not None:
        return formats()[kind]
    for fmt in formats().values():
        if fmt.detect(path):
            return fmt
    raise FormatError(f"{path}: not a network file sakd knows (an IR network.h5, a NIR file, a "
                      f"netx HDF5 file or an ONNX model), or it is damaged; `sakd formats` lists "
                      f"them")


def read_any(path: str | os.PathLike[str], **options: Any) -> Network:
    """Any readable network file as an IR network. ``options`` are the format's read options
    (``Format.read_options``); passing an option the format does not take is an error that
    says which it takes."""
    fmt = detect_format(path)
    if fmt.read is None:
        raise FormatError(f"{path}: a {fmt.title} file holds a {fmt.writes}, not an integer "
                          f"network sakd can simulate")
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(fmt.read_options))
    if unknown:
        takes = ", ".join(fmt.read_options) or "none"
        raise FormatError(f"{path}: option(s) {', '.join(unknown)} do not apply to a "
                          f"{fmt.title} file (it takes: {takes})")
    return fmt.read(Path(path), **given)


def inspect_file(path: str | os.PathLike[str]) -> Inspection:
    """The summary of any network file (``sakd inspect``)."""
    fmt = detect_format(path)
    return fmt.inspect(Path(path))


__all__ = ["Format", "FormatError", "Inspection", "Support", "detect_format", "formats",
           "get_format", "inspect_file", "read_any"]
