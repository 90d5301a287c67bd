"""Random netx HDF5 files of every kind lava-dl's ``netx.hdf5.Network`` loads, written key by key
as slayer's ``export_hdf5`` writes them (shared/spec/fixed-point.md §2): CUBA, graded CUBA
(``messageBits``), SDNN (Delta input, SigmaDelta, Sigma output), RF and RF_IZ complex dense
layers, ``dense_rec``, every delay form netx reads (scalar, axonal, input, per synapse, beyond
62), 1-D weights, input layers with and without a neuron, conv layers with stride, padding,
dilation and groups, and neuron-less dense layers. Small enough for the scalar reference and
for Lava.

``random_netx_file(path, seed)`` writes one and returns how to run it (:class:`NetxCase`).
Used by tests/export/test_netx_random.py (against the scalar reference, and round trips) and
tests/lava (against lava-dl's netx).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FAMILIES = ("cuba", "cuba_input", "cuba_bias_input", "sdnn", "rf", "recurrent", "delays")


@dataclass
class NetxCase:
    """What a random file holds and how to run it: ``options`` for read_netx / netx's
    Network, ``input_shape`` (C, H, W) or (N,), ``inputs`` int64 [B, *input_shape] (static),
    ``steps``, the run's ``reset_interval`` / ``reset_offset`` and what the file covers."""

    family: str
    options: dict[str, Any]
    input_shape: tuple[int, ...]
    inputs: np.ndarray
    steps: int
    reset_interval: int | None = None
    reset_offset: int = 0
    covers: list[str] = field(default_factory=list)


def _type(g: h5py.Group, kind: str) -> None:
    g.create_dataset("type", (1,), "S10", [kind.encode("ascii")])


def _cuba(g: h5py.Group, rng: np.random.Generator, *, graded: bool = False,
          vth: int | None = None) -> int:
    n = g.create_group("neuron")
    _type(n, str(rng.choice(["CUBA", "LOIHI"])))
    for key, value in (("iDecay", int(rng.choice([0, 1024, 4096]))),
                       ("vDecay", int(rng.choice([0, 256, 2048, 4096]))),
                       ("vThMant", vth if vth is not None else int(rng.choice([2, 20, 80]))),
                       ("refDelay", 1), ("gradedSpike", int(graded))):
        n.create_dataset(key, data=np.int64(value))
    if graded:
        bits = int(rng.choice([8, 16]))
        n.create_dataset("messageBits", data=np.int64(bits))
        return bits
    return 0


def _sdnn(g: h5py.Group, rng: np.random.Generator, sigma_output: bool = False) -> int:
    n = g.create_group("neuron")
    _type(n, "SDNN")
    if sigma_output:
        n.create_dataset("sigma_output", data=np.int64(1))
    else:
        n.create_dataset("vThMant", data=np.int64(int(rng.choice([0, 1, 4]))))
    bits = int(rng.choice([16, 24])) if rng.random() < 0.3 else 16
    if bits != 16 or rng.random() < 0.5:
        n.create_dataset("messageBits", data=np.int64(bits))
    return bits


def _rf(g: h5py.Group, rng: np.random.Generator) -> None:
    n = g.create_group("neuron")
    _type(n, str(rng.choice(["RF", "RF_IZ", "RF_PHASE"])))
    n.create_dataset("sinDecay", data=np.int64(int(rng.integers(200, 2000))))
    n.create_dataset("cosDecay", data=np.int64(int(rng.integers(2500, 3900))))
    n.create_dataset("vThMant", data=np.int64(int(rng.integers(1, 40))))
    n.create_dataset("gradedSpike", data=np.int64(0))


def _weights(rng: np.random.Generator, shape: tuple[int, ...], scale: int) -> np.ndarray:
    """slayer-style weights: even integers (sometimes any integer) within [-256, 254], mixed
    sign, some zero."""
    if rng.random() < 0.7:
        w = 2 * rng.integers(-scale, scale + 1, size=shape)
    else:
        w = rng.integers(-2 * scale, 2 * scale + 1, size=shape)
    w = np.where(rng.random(shape) < 0.2, 0, w)
    w.flat[0] = 2 * scale  # mixed sign, never all zero
    w.flat[-1] = -2 * scale
    return np.clip(w, -256, 254)


def random_netx_file(path: str | Path, seed: int, family: str | None = None) -> NetxCase:
    rng = np.random.default_rng(seed)
    family = family or FAMILIES[seed % len(FAMILIES)]
    covers: list[str] = [family]
    options: dict[str, Any] = {}
    conv = family in ("cuba", "cuba_input", "sdnn") and rng.random() < 0.7
    in_shape: tuple[int, ...] = (int(rng.integers(1, 3)), int(rng.integers(3, 6)),
                                 int(rng.integers(3, 6))) if conv else (int(rng.integers(2, 6)),)
    steps = int(rng.integers(3, 9))
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        index = 0

        def new(kind: str) -> h5py.Group:
            nonlocal index
            g = layer.create_group(str(index))
            _type(g, kind)
            index += 1
            return g

        shape = in_shape
        bits_in = 0
        if family in ("cuba_input", "cuba_bias_input", "sdnn"):
            g = new("input")
            g.create_dataset("shape", data=np.asarray(in_shape))
            if family == "sdnn":
                bits_in = _sdnn(g, rng)
            else:
                bits_in = _cuba(g, rng, vth=int(rng.choice([3, 30])))
            g.create_dataset("weight", data=np.int64(64))  # netx's transform, never applied
            options["input_mode"] = "bias" if family == "cuba_bias_input" else "a_in"
            covers.append(f"input neuron ({options['input_mode']})")
        elif rng.random() < 0.8 or conv:
            g = new("input")
            g.create_dataset("shape", data=np.asarray(in_shape))
        else:
            covers.append("no input layer")
        if family not in ("cuba_input", "cuba_bias_input", "sdnn"):
            bits_in = int(rng.choice([0, 8])) if family != "rf" else 8
            options["input_message_bits"] = bits_in
        n_layers = int(rng.integers(1, 3))
        # conv layers
        if conv:
            for _ in range(n_layers):
                c, h, w = shape
                cout = int(rng.integers(1, 4))
                groups = int(rng.choice([gr for gr in (1, 2) if c % gr == 0 and cout % gr == 0]))
                k = int(rng.choice([1, 3]))
                stride, pad, dil = int(rng.choice([1, 2])), int(rng.choice([0, 1])), \
                    int(rng.choice([1, 1, 2]))
                ho = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1
                wo = (w + 2 * pad - dil * (k - 1) - 1) // stride + 1
                if ho < 1 or wo < 1:
                    continue
                g = new("conv")
                g.create_dataset("shape", data=np.asarray((cout, ho, wo)))
                wgt = _weights(rng, (cout, c // groups, k, k), 30)
                g.create_dataset("weight", data=wgt.astype(np.float32))
                g.create_dataset("stride", data=np.int64(stride))
                g.create_dataset("padding", data=np.asarray((pad, pad)))
                g.create_dataset("dilation", data=np.int64(dil))
                g.create_dataset("groups", data=np.int64(groups))
                if rng.random() < 0.5:
                    g.create_dataset("bias", data=rng.integers(-40, 40, cout).astype(np.float32))
                if family == "sdnn":
                    _sdnn(g, rng)
                else:
                    _cuba(g, rng)
                covers.append(f"conv k{k} s{stride} p{pad} d{dil} g{groups}")
                shape = (cout, ho, wo)
            g = new("flatten")
            g.create_dataset("shape", data=np.asarray([int(np.prod(shape))]))
            shape = (int(np.prod(shape)),)
        # dense layers
        n_dense = int(rng.integers(1, 3))
        for k in range(n_dense):
            last = k == n_dense - 1
            n_in = int(np.prod(shape))
            n = int(rng.integers(2, 6))
            kind = "dense_rec" if family == "recurrent" and not last else "dense"
            g = new(kind)
            g.create_dataset("shape", data=np.asarray([n]))
            if family == "rf" and last:
                wg = g.create_group("weight")
                wg.create_dataset("real", data=_weights(rng, (n, n_in), 40).astype(np.float32))
                wg.create_dataset("imag", data=_weights(rng, (n, n_in), 40).astype(np.float32))
                _rf(g, rng)
                covers.append("complex dense / " + g["neuron/type"][0].decode())
            else:
                wgt = _weights(rng, (n, n_in), 25)
                if rng.random() < 0.2:
                    wgt = wgt.reshape(-1)
                    covers.append("1-D weight")
                g.create_dataset("weight", data=wgt.astype(np.float32))
                if kind == "dense_rec":
                    g.create_dataset("weight_rec", data=_weights(rng, (n, n), 10).astype(np.float32))
                    covers.append("dense_rec")
                if family == "delays":
                    form = str(rng.choice(["scalar", "axonal", "input", "synapse", "clamp"]))
                    d = {"scalar": np.int64(int(rng.integers(0, 4))),
                         "axonal": rng.integers(0, 4, n), "input": rng.integers(0, 4, n_in),
                         "synapse": rng.integers(0, 4, (n, n_in)),
                         "clamp": np.where(rng.random((n, n_in)) < 0.2, 70,
                                           rng.integers(0, 3, (n, n_in)))}[form]
                    if form in ("axonal", "input") and n == n_in:
                        form = "axonal"  # netx reads a 1-D delay of length out as axonal first
                    g.create_dataset("delay", data=np.asarray(d).astype(np.float32))
                    covers.append(f"delay {form}")
                if rng.random() < 0.5 and not (family == "sdnn" and last):  # Sigma has no bias
                    g.create_dataset("bias", data=rng.integers(-30, 30, n).astype(np.float32))
                if family == "sdnn":
                    _sdnn(g, rng, sigma_output=last)
                elif last and rng.random() < 0.3:
                    covers.append("neuron-less dense")
                else:
                    _cuba(g, rng, graded=family == "cuba" and not last and rng.random() < 0.5)
            shape = (n,)
    if family == "sdnn":
        options["spike_exp"] = int(rng.choice([0, 3, 6]))
    hi = {0: 1, 8: 128}.get(bits_in, 100)
    lo = 0 if bits_in == 0 and family not in ("cuba_input", "cuba_bias_input", "sdnn") else -hi
    if family in ("cuba_input", "cuba_bias_input", "sdnn"):
        lo, hi = -60, 120
    x = rng.integers(lo, hi + (1 if bits_in == 0 and lo == 0 else 0), size=(2,) + in_shape)
    interval = None
    offset = 0
    if family in ("cuba", "recurrent", "delays") and rng.random() < 0.4:
        interval, offset = int(rng.integers(2, 6)), int(rng.integers(0, 3))
        covers.append("reset_interval")
    return NetxCase(family, options, in_shape, x.astype(np.int64), steps, interval, offset, covers)
