"""A user's own inputs for ``sakd simulate --inputs X.npy``: load the array (no pickles), tell a
static input ``(batch, *input_shape)`` from a sequence ``(batch, steps, *input_shape)``, and
encode it into the integers the network receives, saying how (every choice is an assumption
the report records)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sakd.app.common import JobError
from sakd.hardware.errors import MissingFileError
from sakd.hardware.ir import Network


@dataclass
class UserInputs:
    """Encoded inputs for ``simulate``: ``x`` int64 ``[B, *shape]`` (static) or
    ``[steps, B, *shape]`` (``sequence``); ``labels`` int64 [B] or None; what was assumed."""

    x: np.ndarray
    sequence: bool
    steps: int | None  # a sequence's steps
    labels: np.ndarray | None
    source: str
    assumptions: list[str] = field(default_factory=list)

    @property
    def batch(self) -> int:
        return int(self.x.shape[1] if self.sequence else self.x.shape[0])


def _load(path: Path, option: str) -> np.ndarray:
    if not path.exists():
        raise MissingFileError(f"{option} {path}: no such file")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:  # an object array needs pickle: refused
        raise JobError(f"{option} {path}: not a plain numeric .npy array ({exc}); save it with "
                       f"numpy.save(path, array) from a numeric array") from exc
    except OSError as exc:
        raise JobError(f"{option} {path}: not a readable .npy file ({exc})") from exc
    if isinstance(arr, np.lib.npyio.NpzFile):
        raise JobError(f"{option} {path}: an .npz archive; give one .npy array")
    return np.asarray(arr)


def load_inputs(path: Path, network: Network, *, input_scale: float | None = None,
                labels: Path | None = None, time_steps: int | None = None) -> UserInputs:
    """Read ``path`` and encode it for ``network`` (module docstring).

    Integers are used as they are (``input_scale`` given: ``x_int = round(x · scale)``, half to
    even, clipped to the input's range); floats need a scale: ``input_scale``, else the one the
    file records for its input (a sakd export, a NIR import's documented assumption); a netx
    file of another tool records none."""
    inp = network.input
    x = _load(Path(path), "--inputs")
    if x.dtype.kind not in "biuf":
        raise JobError(f"--inputs {path}: dtype {x.dtype} is not numeric")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise JobError(f"--inputs {path}: holds NaN or infinite values")
    shape = tuple(inp.shape)
    nd = len(shape)
    assumptions: list[str] = []
    if x.ndim == nd + 1 and tuple(x.shape[1:]) == shape:
        sequence, steps = False, None
        assumptions.append(f"inputs {tuple(x.shape)}: {x.shape[0]} samples, each held for every "
                           f"step (a static input)")
    elif x.ndim == nd + 2 and tuple(x.shape[2:]) == shape:
        sequence, steps = True, int(x.shape[1])
        if time_steps is not None and time_steps != steps:
            raise JobError(f"--inputs {path}: a sequence of {steps} steps, but --time-steps is "
                           f"{time_steps}; give one or make them equal")
        assumptions.append(f"inputs {tuple(x.shape)}: {x.shape[0]} samples of {steps} steps (a "
                           f"sequence, step by step)")
        x = np.moveaxis(x, 1, 0)  # the simulator takes [steps, B, ...]
    else:
        hint = ""
        if x.ndim >= 2 and int(np.prod(x.shape[1:])) == int(np.prod(shape)):
            hint = (f"; to feed a {tuple(x.shape[1:])} array to this {shape} input, flatten it in "
                    f"C,H,W order first (x.reshape(len(x), -1))")
        raise JobError(f"--inputs {path}: shape {tuple(x.shape)} fits neither a static input "
                       f"(batch, {', '.join(map(str, shape))}) nor a sequence (batch, steps, "
                       f"{', '.join(map(str, shape))}) for input '{inp.name}'{hint}")
    if x.shape[1 if sequence else 0] == 0:
        raise JobError(f"--inputs {path}: holds no samples")
    if input_scale is not None:
        if not (isinstance(input_scale, (int, float)) and np.isfinite(input_scale)
                and input_scale > 0):
            raise JobError(f"--input-scale {input_scale!r} must be a positive number")
        encoded = dataclasses.replace(inp, scale=float(input_scale)).encode(x)
        assumptions.append(f"x_int = round(x · {input_scale:g}) clipped to input '{inp.name}' "
                           f"({inp.encoding}, {inp.bits} bits)")
    elif x.dtype.kind == "f":
        if network.schedule == "free" and network.metadata.get("source") == "netx":
            raise JobError(f"--inputs {path} holds floats, and the netx file records no input "
                           f"scale: pass --input-scale (x_int = round(x · scale)) or integer inputs")
        encoded = inp.encode(x)
        assumptions.append(f"floats encoded with the file's input scale {inp.scale:g} "
                           f"(x_int = round(x · {inp.scale:g}), {inp.bits} bits)")
    else:
        encoded = x.astype(np.int64)
        lo, hi = inp.value_range
        if encoded.size and (encoded.min() < lo or encoded.max() > hi):
            bad = int(encoded.min() if encoded.min() < lo else encoded.max())
            raise JobError(f"--inputs {path}: value {bad} is outside [{lo}, {hi}], the range of "
                           f"input '{inp.name}' ({inp.encoding}, {inp.bits} bits); pass "
                           f"--input-scale to rescale")
        assumptions.append("integer inputs used as they are")
    y = None
    if labels is not None:
        y = _load(Path(labels), "--labels")
        if y.dtype.kind not in "iub" or y.shape != (x.shape[1 if sequence else 0],):
            raise JobError(f"--labels {labels}: expected one integer label per sample, shape "
                           f"({x.shape[1 if sequence else 0]},), got {y.dtype} {tuple(y.shape)}")
        y = y.astype(np.int64)
    return UserInputs(encoded, sequence, steps, y, str(path), assumptions)


def parse_record(value: str | None, network: Network) -> tuple[str, ...]:
    """``--record all`` or ``--record POP,POP``: population names, checked."""
    if value is None:
        return ()
    names = [p.name for p in network.populations]
    if value.strip() == "all":
        return tuple(names)
    picked = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [n for n in picked if n not in names]
    if not picked or unknown:
        raise JobError(f"--record {value!r}: {'unknown population(s) ' + ', '.join(unknown) if unknown else 'names nothing'}; "
                       f"give 'all' or names from: {', '.join(names)}")
    return picked

