"""Roofline of the bit-accurate simulator: how close each network's simulation comes to the dense
GEMM bound of this machine, measured in the same run.

Networks (built through the export path the other benchmarks use: ``sakd.models.build_model`` →
random weights with BatchNorm statistics that make every layer spike → ``spikify`` →
``sakd.export.lower.lower``), T = 4:

- ``digits-convnet``: the registry ``convnet`` on the 8×8 digits (the network of
  ``benchmarks/lava_vs_sakd.py``; the digits test samples, repeated up to the sample count);
- ``fashion-convnet``: ``convnet_wide`` on 1×28×28 (Fashion-MNIST's shape, random images);
- ``resnet18-cifar``: ``resnet18_cifar`` on 3×32×32 (random images);
- ``sew-resnet18-imagenet``: ``sew_resnet18`` on 3×224×224, 1000 classes (a few random images).

For each: the dense multiply-adds per sample (Σ over projections of the MACs of the layer run
densely once per step, × T: what a GEMM-based simulator cannot avoid), this machine's measured
float32 and float64 GEMM rates (numpy's BLAS, and torch's for the torch backend, square 1024
GEMMs, best of several), the simulator's samples/s (best of ``--repeats`` after a warm-up),
the float32 and float64 bounds ``rate / (2 · MACs)`` and the fractions of them reached (the
rate is re-measured just before and after each network and the best kept: on a shared machine
the load changes between networks). The
targets of issue 16 are printed with each figure: ≥ 50 % of the float32 bound on the CIFAR
ResNet-18, ≥ 25 % on the digits convnet. A profile of the largest costs per network is saved
with each row (``--profile``, on by default), so that a missed target names what stops it.

Memory: the peak of numpy's traced allocations (``tracemalloc``; the simulator's state is numpy
arrays) while SEW-ResNet-18 and SEW-ResNet-152 at 224×224 simulate one sample alone and eight as
one chunk: the difference over seven is the memory per sample of a chunk (what ``batch_size``
multiplies), the rest the run's fixed memory (weights in the formats used, plans, GEMM blocks
bounded by ``GEMM_BLOCK_BYTES``). Each runs in a child process with a capped address space
(``--memory-limit-gib``), so that a network too large for the machine is reported, not fatal.

Saves ``benchmarks/results/roofline.json`` (``roofline_quick.json`` with ``--quick``), atomically.

    .venv/bin/python benchmarks/roofline.py            # the full run (several minutes)
    .venv/bin/python benchmarks/roofline.py --quick    # fewer samples, no SEW-ResNet-152
    .venv/bin/python benchmarks/roofline.py --device cuda   # numpy and torch on the GPU
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from sakd.hardware.atomic import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
T = 4
TARGETS = {"resnet18-cifar": 0.50, "digits-convnet": 0.25}

#: name -> (architecture, input shape, classes, data set, samples, quick samples)
CASES: dict[str, tuple[str, tuple[int, int, int], int, str, int, int]] = {
    "digits-convnet": ("convnet", (1, 8, 8), 10, "digits", 2000, 500),
    "fashion-convnet": ("convnet_wide", (1, 28, 28), 10, "fashion-mnist", 256, 64),
    "resnet18-cifar": ("resnet18_cifar", (3, 32, 32), 10, "cifar10", 32, 8),
    "sew-resnet18-imagenet": ("sew_resnet18", (3, 224, 224), 1000, "imagenet", 4, 1),
}
#: normalisation of the data sets (input range of the graded input)
NORMALIZATION = {
    "digits": None,  # the embedded data set's own
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def lowered_network(arch: str, shape: tuple[int, int, int], classes: int, dataset: str,
                    seed: int = 0) -> Any:
    """The registry ``arch`` with random weights (BatchNorm statistics from random inputs, BN
    scales and shifts chosen so that layers spike), spikified at T and lowered to the IR."""
    import torch

    from sakd.data.common import input_value_range, normalized_range
    from sakd.export.lower import lower
    from sakd.models import build_model, spikify

    if NORMALIZATION[dataset] is None:
        from sakd.app.common import load_samples

        input_range = input_value_range(load_samples(dataset, "test", 1).info)
    else:
        input_range = normalized_range(*NORMALIZATION[dataset])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        ann = build_model(arch, num_classes=classes, in_channels=shape[0],
                          image_size=list(shape[1:]))
        ann.train()
        batch = 16 if shape[1] <= 32 else 4
        with torch.no_grad():
            for _ in range(3):
                ann(torch.randn(batch, *shape))
            for m in ann.modules():
                if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(0.2, 0.8)
        snn = spikify(ann, T).eval()
    return lower(snn, input_shape=shape, input_range=input_range,
                 metadata={"dataset": dataset, "arch_name": arch}).network


def inputs_for(net: Any, dataset: str, n: int, seed: int = 1) -> np.ndarray:
    if dataset == "digits":
        from sakd.app.common import load_samples

        x = net.input.encode(load_samples("digits", "test", n).x.numpy())
        return np.resize(x, (n,) + x.shape[1:])  # the 359 test samples, repeated up to n
    mean, std = NORMALIZATION[dataset]
    rng = np.random.default_rng(seed)
    pixels = rng.random((n, *net.input.shape))
    x = (pixels - np.asarray(mean)[:, None, None]) / np.asarray(std)[:, None, None]
    return net.input.encode(x)


DEVICE = "cpu"  # the torch backend's device (--device)


def gemm_rates(size: int = 1024, repeats: int = 5) -> dict[str, dict[str, float]]:
    """GFLOP/s (2 flops per multiply-add) of square ``size`` GEMMs, float32 and float64, for
    numpy's BLAS and torch's (on ``DEVICE``; TF32 off, as the simulator runs them), best of
    ``repeats``."""
    rng = np.random.default_rng(0)
    out: dict[str, dict[str, float]] = {"numpy": {}, "torch": {}}
    flops = 2.0 * size**3
    for dtype in ("float32", "float64"):
        a = rng.random((size, size)).astype(dtype)
        b = rng.random((size, size)).astype(dtype)
        a @ b
        best = min(_timed(lambda a=a, b=b: a @ b) for _ in range(repeats))
        out["numpy"][dtype] = flops / best / 1e9
    try:
        import torch
    except ImportError:  # pragma: no cover
        return out
    torch.backends.cuda.matmul.allow_tf32 = False
    sync = torch.cuda.synchronize if DEVICE.startswith("cuda") else (lambda: None)
    if DEVICE.startswith("cuda"):
        size *= 8  # a GPU needs larger GEMMs to reach its rate
        flops = 2.0 * size**3
    for dtype in ("float32", "float64"):
        a = torch.rand(size, size, dtype=getattr(torch, dtype), device=DEVICE)
        b = torch.rand(size, size, dtype=getattr(torch, dtype), device=DEVICE)
        a @ b
        sync()
        best = min(_timed(lambda a=a, b=b: (a @ b, sync())) for _ in range(repeats))
        out["torch"][dtype] = flops / best / 1e9
    return out


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def dense_macs(net: Any) -> int:
    """Multiply-adds per sample of the network run densely: Σ projections' per-step MACs × T."""
    from sakd.hardware.simulator import projection_dense_macs

    return T * sum(projection_dense_macs(net, proj) for proj in net.projections)


def profile_top(fn: Any, n: int = 8) -> list[dict[str, Any]]:
    """The ``n`` functions with the largest own time while ``fn`` runs."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (file, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        rows.append({"function": f"{Path(file).name}:{line}({func})", "calls": ncalls,
                     "own_s": round(tottime, 4), "cumulative_s": round(cumtime, 4)})
    rows.sort(key=lambda r: -r["own_s"])
    return rows[:n]


#: the phases of a simulation: (label, qualified function whose cumulative time it is, the
#: phases inside it whose time is taken out); the GEMM is ``np.matmul`` (convolutions) and the
#: dense layers' ``@`` inside ``dense_raw``
PHASES = (
    ("conv GEMM (np.matmul)", "matmul", ()),
    ("conv im2col and layout", "_conv_float", ("matmul",)),
    ("conv cast to int64, wrap", "conv_raw", ("_conv_float",)),
    ("dense synapses (GEMM included)", "dense_raw", ()),
    ("neuron kernel (fused)", "run_window", ()),
    ("neuron steps (numpy)", "step", ()),
    ("counts and outputs", "_finish", ()),
)


def phase_breakdown(fn: Any) -> dict[str, Any]:
    """Seconds of ``fn`` (a numpy-backend simulation) per phase of ``PHASES`` and the rest, from
    cProfile's cumulative times, with ``np.matmul`` wrapped so that the conv GEMMs are timed
    apart (their GFLOP/s beside the machine's square rate say what the GEMM shapes reach)."""
    original = np.matmul
    flops = [0.0]

    def matmul(a: Any, b: Any, *args: Any, **kwargs: Any) -> Any:
        flops[0] += 2.0 * a.shape[-2] * a.shape[-1] * b.shape[-1] * (
            a.shape[0] if a.ndim == 3 else 1)
        return original(a, b, *args, **kwargs)

    prof = cProfile.Profile()
    np.matmul = matmul
    try:
        prof.enable()
        t0 = time.perf_counter()
        fn()
        total = time.perf_counter() - t0
        prof.disable()
    finally:
        np.matmul = original
    cumulative: dict[str, float] = {}
    for (_, _, func), (_, _, _, cumtime, _) in pstats.Stats(prof).stats.items():
        cumulative[func] = cumulative.get(func, 0.0) + cumtime
    seconds = {}
    for label, func, inner in PHASES:
        own = cumulative.get(func, 0.0) - sum(cumulative.get(i, 0.0) for i in inner)
        seconds[label] = max(own, 0.0)
    seconds["other (Python, gathers, sums)"] = max(total - sum(seconds.values()), 0.0)
    gemm = seconds["conv GEMM (np.matmul)"]
    return {"total_s": total, "seconds": seconds,
            "conv_gemm_gflops": flops[0] / gemm / 1e9 if gemm > 0 else None}


def measure(name: str, net: Any, x: np.ndarray, backend: str, rates: dict[str, float],
            repeats: int, profile: bool) -> dict[str, Any]:
    from sakd.hardware.simulator import simulate

    device = DEVICE if backend == "torch" else "cpu"
    simulate(net, x[:1], backend=backend, device=device)  # warm-up
    best = float("inf")
    res = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = simulate(net, x, backend=backend, device=device)
        best = min(best, time.perf_counter() - t0)
    assert res is not None
    macs = dense_macs(net)
    sps = len(x) / best
    row: dict[str, Any] = {
        "network": name, "backend": backend, "device": device, "samples": len(x), "time_steps": T,
        "latency": net.latency, "populations": len(net.populations),
        "neurons": int(sum(p.size for p in net.populations)),
        "dense_macs_per_sample": macs, "dense_flops_per_sample": 2 * macs,
        "seconds": best, "samples_per_s": sps,
        "mean_firing_rate": float(np.mean([res.counts.populations[p.name].firing_rate.mean()
                                           for p in net.populations if not p.is_readout])),
    }
    rescale(row, rates)
    if profile:
        row["profile"] = profile_top(lambda: simulate(net, x, backend=backend, device=device))
        if backend == "numpy":
            row["phases"] = phase_breakdown(lambda: simulate(net, x, backend=backend))
    return row


#: samples of the chunk whose peak, against one sample's, gives the memory per sample
CHUNK = 8


def _traced_peak(fn: Any) -> tuple[int, float]:
    """(peak bytes of traced allocations, seconds) while ``fn`` runs."""
    tracemalloc.start()
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return int(peak), seconds


def rescale(row: dict[str, Any], rates: dict[str, float]) -> None:
    """Set the bounds and fractions of ``row`` for the GEMM ``rates`` (GFLOP/s)."""
    macs = row["dense_macs_per_sample"]
    row["gemm_gflops"] = dict(rates)
    for dtype in ("float32", "float64"):
        bound = rates[dtype] * 1e9 / (2 * macs)
        row[f"bound_{dtype}_samples_per_s"] = bound
        row[f"fraction_of_{dtype}_bound"] = row["samples_per_s"] / bound
    target = TARGETS.get(row["network"])
    if target is not None:
        row["target_fraction_of_float32_bound"] = target
        row["target_met"] = bool(row["fraction_of_float32_bound"] >= target)


def peak_memory_per_sample(arch: str, seed: int = 0) -> dict[str, Any]:
    """Memory of ``arch`` at 3×224×224: the peak of numpy's traced allocations while one sample
    runs alone (``batch_size = 1``) and while ``CHUNK`` run as one chunk; their difference over
    ``CHUNK − 1`` is the memory each further sample of a chunk adds, the rest the run's fixed
    memory (weights in the formats the synapses use, plans, GEMM blocks)."""
    from sakd.hardware.simulator import simulate

    t0 = time.perf_counter()
    try:
        net = lowered_network(arch, (3, 224, 224), 1000, "imagenet", seed)
    except (MemoryError, RuntimeError) as exc:
        raise MemoryError(f"out of memory while lowering through the export path: {exc}") from exc
    build_s = time.perf_counter() - t0
    x = inputs_for(net, "imagenet", CHUNK)
    try:
        one, seconds = _traced_peak(lambda: simulate(net, x[:1], batch_size=1))
        many, _ = _traced_peak(lambda: simulate(net, x, batch_size=CHUNK))
    except MemoryError as exc:
        raise MemoryError(f"out of memory while simulating: {exc}") from exc
    per_sample = max(many - one, 0) // (CHUNK - 1)
    return {"network": arch, "input": [3, 224, 224], "time_steps": T,
            "relay_populations": sum(".relay" in p.name for p in net.populations),
            "longest_delay": max(p.delay for p in net.projections), "latency": net.latency,
            "populations": len(net.populations),
            "neurons": int(sum(p.size for p in net.populations)),
            "dense_macs_per_sample": dense_macs(net),
            "peak_bytes_one_sample": one, "chunk": CHUNK, "peak_bytes_chunk": many,
            "peak_bytes_per_sample": per_sample, "peak_mib_per_sample": per_sample / 2**20,
            "fixed_mib": (one - per_sample) / 2**20, "peak_mib_one_sample": one / 2**20,
            "seconds_per_sample": seconds, "build_s": build_s}


def _memory_child(arch: str, limit_bytes: int, queue: Any) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    try:
        queue.put(peak_memory_per_sample(arch))
    except (MemoryError, RuntimeError) as exc:  # torch reports an allocation failure as such
        queue.put({"network": arch, "failed": f"{type(exc).__name__}: {str(exc)[:300]}"})


def guarded_memory(arch: str, limit_gib: float) -> dict[str, Any]:
    """``peak_memory_per_sample`` in a child process whose address space is capped at
    ``limit_gib`` (a machine shared with others must not run out of memory): a failure is
    reported with where it happened instead of taking the machine down."""
    import multiprocessing as mp
    import traceback

    ctx = mp.get_context("spawn")  # a forked BLAS thread pool can deadlock
    queue = ctx.Queue()
    child = ctx.Process(target=_memory_child, args=(arch, int(limit_gib * 2**30), queue))
    child.start()
    result = None
    while result is None:
        try:
            result = queue.get(timeout=5)
        except Exception:  # queue.Empty: still running, or dead without a word
            if not child.is_alive():
                result = {"network": arch, "failed": f"the process ended with exit code "
                          f"{child.exitcode} ({traceback.format_exc(limit=0).strip()})"}
    child.join()
    result["memory_limit_gib"] = limit_gib
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer samples, one repeat, no SEW-ResNet-152 memory run")
    parser.add_argument("--networks", default=",".join(CASES),
                        help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--backends", default=None,
                        help="comma-separated (default: numpy, and torch too with --device cuda)")
    parser.add_argument("--device", default="cpu", help="the torch backend's device (cuda)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (best kept)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-memory", action="store_true", help="skip the 224x224 memory runs")
    parser.add_argument("--memory-limit-gib", type=float, default=12.0,
                        help="address-space cap of each memory run's process")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    out = args.out or RESULTS / ("roofline_quick.json" if args.quick else "roofline.json")
    global DEVICE
    DEVICE = args.device
    default = "numpy,torch" if args.device.startswith("cuda") else "numpy"
    backends = [b.strip() for b in (args.backends or default).split(",") if b.strip()]
    names = [n.strip() for n in args.networks.split(",") if n.strip()]
    for n in names:
        if n not in CASES:
            parser.error(f"unknown network {n!r}; choose from {', '.join(CASES)}")

    rates = gemm_rates()
    print("GEMM rate (GFLOP/s, square 1024):", ", ".join(
        f"{lib} {dt} {v:.1f}" for lib, per in rates.items() for dt, v in per.items()))
    rows = []
    for name in names:
        arch, shape, classes, dataset, n_full, n_quick = CASES[name]
        t0 = time.perf_counter()
        net = lowered_network(arch, shape, classes, dataset)
        x = inputs_for(net, dataset, n_quick if args.quick else n_full)
        print(f"{name}: {len(net.populations)} populations, L = {net.latency}, built in "
              f"{time.perf_counter() - t0:.1f} s; {len(x)} samples")
        for backend in backends:
            # the machine's rate around this measurement (best of before and after): on a
            # shared machine the load changes between networks
            here = {dt: max(rates[backend][dt], v) for dt, v in gemm_rates(repeats=3)[backend].items()}
            row = measure(name, net, x, backend, here, repeats, profile=not args.no_profile)
            after = gemm_rates(repeats=3)[backend]
            here = {dt: max(here[dt], after[dt]) for dt in here}
            rescale(row, here)
            rows.append(row)
            target = row.get("target_fraction_of_float32_bound")
            verdict = "" if target is None else (
                f"  target ≥ {100 * target:.0f} % of the float32 bound: "
                f"{'met' if row['target_met'] else 'NOT met'}")
            print(f"  {backend:6s} {row['samples_per_s']:10.1f} samples/s; bound f32 "
                  f"{row['bound_float32_samples_per_s']:10.1f} ({100 * row['fraction_of_float32_bound']:5.1f} %), "
                  f"f64 {row['bound_float64_samples_per_s']:10.1f} "
                  f"({100 * row['fraction_of_float64_bound']:5.1f} %){verdict}")
            if "profile" in row and target is not None and not row["target_met"]:
                print("    profile (own time):")
                for p in row["profile"][:5]:
                    print(f"      {p['own_s']:8.3f} s  {p['calls']:6d} calls  {p['function']}")
            if "phases" in row:
                ph = row["phases"]
                gf = ph["conv_gemm_gflops"]
                print(f"    phases of {ph['total_s']:.3f} s (profiled)"
                      + (f"; conv GEMMs at {gf:.1f} GFLOP/s" if gf else "") + ":")
                for label, sec in ph["seconds"].items():
                    if sec > 0:
                        print(f"      {100 * sec / ph['total_s']:5.1f} %  {label}")
    memory = []
    if not args.no_memory:
        for arch in ("sew_resnet18",) if args.quick else ("sew_resnet18", "sew_resnet152"):
            m = guarded_memory(arch, args.memory_limit_gib)
            memory.append(m)
            if "failed" in m:
                print(f"memory: {arch} at 224x224 did not complete within "
                      f"{args.memory_limit_gib:g} GiB: {m['failed']}")
                continue
            print(f"memory: {arch} at 224x224, T = {T}: {m['peak_mib_per_sample']:.0f} MiB per "
                  f"sample of a chunk + {m['fixed_mib']:.0f} MiB fixed (peak with one sample "
                  f"{m['peak_mib_one_sample']:.0f} MiB; {m['seconds_per_sample']:.1f} s per sample)")

    print(f"\n{'network':22s} {'backend':7s} {'MFLOP/sample':>12s} {'samples/s':>10s} "
          f"{'f32 bound':>10s} {'% f32':>6s} {'% f64':>6s} target")
    for r in rows:
        target = r.get("target_fraction_of_float32_bound")
        t = "–" if target is None else f"≥{100 * target:.0f} % {'met' if r['target_met'] else 'NOT met'}"
        print(f"{r['network']:22s} {r['backend']:7s} {r['dense_flops_per_sample'] / 1e6:12.1f} "
              f"{r['samples_per_s']:10.1f} {r['bound_float32_samples_per_s']:10.1f} "
              f"{100 * r['fraction_of_float32_bound']:6.1f} {100 * r['fraction_of_float64_bound']:6.1f} {t}")
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (float("nan"),) * 3
    atomic_write_json(out, {
        "command": "benchmarks/roofline.py" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "loadavg": load},
        "time_steps": T,
        "gemm_gflops": rates,
        "targets": TARGETS,
        "results": rows,
        "memory": memory,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
