"""Simulator throughput: samples/s and SynOps/s of the bit-accurate simulator
(``sakd.hardware.simulator``) on two networks with random integer weights, per backend.

- ``digits-convnet``: input 1x8x8 graded 8-bit; conv 16ch 8x8, conv 32ch stride 2 (4x4),
  conv 64ch stride 2 (2x2), dense 128, dense 10 readout; T = 4.
- ``resnet18-cifar``: input 3x32x32 graded 8-bit; a ResNet-18 (CIFAR stem, 4 stages of 2 basic
  blocks, 64..512 channels) whose residual adds are fan-in (the shortcut projection sums into the
  block's second population, latency-balanced with delay 1), global average pooling folded into
  the dense readout; T = 4, L = 18.

Thresholds are calibrated on a few samples so that every spiking population fires 5-20 % of
its neuron-steps. Prints a table and saves benchmarks/results/simulator_throughput.json
(atomically).

    .venv/bin/python benchmarks/simulator_throughput.py [--device cuda] [--resnet-samples 16]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from sakd.hardware.atomic import atomic_write_json
from sakd.hardware.ir import Input, Network, Population, Projection
from sakd.hardware.neurons.cuba_lif import lif_population
from sakd.hardware.simulator import simulate

RESULTS = Path(__file__).resolve().parent / "results" / "simulator_throughput.json"
TARGET_RATE = (0.05, 0.20)
T = 4


def _weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Even integers in [-256, 254], zero-mean with a small positive excess (so layers fire)."""
    fan_in = int(np.prod(shape[1:]))
    sigma = min(100.0, 600.0 / np.sqrt(fan_in))
    w = 2 * np.round(rng.normal(0.15 * sigma, sigma, size=shape) / 2)
    return np.clip(w, -256, 254).astype(np.int64)


def _lif(name: str, shape: tuple[int, ...], vth: int = 200) -> Population:
    return lif_population(name, shape, du=4095, dv=2048, vth=vth)


def digits_convnet(seed: int = 0, vth: dict[str, int] | None = None) -> Network:
    rng = np.random.default_rng(seed)
    vth = vth or {}
    inp = Input("x", (1, 8, 8), "graded", bits=8, scale=127.0)
    shapes = {"c1": (16, 8, 8), "c2": (32, 4, 4), "c3": (64, 2, 2), "f1": (128,)}
    pops = [_lif(n, s, vth.get(n, 200)) for n, s in shapes.items()]
    pops.append(lif_population("out", (10,), du=4095, dv=0, vth=0, role="readout"))
    projs = [
        Projection("x_c1", "x", "c1", "conv2d", _weights(rng, (16, 1, 3, 3)), padding=(1, 1)),
        Projection(
            "c1_c2",
            "c1",
            "c2",
            "conv2d",
            _weights(rng, (32, 16, 3, 3)),
            stride=(2, 2),
            padding=(1, 1),
        ),
        Projection(
            "c2_c3",
            "c2",
            "c3",
            "conv2d",
            _weights(rng, (64, 32, 3, 3)),
            stride=(2, 2),
            padding=(1, 1),
        ),
        Projection("c3_f1", "c3", "f1", "dense", _weights(rng, (128, 256))),
        Projection("f1_out", "f1", "out", "dense", _weights(rng, (10, 128))),
    ]
    return Network(
        inp, tuple(pops), tuple(projs), metadata={"architecture": "digits-convnet"}, time_steps=T
    )


def resnet18_cifar(seed: int = 0, vth: dict[str, int] | None = None) -> Network:
    rng = np.random.default_rng(seed)
    vth = vth or {}
    inp = Input("x", (3, 32, 32), "graded", bits=8, scale=127.0)
    pops: list[Population] = []
    projs: list[Projection] = []

    def add_pop(name: str, shape: tuple[int, ...]) -> None:
        pops.append(_lif(name, shape, vth.get(name, 400)))

    add_pop("stem", (64, 32, 32))
    projs.append(
        Projection("stem.conv", "x", "stem", "conv2d", _weights(rng, (64, 3, 3, 3)), padding=(1, 1))
    )
    prev, ch, hw = "stem", 64, 32
    for stage, (out_ch, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        for block in range(2):
            s = stride if block == 0 else 1
            out_hw = hw // s
            name = f"layer{stage}.{block}"
            add_pop(f"{name}.lif1", (out_ch, out_hw, out_hw))
            add_pop(f"{name}.lif2", (out_ch, out_hw, out_hw))
            projs.append(
                Projection(
                    f"{name}.conv1",
                    prev,
                    f"{name}.lif1",
                    "conv2d",
                    _weights(rng, (out_ch, ch, 3, 3)),
                    stride=(s, s),
                    padding=(1, 1),
                )
            )
            projs.append(
                Projection(
                    f"{name}.conv2",
                    f"{name}.lif1",
                    f"{name}.lif2",
                    "conv2d",
                    _weights(rng, (out_ch, out_ch, 3, 3)),
                    padding=(1, 1),
                )
            )
            if s != 1 or ch != out_ch:  # downsample: 1x1 stride-s conv
                short = _weights(rng, (out_ch, ch, 1, 1))
            else:  # identity: 1x1 conv with 2 on the diagonal (one spike -> a = 2)
                short = (2 * np.eye(out_ch, dtype=np.int64) * 32)[:, :, None, None]
            # the shortcut skips one synapse: delay 1 keeps both paths at the same latency
            projs.append(
                Projection(
                    f"{name}.shortcut",
                    prev,
                    f"{name}.lif2",
                    "conv2d",
                    short,
                    stride=(s, s),
                    delay=1,
                )
            )
            prev, ch, hw = f"{name}.lif2", out_ch, out_hw
    # global average pooling (4x4) folded into the dense head: every position gets the fc weight
    fc = _weights(rng, (10, 512))
    projs.append(Projection("fc", prev, "out", "dense", np.repeat(fc, hw * hw, axis=1)))
    pops.append(lif_population("out", (10,), du=4095, dv=0, vth=0, role="readout"))
    return Network(
        inp, tuple(pops), tuple(projs), metadata={"architecture": "resnet18-cifar"}, time_steps=T
    )


def calibrate(build: Any, x: np.ndarray, rounds: int = 16) -> tuple[Network, dict[str, float]]:
    """Scale each population's threshold until its firing rate is within TARGET_RATE.

    All off-target populations move at once, by (rate / 0.1)^0.7 (clipped to 1/4..4); the
    populations below a changed one follow in the next rounds."""
    net = build()
    vth = {p.name: p.neuron.vth for p in net.populations if not p.is_readout}
    lo, hi = TARGET_RATE
    rates: dict[str, float] = {}
    for _ in range(rounds):
        res = simulate(net, x, time_steps=T)
        rates = {n: float(res.counts.populations[n].firing_rate.mean()) for n in vth}
        off = {n: r for n, r in rates.items() if not lo <= r <= hi}
        if not off:
            break
        for n, r in off.items():
            factor = float(np.clip((max(r, 1e-3) / 0.1) ** 0.7, 0.25, 4.0))
            vth[n] = int(min(2**17 - 1, max(1, round(vth[n] * factor))))
        net = build(vth)
    else:  # the last adjustment has not been measured yet
        res = simulate(net, x, time_steps=T)
        rates = {n: float(res.counts.populations[n].firing_rate.mean()) for n in vth}
    return net, rates


def _inputs(net: Network, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return net.input.encode(rng.random((n,) + net.input.shape))


def measure(
    net: Network, x: np.ndarray, backend: str, device: str, batch_size: int | None, repeats: int
) -> dict[str, Any]:
    simulate(net, x[: min(len(x), 4)], time_steps=T, backend=backend, device=device)  # warm-up
    best = float("inf")
    res = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = simulate(net, x, time_steps=T, backend=backend, device=device, batch_size=batch_size)
        best = min(best, time.perf_counter() - t0)
    assert res is not None
    synops = sum(float(p.synops.sum()) for p in res.counts.projections.values())
    macs = sum(float(p.graded_macs.sum()) for p in res.counts.projections.values())
    spiking = [
        p for name, p in res.counts.populations.items() if not net.population(name).is_readout
    ]
    return {
        "network": net.metadata["architecture"],
        "backend": backend,
        "device": device,
        "samples": len(x),
        "time_steps": T,
        "latency": net.latency,
        "batch_size": batch_size,
        "seconds": best,
        "samples_per_s": len(x) / best,
        "synops_per_sample": synops / len(x),
        "graded_macs_per_sample": macs / len(x),
        "synops_per_s": synops / best,
        "mean_firing_rate": float(np.mean([p.firing_rate.mean() for p in spiking])),
        "readout_v": res.readout_v,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device", default="cpu", help="torch device for the torch backend (e.g. cuda)"
    )
    parser.add_argument("--digits-samples", type=int, default=360)
    parser.add_argument("--resnet-samples", type=int, default=16)
    parser.add_argument("--resnet-batch", type=int, default=8)
    parser.add_argument("--backends", default="numpy,torch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-resnet", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    rows: list[dict[str, Any]] = []
    calib: dict[str, dict[str, float]] = {}
    cases = [("digits-convnet", digits_convnet, args.digits_samples, None)]
    if not args.no_resnet:
        cases.append(("resnet18-cifar", resnet18_cifar, args.resnet_samples, args.resnet_batch))
    for name, builder, n, batch in cases:
        t0 = time.perf_counter()
        probe = _inputs(builder(), 16 if name.startswith("digits") else 2, seed=99)
        net, rates = calibrate(lambda vth=None, b=builder: b(vth=vth), probe)
        calib[name] = rates
        print(
            f"{name}: calibrated thresholds in {time.perf_counter() - t0:.1f} s; firing rates "
            f"{min(rates.values()):.3f}..{max(rates.values()):.3f}"
        )
        x = _inputs(net, n, seed=1)
        reference = None
        for backend in backends:
            devices = ["cpu"] if backend == "numpy" else sorted({"cpu", args.device})
            for device in devices:
                row = measure(net, x, backend, device, batch, args.repeats)
                v = row.pop("readout_v")
                if reference is None:
                    reference = v
                row["bit_exact_vs_first"] = bool(np.array_equal(v, reference))
                rows.append(row)
                print(
                    f"  {backend:6s} {device:5s} {row['samples_per_s']:10.1f} samples/s  "
                    f"{row['synops_per_s']:.3e} SynOps/s  ({row['seconds']:.2f} s)"
                )

    header = (
        f"{'network':16s} {'backend':7s} {'device':6s} {'samples':>7s} {'s':>7s} {'samples/s':>10s} "
        f"{'SynOps/sample':>14s} {'SynOps/s':>10s} {'rate':>6s} exact"
    )
    print("\n" + header)
    for r in rows:
        print(
            f"{r['network']:16s} {r['backend']:7s} {r['device']:6s} {r['samples']:7d} {r['seconds']:7.2f} "
            f"{r['samples_per_s']:10.1f} {r['synops_per_sample']:14.3e} {r['synops_per_s']:10.3e} "
            f"{r['mean_firing_rate']:6.3f} {r['bit_exact_vs_first']}"
        )
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (float("nan"),) * 3
    atomic_write_json(
        args.out,
        {
            "host": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "loadavg": load,
            },
            "time_steps": T,
            "target_firing_rate": TARGET_RATE,
            "calibrated_firing_rates": calib,
            "results": rows,
        },
    )
    print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
