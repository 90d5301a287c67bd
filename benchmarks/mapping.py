"""Mapping benchmark: four networks mapped onto Loihi 2 with ``sakd.app.map`` (the functions
behind ``sakd map``), and Intel's PilotNet LIF network beside Intel's published measurement.

Per network: cores, chips, the binding resource of every population, time per step and its
bottleneck, latency and throughput per inference (pipelined and not), energy per inference
split into dynamic (operations + routed messages x hops) and static (power x run time), and the
SNN/ANN ratios: like for like (Loihi's whole synaptic op against an 8-bit ANN twin that pays
for its memory access) and the arithmetic-only convention, each labelled.

- ``demo``: the digits ConvNet of ``make demo`` (``convnet``, 1x8x8, T = 4); the student of
  ``--demo-checkpoint`` if given (trained weights), else random weights; real digits test
  samples.
- ``fashion``: the Fashion-MNIST ConvNet (``convnet`` as in configs/fashion_mnist.yaml,
  1x28x28, T = 4), random weights; real Fashion-MNIST test samples when the data set is
  installed (Debian's dataset-fashion-mnist), else random inputs.
- ``resnet18-cifar``: ``resnet18_cifar``, 3x32x32, 10 classes, T = 4, random weights and random
  normal inputs.
- ``sew-resnet18-imagenet``: ``sew_resnet18`` (ImageNet stem, 1,000 classes), T = 4, random
  weights and random normal inputs, at ``--imagenet-size`` (default 224 x 224, the standard
  size; 64 x 64 gives every layer, the ImageNet stem and 1,000 classes on 16 x 16 .. 2 x 2
  feature maps, in under a minute).

Memory and time. The mapper keeps, per slice and projection into it, only the source neurons
of the slice's receptive field, and those compactly (a range of channels x the positions of a
channel plane, and one reach flag per source neuron), so its memory grows with the network,
not with slices x source neurons (an earlier version kept arrays over every source neuron per
slice: 14.7 GB for the CIFAR ResNet-18's 7,002 cores). The seconds and the peak resident memory
of each network are in its row (``seconds``, ``peak_rss_gb``: the process's peak so far, GiB).
At 224 x 224 the SEW-ResNet-18 (2.7 million neurons, 2.5 billion synapses) partitions into
162,110 slices on 118,738 cores of 974 Hala Point chips, joined by 121 million traffic edges.
The first-fit packing skips whole blocks of cores that cannot hold a slice (it was quadratic:
unfinished after 14 minutes); the edges are arrays of 16 bytes an edge (one Python object per
edge had taken 10 GB after 10 minutes, unfinished), the router and link loads range updates;
above 5 million edges the placement is the serpentine fill, without improvement passes (they
would take hours), and the row's notes say so. On the 2-core development machine the row took
31.5 s to lower, 2.1 s to simulate its sample and 373 s to map, time and price (most of it the
partition), 6 minutes 51 s in all, at a peak of 5.48 GiB resident.

Random weights: the ANN's BatchNorm statistics from random inputs, its affine parameters drawn
so that every layer fires (as the export tests do), spikified and lowered with
``sakd.export.lower.lower``. The activity of a random network is not that of a trained one:
the time and energy of the random networks show what the model says for such activity, not
what a trained network would cost.

Where a network does not map under the chip profile as shipped (one neuron's fan-in exceeds
the 4,096 input axons per core that ``loihi2.json`` assumes from Loihi 1; Loihi 2's figure is
not public), the row records that verdict and maps again with the axon figure raised to the
smallest power of two that holds the widest neuron (``what_if``): an assumption stated in the
row, not a fit to any measurement.

Validation: Intel's PilotNet LIF network for Loihi 2, the netx file
``tutorials/lava/lib/dl/netx/pilotnet_snn/network.net`` of lava-dl
(https://github.com/lava-nc/lava-dl; lava-dl keeps the same file, git blob
bd720b9e0be0700e0e787e2586e9452b9e0630c8, as ``tests/lava/lib/dl/netx/gts/pilotnet_lif/
network.net``, which the Lava environment installs; ``--pilotnet PATH`` for another copy),
read by ``sakd.formats.read_any`` with its own weights and simulated for 16 steps (the
benchmark's reset interval) on the driving frame of lava-dl's ground truth (``image.npy``
beside it). The estimate is set beside Intel's measurement (lava-dl 0.6.0
``benchmark.ipynb``, Oheo Gulch: 74 cores, 408.91 frames/s, 1.661 mJ per inference, 1.094 mJ
dynamic) with the ratio; no constant is fitted to it.

Prints a table and saves benchmarks/results/mapping.json (atomically).

    .venv/bin/python benchmarks/mapping.py [--demo-checkpoint PATH] [--pilotnet PATH]
        [--only demo,fashion,...] [--samples N] [--imagenet-samples N] [--imagenet-size N]
        [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import resource
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sakd.app.map import compare_like_for_like, estimate_on_chip
from sakd.hardware.atomic import atomic_write_json
from sakd.hardware.ir import Network
from sakd.hardware.mapping import MappingError, load_chip
from sakd.hardware.simulator import simulate

RESULTS = Path(__file__).resolve().parent / "results" / "mapping.json"
T = 4
CHIP = "loihi2"
AXONS = "input_axons_per_core"

#: Intel's measurement of PilotNet LIF on one Loihi 2 (lava-dl 0.6.0,
#: tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb, stored outputs; docs/mapping.md)
PILOTNET_MEASURED = {
    "source": "lava-dl 0.6.0, tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb (stored "
              "outputs), Oheo Gulch board (one Loihi 2)",
    "cores": 74,
    "cores_per_layer": {"input": 13, "conv1": 25, "conv2": 13, "conv3": 3, "conv4": 3,
                        "conv5": 2, "fc1": 12, "fc2": 1, "fc3": 1, "fc4": 1},
    "steps_per_sample": 16,
    "frames_per_s": 408.91,
    "step_us": 152.8,
    "total_power_w": 0.679, "static_power_w": 0.232, "dynamic_power_w": 0.447,
    "energy_per_inference_mj": 1.661, "dynamic_energy_per_inference_mj": 1.094,
}
#: where lava-dl keeps the same file for its tests (tests/lava/lib/dl/netx/gts/pilotnet_lif/)
PILOTNET_IN_WHEEL = "tests/lava/lib/dl/netx/gts/pilotnet_lif/network.net"
#: the git blob id of tutorials/lava/lib/dl/netx/pilotnet_snn/network.net in lava-dl (the
#: measured network; tests/lava/lib/dl/netx/gts/pilotnet_lif/network.net has the same id)
PILOTNET_BLOB = "bd720b9e0be0700e0e787e2586e9452b9e0630c8"
ROOT = Path(__file__).resolve().parent.parent
#: the SEW-ResNet-18's input size by default (see the module docstring: memory)
IMAGENET_SIZE = 224


@dataclass(frozen=True)
class Spec:
    """One network of the benchmark."""

    name: str
    arch: str
    shape: tuple[int, int, int]
    classes: int
    data: str | None  # a data set for real test inputs (None: random inputs)
    system: str | None  # None: one chip


SPECS = (
    Spec("demo", "convnet", (1, 8, 8), 10, "digits", None),
    Spec("fashion", "convnet", (1, 28, 28), 10, "fashion-mnist", None),
    Spec("resnet18-cifar", "resnet18_cifar", (3, 32, 32), 10, None, "hala-point"),
    Spec("sew-resnet18-imagenet", "sew_resnet18", (3, 224, 224), 1000, None, "hala-point"),
)


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------


def random_student(spec: Spec, seed: int = 0) -> Any:
    """A random-weight SNN of ``spec.arch`` whose every LIF layer fires: BatchNorm statistics
    from two train-mode passes over random inputs, affine parameters drawn (gain 0.5..1.5,
    shift 0.1..0.6), linear layers scaled x3 (as tests/export/random_snn.py)."""
    import torch
    from torch import nn

    from sakd.models import build_model, spikify

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ann = build_model(spec.arch, num_classes=spec.classes, in_channels=spec.shape[0],
                      image_size=spec.shape[1:])
    for m in ann.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.momentum = None
    batch = 8 if spec.shape[1] <= 32 else 2
    ann.train()
    with torch.no_grad():
        for _ in range(2):
            ann(torch.randn(batch, *spec.shape, generator=gen))
        for m in ann.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.5 + 0.1)
            if isinstance(m, nn.Linear):
                m.weight.mul_(3.0)
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.5 + 0.1)
    ann.eval()
    return spikify(ann, T).eval()


def inputs_for(spec: Spec, samples: int, seed: int = 0) -> tuple[np.ndarray, tuple[float, float],
                                                                 str, dict[str, Any]]:
    """(inputs [N, C, H, W], the input value range for the lowering, what they are, the
    data set's metadata): real test samples of ``spec.data`` when it loads, else standard
    normal values clipped to [-3, 3]."""
    if spec.data is not None:
        try:
            from sakd.app.common import load_samples
            from sakd.data.common import input_value_range

            got = load_samples(spec.data, "test", samples)
            info = got.info
            meta = {"dataset": info.name, "num_classes": info.num_classes,
                    "normalization": {"mean": list(info.mean), "std": list(info.std)}}
            return (got.x.numpy(), input_value_range(info),
                    f"the first {len(got)} {spec.data} test samples", meta)
        except Exception as exc:  # DatasetError (not installed): random inputs, said so
            why = f" ({spec.data} not available: {str(exc).splitlines()[0][:120]})"
    else:
        why = ""
    rng = np.random.default_rng(seed)
    x = np.clip(rng.standard_normal((samples, *spec.shape)), -3, 3)
    return x, (-3.0, 3.0), f"{samples} random normal inputs, clipped to [-3, 3]{why}", {}


def lower_student(spec: Spec, checkpoint: Path | None, input_range: tuple[float, float],
                  meta: dict[str, Any]) -> tuple[Network, str]:
    """The IR network of ``spec``: the checkpoint's student (trained weights) or a random one."""
    from sakd.export.lower import lower

    if checkpoint is not None:
        from sakd.train.jobs import load_network

        snn, record = load_network(checkpoint)
        if record.get("arch") != spec.arch:
            raise SystemExit(f"--demo-checkpoint {checkpoint}: a {record.get('arch')} student, "
                             f"the demo is a {spec.arch}")
        what = f"trained: {checkpoint}"
        low = lower(snn, input_shape=spec.shape, input_range=input_range,
                    metadata={**meta, "arch_name": record.get("arch"),
                              "checkpoint": str(checkpoint)})
        return low.network, what
    snn = random_student(spec)
    low = lower(snn.double(), input_shape=spec.shape, input_range=input_range,
                metadata={**meta, "arch_name": spec.arch})
    return low.network, "random"


# ---------------------------------------------------------------------------------------------
# PilotNet LIF (the validation row)
# ---------------------------------------------------------------------------------------------


def git_blob_id(path: Path) -> str:
    """The id git gives the file's content (sha1 of "blob <size>\\0" + bytes)."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def find_pilotnet() -> Path | None:
    """lava-dl's PilotNet LIF netx file where the Lava environment installed it (lava-dl's
    wheel ships its tests, whose ground truth folder holds the tutorial's file), else None."""
    for path in sorted(ROOT.glob(".venv-lava/lib/python3*/site-packages/" + PILOTNET_IN_WHEEL)):
        return path
    return None


def pilotnet_frames(path: Path, samples: int) -> tuple[np.ndarray, str]:
    """[N, C, H, W] frames for PilotNet: the driving frame of lava-dl's ground truth
    (``image.npy`` beside the network file, stored W x H x C) repeated, else random frames."""
    image = path.parent / "image.npy"
    if image.is_file():
        frame = np.load(image).transpose(2, 1, 0).astype(np.float64)  # (W, H, C) -> (C, H, W)
        return (np.repeat(frame[None], samples, axis=0),
                f"lava-dl's ground-truth driving frame ({image.name} beside the file, "
                f"{'x'.join(map(str, frame.shape))})")
    rng = np.random.default_rng(1)
    return (rng.integers(0, 77, size=(samples, 3, 66, 200)).astype(np.float64),
            f"{samples} random frames (integers 0..76, the range of lava-dl's frame)")


# ---------------------------------------------------------------------------------------------
# mapping one network
# ---------------------------------------------------------------------------------------------


def map_with_what_if(network: Network, counts: Any, system: str | None,
                     time_steps: int) -> tuple[Any, dict[str, Any] | None, str | None]:
    """Map under the profile as shipped; if a neuron's fan-in exceeds the input axons of a core,
    double the axon figure until the widest neuron fits. Returns (estimate, the override or
    None, the verdict as shipped or None)."""
    shipped = load_chip(CHIP).input_axons_per_core
    axons, verdict = shipped, None
    while True:
        overrides = {AXONS: axons} if axons != shipped else None
        try:
            est = estimate_on_chip(network, counts, chip=CHIP, system=system,
                                   time_steps=time_steps, overrides=overrides)
            return est, overrides, verdict
        except MappingError as exc:
            if exc.resource != "input_axons" or axons >= 1 << 20:
                raise
            verdict = verdict or str(exc)
            axons *= 2


def row_for(name: str, network: Network, counts: Any, system: str | None, *, weights: str,
            inputs: str, seconds: dict[str, float]) -> dict[str, Any]:
    """Map, time, energy and the ANN comparison of one network, as one JSON row."""
    start = time.perf_counter()
    est, overrides, verdict = map_with_what_if(network, counts, system, T if network.time_steps
                                               is None else network.time_steps)
    seconds["map"] = time.perf_counter() - start
    like = compare_like_for_like(network, counts, est.energy)
    m, t, e = est.mapping, est.time, est.energy
    rows = {r["key"]: r for r in like["ratios"]}
    binding: dict[str, int] = {}
    for p in m.populations.values():
        binding[p.binding_resource] = binding.get(p.binding_resource, 0) + 1
    rates = [float(np.mean(p.firing_rate)) for n, p in counts.populations.items()
             if not network.population(n).is_readout]
    return {
        "network": name, "arch": network.metadata.get("arch_name"), "weights": weights,
        "inputs": inputs, "samples": int(counts.samples), "time_steps": est.time_steps,
        "latency_steps": network.latency, "input_shape": list(network.input.shape),
        "populations": len(network.populations),
        "neurons": int(sum(p.size for p in network.populations)),
        "synapses": int(sum(p.synapses for p in counts.projections.values())),
        "mean_firing_rate": float(np.mean(rates)) if rates else None,
        "chip": m.chip.name, "system": m.system.name,
        "as_shipped": "maps" if verdict is None else f"does not map: {verdict}",
        "what_if": None if overrides is None else {
            "overrides": overrides,
            "why": f"Loihi 2's input axons per core are not public; {AXONS} raised from "
                   f"{load_chip(CHIP).input_axons_per_core:,} (Loihi 1's) to "
                   f"{overrides[AXONS]:,}, the smallest power of two that holds the widest "
                   f"neuron: an assumption, not a fit"},
        "cores": m.cores_used, "chips": m.chips_used, "slices": len(m.slices),
        "binding_resources": binding,
        "binding": {k: {"resource": p.binding_resource, "utilization": p.binding_utilization,
                        "cores": len(p.cores)} for k, p in m.populations.items()},
        "message_hops_per_sample": m.message_hops_per_sample,
        "step_ns": t.step_ns, "bottleneck": t.bottleneck, "bottleneck_kind": t.bottleneck_kind,
        "latency_s": t.latency_s, "throughput_pipelined_per_s": t.throughput_pipelined_per_s,
        "throughput_unpipelined_per_s": t.throughput_unpipelined_per_s,
        "energy_pj": {"operations": e.operations_pj, "routing": e.routing_pj,
                      "dynamic": e.dynamic_pj, "static": e.static_pj,
                      "static_unpipelined": e.static_unpipelined_pj, "total": e.total_pj},
        "energy_not_counted": dict(e.not_counted),
        "ann": {k: like["ann"][k] for k in ("macs", "arithmetic_pj", "total_no_reuse_pj",
                                             "total_full_reuse_pj")},
        "snn_over_ann": {key: {"ratio": r["ratio"], "like_for_like": r["like_for_like"],
                               "lower_bound": r["lower_bound"], "label": r["label"]}
                         for key, r in rows.items()},
        "seconds": seconds,
        # the mapping's own note when its placement is the serpentine fill alone (too many
        # traffic edges for the improvement passes)
        "notes": [*est.notes, *(n for n in m.notes if n.startswith("Placement:"))],
    }


def run_network(spec: Spec, samples: int, checkpoint: Path | None) -> dict[str, Any]:
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    x, value_range, inputs, meta = inputs_for(spec, samples)
    network, weights = lower_student(spec, checkpoint if spec.name == "demo" else None,
                                     value_range, meta)
    seconds["lower"] = time.perf_counter() - start
    start = time.perf_counter()
    counts = simulate(network, network.input.encode(x), time_steps=T,
                      batch_size=1 if spec.shape[1] > 64 else None).counts
    seconds["simulate"] = time.perf_counter() - start
    row = row_for(spec.name, network, counts, spec.system, weights=weights, inputs=inputs,
                  seconds=seconds)
    row["peak_rss_gb"] = peak_rss_gb()
    return row


def peak_rss_gb() -> float:
    """The largest resident memory of this process so far, GB (Linux: ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_pilotnet(path: Path, samples: int) -> dict[str, Any]:
    """The PilotNet LIF row beside Intel's measurement: the netx file read by sakd (its own
    weights), simulated for 16 steps (the benchmark's reset interval) on a driving frame."""
    from sakd.formats import read_any

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    blob = git_blob_id(path)
    network = read_any(path, time_steps=16)
    x, inputs = pilotnet_frames(path, samples)
    seconds["read"] = time.perf_counter() - start
    start = time.perf_counter()
    counts = simulate(network, network.input.encode(x), time_steps=16).counts
    seconds["simulate"] = time.perf_counter() - start
    weights = f"the file's own ({path.name}, read by sakd.formats.read_any)"
    row = row_for("pilotnet-lif", network, counts, None, weights=weights, inputs=inputs,
                  seconds=seconds)
    row["file"] = {"path": str(path), "git_blob": blob,
                   "same_as_measured": blob == PILOTNET_BLOB,
                   "measured_file": "lava-dl tutorials/lava/lib/dl/netx/pilotnet_snn/network.net "
                                    f"(git blob {PILOTNET_BLOB})"}
    row["notes"] = [f"The file's git blob id is {blob}: "
                    + ("the same file as the tutorial's measured network.net." if
                       blob == PILOTNET_BLOB else "NOT the tutorial's measured network.net."),
                    *row["notes"]]
    meas = PILOTNET_MEASURED
    est_fps = row["throughput_pipelined_per_s"]
    est_total_mj = row["energy_pj"]["total"] / 1e9
    est_dyn_mj = row["energy_pj"]["dynamic"] / 1e9
    row["validation"] = {
        "measured": meas,
        "rows": [
            {"figure": "cores", "estimate": row["cores"], "measured": meas["cores"]},
            {"figure": "time per step (µs)", "estimate": row["step_ns"] / 1e3,
             "measured": meas["step_us"]},
            {"figure": "throughput (frames/s)", "estimate": est_fps,
             "measured": meas["frames_per_s"]},
            {"figure": "dynamic energy per inference (mJ)", "estimate": est_dyn_mj,
             "measured": meas["dynamic_energy_per_inference_mj"]},
            {"figure": "total energy per inference (mJ)", "estimate": est_total_mj,
             "measured": meas["energy_per_inference_mj"]},
        ],
        "cores_per_population": {k: len(p["cores"]) if isinstance(p.get("cores"), list)
                                 else p["cores"] for k, p in row["binding"].items()},
        "left_out": [
            "Host I/O and the embedded x86 cores that feed frames (Intel's SDNN notebook names "
            "frame input as its bottleneck) are not modelled; the input enters at tile (0, 0).",
            "Per-operation energies are Loihi 1 pre-silicon figures (Davies 2018) applied to "
            "Loihi 2; Loihi 2 has no public per-operation table.",
            "Activity is that of one frame (lava-dl's ground-truth frame, not the benchmark's "
            "frame 100 of the PilotNet data set, which is not public here); the benchmark "
            "writes its frame into the input layer's bias once, here the frame enters the input "
            "layer's a_in as lava-dl's test runs it, counted as a message per pixel and step "
            "(an upper bound on input traffic).",
            "Lava's compiler places every layer on cores of its own and budgets synapse memory "
            "in its own units (SynMem 12,000); this mapper packs slices of different layers "
            "onto shared cores and counts memory in the Loihi 1 synapse format.",
            "No cycle-level effects: mean activity per step, no congestion stalls; the time "
            "model is a lower-bound form (max of compute and communication, plus barrier).",
        ],
    }
    for r in row["validation"]["rows"]:
        r["estimate_over_measured"] = r["estimate"] / r["measured"] if r["measured"] else None
    return row


# ---------------------------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:.3g}{unit}"


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'network':22} {'cores':>6} {'chips':>5} {'step':>9} {'latency':>9} "
            f"{'inf/s':>8} {'dyn. µJ':>8} {'stat. µJ':>8} {'SNN/ANN like':>14} {'arith.':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ratios = r["snn_over_ann"]
        low = ratios["chip_dynamic/ann_memory_no_reuse"]["ratio"]
        high = ratios["chip_dynamic/ann_memory_full_reuse"]["ratio"]
        bound = "≥" if ratios["chip_dynamic/ann_memory_no_reuse"]["lower_bound"] else ""
        old = ratios["chip_operations/ann_arithmetic"]["ratio"]
        static = r["energy_pj"]["static"]
        print(f"{r['network']:22} {r['cores']:>6,} {r['chips']:>5} "
              f"{_fmt(r['step_ns'] / 1e3, ' µs'):>9} {_fmt(r['latency_s'] * 1e3, ' ms'):>9} "
              f"{r['throughput_pipelined_per_s']:>8.3g} {r['energy_pj']['dynamic'] / 1e6:>8.3g} "
              f"{'—' if static is None else f'{static / 1e6:.3g}':>8} "
              f"{bound + _fmt(low) + '..' + _fmt(high):>14} {bound + _fmt(old):>7}")
    print("SNN/ANN like: Loihi 2 dynamic energy / 8-bit ANN twin with memory access (no reuse .. "
          "full reuse);\narith.: the arithmetic-only convention (Loihi operations / ANN MACs "
          "alone), NOT like for like.")
    for r in rows:
        print(f"- {r['network']}: {r['as_shipped'][:160]}"
              + (f"; mapped with {r['what_if']['overrides']}" if r["what_if"] else ""))
        print(f"  binding resources: {r['binding_resources']}; bottleneck: {r['bottleneck']}")
        if "validation" in r:
            for v in r["validation"]["rows"]:
                print(f"  {v['figure']:36} estimate {v['estimate']:10.4g}  measured "
                      f"{v['measured']:10.4g}  ratio {v['estimate_over_measured']:.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-checkpoint", type=Path, default=None,
                        help="a trained digits convnet student (else random weights)")
    parser.add_argument("--pilotnet", type=Path, default=None,
                        help="lava-dl's tutorials/lava/lib/dl/netx/pilotnet_snn/network.net "
                             "(github.com/lava-nc/lava-dl; default: the same file in the Lava "
                             "environment's lava-dl tests, if installed); without it the "
                             "validation row is skipped")
    parser.add_argument("--only", default=",".join([s.name for s in SPECS] + ["pilotnet"]),
                        help="comma-separated networks to run")
    parser.add_argument("--samples", type=int, default=16, help="samples of the small networks")
    parser.add_argument("--imagenet-samples", type=int, default=1,
                        help="samples of the SEW-ResNet-18 (it simulates slowly)")
    parser.add_argument("--imagenet-size", type=int, default=IMAGENET_SIZE,
                        help="input height and width of the ImageNet SEW-ResNet-18 (224 is the "
                             "standard size; see the module docstring for the memory it needs)")
    parser.add_argument("--pilotnet-samples", type=int, default=1,
                        help="frames through PilotNet (T = 16; the same frame repeated when "
                             "lava-dl's ground-truth frame is used)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true",
                        help="keep the rows of --out for networks not run this time")
    args = parser.parse_args()
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    rows: list[dict[str, Any]] = []
    if args.keep and args.out.is_file():
        import json

        before = json.loads(args.out.read_text())
        args.earlier = still_contributing(before["command"], wanted)
        kept = before["rows"]
        rows = [r for r in kept if r["network"] not in wanted
                and not (r["network"] == "pilotnet-lif" and "pilotnet" in wanted)]
    if "pilotnet" in wanted:
        if args.pilotnet is None:
            args.pilotnet = find_pilotnet()
        if args.pilotnet is None or not args.pilotnet.is_file():
            print("· pilotnet: skipped; pass --pilotnet PATH to lava-dl's tutorials/lava/lib/dl/"
                  "netx/pilotnet_snn/network.net (https://github.com/lava-nc/lava-dl)")
        else:
            print(f"· pilotnet: {args.pilotnet}", flush=True)
            rows.append(run_pilotnet(args.pilotnet, args.pilotnet_samples))
            save(args, rows)
    for spec in SPECS:
        if spec.name not in wanted:
            continue
        if spec.classes == 1000:
            spec = replace(spec, shape=(3, args.imagenet_size, args.imagenet_size))
        n = args.imagenet_samples if spec.shape[1] > 64 else args.samples
        print(f"· {spec.name}: {spec.arch} {'x'.join(map(str, spec.shape))}, {n} sample(s)",
              flush=True)
        rows.append(run_network(spec, n, args.demo_checkpoint))
        save(args, rows)
        print(f"  {rows[-1]['cores']:,} cores, {rows[-1]['chips']} chip(s); seconds "
              f"{ {k: round(v, 1) for k, v in rows[-1]['seconds'].items()} }", flush=True)
    print()
    print_table(rows)
    save(args, rows)
    print(f"\nwrote {args.out}")


#: how ``save`` joins the commands behind the rows of a ``--keep`` run
JOIN = "` and `.venv/bin/python "


def still_contributing(earlier: str, wanted: set[str]) -> str | None:
    """The earlier command(s) of ``--out`` (joined by ``JOIN``) less those whose every network
    (``--only``) is run again now: their rows are all replaced. None when none is left."""
    kept = []
    for command in earlier.split(JOIN):
        only = re.search(r"--only (\S+)", command)
        names = set(only.group(1).split(",")) if only else {s.name for s in SPECS} | {"pilotnet"}
        if not names <= wanted:
            kept.append(command)
    return JOIN.join(kept) or None


def save(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """The rows so far to ``args.out`` (atomically; after every network, so that a later
    network's failure keeps the earlier rows)."""
    command = "benchmarks/mapping.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if v not in (None, False) and k not in ("out", "keep", "earlier"))
    if getattr(args, "earlier", None):  # --keep: the rows kept came from the earlier command(s)
        command = f"{args.earlier}{JOIN}{command} --keep"
    atomic_write_json(args.out, {
        "command": command,
        "host": {"platform": platform.platform(), "python": platform.python_version(),
                 "cpus": os.cpu_count()},
        "chip": CHIP, "time_steps": T, "rows": rows,
    })


if __name__ == "__main__":
    main()
