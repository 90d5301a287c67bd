"""PilotNet-size netx networks through sakd and through lava-dl's own ``netx.hdf5.Network``:
samples/s, the ratio, and bit-exactness of every layer at every step.

Networks (158,509 neurons each, lava-dl's PilotNet architecture): by default written with seeded
random weights by lava-dl's own exporters (``benchmarks/pilotnet_files.py``, run in the Lava
environment): ``pilotnet_lif.net`` (CUBA/LIF, binary spikes) and ``pilotnet_sdnn.net``
(sigma-delta, graded messages). ``--lif FILE`` / ``--sdnn FILE`` take other files instead, for
example lava-dl's trained tutorial networks (``tutorials/lava/lib/dl/netx/pilotnet_snn/network.net``
and ``pilotnet_sdnn/network.net`` in lava-dl's repository; not shipped with sakd).

Inputs, fed to the input layer's neuron through ``a_in`` as lava-dl's PilotNet tutorials do
(3x66x200 integers): for LIF a static random image in [0, 40] held for every step, for SDNN a
random walk of frames in [0, 255] (steps of at most 8 per pixel and step), seeded.

- Lava: ``sakd.hardware.lava_bridge.run_netx_reference_batch`` (``Loihi2SimCfg(select_tag=
  "fixed_pt")``, one build for all samples, the state zeroed between samples). Two runs per
  network: recording every layer's messages and states (for the proof), and recording only the
  last layer (the speed figure: what a lava-dl user reads). Rates from the runner's ``run_s``
  (the simulation loop alone: no import, build or compile) and ``total_s``.
- sakd: ``read_netx`` then ``simulate`` (numpy backend) on the same inputs, once recording every
  population (compared with Lava's every layer, message and state variable at every step) and
  timed without recording: best of ``--repeats`` runs on ``--sakd-samples`` samples.

Prints a table and saves ``benchmarks/results/pilotnet_netx.json`` (atomically).

    .venv/bin/python benchmarks/pilotnet_netx.py [--samples 2] [--steps 24] [--sakd-samples 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sakd.formats.netx import read_netx
from sakd.hardware.atomic import atomic_write_json
from sakd.hardware.lava_bridge import (
    NetxReference,
    NetxReferenceJob,
    require_lava_environment,
    run_netx_reference_batch,
)
from sakd.hardware.simulator import simulate

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "pilotnet_netx.json"
INPUT_SHAPE = (3, 66, 200)


def make_files(folder: Path, seed: int) -> dict[str, Path]:
    """Write the two random-weight PilotNet files with lava-dl's exporters (Lava environment)."""
    python = require_lava_environment()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run([str(python), str(HERE / "pilotnet_files.py"), str(folder), "--seed", str(seed)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"pilotnet_files.py failed:\n{proc.stderr[-3000:]}")
    return {"lif": folder / "pilotnet_lif.net", "sdnn": folder / "pilotnet_sdnn.net"}


def draw_inputs(family: str, steps: int, samples: int, seed: int) -> np.ndarray:
    """[steps, samples, 3, 66, 200] int64 (module docstring)."""
    rng = np.random.default_rng(seed)
    shape = (samples, *INPUT_SHAPE)
    if family == "lif":
        return np.broadcast_to(rng.integers(0, 41, shape), (steps, *shape)).copy()
    x = np.empty((steps, *shape), np.int64)
    x[0] = rng.integers(0, 256, shape)
    for t in range(1, steps):
        x[t] = np.clip(x[t - 1] + rng.integers(-8, 9, shape), 0, 255)
    return x


def compare(ref: NetxReference, traces: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """Every layer, message and state variable at every step: the first difference, if any."""
    compared = 0
    for name in ref.names:
        for var, want in ref.layers[name].items():
            have = np.asarray(traces[name][var]).astype(np.int64)
            if have.shape != want.shape or not np.array_equal(have, want):
                where = None if have.shape != want.shape else tuple(int(i) for i in np.argwhere(have != want)[0])
                return {"bit_exact": False, "first_difference": {"layer": name, "var": var,
                                                                 "at (step, sample, ...)": where}}
            compared += have.size
    return {"bit_exact": True, "values_compared": compared}


def time_sakd(net: Any, x: np.ndarray, steps: int, repeats: int) -> float:
    simulate(net, x[:, :1], time_steps=steps, sequence=True)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        simulate(net, x, time_steps=steps, sequence=True)
        best = min(best, time.perf_counter() - t0)
    return x.shape[1] / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lif", type=Path, help="a LIF PilotNet netx file (default: random weights)")
    parser.add_argument("--sdnn", type=Path, help="a sigma-delta PilotNet netx file (default: random weights)")
    parser.add_argument("--samples", type=int, default=2, help="samples run on both (default 2)")
    parser.add_argument("--steps", type=int, default=24, help="steps per sample (default 24: the 10 layers fill in 10)")
    parser.add_argument("--sakd-samples", type=int, default=32, help="samples for sakd's timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20240801)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for name in ("samples", "steps", "sakd_samples", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")

    with tempfile.TemporaryDirectory(prefix="sakd-pilotnet-") as tmp:
        files: dict[str, Path] = {}
        source: dict[str, str] = {}
        if args.lif is None or args.sdnn is None:
            made = make_files(Path(tmp), args.seed)
        for family in ("lif", "sdnn"):
            given = getattr(args, family)
            files[family] = given if given is not None else made[family]
            source[family] = (str(given) if given is not None else
                              f"random weights (seed {args.seed}) by lava-dl's exporters, benchmarks/pilotnet_files.py")
        inputs = {f: draw_inputs(f, args.steps, args.samples, args.seed + k) for k, f in enumerate(files)}
        jobs = []
        for family, path in files.items():
            for record in ("all", "output"):
                jobs.append(NetxReferenceJob(path, inputs[family], args.steps, input_mode="a_in",
                                             record=record))
        print(f"Lava: {len(jobs)} runs of {args.samples} samples x {args.steps} steps ...", file=sys.stderr)
        refs = run_netx_reference_batch(jobs, timeout=3600)
        rows = []
        for k, (family, path) in enumerate(files.items()):
            full, last = refs[2 * k], refs[2 * k + 1]
            for r in (full, last):
                if isinstance(r, Exception):
                    raise SystemExit(f"the Lava run of {path} failed: {r}")
            net = read_netx(path, input_mode="a_in")
            got = simulate(net, inputs[family], time_steps=args.steps, sequence=True,
                           record=[p.name for p in net.populations])
            check = compare(full, got.traces)
            x = draw_inputs(family, args.steps, args.sakd_samples, args.seed + 10 + k)
            sakd_rate = time_sakd(net, x, args.steps, args.repeats)
            lava_run = args.samples / last.meta["run_s"]
            rows.append({
                "network": family, "file": source[family],
                "neurons": int(sum(p.size for p in net.populations)),
                "models": sorted({p.neuron.model for p in net.populations}),
                "steps": args.steps, "samples_compared": args.samples,
                "activity": {p.name: round(float((got.traces[p.name]["s"] != 0).mean()), 4)
                             for p in net.populations},
                **check,
                "lava_samples_per_s_run": lava_run,
                "lava_samples_per_s_total": args.samples / last.meta["total_s"],
                "lava_samples_per_s_run_recording_all": args.samples / full.meta["run_s"],
                "lava_build_compile_s": last.meta["build_s"] + last.meta["compile_s"],
                "sakd_samples_per_s": sakd_rate, "sakd_samples_timed": args.sakd_samples,
                "speedup_vs_lava_run": sakd_rate / lava_run,
            })
    result = {
        "benchmark": "pilotnet_netx",
        "what": ("PilotNet-size netx networks (LIF and sigma-delta) through sakd (numpy backend, "
                 "nothing recorded) and lava-dl 0.6 netx on Lava 0.10 Loihi2SimCfg fixed_pt "
                 "(last layer recorded; run loop only); bit-exactness over every layer, message "
                 "and state at every step"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_1m": os.getloadavg()[0]},
        "rows": rows,
        "command": "benchmarks/pilotnet_netx.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    atomic_write_json(args.out, result)
    print(f"{'network':8s} {'neurons':>8s} {'bit-exact':>9s} {'Lava /s':>9s} {'sakd /s':>9s} {'ratio':>8s}")
    for r in rows:
        print(f"{r['network']:8s} {r['neurons']:8d} {r['bit_exact']!s:>9s} "
              f"{r['lava_samples_per_s_run']:9.3f} {r['sakd_samples_per_s']:9.2f} "
              f"{r['speedup_vs_lava_run']:8.0f}x")
    print(f"saved {args.out}")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
