"""What the netx reader, writer and inspector share: the format's constants and errors, typed
access to netx's HDF5 keys, and two pieces of lava-dl's arithmetic that a netx file only implies:

- :func:`netx_dense_weights`: the weights and exponent a dense layer's Lava synapse really
  uses (netx's ``optimize_weight_bits`` rescales the file's weights, then Lava's bit-accurate
  Dense clips and truncates them, fixed-point.md §1.2 and §2.1);
- :func:`netx_rf_decays`: the 12-bit decays an RF layer's Lava process really uses (netx turns
  the file's ``sinDecay``/``cosDecay`` into a period and a decay in floats; Lava's RF process
  turns them back into integers, truncating).

Both are written from lava-dl 0.6's and lava-nc 0.10's source (netx/utils.py, netx/hdf5.py,
lava/utils/weightutils.py, lava/proc/rf/process.py) and checked against them in the Lava tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from sakd.formats.base import FormatError, Support

#: Lava's LIF stores bias_mant as int16 (fixed-point.md §1.1); netx casts the bias to it
NETX_BIAS_RANGE = (-(1 << 15), (1 << 15) - 1)
GENERATOR = "sakd"
NETX_FORMAT = "sakd-netx"
NETX_FORMAT_VERSION = 2
#: what netx fills in for a dense layer without ``neuron`` (hdf5.py: ``1 << 18 - 1`` = 2^17)
NETX_DEFAULT_READOUT = {"iDecay": 0, "vDecay": 4096, "vThMant": 1 << 17}
#: netx clamps synaptic delays to 0..62 (hdf5.py ``create_dense``)
NETX_MAX_DELAY = 62
#: layer types netx's ``_create`` refuses with ``NotImplementedError(f'{type} is not implemented.')``
NETX_UNIMPLEMENTED = ("pool", "convT", "unpool", "average", "concat")

ELSEWHERE = "write the IR file (network.h5) or NIR (network.nir) instead"

#: what a netx file can express (docs/support.md)
SUPPORT = Support(
    neuron_models=("cuba_lif", "delta", "sigma_delta", "sigma", "rf", "rf_iz"),
    layer_kinds=("dense", "conv2d", "direct"),
    residual_fan_in=False,
    delays="dense layers: scalar, axonal, input and per-synapse (0..62); conv delays are ignored "
           "by netx",
    recurrence=True,
    graded_messages=True,
    multiple_readouts=False,
    notes=("one chain of layers: no fan-in, no fan-out (lava-dl netx wires layers[-2] -> "
           "layers[-1] only); recurrence only as dense_rec (a layer onto itself)",
           "netx fixes bias_exp = 6 (hdf5.py)",
           "pool, convT, unpool, average and concat layers are refused by netx itself; "
           "dense_comp calls create_complex_dense, which lava-dl 0.6 does not define",
           "files of other tools run free (no reset unless reset_interval is given): "
           "sakd reads them with schedule 'free'"),
)


class NetxExportError(FormatError):
    """An IR network netx cannot express; the message names the first such node and why."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class NetxImportError(FormatError):
    """A netx file that does not fit the IR (or is not a readable netx file)."""


# ---------------------------------------------------------------------------------------------
# typed access to netx's keys (netx's NetDict: 'type' decoded, weight/bias .astype(int))
# ---------------------------------------------------------------------------------------------


def text(value: Any) -> str:
    arr = np.asarray(value)
    if arr.ndim > 0:
        arr = arr.reshape(-1)[0]
    value = arr.item() if hasattr(arr, "item") else arr
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def layer_type(group: h5py.Group) -> str:
    return text(group["type"][()])


def int_key(group: h5py.Group, key: str, where: str) -> int:
    if key not in group:
        raise NetxImportError(f"{where}/{key}: missing")
    arr = np.asarray(group[key][()]).reshape(-1)
    if arr.size != 1 or arr.dtype.kind not in "iufb" or arr[0] != np.round(arr[0]):
        raise NetxImportError(f"{where}/{key}: expected one integer, got {arr.tolist()!r}")
    return int(arr[0])


def float_key(group: h5py.Group, key: str, where: str) -> float:
    if key not in group:
        raise NetxImportError(f"{where}/{key}: missing")
    arr = np.asarray(group[key][()]).reshape(-1)
    if arr.size != 1 or arr.dtype.kind not in "iuf" or not np.isfinite(arr[0]):
        raise NetxImportError(f"{where}/{key}: expected one finite number, got {arr.tolist()!r} "
                              f"(netx takes one value per layer here)")
    return arr[0]


def pair_key(group: h5py.Group, key: str, where: str, default: int) -> tuple[int, int]:
    """A scalar or an (H, W) pair (netx reverses it to (x, y) for Lava)."""
    if key not in group:
        return (default, default)
    arr = np.asarray(group[key][()]).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2:
        raise NetxImportError(f"{where}/{key}: expected a scalar or a pair, got {arr.tolist()!r}")
    return int(arr[0]), int(arr[1])


def ints_key(group: h5py.Group, key: str, where: str) -> np.ndarray:
    """An integer array as netx reads it: ``.astype(int)`` truncates toward zero."""
    if key not in group:
        raise NetxImportError(f"{where}/{key}: missing")
    arr = np.asarray(group[key][()])
    if arr.dtype.kind not in "iufb":
        raise NetxImportError(f"{where}/{key}: not numeric (dtype {arr.dtype})")
    if arr.dtype.kind == "f" and (not np.all(np.isfinite(arr))
                                  or (arr.size and np.abs(arr).max() >= 2.0**62)):
        raise NetxImportError(f"{where}/{key}: holds NaN, infinite or out-of-range values")
    return arr.astype(np.int64)


def shape_key(group: h5py.Group, where: str) -> tuple[int, ...]:
    """A layer's ``shape`` in PyTorch order (C, H, W) or (N,) (netx reverses it to (W, H, C))."""
    shape = tuple(int(d) for d in ints_key(group, "shape", where).reshape(-1))
    if not shape or any(d < 1 for d in shape):
        raise NetxImportError(f"{where}/shape: {list(shape)} is not a shape")
    return shape


def netx_layers(f: h5py.File, where: str) -> list[h5py.Group]:
    """``/layer/0..n-1`` in order (netx loops ``range(len(layer))``)."""
    if "layer" not in f or not isinstance(f["layer"], h5py.Group):
        raise NetxImportError(f"{where}: not a netx file (no 'layer' group)")
    layer = f["layer"]
    keys = sorted(layer.keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
    if list(keys) != [str(i) for i in range(len(keys))]:
        raise NetxImportError(f"{where}: /layer holds {keys}; netx reads groups 0..{len(keys) - 1}")
    out = []
    for k in keys:
        g = layer[k]
        if not isinstance(g, h5py.Group) or "type" not in g:
            raise NetxImportError(f"{where}: /layer/{k} is not a layer group with a 'type'")
        out.append(g)
    return out


# ---------------------------------------------------------------------------------------------
# a dense layer's weights as Lava uses them
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DenseWeights:
    """What a netx dense layer's Lava synapse computes: ``a = shift(effective @ s, weight_exp)``
    (``shift``: left for weight_exp > 0, else arithmetic right). ``lossy``: the file's weights
    are not reproduced exactly (a reason), else None."""

    effective: np.ndarray
    weight_exp: int
    num_weight_bits: int
    lossy: str | None


def netx_scale(weight: np.ndarray) -> tuple[np.ndarray, int, int]:
    """netx's ``optimize_weight_bits`` (netx/utils.py): (rescaled weights, num_weight_bits,
    weight_exponent). Raises NetxImportError where netx itself fails (an all-zero matrix: a
    division by zero, then an OverflowError)."""
    w = np.asarray(weight, dtype=np.int64)
    max_w, min_w = int(w.max()), int(w.min())
    # netx clips mixed-sign matrices beyond [-256, 254] (and prints a warning)
    if max_w > 254 and min_w < 0:
        w = np.clip(w, -256, 254)
        max_w = int(w.max())
    if min_w < -256 and max_w > 0:
        w = np.clip(w, -256, 254)
        min_w = int(w.min())
    if max_w < 0:
        signed, scale = 0, -256 / min_w
    elif min_w >= 0:
        if max_w == 0:
            raise NetxImportError("an all-zero weight matrix: netx's optimize_weight_bits "
                                  "divides by zero and fails (OverflowError)")
        signed, scale = 0, 255 / max_w
    else:
        signed = 1
        scale = min(127 / max_w if max_w else np.inf, -128 / min_w)
    scale_bits = int(np.floor(np.log2(scale))) + signed
    n = 8
    while n > 0 and np.sum(np.abs(w / 2**n - np.round(w / 2**n))) != 0:
        n -= 1
    n -= signed
    # a sign-definite matrix beyond 8 bits gets scale_bits < 0: numpy's shift by a negative
    # count gives 0, so Lava's synapse is silent
    scaled = w << scale_bits if scale_bits >= 0 else np.zeros_like(w)
    return scaled, 8 - scale_bits - n, -scale_bits


def lava_dense_weights(weight: np.ndarray, num_weight_bits: int) -> np.ndarray:
    """Lava's bit-accurate Dense on its first step (weightutils): the sign mode it derives
    (min >= 0 excitatory, else max <= 0 inhibitory, else mixed), ``clip_weights`` to 8 bits and
    ``truncate_weights`` to ``num_weight_bits``."""
    w = np.asarray(weight, dtype=np.int64)
    if w.min() >= 0:
        mode = "exc"
    elif w.max() <= 0:
        mode = "inh"
    else:
        mode = "mixed"
    if mode == "inh":
        w = -w
    w = np.clip(w, -256 if mode == "mixed" else 0, 255)
    t = 8 - num_weight_bits + (mode == "mixed")
    if t > 0:
        w = (w >> t) << t
    elif t < 0:  # numpy shifts by a negative count give 0: the synapse is silent
        w = np.zeros_like(w)
    return -w if mode == "inh" else w


def netx_dense_weights(weight: np.ndarray, *, apply_exponent: bool = True) -> DenseWeights:
    """The weights a netx dense (or dense_rec, jointly) layer runs with in Lava. With
    ``apply_exponent=False`` the synapse is given no ``weight_exp`` (netx's recurrent dense
    layer with delays forgets to pass it, so its weights act ``2^-weight_exponent`` times too
    large)."""
    scaled, bits, exp = netx_scale(weight)
    effective = lava_dense_weights(scaled, bits)
    if not apply_exponent:
        exp = 0
    w = np.asarray(weight, dtype=np.int64)
    # the linear map the file means is w; Lava computes floor(effective @ s / 2^-exp)
    same = np.array_equal(effective, w << -exp) if exp <= 0 else np.array_equal(effective << exp, w)
    lossy = None if same else (
        "netx's optimize_weight_bits and Lava's clip/truncate change these weights; sakd runs "
        "them as Lava does")
    return DenseWeights(effective, exp, bits, lossy)


# ---------------------------------------------------------------------------------------------
# an RF layer's decays as Lava uses them
# ---------------------------------------------------------------------------------------------


def netx_rf_decays(sin_decay: Any, cos_decay: Any, decay_bits: int = 12) -> tuple[int, int]:
    """The integer (sin, cos) decays Lava's RF / RF_IZ process holds for a netx RF layer: netx
    computes ``period`` and ``decay`` from the file's ``sinDecay``/``cosDecay`` (slayer's
    ``neuron_params``: ``decay = 1 − √(s² + c²)``, ``frequency = atan2(s, c) / 2π`` with
    ``s, c = sinDecay/4096, cosDecay/4096``), and Lava's RF process computes
    ``int32((1 − decay) · sin(2π / period) · 2^12)`` (and cos): a float round trip that
    truncates, in numpy float64 as both do."""
    p_scale = 1 << 12
    with np.errstate(divide="ignore"):  # sinDecay 0: frequency 0, period inf (as in netx)
        s = np.float64(sin_decay) / p_scale
        c = np.float64(cos_decay) / p_scale
        decay = 1 - np.sqrt(s**2 + c**2)
        frequency = np.arctan2(s, c) / 2 / np.pi
        period = 1 / frequency
        sin_f = (1 - decay) * np.sin(np.pi * 2 * 1 / period)
        cos_f = (1 - decay) * np.cos(np.pi * 2 * 1 / period)
    return int(np.int32(sin_f * (1 << decay_bits))), int(np.int32(cos_f * (1 << decay_bits)))
