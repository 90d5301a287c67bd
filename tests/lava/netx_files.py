"""netx files written by lava-dl's own exporters, for the netx reference runs.

Run INSIDE the Lava environment (it imports torch and lava.lib.dl.slayer)::

    .venv-lava/bin/python tests/lava/netx_files.py OUT_DIR [--check]

Each file is a small slayer network (tens to a few hundred neurons) with seeded random weights,
written the way lava-dl's tutorials do it: ``h5py.File(path, 'w')``, a ``layer`` group, and
every block's own ``export_hdf5`` into ``layer/{i}``. What no exporter writes (netx's graded
``messageBits``, scalar / input / per-synapse delays, 1-D weights, a ``dense_comp`` layer, the
``LOIHI`` and plain ``RF`` neuron types) is then added or changed with h5py; the manifest
(``OUT_DIR/manifest.json``) names, per file, what it covers, which exporter wrote what, every
hand-edited key, the input shape (sakd layout), suggested steps, input mode and run options
(``netx.hdf5.Network`` keywords), and how to draw inputs (``input``: ``spikes`` with a rate,
``graded`` / ``static`` / ``walk`` integers in [low, high]), a file of inputs drawn that way
(``inputs``: [steps, 3, *input_shape] int64 .npy) and, for a file netx or Lava refuses, the
stage and exception (``refused``).

Weights are scaled so that every layer is active but not saturated; ``--check`` runs every
file through the reference (``sakd.hardware.lava_runner.run_netx_reference``, one sample) and
prints each layer's activity (a fraction of nonzero messages, and for Sigma outputs the range)
so that this can be checked again after a change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from lava.lib.dl import slayer

SEED = 20240801
INPUT_SAMPLES = 3

CUBA = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03,
        "tau_grad": 0.03, "scale_grad": 3, "requires_grad": False}
SDNN = {"threshold": 0.1, "tau_grad": 0.5, "scale_grad": 1, "requires_grad": False,
        "shared_param": True, "activation": F.relu}
RF = {"threshold": 0.4, "period": 7.0, "decay": 0.1, "requires_grad": False}


class Net(torch.nn.Module):
    """A sequence of slayer blocks, exported as lava-dl's tutorials do."""

    def __init__(self, *blocks: torch.nn.Module) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def export_hdf5(self, filename: Path) -> None:
        with h5py.File(filename, "w") as h:
            layer = h.create_group("layer")
            for i, block in enumerate(self.blocks):
                block.export_hdf5(layer.create_group(f"{i}"))


def _randn(gen: torch.Generator, shape: tuple[int, ...], std_int: float, mean_int: float = 0.0) -> torch.Tensor:
    """Float weights whose exported (x64, even-rounded) integers have about this mean and std."""
    return (torch.randn(shape, generator=gen) * std_int + mean_int) / 64.0


def set_weights(block: torch.nn.Module, gen: torch.Generator, std: float, mean: float = 0.0,
                rec_std: float | None = None) -> None:
    """Seeded random weights on a block's synapse(s) (real and imaginary parts of a complex
    one; the input and recurrent synapses of a recurrent one)."""
    with torch.no_grad():
        if hasattr(block, "input_synapse"):
            syn = block.input_synapse
            syn.weight.data = _randn(gen, tuple(syn.weight.shape), std, mean)
            rec = block.recurrent_synapse
            rec.weight.data = _randn(gen, tuple(rec.weight.shape), rec_std if rec_std is not None else std)
            return
        syn = block.synapse
        if getattr(syn, "complex", False):
            for part in (syn.real, syn.imag):
                part.weight.data = _randn(gen, tuple(part.weight.shape), std, mean)
        else:
            syn.weight.data = _randn(gen, tuple(syn.weight.shape), std, mean)


def build(net: Net, in_shape: tuple[int, ...]) -> Net:
    """One forward pass: slayer sets neuron shapes (and initialises delays) on the first one."""
    net.eval()
    with torch.no_grad():
        net(torch.zeros((1, *in_shape, 4)))
    return net


def _set_delays(block: torch.nn.Module, gen: torch.Generator, high: float) -> None:
    with torch.no_grad():
        block.delay.delay.data = torch.rand(block.delay.delay.shape, generator=gen) * high


def _replace(group: h5py.Group, key: str, data: Any) -> None:
    if key in group:
        del group[key]
    group.create_dataset(key, data=data)


# ---------------------------------------------------------------------------------------------
# the files
# ---------------------------------------------------------------------------------------------


def cuba_conv(out: Path, graded: bool) -> dict[str, Any]:
    """input (2,10,10) -> conv 2->4 k3 stride 2 pad 1 (+ per-channel bias) -> conv 4->6 k3 pad 2
    dilation 2 groups 2 -> flatten -> dense 150->20 -> dense 20->8."""
    gen = torch.Generator().manual_seed(SEED + (1 if graded else 2))
    norm = slayer.neuron.norm.MeanOnlyBatchNorm
    net = Net(
        slayer.block.cuba.Input(None, delay_shift=False),
        slayer.block.cuba.Conv({**CUBA, "norm": norm, "threshold": 4.0 if graded else 1.0},
                               2, 4, 3, stride=2, padding=1),
        slayer.block.cuba.Conv(CUBA, 4, 6, 3, padding=2, dilation=2, groups=2),
        slayer.block.cuba.Flatten(),
        slayer.block.cuba.Dense(CUBA, 150, 20),
        slayer.block.cuba.Dense(CUBA, 20, 8),
    )
    build(net, (2, 10, 10))
    if graded:
        set_weights(net.blocks[1], gen, 2.5, 0.6)
    else:
        set_weights(net.blocks[1], gen, 7, 2)
    with torch.no_grad():  # bias = -quantized running mean (slayer's export of the norm)
        net.blocks[1].neuron.norm.running_mean.data = torch.tensor([-0.2, 0.1, -0.05, 0.3])
    set_weights(net.blocks[2], gen, 7 if graded else 10, 1.5 if graded else 3)
    set_weights(net.blocks[4], gen, 3 if graded else 4, 0.6 if graded else 1)
    set_weights(net.blocks[5], gen, 6.5 if graded else 9, 2 if graded else 3)
    name = f"cuba_conv_{'graded' if graded else 'binary'}.net"
    net.export_hdf5(out / name)
    return {
        "file": name,
        "covers": ("CUBA conv (stride 2, padding, per-channel bias) -> conv (dilation 2, padding "
                   "2, groups 2) -> flatten -> dense -> dense, "
                   + ("graded 8-bit input (input_message_bits 8)" if graded else "binary input spikes")),
        "input_shape": [2, 10, 10], "steps": 16, "input_mode": "port",
        "options": {"input_message_bits": 8} if graded else {},
        "input": {"kind": "graded", "low": 0, "high": 15} if graded else {"kind": "spikes", "rate": 0.3},
        "writers": {"/layer/0": "slayer.block.cuba.Input(None, delay_shift=False).export_hdf5 (type input, shape)",
                    "/layer/1": "slayer.block.cuba.Conv(norm=MeanOnlyBatchNorm).export_hdf5 (bias from the norm)",
                    "/layer/2": "slayer.block.cuba.Conv.export_hdf5",
                    "/layer/3": "slayer.block.cuba.Flatten.export_hdf5",
                    "/layer/4-5": "slayer.block.cuba.Dense.export_hdf5"},
        "hand_edited": [],
    }


def cuba_input_neuron(out: Path, mode: str) -> dict[str, Any]:
    """an input block with a CUBA neuron, driven through its a_in (1-D) or its bias (3-D)."""
    gen = torch.Generator().manual_seed(SEED + (3 if mode == "a_in" else 4))
    if mode == "a_in":
        net = Net(
            slayer.block.cuba.Input({**CUBA, "current_decay": 1.0}),
            slayer.block.cuba.Dense(CUBA, 16, 20),
            slayer.block.cuba.Dense(CUBA, 20, 6),
        )
        build(net, (16,))
        set_weights(net.blocks[1], gen, 7.3, 2)
        set_weights(net.blocks[2], gen, 6.5, 2)
        shape, inp = [16], {"kind": "graded", "low": 0, "high": 48}
        covers = ("CUBA input block with a neuron (slayer.block.cuba.Input) driven through "
                  "net.in_layer.neuron.a_in, as lava-dl's PilotNet tutorials do -> dense -> dense")
        tail = {"/layer/1-2": "slayer.block.cuba.Dense.export_hdf5"}
    else:
        net = Net(
            slayer.block.cuba.Input(CUBA),
            slayer.block.cuba.Conv(CUBA, 2, 4, 3, padding=1),
            slayer.block.cuba.Flatten(),
            slayer.block.cuba.Dense(CUBA, 256, 10),
        )
        build(net, (2, 8, 8))
        set_weights(net.blocks[1], gen, 7, 1.5)
        set_weights(net.blocks[3], gen, 2.5, 0.2)
        shape, inp = [2, 8, 8], {"kind": "static", "low": 0, "high": 40}
        covers = ("CUBA input block with a neuron (slayer.block.cuba.Input, 3-D) driven through "
                  "its bias_mant, as lava-dl's tinynet test does -> conv -> flatten -> dense")
        tail = {"/layer/1": "slayer.block.cuba.Conv.export_hdf5",
                "/layer/2": "slayer.block.cuba.Flatten.export_hdf5",
                "/layer/3": "slayer.block.cuba.Dense.export_hdf5"}
    name = f"cuba_input_{mode}.net"
    net.export_hdf5(out / name)
    return {"file": name, "covers": covers, "input_shape": shape, "steps": 16,
            "input_mode": mode, "options": {}, "input": inp,
            "writers": {"/layer/0": "slayer.block.cuba.Input(neuron).export_hdf5 (type input, shape, neuron/)", **tail},
            "hand_edited": []}


def cuba_graded_out(out: Path) -> dict[str, Any]:
    """CUBA dense layers with graded output: slayer's graded_spike=True writes only
    neuron/gradedSpike (netx ignores it); netx reads neuron/messageBits, written by hand."""
    gen = torch.Generator().manual_seed(SEED + 5)
    graded = {**CUBA, "graded_spike": True}
    net = Net(
        slayer.block.cuba.Input(None, delay_shift=False),
        slayer.block.cuba.Dense(graded, 20, 16),
        slayer.block.cuba.Dense(graded, 16, 8),
        slayer.block.cuba.Dense(CUBA, 8, 4),
    )
    build(net, (20,))
    set_weights(net.blocks[1], gen, 6.5, 2)
    set_weights(net.blocks[2], gen, 7.3, 2)
    set_weights(net.blocks[3], gen, 10, 3)
    name = "cuba_graded_out.net"
    net.export_hdf5(out / name)
    with h5py.File(out / name, "a") as h:
        h["layer/1/neuron"].create_dataset("messageBits", data=8)
        h["layer/2/neuron"].create_dataset("messageBits", data=16)
    return {"file": name,
            "covers": ("CUBA neurons with graded output (neuron/messageBits 8 and 16). netx 0.6.0 "
                       "cannot run it: NetDict returns a NetDict, not a number, for a key outside "
                       "its array_keys list (messageBits is not in it), so Network(...) builds "
                       "but the next synapse's num_message_bits holds a NetDict and Lava's "
                       "builder fails at compile (ValueError)"),
            "input_shape": [20], "steps": 16, "input_mode": "port", "options": {},
            "input": {"kind": "spikes", "rate": 0.3},
            "refused": {"stage": "compile", "cause": "ValueError",
                        "match": "setting an array element with a sequence"},
            "writers": {"/layer/0": "slayer.block.cuba.Input(None, delay_shift=False).export_hdf5",
                        "/layer/1-3": "slayer.block.cuba.Dense.export_hdf5 (graded_spike=True on 1-2 writes neuron/gradedSpike)"},
            "hand_edited": ["/layer/1/neuron/messageBits = 8 (added: no slayer exporter writes messageBits)",
                            "/layer/2/neuron/messageBits = 16 (added)"]}


def sdnn(out: Path) -> dict[str, Any]:
    """sigma-delta Input (Delta) -> Conv -> Conv -> Flatten -> Dense -> Output (Sigma), like
    lava-dl's PilotNet SDNN."""
    gen = torch.Generator().manual_seed(SEED + 6)
    sd = slayer.block.sigma_delta
    net = Net(
        sd.Input(SDNN),
        sd.Conv(SDNN, 1, 4, 3, stride=2),
        sd.Conv(SDNN, 4, 6, 3, stride=1, padding=1),
        sd.Flatten(),
        sd.Dense(SDNN, 6 * 5 * 5, 12),
        sd.Output(SDNN, 12, 2),
    )
    build(net, (1, 11, 11))
    set_weights(net.blocks[1], gen, 8, 2)
    set_weights(net.blocks[2], gen, 6, 1)
    set_weights(net.blocks[4], gen, 4, 1)
    set_weights(net.blocks[5], gen, 6)
    name = "sdnn.net"
    net.export_hdf5(out / name)
    return {"file": name,
            "covers": ("SDNN: Delta input block (driven through a_in, as PilotNet SDNN does) -> "
                       "SigmaDelta conv (stride 2) -> SigmaDelta conv (padding 1) -> flatten -> "
                       "SigmaDelta dense -> Sigma output (neuron/sigma_output); graded messages "
                       "(messageBits default 16), spike_exp 6"),
            "input_shape": [1, 11, 11], "steps": 16, "input_mode": "a_in", "options": {},
            "input": {"kind": "walk", "low": 0, "high": 128, "step": 8},
            "writers": {"/layer/0": "slayer.block.sigma_delta.Input.export_hdf5",
                        "/layer/1-2": "slayer.block.sigma_delta.Conv.export_hdf5",
                        "/layer/3": "slayer.block.sigma_delta.Flatten.export_hdf5",
                        "/layer/4": "slayer.block.sigma_delta.Dense.export_hdf5",
                        "/layer/5": "slayer.block.sigma_delta.Output.export_hdf5 (neuron/sigma_output)"},
            "hand_edited": []}


def rf(out: Path, iz: bool) -> dict[str, Any]:
    """complex dense layers (weight/real + weight/imag) of resonate-and-fire neurons."""
    gen = torch.Generator().manual_seed(SEED + (8 if iz else 7))
    block = slayer.block.rf_iz if iz else slayer.block.rf
    # period 8: the file's sinDecay 2607 comes back from netx's float round trip (sinDecay ->
    # period, decay -> RF's np.int32(x * 4096)) as 2606; period 7 survives it unchanged
    params = {**RF, "period": 8.0} if iz else RF
    net = Net(
        slayer.block.cuba.Input(None, delay_shift=False),
        block.Dense(params, 16, 20),
        block.Dense(params, 20, 8),
    )
    build(net, (16,))
    std, mean = (14, 2) if iz else (60, 10)
    set_weights(net.blocks[1], gen, std, mean)
    set_weights(net.blocks[2], gen, std, mean)
    name = "rf_iz.net" if iz else "rf.net"
    net.export_hdf5(out / name)
    edited = []
    if iz:
        with h5py.File(out / name, "a") as h:
            _replace(h["layer/2/neuron"], "type", "RF")
        edited.append("/layer/2/neuron/type RF_IZHIKEVICH -> RF (netx maps every 'RF*' type "
                      "without 'PHASE' to RF_IZ)")
    kind = ("RF_IZ (type RF_IZHIKEVICH, and RF on /layer/2; period 8: Lava's sin_decay is "
            "2606 where the file says sinDecay 2607)" if iz else
            "RF (type RF_PHASE; period 7: sin/cos decays survive netx's round trip)")
    return {"file": name,
            "covers": f"{kind} neurons in complex dense layers (ComplexDense: weight/real -> a_real_in, weight/imag -> a_imag_in)",
            "input_shape": [16], "steps": 24, "input_mode": "port", "options": {},
            "input": {"kind": "spikes", "rate": 0.3},
            "writers": {"/layer/0": "slayer.block.cuba.Input(None, delay_shift=False).export_hdf5",
                        "/layer/1-2": f"slayer.block.{'rf_iz' if iz else 'rf'}.Dense.export_hdf5 (weight/real, weight/imag)"},
            "hand_edited": edited}


def recurrent(out: Path) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(SEED + 9)
    net = Net(
        slayer.block.cuba.Input(None, delay_shift=False),
        slayer.block.cuba.Recurrent(CUBA, 12, 16),
        slayer.block.cuba.Dense(CUBA, 16, 6),
    )
    build(net, (12,))
    set_weights(net.blocks[1], gen, 8.4, 2, rec_std=6)
    set_weights(net.blocks[2], gen, 7.3, 2)
    name = "recurrent.net"
    net.export_hdf5(out / name)
    return {"file": name,
            "covers": "CUBA recurrent layer (slayer.block.cuba.Recurrent -> dense_rec: weight + weight_rec, RecurrentDense with two synapses) -> dense",
            "input_shape": [12], "steps": 20, "input_mode": "port", "options": {},
            "input": {"kind": "spikes", "rate": 0.3},
            "writers": {"/layer/0": "slayer.block.cuba.Input(None, delay_shift=False).export_hdf5",
                        "/layer/1": "slayer.block.cuba.Recurrent.export_hdf5 (type dense_rec)",
                        "/layer/2": "slayer.block.cuba.Dense.export_hdf5"},
            "hand_edited": []}


def delays_axonal(out: Path) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(SEED + 10)
    net = Net(
        slayer.block.cuba.Input(None, delay_shift=False),
        slayer.block.cuba.Dense(CUBA, 16, 20, delay=True),
        slayer.block.cuba.Dense(CUBA, 20, 12, delay=True),
        slayer.block.cuba.Dense(CUBA, 12, 6),
    )
    build(net, (16,))
    _set_delays(net.blocks[1], gen, 6.0)
    _set_delays(net.blocks[2], gen, 4.0)
    set_weights(net.blocks[1], gen, 7.3, 2)
    set_weights(net.blocks[2], gen, 6.5, 2)
    set_weights(net.blocks[3], gen, 8.4, 2)
    name = "delays_axonal.net"
    net.export_hdf5(out / name)
    return {"file": name,
            "covers": ("slayer axonal delays (Dense(delay=True): floor(learned delay) per output "
                       "neuron, 0..5) -> netx DelayDense, delay row i = delay[i]"),
            "input_shape": [16], "steps": 24, "input_mode": "port", "options": {},
            "input": {"kind": "spikes", "rate": 0.3},
            "writers": {"/layer/0": "slayer.block.cuba.Input(None, delay_shift=False).export_hdf5",
                        "/layer/1-2": "slayer.block.cuba.Dense(delay=True).export_hdf5 (1-D delay of length out)",
                        "/layer/3": "slayer.block.cuba.Dense.export_hdf5"},
            "hand_edited": []}


def delays_hand(out: Path) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(SEED + 11)
    rng = np.random.default_rng(SEED + 11)
    net = Net(
        slayer.block.cuba.Input(None, delay_shift=False),
        slayer.block.cuba.Dense(CUBA, 16, 20),
        slayer.block.cuba.Dense(CUBA, 20, 12),
        slayer.block.cuba.Dense(CUBA, 12, 6),
    )
    build(net, (16,))
    set_weights(net.blocks[1], gen, 7.3, 2)
    set_weights(net.blocks[2], gen, 6.5, 2)
    set_weights(net.blocks[3], gen, 8.4, 2)
    name = "delays_hand.net"
    net.export_hdf5(out / name)
    per_synapse = rng.integers(0, 9, size=(6, 12))
    per_synapse[0, :4] = 70  # above 62: netx clamps (with a warning)
    per_synapse[3, 5] = 62
    with h5py.File(out / name, "a") as h:
        h["layer/1"].create_dataset("delay", data=3)  # scalar
        h["layer/2"].create_dataset("delay", data=rng.integers(0, 7, size=20).astype(float))  # input
        h["layer/3"].create_dataset("delay", data=per_synapse.astype(float))
    return {"file": name,
            "covers": ("netx delays no slayer exporter writes: a scalar delay (3, every synapse), "
                       "input delays (1-D of length in = 20 != out), per-synapse delays (2-D "
                       "(out, in)), with delays 70 that netx clamps to 62 (and a 62)"),
            "input_shape": [16], "steps": 72, "input_mode": "port", "options": {},
            "input": {"kind": "spikes", "rate": 0.3},
            "also": [{"options": {"sparse_fc_layer": True}, "covers": "the same as DelaySparse synapses"}],
            "writers": {"/layer/0": "slayer.block.cuba.Input(None, delay_shift=False).export_hdf5",
                        "/layer/1-3": "slayer.block.cuba.Dense.export_hdf5"},
            "hand_edited": ["/layer/1/delay = 3 (scalar, added)",
                            "/layer/2/delay: float (20,) in 0..6 (input delays, added)",
                            "/layer/3/delay: float (6, 12) in 0..8, [0, :4] = 70, [3, 5] = 62 (per synapse, added)"]}


def dense_1d(out: Path) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(SEED + 12)
    net = Net(
        slayer.block.cuba.Input(None, delay_shift=False),
        slayer.block.cuba.Dense(CUBA, 12, 10),
        slayer.block.cuba.Dense(CUBA, 10, 4),
    )
    build(net, (12,))
    set_weights(net.blocks[1], gen, 8.4, 2)
    set_weights(net.blocks[2], gen, 9.2, 2)
    name = "dense_1d.net"
    net.export_hdf5(out / name)
    with h5py.File(out / name, "a") as h:
        for i in (1, 2):
            g = h[f"layer/{i}"]
            _replace(g, "weight", g["weight"][()].reshape(-1))
        _replace(h["layer/2/neuron"], "type", "LOIHI")
    return {"file": name,
            "covers": "1-D dense weights (netx reshapes them to (out, -1)); a LOIHI neuron type (netx treats it as CUBA)",
            "input_shape": [12], "steps": 16, "input_mode": "port", "options": {},
            "input": {"kind": "spikes", "rate": 0.3},
            "writers": {"/layer/0": "slayer.block.cuba.Input(None, delay_shift=False).export_hdf5",
                        "/layer/1-2": "slayer.block.cuba.Dense.export_hdf5"},
            "hand_edited": ["/layer/1/weight, /layer/2/weight: flattened to 1-D (row-major)",
                            "/layer/2/neuron/type CUBA -> LOIHI"]}


def refuse_pool(out: Path) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(SEED + 13)
    net = Net(
        slayer.block.cuba.Input(None, delay_shift=False),
        slayer.block.cuba.Conv(CUBA, 1, 2, 3, padding=1),
        slayer.block.cuba.Pool(CUBA, 2),
        slayer.block.cuba.Flatten(),
        slayer.block.cuba.Dense(CUBA, 32, 4),
    )
    build(net, (1, 8, 8))
    set_weights(net.blocks[1], gen, 40, 14)
    set_weights(net.blocks[4], gen, 40, 14)
    name = "refuse_pool.net"
    net.export_hdf5(out / name)
    return {"file": name, "covers": "a pool layer: netx raises NotImplementedError('pool is not implemented.')",
            "input_shape": [1, 8, 8], "steps": 8, "input_mode": "port", "options": {},
            "input": {"kind": "spikes", "rate": 0.3},
            "refused": {"cause": "NotImplementedError", "match": "pool is not implemented"},
            "writers": {"/layer/0": "slayer.block.cuba.Input(None, delay_shift=False).export_hdf5",
                        "/layer/1": "slayer.block.cuba.Conv.export_hdf5",
                        "/layer/2": "slayer.block.cuba.Pool.export_hdf5 (type pool)",
                        "/layer/3": "slayer.block.cuba.Flatten.export_hdf5",
                        "/layer/4": "slayer.block.cuba.Dense.export_hdf5"},
            "hand_edited": []}


def refuse_dense_comp(out: Path) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(SEED + 14)
    net = Net(slayer.block.cuba.Input(None, delay_shift=False), slayer.block.rf.Dense(RF, 8, 6))
    build(net, (8,))
    set_weights(net.blocks[1], gen, 60, 10)
    name = "refuse_dense_comp.net"
    net.export_hdf5(out / name)
    with h5py.File(out / name, "a") as h:
        del h["layer/1/type"]
        h["layer/1"].create_dataset("type", (1,), "S10", [b"dense_comp"])
    return {"file": name,
            "covers": ("a dense_comp layer: netx calls self.create_complex_dense, which it does "
                       "not define (AttributeError)"),
            "input_shape": [8], "steps": 8, "input_mode": "port", "options": {},
            "input": {"kind": "spikes", "rate": 0.3},
            "refused": {"cause": "AttributeError", "match": "create_complex_dense"},
            "writers": {"/layer/0": "slayer.block.cuba.Input(None, delay_shift=False).export_hdf5",
                        "/layer/1": "slayer.block.rf.Dense.export_hdf5 (weight/real, weight/imag)"},
            "hand_edited": ["/layer/1/type dense -> dense_comp (no exporter writes dense_comp)"]}


def write_all(out: Path) -> list[dict[str, Any]]:
    torch.manual_seed(SEED)
    out.mkdir(parents=True, exist_ok=True)
    entries = [
        cuba_conv(out, graded=True), cuba_conv(out, graded=False),
        cuba_input_neuron(out, "a_in"), cuba_input_neuron(out, "bias"),
        cuba_graded_out(out), sdnn(out), rf(out, iz=False), rf(out, iz=True), recurrent(out),
        delays_axonal(out), delays_hand(out), dense_1d(out), refuse_pool(out),
        refuse_dense_comp(out),
    ]
    for k, entry in enumerate(entries):  # inputs to run each file with: [steps, 3, *shape]
        x = draw_inputs(entry, INPUT_SAMPLES, SEED + 100 + k)
        entry["inputs"] = entry["file"].rsplit(".", 1)[0] + ".inputs.npy"
        np.save(out / entry["inputs"], x)
    manifest = {"seed": SEED, "layout": "input_shape and inputs in sakd layout (C,H,W) or (N,)",
                "inputs": f"[steps, {INPUT_SAMPLES}, *input_shape] int64, drawn as 'input' says",
                "files": entries}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return entries


def draw_inputs(entry: dict[str, Any], samples: int, seed: int, steps: int | None = None) -> np.ndarray:
    """[steps, samples, *input_shape] int64 inputs as the manifest entry describes them."""
    rng = np.random.default_rng(seed)
    steps = int(steps or entry["steps"])
    shape = (steps, samples, *entry["input_shape"])
    spec = entry["input"]
    if spec["kind"] == "spikes":
        return (rng.random(shape) < spec["rate"]).astype(np.int64)
    lo, hi = int(spec["low"]), int(spec["high"])
    if spec["kind"] == "graded":
        return rng.integers(lo, hi + 1, size=shape)
    if spec["kind"] == "static":
        return np.broadcast_to(rng.integers(lo, hi + 1, size=shape[1:]), shape).copy()
    if spec["kind"] == "walk":
        x = np.empty(shape, np.int64)
        x[0] = rng.integers(lo, hi + 1, size=shape[1:])
        for t in range(1, steps):
            x[t] = np.clip(x[t - 1] + rng.integers(-spec["step"], spec["step"] + 1, size=shape[1:]), lo, hi)
        return x
    raise ValueError(f"unknown input kind {spec['kind']!r}")


def check(out: Path, entries: list[dict[str, Any]]) -> int:
    from sakd.hardware.lava_runner import NetxReferenceFailure, run_netx_reference

    bad = 0
    for entry in entries:
        x = np.load(out / entry["inputs"])[:, :1]
        try:
            res = run_netx_reference(out / entry["file"], x, entry["steps"],
                                     input_mode=entry["input_mode"], **entry["options"])
        except NetxReferenceFailure as exc:
            want = entry.get("refused")
            ok = bool(want) and exc.cause == want["cause"] and want["match"] in str(exc)
            bad += not ok
            print(f"{entry['file']:24s} refused ({exc.stage}, {exc.cause}){'' if ok else ' UNEXPECTED'}: {exc}")
            continue
        if "refused" in entry:
            bad += 1
            print(f"{entry['file']:24s} ran, but netx should refuse it")
            continue
        line = []
        for info in res["meta"]["layers"]:
            s = res["layers"][info["name"]]["s"]
            rate = float((s != 0).mean())
            if info["neuron"] == "Sigma":
                line.append(f"{info['name']}:{info['neuron']} sigma in [{s.min()}, {s.max()}]")
                ok = s.any()
            else:
                line.append(f"{info['name']}:{info['neuron']} {rate:.2f}")
                ok = 0.0 < rate < 0.9
            bad += not ok
        print(f"{entry['file']:24s} {res['meta']['total_s']:5.1f} s  " + "  ".join(line))
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--check", action="store_true",
                        help="run every file through the reference and print layer activity")
    parser.add_argument("--check-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    if args.check_only:
        return check(out, json.loads((out / "manifest.json").read_text())["files"])
    entries = write_all(out)
    print(f"wrote {len(entries)} netx files and manifest.json to {out}", file=sys.stderr)
    if not args.check:
        return 0
    # in a fresh process: Lava forks its workers, and a fork after torch has run (its thread
    # pools started) can leave a worker deadlocked
    import subprocess

    return subprocess.call([sys.executable, __file__, str(out), "--check-only"])


if __name__ == "__main__":
    sys.exit(main())
