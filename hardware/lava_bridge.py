"""Drive the Lava reference runner (``sakd.hardware.lava_runner``) from the main environment.

Lava 0.10 needs Python 3.10, so it lives in its own virtual environment (``.venv-lava``, built by
``scripts/make_lava_env.sh`` / ``make lava-env``). :func:`run_lava` writes the inputs to a
temporary folder, runs the runner there with that environment's Python as a subprocess, and reads
its npz back into a :class:`LavaResult` shaped like the simulator's result.

:func:`run_netx_reference` (and :func:`run_netx_reference_batch`, several runs in one
subprocess: importing lava-dl's netx, with torch, takes seconds) runs a netx file free-running
as lava-dl builds it and returns a :class:`NetxReference`: every layer's messages and neuron
state after every step.

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
from sakd.hardware.lava_runner import NETX_INPUT_MODES, NETX_RECORD, LavaInputError, integer_inputs

__all__ = [
    "LavaInputError",
    "LavaResult",
    "LavaRunError",
    "LavaUnavailable",
    "NetxReference",
    "NetxReferenceJob",
    "lava_environment",
    "lava_unavailable_reason",
    "read_netx_reference",
    "read_result",
    "require_lava_environment",
    "run_lava",
    "run_netx_reference",
    "run_netx_reference_batch",
]

#: environment variables that point at a Lava environment (its folder or its python)
ENV_VENV = "SAKD_LAVA_VENV"
ENV_PYTHON = "SAKD_LAVA_PYTHON"
#: the stamp file scripts/make_lava_env.sh writes last, once the environment is complete
STAMP = ".sakd-lava-env"
BUILD_HINT = "build it with `make lava-env` (scripts/make_lava_env.sh)"
#: Lava's shared-memory manager listens on a Unix socket ``<tmp>/pymp-XXXXXXXX/listener-XXXXXXXX``
#: (Python's multiprocessing); Linux caps a socket path at 107 bytes, 32 of which that suffix takes
UNIX_SOCKET_PATH_MAX = 107
LAVA_SOCKET_SUFFIX = len("/pymp-XXXXXXXX/listener-XXXXXXXX")


class LavaUnavailable(SakdError):
    """The Lava reference environment cannot be used; the message says why."""


class LavaRunError(SakdError):
    """The runner failed; the message ends with the tail of its stderr, or (a netx reference
    run) names what netx or Lava raised: ``cause`` is that exception's type name
    (``NotImplementedError`` for a pool layer, ``AttributeError`` for dense_comp, ...) and
    ``stage`` where it happened (``build``: ``netx.hdf5.Network(...)``, ``compile``, ``run``)."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr: str = "",
                 cause: str | None = None, stage: str | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr
        self.cause = cause
        self.stage = stage


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
        args = ["--netx" if netx else "--network", str(network_path),
                "--inputs", str(tmp_path / "inputs.npy"),
                "--time-steps", str(int(time_steps)), "--out", str(out)]
        if netx:
            args += ["--input-message-bits", str(int(input_message_bits))]
        if traces:
            args.append("--traces")
        if chunk is not None:
            args += ["--chunk", str(int(chunk))]
        returncode, stderr = _run_runner(python, args, tmp_path, timeout)
        if returncode != 0 or not out.exists():
            raise LavaRunError(
                f"the Lava runner failed (exit status {returncode}) on {network_path}:\n"
                f"{_stderr_tail(stderr)}",
                returncode=returncode, stderr=stderr,
            )
        return read_result(out, stderr=stderr)


def _run_runner(python: Path, args: list[str], tmp_path: Path,
                timeout: float | None) -> tuple[int, str]:
    """Run ``python -m sakd.hardware.lava_runner ARGS`` in ``tmp_path``; (exit status, stderr).

    cwd = the temporary folder: the repository's own sakd/ must not shadow the Lava
    environment's sakd package (which maps only sakd.hardware). A session of its own: the runner
    leads a process group holding every Lava worker, ended whole on any exit (a timeout, an
    exception, SIGTERM here; ``--parent`` makes the runner end it if this process dies)."""
    check_socket_room(tmp_path)
    cmd = [str(python), "-m", "sakd.hardware.lava_runner", *args,
           "--parent", str(os.getpid()), "--cleanup", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["TMPDIR"] = str(tmp_path)  # Lava's own temporary files go, and are removed, with ours
    with _terminate_as_exception():
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
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
    # the runner has exited; a Lava worker it left behind still belongs to its group
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return proc.returncode, stderr


def check_socket_room(tmp_path: Path) -> None:
    """Refuse, before Lava starts, a temporary folder too long for Lava's Unix sockets (Lava would
    die with a bare ``EOFError`` from its shared-memory manager)."""
    length = len(os.fsencode(str(tmp_path))) + LAVA_SOCKET_SUFFIX
    if length > UNIX_SOCKET_PATH_MAX:
        room = UNIX_SOCKET_PATH_MAX - LAVA_SOCKET_SUFFIX
        raise LavaRunError(
            f"the temporary folder {tmp_path} is {length - LAVA_SOCKET_SUFFIX} bytes long; Lava's "
            f"Unix sockets inside it need it at most {room} bytes: set TMPDIR to a shorter folder "
            f"(e.g. TMPDIR=/tmp)")


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


# ---------------------------------------------------------------------------------------------
# free-running reference runs of netx files
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetxReference:
    """What Lava computed for a netx file, every layer at every step, in sakd's layout.

    ``layers[name][var]``: int64 [steps, B, *shape] for every layer (only the last one when
    the run was made with ``record="output"``) ``layer{i}`` of
    ``netx.hdf5.Network(...).layers`` (i: its ``/layer/{i}`` group; flatten and neuron-less
    input groups make no layer), in network order (``names``): ``"s"``, what the layer's neuron
    sent at step t (0/1 spikes, or graded messages), and the neuron's state Vars after step t
    under Lava's names (LIF/LIFReset ``u``, ``v``; Delta ``act``, ``residue``; SigmaDelta
    ``sigma``, ``act``, ``residue``; Sigma ``sigma``; RF and RF_IZ ``real``, ``imag``).
    ``options``: everything the run used, netx's defaults filled in (``input_message_bits`` 0
    when none was given). ``meta``: per-layer descriptions (block, neuron process, shapes,
    neuron parameters, synapse processes), netx's warnings, timings (``build_s``,
    ``compile_s``, ``run_s``, ``read_s``, ``total_s``, ``samples_per_s``).
    """

    layers: dict[str, dict[str, np.ndarray]]
    names: list[str]
    steps: int
    options: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return int(self.meta.get("samples", next(iter(self.layers.values()))["s"].shape[1]))

    @property
    def samples_per_s(self) -> float | None:
        return self.meta.get("samples_per_s")

    def layer_info(self, name: str) -> dict[str, Any]:
        """The runner's description of one layer (block, neuron, shape, parameters)."""
        for info in self.meta.get("layers", []):
            if info["name"] == name:
                return info
        raise KeyError(name)


@dataclass(frozen=True)
class NetxReferenceJob:
    """One run of :func:`run_netx_reference_batch`; the fields are :func:`run_netx_reference`'s
    arguments (``samples_per_build``: samples per network build, default all; 1 = a fresh build
    per sample; ``monitor_check``: also record with Lava's Monitor and compare; ``zero_state``
    False: do not zero the state between samples, only to show what would leak; ``record``
    ``"output"``: only the last layer, for timing Lava as a user runs it)."""

    path: str | os.PathLike[str]
    inputs: Any
    steps: int
    input_mode: str = "port"
    input_message_bits: int | None = None
    reset_interval: int | None = None
    reset_offset: int = 0
    spike_exp: int = 6
    sparse_fc_layer: bool = False
    samples_per_build: int | None = None
    monitor_check: bool = False
    zero_state: bool = True
    record: str = "all"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or int(self.steps) != self.steps or int(self.steps) < 1:
            raise LavaInputError(f"steps must be an integer >= 1, got {self.steps!r}")
        if self.input_mode not in NETX_INPUT_MODES:
            raise LavaInputError(f"input_mode must be one of {NETX_INPUT_MODES}, got {self.input_mode!r}")
        if self.record not in NETX_RECORD:
            raise LavaInputError(f"record must be one of {NETX_RECORD}, got {self.record!r}")
        for name in ("input_message_bits", "reset_interval", "samples_per_build"):
            value = getattr(self, name)
            low = 0 if name == "input_message_bits" else 1
            if value is not None and (int(value) != value or int(value) < low):
                raise LavaInputError(f"{name} must be None or an integer >= {low}, got {value!r}")
        for name in ("reset_offset", "spike_exp"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value:
                raise LavaInputError(f"{name} must be an integer, got {value!r}")

    def runner_job(self, inputs_name: str) -> dict[str, Any]:
        return {"path": str(Path(self.path).resolve()), "inputs": inputs_name,
                "steps": int(self.steps), "input_mode": self.input_mode,
                "input_message_bits": None if self.input_message_bits is None else int(self.input_message_bits),
                "reset_interval": None if self.reset_interval is None else int(self.reset_interval),
                "reset_offset": int(self.reset_offset), "spike_exp": int(self.spike_exp),
                "sparse_fc_layer": bool(self.sparse_fc_layer),
                "samples_per_build": None if self.samples_per_build is None else int(self.samples_per_build),
                "monitor_check": bool(self.monitor_check), "zero_state": bool(self.zero_state),
                "record": self.record}


def run_netx_reference(
    path: str | os.PathLike[str],
    inputs: Any,
    *,
    steps: int,
    input_mode: str = "port",
    input_message_bits: int | None = None,
    reset_interval: int | None = None,
    reset_offset: int = 0,
    spike_exp: int = 6,
    sparse_fc_layer: bool = False,
    timeout: float | None = None,
    samples_per_build: int | None = None,
    monitor_check: bool = False,
    record: str = "all",
) -> NetxReference:
    """Run the netx file ``path`` on Lava as a lava-dl user would and record every layer.

    The runner (``sakd.hardware.lava_runner.run_netx_reference``, in the Lava environment)
    builds ``lava.lib.dl.netx.hdf5.Network(net_config=path, input_message_bits=... (only when
    given), reset_interval=..., reset_offset=..., spike_exp=..., sparse_fc_layer=...)`` and runs
    it on ``Loihi2SimCfg(select_tag="fixed_pt")`` (lava-dl's netx tutorials' configuration) for
    ``steps`` steps per sample, each of the B samples from the state of a fresh build.

    ``inputs``: integers [steps, B, *input_shape] (or a static [B, *input_shape]) in sakd layout
    (C,H,W or (N,)). ``input_mode``: ``"port"`` feeds ``net.inp`` (the first synapse: the input
    reaches the first neuron one step later), ``"a_in"`` feeds ``net.in_layer.neuron.a_in``
    (same step), ``"bias"`` writes each sample's static input into that neuron's ``bias_mant``
    (acts from step 1). Recorded values are those after each step.

    Raises :class:`LavaUnavailable` without a Lava environment, :class:`LavaInputError` for
    inputs or options the run cannot use (naming why), and :class:`LavaRunError` when netx or
    Lava refuses the file or fails (``cause``: the exception netx raised, e.g.
    ``NotImplementedError`` for a pool layer, ``AttributeError`` for dense_comp; ``stage``) or
    the runner exceeds ``timeout`` seconds (None: no limit).
    """
    job = NetxReferenceJob(path, inputs, steps, input_mode=input_mode,
                           input_message_bits=input_message_bits, reset_interval=reset_interval,
                           reset_offset=reset_offset, spike_exp=spike_exp,
                           sparse_fc_layer=sparse_fc_layer, samples_per_build=samples_per_build,
                           monitor_check=monitor_check, record=record)
    (result,) = run_netx_reference_batch([job], timeout=timeout)
    if isinstance(result, Exception):
        raise result
    return result


def run_netx_reference_batch(
    jobs: list[NetxReferenceJob], *, timeout: float | None = None,
) -> list[NetxReference | LavaRunError | LavaInputError]:
    """Run several :class:`NetxReferenceJob` in ONE runner subprocess (netx's import, with
    torch, takes seconds; each job builds its own networks). Returns, per job, its
    :class:`NetxReference` or the :class:`LavaRunError` / :class:`LavaInputError` it ended with
    (not raised: the other jobs still run). Raises for what no job can survive: no Lava
    environment (:class:`LavaUnavailable`), a bad job (:class:`LavaInputError`), the runner
    dying or exceeding ``timeout`` (:class:`LavaRunError`)."""
    jobs = list(jobs)
    prepared: list[tuple[NetxReferenceJob, np.ndarray]] = []
    for job in jobs:
        if not isinstance(job, NetxReferenceJob):
            raise LavaInputError(f"jobs must be NetxReferenceJob, got {type(job).__name__}")
        if not Path(job.path).is_file():
            raise LavaInputError(f"no such netx file: {Path(job.path).resolve()}")
        prepared.append((job, integer_inputs(job.inputs)))
    if not prepared:
        return []
    python = require_lava_environment()
    with tempfile.TemporaryDirectory(prefix="sakd-netx-ref-") as tmp:
        tmp_path = Path(tmp)
        spec = []
        for k, (job, x) in enumerate(prepared):
            np.save(tmp_path / f"inputs_{k}.npy", x)
            spec.append(job.runner_job(f"inputs_{k}.npy"))
        (tmp_path / "jobs.json").write_text(json.dumps({"jobs": spec}))
        returncode, stderr = _run_runner(
            python, ["--netx-reference", str(tmp_path / "jobs.json"), "--out-dir", str(tmp_path)],
            tmp_path, timeout)
        results: list[NetxReference | LavaRunError | LavaInputError] = []
        for k, (job, _) in enumerate(prepared):
            ref, err = tmp_path / f"ref_{k}.npz", tmp_path / f"error_{k}.json"
            if ref.exists():
                results.append(read_netx_reference(ref))
            elif err.exists():
                results.append(_netx_error(json.loads(err.read_text()), job))
            else:
                raise LavaRunError(
                    f"the Lava runner ended (exit status {returncode}) before netx reference job "
                    f"{k} ({job.path}) finished:\n{_stderr_tail(stderr)}",
                    returncode=returncode, stderr=stderr)
        return results


def _netx_error(err: dict[str, Any], job: NetxReferenceJob) -> LavaRunError | LavaInputError:
    if err.get("kind") == "input":
        return LavaInputError(f"{job.path}: {err['message']}")
    if err.get("kind") == "netx":  # the runner's message names netx's exception already
        message = err["message"]
    else:
        message = (f"the Lava reference run of {job.path} failed: {err.get('type')}: "
                   f"{err.get('message')}")
    return LavaRunError(message, stderr=err.get("traceback", ""), cause=err.get("cause"),
                        stage=err.get("stage"))


def read_netx_reference(path: str | os.PathLike[str]) -> NetxReference:
    """Read a ``ref_{k}.npz`` the runner wrote."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        layers: dict[str, dict[str, np.ndarray]] = {}
        for i, name in enumerate(meta["names"]):
            if name in meta.get("recorded_layers", meta["names"]):
                info = meta["layers"][i]
                layers[name] = {var: data[f"L{i}.{var}"] for var in info["recorded"]}
    return NetxReference(layers=layers, names=list(meta["names"]), steps=int(meta["steps"]),
                         options=dict(meta["options"]), meta=meta)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - a convenience
    """``python -m sakd.hardware.lava_bridge``: print where the Lava environment is, or why not."""
    python, reason = _locate()
    print(python if python else reason)
    return 0 if python else 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
