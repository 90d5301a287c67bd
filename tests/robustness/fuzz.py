"""Seeded mutants of the network files sakd writes (IR, NIR, netx) and the outcome of reading
each through its format's reader and ``sakd inspect``.

A mutant is a copy of a file with one change: bytes flipped, the file cut short, an HDF5 key
deleted, a dataset of another dtype or shape, an attribute or value set to an extreme. Outcomes:

- ``error``: a ``SakdError`` (the reader refused the file, naming it) — good;
- ``same``: the file still reads as the network sakd wrote (the change did not touch its
  meaning, e.g. a flipped byte in padding) — good;
- ``changed``: it reads as a *different* network — bad: a silent change of meaning;
- ``crash``: any other exception — bad: a traceback for a damaged file;
- ``timeout``: the reader ran past the time limit (a worker process reads each mutant, so a
  reader stuck inside the HDF5 library is ended and counted) — bad.

Used by tests/robustness/test_reader_fuzz.py and benchmarks/robustness.py (which counts them).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from sakd.errors import SakdError
from sakd.hardware.ir import Network

GOOD = ("error", "same")
KINDS = ("flip", "truncate", "delete", "dtype", "shape", "extreme")


@dataclass(frozen=True)
class Outcome:
    fmt: str
    kind: str
    index: int
    read: str
    inspect: str
    detail: str = ""


def _keys(f: h5py.File) -> list[tuple[str, str | None]]:
    """Every (object path, attribute or None) of the file."""
    out: list[tuple[str, str | None]] = [("/", a) for a in f.attrs]

    def visit(name: str, obj) -> None:
        out.append((name, None))
        out.extend((name, a) for a in obj.attrs)

    f.visititems(visit)
    return out


def _datasets(f: h5py.File) -> list[str]:
    found: list[str] = []
    f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    return found


def mutate(src: Path, dst: Path, kind: str, rng: np.random.Generator) -> str:
    """Write one mutant of ``src`` to ``dst``; returns what was changed."""
    shutil.copyfile(src, dst)
    data = bytearray(src.read_bytes())
    if kind == "flip":
        count = int(rng.integers(1, 4))
        where = rng.integers(0, len(data), count)
        for i in where:
            data[int(i)] ^= 1 << int(rng.integers(0, 8))
        dst.write_bytes(bytes(data))
        return f"flipped bits at {sorted(int(i) for i in where)}"
    if kind == "truncate":
        cut = int(rng.integers(0, len(data)))
        dst.write_bytes(bytes(data[:cut]))
        return f"cut at {cut} of {len(data)} bytes"
    with h5py.File(dst, "r+") as f:
        if kind == "delete":
            keys = _keys(f)
            path, attr = keys[int(rng.integers(0, len(keys)))]
            if attr is None:
                del f[path]
                return f"deleted {path}"
            holder = f if path == "/" else f[path]
            del holder.attrs[attr]
            return f"deleted {path} attr {attr}"
        names = _datasets(f)
        name = names[int(rng.integers(0, len(names)))]
        old = f[name][()]
        del f[name]
        if kind == "dtype":
            choice = int(rng.integers(0, 3))
            new = (np.asarray(old, np.float64) + 0.5 if choice == 0 else
                   np.asarray(old).astype("S8") if choice == 1 else
                   np.asarray(old, np.float32) * np.nan)
            f[name] = new
            return f"{name} as {new.dtype}"
        if kind == "shape":
            arr = np.asarray(old)
            new = np.concatenate([arr.reshape(-1), arr.reshape(-1)[:1]]) if arr.size else np.zeros(3)
            f[name] = new
            return f"{name} reshaped {arr.shape} -> {new.shape}"
        arr = np.asarray(old)
        extreme = [2**62, -(2**62), 2**31, -1, 0][int(rng.integers(0, 5))]
        new = np.full(arr.shape, extreme, np.int64) if arr.dtype.kind in "iuf" else np.int64(extreme)
        f[name] = new
        return f"{name} set to {extreme}"


def classify(fn: Callable[[], object], original: Network | None) -> tuple[str, str]:
    try:
        result = fn()
    except SakdError as exc:
        return "error", str(exc)[:200]
    except Exception as exc:  # the thing the suite exists to catch
        return "crash", f"{type(exc).__name__}: {exc}"[:300]
    if original is None or not isinstance(result, Network):
        return "same", ""
    return ("same", "") if result.equals(original) else ("changed", "read as another network")


def _worker(conn, original_path: str) -> None:
    """Reads mutants in a process of its own, so that a reader stuck in the HDF5 library (which
    no signal interrupts) can be ended and counted as a timeout."""
    from sakd.formats import inspect_file, read_any
    from sakd.hardware.netfile import read_network

    original = read_network(original_path)
    while True:
        path = conn.recv()
        if path is None:
            return
        read = classify(lambda p=path: read_any(p), original)
        shown = classify(lambda p=path: inspect_file(p), None)
        conn.send((read, shown))


class _Reader:
    """A worker process and its pipe; restarted after a timeout."""

    def __init__(self, original_path: Path) -> None:
        import multiprocessing

        self.context = multiprocessing.get_context("spawn")
        self.original_path = str(original_path)
        self._start()

    def _start(self) -> None:
        self.conn, child = self.context.Pipe()
        self.process = self.context.Process(target=_worker, args=(child, self.original_path),
                                            daemon=True)
        self.process.start()

    def read(self, path: Path, seconds: float) -> tuple[tuple[str, str], tuple[str, str]]:
        self.conn.send(str(path))
        if self.conn.poll(seconds):
            return self.conn.recv()
        self.process.kill()
        self.process.join()
        self._start()
        return ("timeout", f"more than {seconds} s"), ("timeout", "")

    def close(self) -> None:
        self.conn.send(None)
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


def run(files: dict[str, Path], original: Path, folder: Path, per_kind: int, seed: int = 0,
        seconds: float = 60.0) -> Iterator[Outcome]:
    """Every mutant: ``per_kind`` of each kind for each format's file, read (with a time limit
    per case) in a worker process; ``original``: the IR file of the network they all hold."""
    rng = np.random.default_rng(seed)
    reader = _Reader(original)
    try:
        for fmt, src in files.items():
            for kind in KINDS:
                for i in range(per_kind):
                    dst = folder / f"{fmt}-{kind}-{i}{''.join(src.suffixes)}"
                    try:
                        what = mutate(src, dst, kind, rng)
                    except (KeyError, OSError, ValueError, TypeError) as exc:
                        what = f"(mutation not applicable: {exc})"
                    (read, detail), (shown, _) = reader.read(dst, seconds)
                    yield Outcome(fmt, kind, i, read, shown, f"{what}: {detail}")
                    dst.unlink(missing_ok=True)
    finally:
        reader.close()


def tally(outcomes: list[Outcome]) -> dict[str, Counter]:
    return {"read": Counter(o.read for o in outcomes), "inspect": Counter(o.inspect for o in outcomes)}
