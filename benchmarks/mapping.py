"""Mapping benchmark: four networks mapped onto Loihi 2 with ``sakd.app.map`` (the functions
behind ``sakd map``), and Intel's PilotNet LIF and SDNN networks beside Intel's published
measurements.

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

Validation: Intel's two PilotNet netx networks beside every measurement Intel published for
them (``MEASUREMENTS``: the stored outputs of lava-dl's ``tutorials/lava/lib/dl/netx/
pilotnet_{snn,sdnn}/benchmark.ipynb`` at each commit of lava-dl's history that changed them,
main and the heads of pull requests #119 and #121, https://github.com/lava-nc/lava-dl: six runs
of each, Oheo Gulch and Kapoho Point), with the ratios; no constant is fitted to them.
``--lava-dl GIT_DIR`` re-reads every run from a clone and refuses any figure that differs.

- ``pilotnet-lif``: ``pilotnet_snn/network.net`` (git blob bd720b9e...; lava-dl keeps the same
  file as ``tests/lava/lib/dl/netx/gts/pilotnet_lif/network.net``, which the Lava environment
  installs; ``--pilotnet PATH`` for another copy), read by ``sakd.formats.read_any`` with its
  own weights and simulated for 16 steps (the benchmark's reset interval) on the driving frame
  of lava-dl's ground truth (``image.npy`` beside it).
- ``pilotnet-sdnn``: ``pilotnet_sdnn/network.net`` (git blob 532f702d...; lava-dl's wheel has
  no copy: ``--pilotnet-sdnn PATH``, e.g. ``git -C lava-dl show b9e3691:tutorials/lava/lib/dl/
  netx/pilotnet_sdnn/network.net > pilotnet_sdnn.net``; a file of another blob is refused),
  simulated for 16 steps on the same frame in the SDNN tutorial's input range, held (a lower
  bound on a video's activity) and alternating with a blank frame (an upper bound); a frame is
  one step, as in Intel's benchmark, whose first layer (``skip_layers=1``) runs on the host.

Every row records the command that produced it (``command``; ``--keep`` keeps the other rows
with theirs), and the file's top-level ``commands`` lists them.

Prints a table and saves benchmarks/results/mapping.json (atomically).

    .venv/bin/python benchmarks/mapping.py [--demo-checkpoint PATH] [--pilotnet PATH]
        [--pilotnet-sdnn PATH] [--lava-dl GIT_DIR] [--only demo,fashion,...,pilotnet,
        pilotnet-sdnn] [--samples N] [--imagenet-samples N] [--imagenet-size N] [--keep]
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
# validation: Intel's PilotNet netx files beside Intel's measurements on Loihi 2
# ---------------------------------------------------------------------------------------------

LAVA_DL = "https://github.com/lava-nc/lava-dl"
NOTEBOOKS = {"pilotnet-lif": "tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb",
             "pilotnet-sdnn": "tutorials/lava/lib/dl/netx/pilotnet_sdnn/benchmark.ipynb"}
#: the git blob id of each measured network file in lava-dl (the ``network.net`` beside the
#: notebook; the same blob at every commit of MEASUREMENTS)
BLOBS = {"pilotnet-lif": "bd720b9e0be0700e0e787e2586e9452b9e0630c8",
         "pilotnet-sdnn": "532f702da7ba533f45473bc178b9c5610b94a47f"}
PILOTNET_BLOB = BLOBS["pilotnet-lif"]
#: where lava-dl keeps the same PilotNet LIF file for its tests (the Lava environment installs
#: it); lava-dl ships no copy of the SDNN tutorial's file (its tests' pilotnet_sdnn/network.net
#: is another network, blob 6abc22f3...)
PILOTNET_IN_WHEEL = "tests/lava/lib/dl/netx/gts/pilotnet_lif/network.net"
#: steps per inference in each benchmark: LIF resets every 16 steps (``reset_interval=16``,
#: throughput = 1e6 / avg_time_per_step / 16); SDNN streams a frame per step (throughput =
#: 1e6 / avg_time_per_step)
STEPS_PER_FRAME = {"pilotnet-lif": 16, "pilotnet-sdnn": 1}
#: the benchmark's partition as printed ("Running on ..."), in words
BOARDS = {"oheogulch": "Oheo Gulch (one Loihi 2 chip)",
          "kp_build": "Kapoho Point (8 Loihi 2 chips; the notebook divides the static power by "
                      "8 and removes 7 chips' share)"}
#: the figures each benchmark prints, the line's pattern and the unit
PRINTED = {
    "board": (r"Running on (\S+)", ""),
    "cores": (r"\|\s*Total\s*\|\s*(\d+)\s*\|", "cores"),
    "frames_per_s": (r"Throughput\s*:\s*(-?[\d.]+)\s*fps", "frames/s"),
    "total_power_w": (r"Total Power\s*:\s*(-?[\d.]+)\s*W", "W"),
    "dynamic_power_w": (r"Dynamic Power\s*:\s*(-?[\d.]+)\s*W", "W"),
    "static_power_w": (r"Static Power\s*:\s*(-?[\d.]+)\s*W", "W"),
    "energy_per_inference_mj": (r"Total Energy per inference\s*:\s*(-?[\d.]+)\s*mJ", "mJ"),
    "dynamic_energy_per_inference_mj": (r"Dynamic Energy per inference\s*:\s*(-?[\d.]+)\s*mJ",
                                        "mJ"),
}


def parse_benchmark_outputs(notebook: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The figures a lava-dl benchmark notebook printed in its stored outputs: per figure of
    ``PRINTED`` its value (str for the board, int for cores, float otherwise), unit, cell
    (index in the notebook and execution count) and the printed line. A figure printed twice
    is an error (the notebook is not the one this parser knows)."""
    found: dict[str, dict[str, Any]] = {}
    for index, cell in enumerate(notebook.get("cells", [])):
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain") or ""
            text = re.sub(r"\x1b\[[0-9;]*m", "", "".join(text))
            for line in text.splitlines():
                for key, (pattern, unit) in PRINTED.items():
                    hit = re.search(pattern, line)
                    if not hit:
                        continue
                    if key in found:
                        raise ValueError(f"{key} printed twice (cells {found[key]['cell']} "
                                         f"and {index})")
                    raw = hit.group(1)
                    value: Any = raw if key == "board" else int(raw) if key == "cores" \
                        else float(raw)
                    found[key] = {"value": value, "unit": unit, "cell": index,
                                  "execution_count": cell.get("execution_count"),
                                  "line": line.strip()}
    return found


@dataclass(frozen=True)
class Measurement:
    """One run of a lava-dl benchmark notebook on Loihi 2, as its stored outputs print it
    (``PRINTED``: frames/s, W, mJ per inference, cores of Lava's compiler), at ``commit``."""

    network: str  # "pilotnet-lif" | "pilotnet-sdnn"
    commit: str  # lava-dl commit whose notebook holds these outputs
    date: str
    ref: str  # where the commit is: main, or the pull request whose head holds it
    board: str  # the partition printed ("Running on ...")
    cores: int
    frames_per_s: float
    total_power_w: float
    dynamic_power_w: float
    static_power_w: float
    energy_per_inference_mj: float
    dynamic_energy_per_inference_mj: float

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.network]

    @property
    def step_us(self) -> float:
        """Measured time per step, µs: 1e6 / (frames/s x steps per frame)."""
        return 1e6 / (self.frames_per_s * STEPS_PER_FRAME[self.network])

    def source(self) -> str:
        return (f"lava-dl {self.notebook} at commit {self.commit[:7]} ({self.date}, {self.ref}), "
                f"stored outputs, {BOARDS.get(self.board, self.board)}")

    def to_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        out.update(notebook=self.notebook, step_us=self.step_us, source=self.source(),
                   board_words=BOARDS.get(self.board, self.board),
                   steps_per_frame=STEPS_PER_FRAME[self.network])
        return out


def _m(network: str, commit: str, date: str, ref: str, board: str, cores: int, *v: float) -> Measurement:
    return Measurement(network, commit, date, ref, board, cores, *v)


#: Every distinct set of stored outputs of the two benchmark notebooks in lava-dl's history
#: (main and the heads of pull requests #119 and #121; later commits repeat them), transcribed
#: by ``parse_benchmark_outputs`` and checked against lava-dl's git history by ``--lava-dl``.
#: The last of each network is the one on lava-dl's main branch and in its 0.6.0 release.
#: Values: frames/s, total / dynamic / static power (W), total / dynamic energy per inference (mJ).
MEASUREMENTS: tuple[Measurement, ...] = (
    _m("pilotnet-lif", "d24200a8bdd162232d56283ba6c3e37d8d270d77", "2022-10-12", "PR #119", "kp_build", 74,
       342.29, 0.826347, 0.474284, 0.352063, 2.414157, 1.385611),
    _m("pilotnet-lif", "f49e18b21cb27aa2035a966d80403b277d830ed1", "2022-10-12", "PR #119", "kp_build", 74,
       343.34, 0.770246, 0.411606, 0.358639, 2.243372, 1.19882),
    _m("pilotnet-lif", "76c8fbb63ac9726b759a7ca53fdd7e598e6a3821", "2022-10-25", "main", "oheogulch", 74,
       415.51, 0.411676, 0.233617, 0.178059, 0.990769, 0.562239),
    _m("pilotnet-lif", "b5200e2030d45b4176f4744c2f5e6de973b427f3", "2022-10-28", "PR #121", "oheogulch", 74,
       414.72, 0.788627, 0.406901, 0.381726, 1.901594, 0.981149),
    _m("pilotnet-lif", "baa23ad80f71b22d2c170f23ff7624c7680105d0", "2022-10-28", "main", "oheogulch", 74,
       413.76, 0.752382, 0.443005, 0.309377, 1.818389, 1.070673),
    _m("pilotnet-lif", "b9e369172b46bb0aa5494ed91613c1a5338aa734", "2023-01-10", "main", "oheogulch", 74,
       408.91, 0.679234, 0.447156, 0.232078, 1.661103, 1.093544),
    _m("pilotnet-sdnn", "f49e18b21cb27aa2035a966d80403b277d830ed1", "2022-10-12", "PR #119", "kp_build", 61,
       11.73, 0.385478, 0.033617, 0.351861, 32.874257, 2.866889),
    _m("pilotnet-sdnn", "d3ad95a6a86f78f96b6f736e2af69c236709ed97", "2022-10-24", "PR #119", "oheogulch", 61,
       13.71, 0.211692, 0.003945, 0.207747, 15.441706, 0.287762),
    _m("pilotnet-sdnn", "76c8fbb63ac9726b759a7ca53fdd7e598e6a3821", "2022-10-25", "main", "oheogulch", 61,
       15.29, 0.179785, 0.011906, 0.167879, 11.75669, 0.778551),
    _m("pilotnet-sdnn", "b5200e2030d45b4176f4744c2f5e6de973b427f3", "2022-10-28", "PR #121", "oheogulch", 61,
       14.22, 0.363615, 0.009149, 0.354466, 25.566794, 0.643263),
    _m("pilotnet-sdnn", "baa23ad80f71b22d2c170f23ff7624c7680105d0", "2022-10-28", "main", "oheogulch", 61,
       11.18, 0.357242, 0.015008, 0.342234, 31.964948, 1.342877),
    _m("pilotnet-sdnn", "b9e369172b46bb0aa5494ed91613c1a5338aa734", "2023-01-10", "main", "oheogulch", 61,
       16.87, 0.275709, -0.006066, 0.281775, 16.343833, -0.359587),
)


def measured_runs(network: str) -> list[Measurement]:
    """The runs of ``network`` in MEASUREMENTS, oldest first."""
    return [m for m in MEASUREMENTS if m.network == network]


def headline(network: str) -> Measurement:
    """The run set beside the estimate: the last one (lava-dl's main branch and 0.6.0)."""
    return measured_runs(network)[-1]


def verify_measurements(git_dir: Path) -> list[str]:
    """Check every run of MEASUREMENTS against a clone of lava-dl (``git_dir``: its .git or a
    bare repository): the notebook at the run's commit prints exactly the transcribed figures,
    and the network file beside it has the blob id of BLOBS. Returns one line per run checked;
    raises SystemExit naming the first difference."""
    import json
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True,
                              capture_output=True, text=True).stdout

    lines = []
    for m in MEASUREMENTS:
        printed = parse_benchmark_outputs(json.loads(git("show", f"{m.commit}:{m.notebook}")))
        for key in PRINTED:
            if key not in printed or printed[key]["value"] != getattr(m, key):
                got = printed.get(key, {}).get("value", "nothing")
                raise SystemExit(f"--lava-dl: {m.notebook} at {m.commit[:7]} prints {key} = {got}, "
                                 f"MEASUREMENTS says {getattr(m, key)}")
        folder = m.notebook.rsplit("/", 1)[0]
        blob = git("rev-parse", f"{m.commit}:{folder}/network.net").strip()
        if blob != BLOBS[m.network]:
            raise SystemExit(f"--lava-dl: {folder}/network.net at {m.commit[:7]} is blob {blob}, "
                             f"not the measured file {BLOBS[m.network]}")
        cells = ", ".join(f"{k} cell {printed[k]['cell']}" for k in PRINTED)
        lines.append(f"{m.network} {m.commit[:7]}: every figure as printed ({cells}); "
                     f"network.net is blob {blob[:8]}")
    return lines


def git_blob_id(path: Path) -> str:
    """The id git gives the file's content (sha1 of "blob <size>\\0" + bytes)."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def check_measured_file(path: Path, network: str) -> str:
    """The file's git blob id if it is the file Intel measured for ``network``; else
    SystemExit (an estimate of another file must not stand beside the measurement)."""
    blob = git_blob_id(path)
    if blob != BLOBS[network]:
        raise SystemExit(f"{path}: git blob {blob}, not the measured {network} file "
                         f"({NOTEBOOKS[network].rsplit('/', 1)[0]}/network.net, blob "
                         f"{BLOBS[network]}); pass the file of {LAVA_DL}")
    return blob


def find_pilotnet() -> Path | None:
    """lava-dl's PilotNet LIF netx file where the Lava environment installed it (lava-dl's
    wheel ships its tests, whose ground truth folder holds the tutorial's file), else None."""
    for path in sorted(ROOT.glob(".venv-lava/lib/python3*/site-packages/" + PILOTNET_IN_WHEEL)):
        return path
    return None


def driving_frame() -> tuple[np.ndarray | None, str]:
    """lava-dl's ground-truth driving frame ((C, H, W) from its stored W x H x C), the one public
    PilotNet frame in the Lava environment, or None."""
    found = find_pilotnet()
    image = found.parent / "image.npy" if found else None
    if image is None or not image.is_file():
        return None, ""
    frame = np.load(image).transpose(2, 1, 0).astype(np.float64)  # (W, H, C) -> (C, H, W)
    return frame, f"lava-dl's ground-truth driving frame ({PILOTNET_IN_WHEEL.rsplit('/', 1)[0]}/" \
                  f"image.npy, {'x'.join(map(str, frame.shape))})"


def pilotnet_frames(path: Path, samples: int) -> tuple[np.ndarray, str]:
    """[N, C, H, W] frames for PilotNet LIF: the driving frame of lava-dl's ground truth
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


def ratio(estimate: float | None, measured: float | None) -> float | None:
    """estimate / measured, None when either is missing or the measurement is not positive
    (a dynamic power below the board's resolution can print negative)."""
    if estimate is None or measured is None or measured <= 0:
        return None
    return estimate / measured


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


#: what the model leaves out, for both PilotNet rows
LEFT_OUT_COMMON = [
    "Host I/O and the embedded x86 cores' management per step (Lava's runtime, the profilers' "
    "probes) are not modelled; the input enters at tile (0, 0).",
    "Per-operation energies are Loihi 1 pre-silicon figures (Davies 2018) applied to Loihi 2; "
    "Loihi 2 has no public per-operation table.",
    "Lava's compiler places every layer on cores of its own and budgets synapse memory in its "
    "own units (SynMem 12,000); this mapper packs slices of different layers onto shared cores "
    "and counts memory in the Loihi 1 synapse format.",
    "No cycle-level effects: mean activity per step, no congestion stalls; the time model is a "
    "lower-bound form (max of compute and communication, plus barrier).",
]


def validation_rows(figures: list[tuple[str, float | None, float | None, float | None]],
                    runs: list[Measurement], network: str) -> dict[str, Any]:
    """The table beside the measurement: per figure (name, estimate, a lower estimate or None,
    the headline measurement) the ratios, and per stored run of ``network`` the same ratios
    for throughput and energy (the spread of Intel's own runs)."""
    rows = []
    for figure, est, low, meas in figures:
        rows.append({"figure": figure, "estimate": est, "estimate_low": low, "measured": meas,
                     "estimate_over_measured": ratio(est, meas),
                     "estimate_low_over_measured": ratio(low, meas)})
    return {"measured": headline(network).to_dict(), "rows": rows,
            "runs": [m.to_dict() for m in runs]}


def run_pilotnet(path: Path, samples: int) -> dict[str, Any]:
    """The PilotNet LIF row beside Intel's measurements: the netx file read by sakd (its own
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
    row["file"] = file_record(path, blob, "pilotnet-lif")
    row["notes"] = [file_note(blob, "pilotnet-lif"), *row["notes"]]
    meas = headline("pilotnet-lif")
    est_fps = row["throughput_pipelined_per_s"]
    figures = [
        ("cores", row["cores"], None, meas.cores),
        ("time per step (µs)", row["step_ns"] / 1e3, None, meas.step_us),
        ("throughput (frames/s)", est_fps, None, meas.frames_per_s),
        ("dynamic energy per inference (mJ)", row["energy_pj"]["dynamic"] / 1e9, None,
         meas.dynamic_energy_per_inference_mj),
        ("total energy per inference (mJ)", row["energy_pj"]["total"] / 1e9, None,
         meas.energy_per_inference_mj),
    ]
    runs = measured_runs("pilotnet-lif")
    row["validation"] = validation_rows(figures, runs, "pilotnet-lif")
    row["validation"]["per_run"] = [
        {"commit": m.commit, "board": m.board,
         "throughput": ratio(est_fps, m.frames_per_s),
         "dynamic_energy": ratio(row["energy_pj"]["dynamic"] / 1e9,
                                 m.dynamic_energy_per_inference_mj),
         "total_energy": ratio(row["energy_pj"]["total"] / 1e9, m.energy_per_inference_mj)}
        for m in runs]
    row["validation"]["cores_per_population"] = {
        k: p["cores"] for k, p in row["binding"].items()}
    row["validation"]["measured_cores_per_layer"] = {
        "input": 13, "conv1": 25, "conv2": 13, "conv3": 3, "conv4": 3, "conv5": 2, "fc1": 12,
        "fc2": 1, "fc3": 1, "fc4": 1}
    row["validation"]["left_out"] = [
        LEFT_OUT_COMMON[0] + " Intel's SDNN notebook names frame input as its bottleneck; this "
        "benchmark writes its one frame into the input layer's bias once, so host I/O is small "
        "here, but the runtime's per-step management is not.",
        *LEFT_OUT_COMMON[1:],
        "Activity is that of one frame (lava-dl's ground-truth frame, not the benchmark's frame "
        "100 of the PilotNet data set, which is not public here); the benchmark writes its frame "
        "into the input layer's bias once, here the frame enters the input layer's a_in as "
        "lava-dl's test runs it, counted as a message per pixel and step (an upper bound on "
        "input traffic).",
        "The static power of the loihi2 profile (0.232 W) is the headline run's own "
        "measurement, so the static part of the total is not an independent check; Intel's "
        "Oheo Gulch runs measured 0.178 to 0.382 W.",
    ]
    return row


def file_record(path: Path, blob: str, network: str) -> dict[str, Any]:
    folder = NOTEBOOKS[network].rsplit("/", 1)[0]
    return {"path": str(path), "git_blob": blob, "same_as_measured": blob == BLOBS[network],
            "measured_file": f"lava-dl {folder}/network.net (git blob {BLOBS[network]})"}


def file_note(blob: str, network: str) -> str:
    return (f"The file's git blob id is {blob}: "
            + ("the same file as the tutorial's measured network.net." if blob == BLOBS[network]
               else "NOT the tutorial's measured network.net."))


#: the SDNN benchmark's first layer, which ``skip_layers=1`` leaves off the chip (a delta
#: encoder on the host sends the frame changes to the first convolution instead)
SDNN_SKIPPED = ("layer0",)
SDNN_STEPS = 16


def sdnn_frames(frame: np.ndarray | None) -> tuple[dict[str, np.ndarray], str]:
    """Two input sequences [T, 1, 3, 66, 200] for PilotNet SDNN, bounds on a video's activity:
    ``held`` (one frame held for T steps: one change, then none) and ``alternating`` (the frame
    and a blank frame in turn: a whole frame's change every step). The frame is lava-dl's
    ground-truth driving frame (LIF transform 80 p - 4 undone, the SDNN tutorial's 128 p - 64
    applied: get_input_transform's defaults for a file without them), else a seeded random
    frame in the same range."""
    if frame is None:
        frame = np.random.default_rng(1).integers(0, 77, size=(3, 66, 200)).astype(np.float64)
        what = "a seeded random frame (integers 0..76)"
    else:
        what = "lava-dl's ground-truth driving frame"
    pixel = (frame + 4.0) / 80.0  # the LIF transform undone: pixel / 255 in [0, 1]
    x = np.rint(128.0 * pixel - 64.0)
    blank = np.zeros_like(x)
    held = np.broadcast_to(x, (SDNN_STEPS, 1, *x.shape)).copy()
    alternating = np.stack([x if t % 2 == 0 else blank for t in range(SDNN_STEPS)])[:, None]
    return ({"held": held, "alternating": alternating},
            f"{what} as the SDNN tutorial's input (128 p - 64), {SDNN_STEPS} steps: held "
            f"(lower bound on a video's activity) and alternating with a blank frame (upper "
            f"bound); the row's figures are the alternating case")


def run_pilotnet_sdnn(path: Path) -> dict[str, Any]:
    """The PilotNet SDNN row beside Intel's measurements: the tutorial's netx file (refused
    unless it is the measured blob) read by sakd, simulated on the two input bounds of
    ``sdnn_frames``; a frame is one step, as in Intel's benchmark."""
    from sakd.formats import read_any

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    blob = check_measured_file(path, "pilotnet-sdnn")
    network = read_any(path, time_steps=SDNN_STEPS)
    frame, _ = driving_frame()
    sequences, inputs = sdnn_frames(frame)
    seconds["read"] = time.perf_counter() - start
    rows = {}
    for case, x in sequences.items():
        start = time.perf_counter()
        counts = simulate(network, network.input.encode(x), time_steps=SDNN_STEPS,
                          sequence=True).counts
        seconds[f"simulate_{case}"] = time.perf_counter() - start
        est, _, _ = map_with_what_if(network, counts, None, SDNN_STEPS)
        on_chip = len({s.core for s in est.mapping.slices if s.population not in SDNN_SKIPPED})
        rows[case] = (counts, est, on_chip)
    counts, _, on_chip = rows["alternating"]
    weights = f"the file's own ({path.name}, read by sakd.formats.read_any)"
    row = row_for("pilotnet-sdnn", network, counts, None, weights=weights, inputs=inputs,
                  seconds=seconds)
    row["file"] = file_record(path, blob, "pilotnet-sdnn")
    row["cores_without_skipped"] = {"skipped": list(SDNN_SKIPPED), "cores": on_chip}
    meas = headline("pilotnet-sdnn")

    def per_frame(case: str) -> dict[str, float]:
        _, est, cores = rows[case]
        t, e = est.time, est.energy
        return {"cores": cores, "step_us": t.step_ns / 1e3, "fps": 1e9 / t.step_ns,
                "dynamic_mj": e.dynamic_pj / SDNN_STEPS / 1e9,
                "total_mj": e.total_pj / SDNN_STEPS / 1e9}

    hi, lo = per_frame("alternating"), per_frame("held")
    figures = [
        ("cores (without the skipped input layer)", hi["cores"], None, meas.cores),
        ("time per step = per frame (µs)", hi["step_us"], lo["step_us"], meas.step_us),
        ("throughput (frames/s)", hi["fps"], lo["fps"], meas.frames_per_s),
        ("dynamic energy per frame (mJ)", hi["dynamic_mj"], lo["dynamic_mj"],
         meas.dynamic_energy_per_inference_mj),
        ("dynamic power at the measured frame rate (W)", hi["dynamic_mj"] * 1e-3 *
         meas.frames_per_s, lo["dynamic_mj"] * 1e-3 * meas.frames_per_s, meas.dynamic_power_w),
        ("total energy per frame (mJ)", hi["total_mj"], lo["total_mj"],
         meas.energy_per_inference_mj),
    ]
    runs = measured_runs("pilotnet-sdnn")
    row["validation"] = validation_rows(figures, runs, "pilotnet-sdnn")
    row["validation"]["bounds"] = {"alternating": hi, "held": lo}
    row["validation"]["per_run"] = [
        {"commit": m.commit, "board": m.board, "throughput": ratio(hi["fps"], m.frames_per_s),
         "throughput_low": ratio(lo["fps"], m.frames_per_s),
         "dynamic_power_at_measured_rate_w": [lo["dynamic_mj"] * 1e-3 * m.frames_per_s,
                                              hi["dynamic_mj"] * 1e-3 * m.frames_per_s],
         "measured_dynamic_power_w": m.dynamic_power_w,
         "total_energy": ratio(hi["total_mj"], m.energy_per_inference_mj)}
        for m in runs]
    row["validation"]["left_out"] = [
        "The measured time is the host's: the notebook says the run is bottlenecked by sending "
        "input frames to the chip (a Python delta encoder, PyDeltaEncoderModelSparse, and "
        "PyToN3ConvAdapter, 16-bit messages, for every frame); the model has no host-to-chip "
        "term, so its time is the chip's alone, about three orders of magnitude shorter.",
        *LEFT_OUT_COMMON[1:],
        "The measured dynamic power is within the board's resolution (Intel's runs on Oheo "
        "Gulch print -0.006 to +0.015 W): no ratio is meaningful for it; the estimate's "
        "dynamic power at the measured frame rate is set beside it instead.",
        "A graded (sigma-delta) message is priced as a binary spike: its synaptic operations "
        "at the synaptic-op time and energy (a multiply by the payload costs no more, an "
        "assumption: Loihi 2's graded-spike costs are not public), its payload loading routers "
        "and links by its bits. The layer the benchmark skips (its delta encoding runs on the "
        "host) is mapped and priced here; its cores are left out of the core count only.",
        "The benchmark streams consecutive frames of the PilotNet driving data set (not public "
        "here): the estimate brackets its activity between one frame held and a whole frame's "
        "change every step.",
    ]
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
                low = "" if v["estimate_low"] is None else f" (low {v['estimate_low']:.4g})"
                print(f"  {v['figure']:44} estimate {v['estimate']:10.4g}{low}  measured "
                      f"{v['measured']:10.4g}  ratio {_fmt(v['estimate_over_measured'])}")


#: the names ``--only`` takes, and the network each one's row is named
ONLY = {**{s.name: s.name for s in SPECS}, "pilotnet": "pilotnet-lif",
        "pilotnet-sdnn": "pilotnet-sdnn"}


def networks_of(command: str) -> set[str]:
    """The rows a ``benchmarks/mapping.py`` command line produced (its ``--only``, else all)."""
    only = re.search(r"--only (\S+)", command)
    names = only.group(1).split(",") if only else list(ONLY)
    return {ONLY.get(n, n) for n in names}


def attribute_commands(rows: list[dict[str, Any]], earlier: str) -> None:
    """Give each kept row without a ``command`` the last of the ``earlier`` command lines
    (joined by ``JOIN``, as files before per-row commands recorded them) that produced it."""
    commands = earlier.split(JOIN)
    for row in rows:
        if "command" not in row:
            row["command"] = next((c for c in reversed(commands)
                                   if row["network"] in networks_of(c)), commands[-1])


def this_command(args: argparse.Namespace) -> str:
    """This run's command line (every option that is set, defaults included)."""
    return "benchmarks/mapping.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if v not in (None, False) and k not in ("out", "keep")) + (" --keep" if args.keep else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-checkpoint", type=Path, default=None,
                        help="a trained digits convnet student (else random weights)")
    parser.add_argument("--pilotnet", type=Path, default=None,
                        help="lava-dl's tutorials/lava/lib/dl/netx/pilotnet_snn/network.net "
                             "(github.com/lava-nc/lava-dl; default: the same file in the Lava "
                             "environment's lava-dl tests, if installed); without it the "
                             "validation row is skipped")
    parser.add_argument("--pilotnet-sdnn", type=Path, default=None,
                        help="lava-dl's tutorials/lava/lib/dl/netx/pilotnet_sdnn/network.net "
                             f"(git blob {BLOBS['pilotnet-sdnn'][:8]}; lava-dl's wheel has no "
                             "copy); without it the SDNN validation row is skipped")
    parser.add_argument("--lava-dl", type=Path, default=None,
                        help="a clone of lava-dl (its .git folder): check every transcribed "
                             "measurement against the notebooks' stored outputs in its history")
    parser.add_argument("--only", default=",".join([s.name for s in SPECS] + ["pilotnet"]),
                        help="comma-separated networks to run (also pilotnet-sdnn)")
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
    unknown = sorted(wanted - set(ONLY))
    if unknown:
        raise SystemExit(f"--only: unknown network(s) {', '.join(unknown)}; "
                         f"known: {', '.join(ONLY)}")
    verified = verify_measurements(args.lava_dl) if args.lava_dl else None
    if "pilotnet" in wanted and args.pilotnet is None:
        args.pilotnet = find_pilotnet()
    rows: list[dict[str, Any]] = []
    if args.keep and args.out.is_file():
        import json

        before = json.loads(args.out.read_text())
        rows = [r for r in before["rows"] if r["network"] not in {ONLY[w] for w in wanted}]
        attribute_commands(rows, before["command"])
    command = this_command(args)

    def add(row: dict[str, Any]) -> None:
        row["command"] = command
        if verified is not None and "validation" in row:
            row["validation"]["verified"] = [v for v in verified if v.startswith(row["network"])]
        rows.append(row)
        save(args, rows)

    for name, path, run in (("pilotnet", args.pilotnet,
                             lambda p: run_pilotnet(p, args.pilotnet_samples)),
                            ("pilotnet-sdnn", args.pilotnet_sdnn, run_pilotnet_sdnn)):
        if name not in wanted:
            continue
        if path is None or not path.is_file():
            print(f"· {name}: skipped; pass --{name} PATH to lava-dl's "
                  f"{NOTEBOOKS[ONLY[name]].rsplit('/', 1)[0]}/network.net ({LAVA_DL})")
            continue
        print(f"· {name}: {path}", flush=True)
        add(run(path))
    for spec in SPECS:
        if spec.name not in wanted:
            continue
        if spec.classes == 1000:
            spec = replace(spec, shape=(3, args.imagenet_size, args.imagenet_size))
        n = args.imagenet_samples if spec.shape[1] > 64 else args.samples
        print(f"· {spec.name}: {spec.arch} {'x'.join(map(str, spec.shape))}, {n} sample(s)",
              flush=True)
        add(run_network(spec, n, args.demo_checkpoint))
        print(f"  {rows[-1]['cores']:,} cores, {rows[-1]['chips']} chip(s); seconds "
              f"{ {k: round(v, 1) for k, v in rows[-1]['seconds'].items()} }", flush=True)
    print()
    print_table(rows)
    save(args, rows)
    print(f"\nwrote {args.out}")


#: how ``command`` joins the distinct commands behind the rows (files before per-row commands
#: held only this joined line)
JOIN = "` and `.venv/bin/python "


def save(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """The rows so far to ``args.out`` (atomically; after every network, so that a later
    network's failure keeps the earlier rows). Every row names the command that produced it
    (``command``); the top-level ``command`` joins the distinct ones, in row order."""
    order = [*(s.name for s in SPECS), "pilotnet-lif", "pilotnet-sdnn"]
    rows = sorted(rows, key=lambda r: order.index(r["network"]) if r["network"] in order
                  else len(order))
    commands = list(dict.fromkeys(r["command"] for r in rows if "command" in r))
    atomic_write_json(args.out, {
        "command": JOIN.join(commands),
        "commands": [{"command": c, "networks": [r["network"] for r in rows
                                                 if r.get("command") == c]} for c in commands],
        "host": {"platform": platform.platform(), "python": platform.python_version(),
                 "cpus": os.cpu_count()},
        "chip": CHIP, "time_steps": T, "rows": rows,
    })


if __name__ == "__main__":
    main()
