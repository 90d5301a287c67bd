"""Turn the benchmark JSON files into docs/results.md (tables) and docs/figures/*.png (plots).

    .venv/bin/python benchmarks/make_results.py

Reads benchmarks/results/{digits_sakd,fashion_mnist,fashion_mnist_cpu,fashion_mnist_quick,training_cost,
simulator_throughput,lava_vs_sakd,pilotnet_netx,roofline,dense_sakd_detection,
dense_sakd_segmentation}.json, whichever exist; every table names the command that produced it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sakd.hardware.atomic import atomic_path, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
FIGURES = DOCS / "figures"
METHOD_LABELS = {"scratch": "SNN from scratch", "logits": "SAKD logits only",
                 "features": "SAKD features only", "both": "SAKD (level 1 + 2)"}


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _machine(data: dict[str, Any]) -> str:
    m = data.get("machine", {})
    where = f"GPU {m['gpu']}" if m.get("gpu") else f"CPU ({m.get('threads', '?')} threads)"
    return f"{where}, torch {m.get('torch', '?')}"


def digits_section(data: dict[str, Any]) -> list[str]:
    cfg = data["config"]
    lines = ["## Digits (8×8, embedded)", "",
             f"Command: `.venv/bin/python benchmarks/digits_sakd.py` — {cfg['model']['arch']}, "
             f"T = {cfg['student']['time_steps']}, {cfg['student']['train']['epochs']} epochs, seed "
             f"{cfg['seed']}; {_machine(data)}.", "",
             "| network | test accuracy | val accuracy | best epoch | mean firing rate |",
             "|---|---|---|---|---|"]
    for name, row in data["rows"].items():
        rate = f"{row['mean_firing_rate']:.3f}" if row.get("mean_firing_rate") is not None else "–"
        lines.append(f"| {name} | {row['test_acc']:.2f} % | {row['val_acc']:.2f} % | "
                     f"{row['best_epoch']} | {rate} |")
    return lines + [""]


def fashion_section(data: dict[str, Any], tag: str) -> list[str]:
    mode = data["mode"]
    lines = [f"## Fashion-MNIST ({mode} mode)", "",
             f"Command: `.venv/bin/python {data['command']}` then `benchmarks/make_results.py`; "
             f"{_machine(data)}. Settings: `{' '.join(data['mode_settings']['overrides'])}`.", ""]
    if mode == "quick":
        lines += ["Quick mode trains on a subset for a few epochs so that it fits two CPU cores: "
                  "its accuracies are far below converged values and say nothing about the full "
                  "study's targets. Timings were taken while other jobs shared the two cores, so "
                  "seconds per epoch are not comparable between rows; the section *Training cost "
                  "of SAKD* below measures them alone.", ""]
    if mode == "cpu":
        lines += ["CPU mode trains on the full training set (54,000 images after the 10 % validation "
                  "hold-out that picks the best epoch) on two CPU cores: one architecture at T = 4, "
                  "SAKD against the SNN from scratch with the same epochs and seed, then the whole "
                  "test set through the bit-accurate simulator. Fewer epochs than the full mode, so "
                  "still short of converged accuracies.", ""]
    for arch, row in data["archs"].items():
        teacher = row.get("teacher")
        lines += [f"### {arch}", ""]
        if teacher:
            lines.append(f"ANN teacher: **{teacher['test_acc']:.2f} %** test accuracy "
                         f"({teacher['train_seconds_per_epoch']:.1f} s per epoch).")
            lines.append("")
        lines += ["| T | method | test accuracy | s / epoch | on chip (PTQ) | float, same samples | on chip (QAT) |",
                  "|---|---|---|---|---|---|---|"]
        for key, s in sorted(row["students"].items(), key=lambda kv: (int(kv[0].split("/")[0][1:]), kv[0])):
            T, method = key.split("/")
            deploy = s.get("deploy") or {}
            ptq, qat = deploy.get("ptq"), deploy.get("qat")
            chip = _pct(ptq, "on_chip_acc")
            same = _pct(ptq, "float_acc_same_samples")
            chip_qat = _pct(qat, "on_chip_acc")
            lines.append(f"| {T[1:]} | {METHOD_LABELS.get(method, method)} | {s['test_acc']:.2f} % | "
                         f"{s['train_seconds_per_epoch']:.1f} | {chip} | {same} | {chip_qat} |")
        lines.append("")
        energy_rows = [(k, s["deploy"]) for k, s in row["students"].items() if s.get("deploy")]
        if energy_rows:
            lines += ["Operations and energy per inference (PTQ network, simulated test samples):", "",
                      "| setting | spikes | SynOps | input MACs | Loihi energy | 45 nm fp32 energy | ANN MACs | ANN energy (45 nm fp32) |",
                      "|---|---|---|---|---|---|---|---|"]
            for key, deploy in energy_rows:
                e = deploy["ptq"]["energy"]
                t, ann = e["totals"], e.get("ann") or {}
                lines.append(f"| {key} | {t['spikes']:,.0f} | {t['synops']:,.0f} | {t['graded_macs']:,.0f} | "
                             f"{t['energy_pj']['loihi'] / 1e3:,.1f} nJ | {t['energy_pj']['cmos45-fp32'] / 1e3:,.1f} nJ | "
                             f"{ann.get('macs', 0):,} | {ann.get('energy_pj', {}).get('cmos45-fp32', 0) / 1e3:,.1f} nJ |")
            lines.append("")
            lava = [(k, d.get("lava")) for k, d in energy_rows if d.get("lava")]
            for key, speed in lava:
                if "skipped" in speed:
                    lines.append(f"Lava comparison ({key}): skipped — {speed['skipped']}")
                else:
                    lines.append(f"Simulator against Lava ({key}, {speed['samples']} samples): sakd "
                                 f"{speed['sakd_samples_per_s']:.1f} samples/s, Lava "
                                 f"{speed['lava_samples_per_s']:.2f} samples/s (process start and "
                                 f"build included), ratio {speed['speed_ratio']:.0f}×, bit-exact: "
                                 f"{speed['bit_exact']}.")
            lines.append("")
        figure = plot_accuracy(arch, row, tag)
        if figure:
            lines += [f"![accuracy against T]({figure.relative_to(DOCS)})", ""]
        figure = plot_energy_layers(arch, row, tag)
        if figure:
            lines += [f"![energy per layer]({figure.relative_to(DOCS)})", ""]
    return lines


def _pct(row: dict[str, Any] | None, key: str) -> str:
    return f"{row[key]:.2f} %" if row else "–"


def plot_accuracy(arch: str, row: dict[str, Any], tag: str) -> Path | None:
    by_method: dict[str, list[tuple[int, float]]] = {}
    for key, s in row["students"].items():
        T, method = key.split("/")
        by_method.setdefault(method, []).append((int(T[1:]), s["test_acc"]))
    if not by_method or len({T for points in by_method.values() for T, _ in points}) < 2:
        return None  # one T: the table says it all
    fig, ax = plt.subplots(figsize=(6, 4))
    markers = {"scratch": "o", "logits": "^", "features": "v", "both": "s"}
    for method, points in sorted(by_method.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=markers.get(method, "o"),
                markersize=8 if len(points) > 1 else 10, fillstyle="full" if len(points) > 1 else "none",
                markeredgewidth=2, label=METHOD_LABELS.get(method, method))
    if row.get("teacher"):
        ax.axhline(row["teacher"]["test_acc"], color="k", linestyle="--", label="ANN teacher")
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(sorted({p[0] for points in by_method.values() for p in points}))
    ax.set_title(f"Fashion-MNIST, {arch}: accuracy against T")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, f"fashion_mnist_{tag}_{arch}_accuracy.png")


def plot_energy_layers(arch: str, row: dict[str, Any], tag: str) -> Path | None:
    settings = [(k, s["deploy"]) for k, s in row["students"].items() if s.get("deploy")]
    if not settings:
        return None
    key, deploy = max(settings, key=lambda kv: int(kv[0].split("/")[0][1:]))
    layers = deploy["ptq"]["energy"]["layers"]
    names = [layer["layer"] for layer in layers if layer.get("kind") == "projection"]
    snn = [layer["energy_pj"].get("cmos45-fp32", 0.0) / 1e3 for layer in layers if layer.get("kind") == "projection"]
    ann = [(layer.get("ann_energy_pj") or {}).get("cmos45-fp32", 0.0) / 1e3 for layer in layers
           if layer.get("kind") == "projection"]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], snn, width=0.4, label="SNN (SynOps + input MACs)")
    ax.bar([x + 0.2 for x in xs], ann, width=0.4, label="ANN (MACs)")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("nJ per inference (45 nm fp32)")
    ax.set_title(f"Fashion-MNIST, {arch} ({key}): energy per layer", pad=28)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    return _save(fig, f"fashion_mnist_{tag}_{arch}_energy.png")


def _save(fig, name: str) -> Path:
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / name
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def speed_section(sim: dict[str, Any] | None, lava: dict[str, Any] | None) -> list[str]:
    lines = ["## Simulator speed", ""]
    if sim:
        lines += ["Command: `.venv/bin/python benchmarks/simulator_throughput.py` (random weights, "
                  "thresholds calibrated to plausible firing rates; shared 2-core CPU, no GPU).", "",
                  "| network | backend | device | samples | samples/s | SynOps/s | mean firing rate |",
                  "|---|---|---|---|---|---|---|"]
        for r in sim["results"]:
            lines.append(f"| {r['network']} | {r['backend']} | {r['device']} | {r['samples']} | "
                         f"{r['samples_per_s']:.1f} | {r['synops_per_s']:.3g} | "
                         f"{r.get('mean_firing_rate', float('nan')):.3f} |")
        lines.append("")
    if lava:
        lines += ["Command: `.venv/bin/python benchmarks/lava_vs_sakd.py` — the trained digits "
                  f"ConvNet ({lava['network'].get('source', '')}), {lava['samples']} test samples, "
                  f"T = {lava['time_steps']}.", "",
                  "| engine | samples/s | speed-up of sakd | bit-exact |", "|---|---|---|---|",
                  f"| sakd ({lava['sakd']['backend']}) | {lava['sakd']['samples_per_s']:.1f} | – | reference |"]
        for name, row in lava["lava"].items():
            lines.append(f"| {name} | {row['samples_per_s']:.2f} | "
                         f"{lava['speedup'][name]['end_to_end']:.0f}× | {row['bit_exact']} |")
        lines.append("")
    return lines


def pilotnet_section(data: dict[str, Any]) -> list[str]:
    """benchmarks/pilotnet_netx.py: PilotNet-size netx files through sakd and lava-dl's netx."""
    rows = data["rows"]
    lines = ["## netx files: PilotNet through sakd and lava-dl", "",
             f"Command: `.venv/bin/python {data['command'].strip()}` — {data['what']}. "
             f"CPU ({data['machine']['cpus']} cores, 1-minute load "
             f"{data['machine']['load_average_1m']:.1f} at the end), no GPU.", "",
             "| network | file | neurons | models | steps | Lava samples/s (run loop) | "
             "sakd samples/s | sakd / Lava | bit-exact (every layer, message, state, step) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        exact = (f"yes ({r['values_compared']:,} values, {r['samples_compared']} samples)"
                 if r["bit_exact"] else f"NO: {r['first_difference']}")
        lines.append(f"| {r['network']} | {r['file']} | {r['neurons']:,} | {', '.join(r['models'])} | "
                     f"{r['steps']} | {r['lava_samples_per_s_run']:.3f} | "
                     f"{r['sakd_samples_per_s']:.1f} | {r['speedup_vs_lava_run']:,.0f}× | {exact} |")
    lines += ["", "Lava's rate is its simulation loop alone (no import, build or compile; "
              "recording only the last layer); with every layer recorded, and end to end, it is "
              "lower (both in the JSON).", ""]
    return lines


def roofline_section(data: dict[str, Any]) -> list[str]:
    """benchmarks/roofline.py: samples/s against the dense GEMM bound of the same machine."""
    m = data.get("machine", {})
    load = m.get("loadavg")
    rates = data["gemm_gflops"]
    lines = ["## Simulator roofline", "",
             f"Command: `.venv/bin/python {data['command']}` — random weights through the export "
             f"path, T = {data['time_steps']}; {m.get('cpus', '?')} CPUs"
             + (f", load average {load[0]:.1f} at the end" if load else "") + ". "
             "The bound is the machine's square-GEMM rate (measured in the same run) over the "
             "network's dense FLOPs per sample (2 × multiply-adds × T); every run is bit-exact "
             "(the simulator has no inexact path).", "",
             "GEMM rate at the start (GFLOP/s): " + "; ".join(
                 f"{lib} float32 {per['float32']:.1f}, float64 {per['float64']:.1f}"
                 for lib, per in rates.items() if per) + "; each row's bound uses the best rate "
             "measured just before and after it."
             + (" A quick run on a shared machine: indicative only." if data.get("quick") else ""),
             "",
             "| network | backend | MFLOP / sample | samples/s | float32 bound | % of float32 | "
             "% of float64 | target |", "|---|---|---|---|---|---|---|---|"]
    for r in data["results"]:
        target = r.get("target_fraction_of_float32_bound")
        verdict = "–" if target is None else (
            f"≥ {100 * target:.0f} %: {'met' if r['target_met'] else 'not met'}")
        lines.append(f"| {r['network']} | {r['backend']} | {r['dense_flops_per_sample'] / 1e6:.1f} | "
                     f"{r['samples_per_s']:.1f} | {r['bound_float32_samples_per_s']:.1f} | "
                     f"{100 * r['fraction_of_float32_bound']:.1f} | "
                     f"{100 * r['fraction_of_float64_bound']:.1f} | {verdict} |")
    lines.append("")
    phased = [r for r in data["results"] if r.get("phases")]
    if phased:
        labels = list(phased[0]["phases"]["seconds"])
        lines += ["Where the time goes (numpy backend, one profiled run each; % of its time; the "
                  "conv GEMMs' own rate beside the square-GEMM rate of the bound):", "",
                  "| network | conv GEMM GFLOP/s | " + " | ".join(labels) + " |",
                  "|---|---|" + "---|" * len(labels)]
        for r in phased:
            ph = r["phases"]
            gf = ph.get("conv_gemm_gflops")
            lines.append(f"| {r['network']} | {'–' if gf is None else f'{gf:.1f}'} | " + " | ".join(
                f"{100 * ph['seconds'][k] / ph['total_s']:.0f} %" for k in labels) + " |")
        lines.append("")
    missed = [r for r in data["results"] if r.get("target_met") is False and r.get("profile")]
    for r in missed:
        lines += [f"Profile of {r['network']} ({r['backend']}), largest own times:", "",
                  "| function | calls | own s |", "|---|---|---|"]
        lines += [f"| `{p['function']}` | {p['calls']} | {p['own_s']:.3f} |"
                  for p in r["profile"][:6]]
        lines.append("")
    if data.get("memory"):
        lines += ["Memory at 224×224 (peaks of the simulator's traced numpy allocations with one "
                  "sample and with several in one chunk; a run of chunk size c needs about fixed + "
                  "c × per sample, whatever the number of samples):", "",
                  "| network | neurons | relay populations | dense GMAC / sample | MiB per sample "
                  "| fixed MiB | s / sample |", "|---|---|---|---|---|---|---|"]
        for mem in data["memory"]:
            if "failed" in mem:
                lines.append(f"| {mem['network']} | – | – | – | not measured: "
                             f"{mem['failed'][:120]} (within {mem['memory_limit_gib']:g} GiB) "
                             f"| – | – |")
                continue
            relays = mem.get("relay_populations")
            lines.append(f"| {mem['network']} | {mem['neurons']:,} | "
                         f"{'–' if relays is None else relays} | "
                         f"{mem['dense_macs_per_sample'] / 1e9:.1f} | "
                         f"{mem['peak_mib_per_sample']:.0f} | {mem.get('fixed_mib', 0):.0f} | "
                         f"{mem['seconds_per_sample']:.1f} |")
        lines.append("")
    return lines


def training_cost_section(data: dict[str, Any]) -> list[str]:
    """Seconds per training epoch of the ANN, the SNN from scratch and SAKD, run alone."""
    rows = data["rows"]
    full = rows[0]["full_train_samples"]
    lines = ["## Training cost of SAKD", "",
             f"Command: `.venv/bin/python {data['command']}`; {_machine(data)}, nothing else "
             "running. The last of the epochs on the subset is timed (training loop only, evaluation "
             f"excluded) and scaled to a {full:,}-sample epoch. SAKD's extra cost is the frozen "
             "teacher's forward pass and the feature adapters.", "",
             "| network | T | method | samples/s | s per full epoch | SAKD / scratch |",
             "|---|---|---|---|---|---|"]
    names = {"ann": "ANN teacher", "scratch": "SNN from scratch", "sakd": "SAKD (logits + features)"}
    for r in rows:
        ratio = f"{r['over_scratch']:.2f}×" if "over_scratch" in r else "–"
        lines.append(f"| {r['arch']} | {r['time_steps'] or '–'} | {names[r['method']]} | "
                     f"{r['samples_per_s']:.0f} | {r['seconds_per_full_epoch']:.0f} | {ratio} |")
    return lines + [""]


def mapping_section(data: dict[str, Any] | None) -> list[str]:
    """Networks mapped onto Loihi 2 (benchmarks/mapping.py): fit, time, energy in all, the
    SNN/ANN ratios (like for like and arithmetic-only, labelled), and PilotNet LIF beside
    Intel's measurement. Nothing when the benchmark has not run."""
    if not data:
        return []

    def num(value: float | None, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}g}"

    rows = data["rows"]
    commands = data.get("commands") or [{"command": data["command"],
                                         "networks": [r["network"] for r in rows]}]
    said = "; ".join(f"`.venv/bin/python {c['command']}` (rows {', '.join(c['networks'])})"
                     for c in commands)
    lines = ["## Mapping onto Loihi 2", "",
             f"Commands: {said}; then `benchmarks/make_results.py`; "
             f"{data['host']['cpus']} CPUs. Each network is simulated on the samples named, "
             "mapped by `sakd.hardware.mapping` (partition, packing, placement on the mesh), "
             "timed by its time model and priced by its energy model (docs/mapping.md): "
             "**estimates from a model, not measurements**. Random-weight networks show what "
             "the model says for their (random) activity, not what a trained network costs.", "",
             "| network | weights | inputs | T | cores | chips | system | time per step | "
             "latency | inferences/s (pipelined / one at a time) | dynamic | static | "
             "SNN/ANN like for like | SNN/ANN arithmetic only (not like for like) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e, ratios = r["energy_pj"], r["snn_over_ann"]
        head_lo = ratios["chip_dynamic/ann_memory_no_reuse"]
        head_hi = ratios["chip_dynamic/ann_memory_full_reuse"]
        old = ratios["chip_operations/ann_arithmetic"]
        bound = "≥ " if head_lo["lower_bound"] else ""
        static = "not counted" if e["static"] is None else f"{e['static'] / 1e6:.3g} µJ"
        lines.append(
            f"| {r['network']} ("
            + ", ".join([*([r["arch"]] if r.get("arch") else []),
                         "x".join(map(str, r["input_shape"]))])
            + f") | {r['weights']} | {r['inputs']} | "
            f"{r['time_steps']} | {r['cores']:,} | {r['chips']} | {r['system']} | "
            f"{r['step_ns'] / 1e3:.3g} µs | {r['latency_s'] * 1e3:.3g} ms | "
            f"{num(r['throughput_pipelined_per_s'])} / {num(r['throughput_unpipelined_per_s'])} | "
            f"{e['dynamic'] / 1e6:.3g} µJ (operations {e['operations'] / 1e6:.3g}, routing "
            f"{e['routing'] / 1e6:.3g}) | {static} | {bound}{num(head_lo['ratio'])} .. "
            f"{bound}{num(head_hi['ratio'])} | {bound}{num(old['ratio'])} |")
    lines += ["",
              "*SNN/ANN like for like*: the SNN's dynamic energy on the chip (Loihi's per-"
              "operation energies, whose synaptic op includes the synapse read, plus routed "
              "messages x hops) over the 8-bit ANN twin of the same architecture priced for "
              "arithmetic **and** memory access (Horowitz 2014, 45 nm), between the ANN's two "
              "reuse bounds (every MAC reads its weight and input .. every value read once). "
              "*Arithmetic only*: Loihi's operations over the ANN's MACs alone (0.23 pJ), the "
              "convention of earlier reports, kept for comparison with papers. ≥: the SNN side "
              "lacks the graded-input MACs its profile cannot price. Static energy (0.232 W per "
              "Loihi 2 chip in use, measured by Intel, x run time) is reported apart. "
              "pilotnet-sdnn's T = 16 is the simulated input sequence (an inference here is "
              "those 16 steps); Intel's SDNN benchmark counts a frame per step, as its "
              "validation table below does.", ""]
    lines += ["| network | neurons | binding resources (populations) | bottleneck | "
              "as shipped |", "|---|---|---|---|---|"]
    for r in rows:
        binding = ", ".join(f"{k} {v}" for k, v in sorted(r["binding_resources"].items()))
        shipped = r["as_shipped"]
        if r["what_if"]:
            shipped += f" **What-if:** {r['what_if']['why']}."
        lines.append(f"| {r['network']} | {r['neurons']:,} | {binding} | {r['bottleneck']} | "
                     f"{shipped} |")
    lines.append("")
    for r in rows:
        if "validation" in r:
            lines += validation_section(r, num)
    return lines


VALIDATION_TITLES = {"pilotnet-lif": "PilotNet LIF on one Loihi 2",
                     "pilotnet-sdnn": "PilotNet SDNN (sigma-delta) on one Loihi 2"}


def validation_section(r: dict[str, Any], num: Any) -> list[str]:
    """One network beside Intel's measurements: the estimate, the headline run, the ratio;
    every stored run of Intel's notebook with the ratios against it; what the model leaves
    out."""
    v = r["validation"]
    m = v["measured"]
    same = ""
    if r.get("file"):
        f = r["file"]
        same = (f" The file read has git blob id `{f['git_blob']}`, "
                + ("the same as" if f["same_as_measured"] else "**not** the same as")
                + f" {f['measured_file']}.")
    checked = ""
    if v.get("verified"):
        cells = [line.split(": ", 1)[1] for line in v["verified"] if m["commit"][:7] in line]
        checked = (" Every measured figure below was checked against the notebooks' stored "
                   "outputs in lava-dl's git history (`--lava-dl`); headline run: "
                   + "; ".join(cells) + " (cell = index in the notebook's `cells`).")
    low = any(x.get("estimate_low") is not None for x in v["rows"])
    lines = [f"### Validation: {VALIDATION_TITLES.get(r['network'], r['network'])}", "",
             f"Measured: {m['source']}: cells printing `Throughput`, `Total/Dynamic/Static "
             f"Power` and `Total/Dynamic Energy per inference`, and the compiler's core table "
             f"(`| Total | {m['cores']}|`). Estimated: the row `{r['network']}` above "
             f"({r['weights']}; {r['inputs']}).{same}{checked} No constant was fitted to "
             "these points.", ""]
    if low:
        lines += ["| figure | estimate (upper-activity bound) | estimate (lower-activity bound) | "
                  "measured | estimate / measured (lower .. upper bound) |", "|---|---|---|---|---|"]
    else:
        lines += ["| figure | estimate | measured | estimate / measured |", "|---|---|---|---|"]
    for x in v["rows"]:
        ratio = num(x["estimate_over_measured"])
        if x.get("estimate_low_over_measured") is not None:
            ratio = f"{num(x['estimate_low_over_measured'])} .. {ratio}"
        elif x["estimate_over_measured"] is None:
            ratio = "– (measured value not positive: below the board's resolution)"
        cells = [f"{x['estimate']:.4g}"]
        if low:
            cells.append("–" if x.get("estimate_low") is None else f"{x['estimate_low']:.4g}")
        lines.append(f"| {x['figure']} | {' | '.join(cells)} | {x['measured']:.4g} | {ratio} |")
    lines += ["", "Every stored run of Intel's notebook (lava-dl's history: main and the heads of "
              "pull requests #119 and #121), the same file each time; the last is the headline "
              "above:", "",
              "| commit | date | board | cores | frames/s | power total / dynamic / static (W) | "
              "energy per inference total / dynamic (mJ) | estimate / measured: throughput, "
              f"total energy{' (upper-activity bound)' if low else ''} |", "|---|---|---|---|---|---|---|---|"]
    per_run = {p["commit"]: p for p in v.get("per_run", [])}
    for run in v["runs"]:
        p = per_run.get(run["commit"], {})
        lines.append(
            f"| `{run['commit'][:7]}` ({run['ref']}) | {run['date']} | {run['board_words']} | "
            f"{run['cores']} | {run['frames_per_s']:g} | {run['total_power_w']:.3f} / "
            f"{run['dynamic_power_w']:.3f} / {run['static_power_w']:.3f} | "
            f"{run['energy_per_inference_mj']:.3f} / {run['dynamic_energy_per_inference_mj']:.3f} "
            f"| {num(p.get('throughput'))}, {num(p.get('total_energy'))} |")
    if "cores_per_population" in v:
        per_pop = ", ".join(f"{k} {n}" for k, n in v["cores_per_population"].items())
        measured = ", ".join(f"{k} {n}" for k, n in v["measured_cores_per_layer"].items())
        lines += ["", f"Cores per layer, estimated (slices may share cores): {per_pop}; "
                      f"Lava's compiler: {measured}."]
    if "cores_without_skipped" in r:
        c = r["cores_without_skipped"]
        lines += ["", f"Cores: {r['cores']} in all, {c['cores']} holding a population other "
                      f"than {', '.join(c['skipped'])} (the input layer the benchmark leaves "
                      "off the chip with `skip_layers=1`); Lava's compiler used 61 for the rest."]
    lines += ["", "What the model leaves out:", ""]
    lines += [f"- {item}" for item in v["left_out"]]
    lines += [f"- {note}" for note in r["notes"] if "random" in note.lower()
              or "read_any" in note or "Direct projection" in note]
    lines.append("")
    return lines


DENSE_LABELS = {"ann_teacher": "ANN teacher", "snn_scratch": "SNN from scratch (kd none)",
                "snn_sakd": "SAKD (level 1 + 2)"}


def _energy(row: dict[str, Any]) -> str:
    return ", ".join(f"{v / 1e6:.3g} µJ ({k})" for k, v in row.get("energy_pj_per_inference", {}).items())


def dense_section(data: dict[str, Any]) -> list[str]:
    """Detection or segmentation on the generated digit scenes (benchmarks/dense_sakd.py)."""
    task = data["task"]
    rows = data["rows"]
    title = "Object detection" if task == "detection" else "Semantic segmentation"
    keys = ([("map_50", "mAP@.5"), ("map", "mAP@[.5:.95]")] if task == "detection"
            else [("miou", "mIoU"), ("pixel_acc", "pixel acc.")])
    lines = [f"## {title} on the generated digit scenes (SAKD beyond classification)", "",
             f"Command: `{data['command']}` — {data['arch']} (base config `{data['config']}`, "
             f"overrides {', '.join(data['overrides'])}), T = {data['time_steps']}, the same "
             f"epochs and seed for every SNN; {_machine(data)}; {data['machine'].get('note', '')}. "
             "Figures of the test split after the last epoch (no validation split, so nothing "
             "was selected on the test split). On chip: the bit-accurate simulation of the "
             "export (`sakd export`, `sakd simulate`) on the same test images; "
             f"{next((r['host'] for r in rows.values() if 'host' in r), '')}.", ""]
    header = ["network", "epochs"] + [f"{label} float" for _, label in keys] + \
        [f"{label} on chip" for _, label in keys] + ["spikes / inference", "SynOps / inference",
                                                     "energy / inference"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        chip = row.get("on_chip", {})
        cells = [DENSE_LABELS.get(name, name), str(row["epochs"])]
        cells += [f"{row['float'][k]:.3f}" for k, _ in keys]
        cells += [f"{chip[k]:.3f}" if k in chip else "–" for k, _ in keys]
        cells += [f"{row['spikes_per_inference']:,.0f}" if "spikes_per_inference" in row else "–",
                  f"{row['synops_per_inference']:,.0f}" if "synops_per_inference" in row else "–",
                  _energy(row) or "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for name, row in rows.items():
        if "float_snn_same_images" in row and "on_chip" in row:
            k, label = keys[0]
            delta = row["on_chip"][k] - row["float_snn_same_images"][k]
            lines.append(f"- {DENSE_LABELS.get(name, name)}: on chip − float = {delta:+.4f} "
                         f"{label} ({row['chip_images']} images; readouts "
                         f"{', '.join(row['readouts'])}; latency {row['latency']} steps).")
    sakd, scratch, teacher = rows.get("snn_sakd"), rows.get("snn_scratch"), rows.get("ann_teacher")
    if sakd and scratch and teacher:
        k, label = keys[0]
        lines.append(f"- SAKD − SNN from scratch: {sakd['float'][k] - scratch['float'][k]:+.3f} "
                     f"{label} (float); ANN teacher − SAKD: "
                     f"{teacher['float'][k] - sakd['float'][k]:+.3f} (the teacher trained "
                     f"{teacher['epochs']} epochs, the SNNs {sakd['epochs']}). SAKD here is level 1 "
                     "(the teacher's weights) and level 2 together; docs/detection.md separates "
                     "them (on detection, level 1 with the task loss alone did as well as SAKD).")
    energy = ("- Energy: `sakd energy`'s report builder on the simulation's exact counts "
              "(loihi: the Loihi pre-silicon figures; cmos45-fp32: the same events priced as "
              "45 nm fp32 operations; shared/spec/energy.md).")
    priced = {name: row for name, row in rows.items() if "ann_macs_per_inference" in row}
    if not priced:
        energy += (" This run priced no ANN baseline (sakd did not count dense networks' ANN "
                   "twins then); `sakd energy` on the export does now.")
    lines.append(energy)
    for name, row in priced.items():
        ratios = ", ".join(f"{v:.3g} ({k})" for k, v in row["energy_snn_over_ann"].items()
                           if v is not None)
        lines.append(f"- {DENSE_LABELS.get(name, name)}: ANN baseline (the teacher's whole "
                     f"network up to the readouts) {row['ann_macs_per_inference']:,} MACs "
                     f"per inference; SNN/ANN energy, the ANN's arithmetic alone: {ratios}; "
                     f"SNN operations / ANN MACs {row['ops_snn_over_ann_macs']:.3g}.")
        like = row.get("like_for_like")
        if like:
            bounds = " .. ".join(f"{'≥ ' if r['lower_bound'] else ''}{r['ratio']:.3g}"
                                 for r in like.values())
            lines.append(f"  Like for like (the chip's dynamic energy, "
                         f"{row['chip_dynamic_pj_per_inference'] / 1e6:.3g} µJ, over the 8-bit "
                         f"ANN twin of {row['ann_twin_macs']:,} MACs with memory access, no "
                         f"reuse .. full reuse): SNN/ANN {bounds}.")
    lines.append("")
    return lines


def main() -> None:
    lines = ["# Results", "",
             "Measured figures; each section names the command that produced it and the machine. "
             "Regenerate with `.venv/bin/python benchmarks/make_results.py`.", ""]
    digits = _load("digits_sakd")
    if digits:
        lines += digits_section(digits)
    for name, tag in (("fashion_mnist", "full"), ("fashion_mnist_cpu", "cpu"), ("fashion_mnist_quick", "quick")):
        data = _load(name)
        if data:
            lines += fashion_section(data, tag)
    cost = _load("training_cost")
    if cost:
        lines += training_cost_section(cost)
    sim, lava = _load("simulator_throughput"), _load("lava_vs_sakd")
    if sim or lava:
        lines += speed_section(sim, lava)
    pilotnet = _load("pilotnet_netx")
    if pilotnet:
        lines += pilotnet_section(pilotnet)
    roofline = _load("roofline") or _load("roofline_quick")
    if roofline:
        lines += roofline_section(roofline)
    lines += mapping_section(_load("mapping"))
    for task in ("detection", "segmentation"):
        dense = _load(f"dense_sakd_{task}")
        if dense and "rows" in dense and "command" in dense:
            lines += dense_section(dense)
    atomic_write_text(DOCS / "results.md", "\n".join(lines) + "\n")
    print(f"wrote {DOCS / 'results.md'}")


if __name__ == "__main__":
    main()
