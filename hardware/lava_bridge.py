"""Drive the Lava reference runner (``sakd.hardware.lava_runner``) from the main environment.

Lava 0.10 needs Python 3.10, so it lives in its own virtual environment (``.venv-lava``, built by
``scripts/make_lava_env.sh`` / ``make lava-env``). :func:`run_lava` writes the inputs to a
temporary folder, runs the runner there with that environment's Python as a subprocess, and reads
its npz back into a :class:`LavaResult` shaped like the simulator's result.

numpy and h5py only; Python 3.10 compatible.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sakd.hardware.errors import MissingFileError, SakdError, Terminated
from sakd.hardware.lava_runner import integer_inputs

#: environment variables that point at a Lava environment (its folder or its python)
ENV_VENV = "SAKD_LAVA_VENV"
ENV_PYTHON = "SAKD_LAVA_PYTHON"
#: the stamp file scripts/make_lava_env.sh writes last, once the environment is complete
STAMP = ".sakd-lava-env"
BUILD_HINT = "build it with `make lava-env` (scripts/make_lava_env.sh)"


class LavaUnavailable(SakdError):
    """The Lava reference environment cannot be used; the message says why."""


class LavaRunError(SakdError):
    """The runner failed; the message ends with the tail of its stderr."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class LavaResult:
    """What Lava produced, in sakd's layout (C,H,W / N).

    ``spikes[name]``: uint8 [T+L, B, *shape] for every population (IR) or netx layer
    (``layer{i}``), in network order; ``readout_v``: int64 [B, *shape], the readout's (last
    layer's) v at step T+L; ``u`` / ``v``: int64 [T+L, B, *shape] per population when traces were
    asked for (values after each step), else empty. ``meta``: the runner's meta data (names,
    readout, time_steps, latency, timings, samples_per_s).
    """

    spikes: dict[str, np.ndarray]
    readout_v: np.ndarray
    readout: str
    time_steps: int
    latency: int
    u: dict[str, np.ndarray] = field(default_factory=dict)
    v: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.spikes)

    @property
    def predictions(self) -> np.ndarray:
        """argmax of the readout's v over its flattened neurons (ties -> lowest index)."""
        return self.readout_v.reshape(self.readout_v.shape[0], -1).argmax(axis=1)

    @property
    def samples_per_s(self) -> float | None:
        return self.meta.get("samples_per_s")

    @property
    def traces(self) -> dict[str, dict[str, np.ndarray]]:
        """The simulator's ``SimulationResult.traces`` layout: name -> {"u", "v": int64,
        "s": bool} [T+L, B, *shape] (``u``/``v`` only when traces were recorded)."""
        out: dict[str, dict[str, np.ndarray]] = {}
        for name, s in self.spikes.items():
            out[name] = {"s": s.astype(bool)}
            if name in self.u:
                out[name]["u"] = self.u[name]
                out[name]["v"] = self.v[name]
        return out


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def _candidates() -> list[Path]:
    """Python interpreters of possible Lava environments, most specific first."""
    out: list[Path] = []
    if os.environ.get(ENV_PYTHON):  # explicit choices are the only candidates
        out.append(Path(os.environ[ENV_PYTHON]))
    if os.environ.get(ENV_VENV):
        out.append(Path(os.environ[ENV_VENV]) / "bin" / "python")
    if out:
        return out
    out.append(_repo_root() / ".venv-lava" / "bin" / "python")
    cwd = Path.cwd() / ".venv-lava" / "bin" / "python"
    if cwd not in out:
        out.append(cwd)
    return out


def lava_unavailable_reason() -> str | None:
    """None when a usable Lava environment exists, else a sentence saying why not."""
    return _locate()[1]


def _locate() -> tuple[Path | None, str | None]:
    reasons: list[str] = []
    for python in _candidates():
        venv = python.parent.parent
        if not python.exists():
            reasons.append(f"{python} does not exist")
            continue
        if not os.access(python, os.X_OK):
            reasons.append(f"{python} is not executable")
            continue
        if not (venv / STAMP).exists() and not os.environ.get(ENV_PYTHON):
            reasons.append(f"{venv} is incomplete (no {STAMP} stamp)")
            continue
        return python, None
    return None, "no Lava reference environment: " + "; ".join(reasons) + f"; {BUILD_HINT}"


def lava_environment() -> Path | None:
    """The Lava environment's Python (``.venv-lava/bin/python``), or None when there is none
    (:func:`lava_unavailable_reason` says why). ``SAKD_LAVA_PYTHON`` / ``SAKD_LAVA_VENV``
    choose the environment (and then nothing else is tried); by default the repository's ``.venv-lava`` (then the current
    directory's) is used, once ``scripts/make_lava_env.sh`` has completed it."""
    return _locate()[0]


def require_lava_environment() -> Path:
    python, reason = _locate()
    if python is None:
        raise LavaUnavailable(reason or "no Lava reference environment")
    return python


def _stderr_tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_lava(
    network_path: str | os.PathLike[str],
    inputs: np.ndarray,
    time_steps: int,
    *,
    netx: bool = False,
    input_message_bits: int = 0,
    traces: bool = False,
    chunk: int | None = None,
    timeout: float | None = 1800.0,
) -> LavaResult:
    """Run ``network_path`` (an IR ``network.h5``, or a netx HDF5 file with ``netx=True``) on
    Lava's bit-accurate models for the integer ``inputs`` (static [B, *shape] or sequence
    [T, B, *shape], sakd layout) over ``T + L`` steps per sample.

    Raises :class:`LavaUnavailable` when there is no Lava environment and :class:`LavaRunError`
    when the runner fails or exceeds ``timeout`` seconds.
    """
    python = require_lava_environment()
    network_path = Path(network_path).resolve()
    if not network_path.exists():
        raise MissingFileError(f"no such network file: {network_path}")
    x = integer_inputs(inputs)

    with tempfile.TemporaryDirectory(prefix="sakd-lava-") as tmp:
        tmp_path = Path(tmp)
        np.save(tmp_path / "inputs.npy", x)
        out = tmp_path / "result.npz"
        cmd = [str(python), "-m", "sakd.hardware.lava_runner",
               "--netx" if netx else "--network", str(network_path),
               "--inputs", str(tmp_path / "inputs.npy"),
               "--time-steps", str(int(time_steps)), "--out", str(out)]
        if netx:
            cmd += ["--input-message-bits", str(int(input_message_bits))]
        if traces:
            cmd.append("--traces")
        if chunk is not None:
            cmd += ["--chunk", str(int(chunk))]
        cmd += ["--parent", str(os.getpid()), "--cleanup", str(tmp_path)]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
        # cwd = the temporary folder: the repository's own sakd/ must not shadow the Lava
        # environment's sakd package (which maps only sakd.hardware). A session of its own: the
        # runner leads a process group holding every Lava worker, ended whole on any exit.
        with _terminate_as_exception():
            proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                    start_new_session=True)
            try:
                _, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                end_process_group(proc)
                err = proc.stderr.read() if proc.stderr else ""
                raise LavaRunError(f"the Lava runner exceeded {timeout} s\n{_stderr_tail(err)}",
                                   stderr=err) from exc
            except BaseException:
                end_process_group(proc)
                raise
        if proc.returncode != 0 or not out.exists():
            raise LavaRunError(
                f"the Lava runner failed (exit status {proc.returncode}) on {network_path}:\n"
                f"{_stderr_tail(stderr)}",
                returncode=proc.returncode, stderr=stderr,
            )
        return read_result(out, stderr=stderr)


def end_process_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it after ``grace`` seconds, and reap."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # the group may outlive its leader: end the stragglers too
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@contextlib.contextmanager
def _terminate_as_exception() -> Iterator[None]:
    """In the main thread: SIGTERM raises :class:`Terminated` (so the runner's process group is
    ended and the temporary folder removed) instead of killing Python on the spot."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        yield  # not ours to change (a thread, or the caller handles SIGTERM already)
        return

    def raise_terminated(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def read_result(path: str | os.PathLike[str], *, stderr: str = "") -> LavaResult:
    """Read the runner's npz."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        names = meta["names"]
        spikes = {n: data[f"spikes_{i}"] for i, n in enumerate(names)}
        u = {n: data[f"u_{i}"] for i, n in enumerate(names) if f"u_{i}" in data}
        v = {n: data[f"v_{i}"] for i, n in enumerate(names) if f"v_{i}" in data}
        readout_v = data["readout_v"]
    if stderr:
        meta["stderr"] = _stderr_tail(stderr, 10)
    return LavaResult(spikes=spikes, readout_v=readout_v, readout=meta["readout"],
                      time_steps=int(meta["time_steps"]), latency=int(meta["latency"]),
                      u=u, v=v, meta=meta)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - a convenience
    """``python -m sakd.hardware.lava_bridge``: print where the Lava environment is, or why not."""
    python, reason = _locate()
    print(python if python else reason)
    return 0 if python else 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
