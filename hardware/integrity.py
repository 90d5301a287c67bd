"""A seal on the files sakd writes (IR, NIR, netx): a trailer after the end of the HDF5 data
holding the SHA-256 of every byte before it and the file's kind. HDF5 readers ignore bytes after
the file's end (h5py, lava-dl and nir read sealed files as usual); sakd's readers check the seal
*before* the HDF5 library parses anything, so a damaged file is refused at once — the HDF5
library can loop forever on some damaged metadata, which no signal interrupts.

Trailer (``TRAILER_BYTES`` = 96 bytes)::

    b"\\nSAKD-SEAL 1 " + sha256 hex (64) + b" " + kind (15, space-padded) + b"\\n"

A file whose trailer is absent (not sealed, or cut short) is left to the reader's own checks.

hashlib only; Python 3.10 compatible.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import SakdError

MAGIC = b"\nSAKD-SEAL 1 "
KINDS = ("ir", "nir", "netx")
_KIND_BYTES = 15
TRAILER_BYTES = len(MAGIC) + 64 + 1 + _KIND_BYTES + 1
_CHUNK = 1 << 20


class IntegrityError(SakdError):
    """A sealed file whose bytes no longer match its seal: damaged or edited after sakd wrote it."""


def _hash(path: Path, length: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        left = length
        while left:
            block = handle.read(min(_CHUNK, left))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def seal(path: str | os.PathLike[str], kind: str) -> None:
    """Append the seal to a file just written (before it is moved into place)."""
    if kind not in KINDS:
        raise ValueError(f"unknown file kind {kind!r}")
    path = Path(path)
    size = path.stat().st_size
    trailer = MAGIC + _hash(path, size).encode() + b" " + kind.encode().ljust(_KIND_BYTES) + b"\n"
    with open(path, "ab") as handle:
        handle.write(trailer)
        handle.flush()
        os.fsync(handle.fileno())


def sealed_kind(path: str | os.PathLike[str]) -> str | None:
    """The kind a sealed file declares (checked against its bytes), or None when it carries no
    seal. :class:`IntegrityError` when the seal does not match."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size < TRAILER_BYTES:
            return None
        with open(path, "rb") as handle:
            handle.seek(size - TRAILER_BYTES)
            trailer = handle.read(TRAILER_BYTES)
    except OSError:
        return None
    if not trailer.startswith(MAGIC) or not trailer.endswith(b"\n"):
        return None
    body = trailer[len(MAGIC):-1]
    digest, kind = body[:64].decode("ascii", "replace"), body[65:].decode("ascii", "replace").strip()
    if kind not in KINDS:
        raise IntegrityError(f"{path}: the file's seal is damaged (kind {kind!r}); the file was "
                             f"damaged after sakd wrote it: re-export it")
    if _hash(path, size - TRAILER_BYTES) != digest:
        raise IntegrityError(f"{path}: the file's bytes do not match the seal sakd wrote with it "
                             f"(damaged or edited after export): re-export it")
    return kind


def unseal(path: str | os.PathLike[str]) -> bool:
    """Remove a file's seal (e.g. before editing it on purpose); returns whether it had one."""
    path = Path(path)
    size = path.stat().st_size
    if size < TRAILER_BYTES:
        return False
    with open(path, "rb+") as handle:
        handle.seek(size - TRAILER_BYTES)
        if not handle.read(TRAILER_BYTES).startswith(MAGIC):
            return False
        handle.truncate(size - TRAILER_BYTES)
    return True
