"""PilotNet-size netx files written by lava-dl's own exporters, with seeded random weights.

Run INSIDE the Lava environment (it imports torch and lava.lib.dl.slayer); benchmarks/
pilotnet_netx.py calls it::

    .venv-lava/bin/python benchmarks/pilotnet_files.py OUT_DIR [--seed N]

The architecture is lava-dl's PilotNet (tutorials/lava/lib/dl/netx/pilotnet_{snn,sdnn}): a
3x66x200 input layer with a neuron (fed through its ``a_in``), five 3x3 convolutions (3->24
stride 2, 24->36 stride 2, 36->48 stride 2, 48->64 stride (2, 1) padding (1, 0), 64->64),
flatten (2560), dense 100, 50, 10 and 1: 158,509 neurons. ``pilotnet_lif.net`` uses
``slayer.block.cuba`` blocks, ``pilotnet_sdnn.net`` ``slayer.block.sigma_delta`` blocks (a Delta
input, SigmaDelta layers, a Sigma output). Each file is written as lava-dl's tutorials write
theirs: ``h5py.File(path, 'w')``, a ``layer`` group, every block's ``export_hdf5`` into
``layer/{i}``; nothing is edited by hand. ``OUT_DIR/pilotnet.json`` describes both.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from lava.lib.dl import slayer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "lava"))
from netx_files import Net  # the exporter wrapper the Lava tests use

INPUT_SHAPE = (3, 66, 200)
#: (in, out, stride, padding) of the five 3x3 convolutions
CONVS = ((3, 24, 2, 0), (24, 36, 2, 0), (36, 48, 2, 0), (48, 64, (2, 1), (1, 0)), (64, 64, 1, 0))
DENSE = (2560, 100, 50, 10, 1)
#: integer weight std (x64 units, before slayer's even rounding) per synapse layer, chosen so that
#: every layer is active but not saturated on benchmarks/pilotnet_netx.py's inputs
LIF_STD = (24, 22, 22, 22, 22, 12, 12, 14, 12)
SDNN_STD = (16, 10, 10, 10, 10, 6, 8, 10, 10)

CUBA = {"threshold": 25 / 64, "current_decay": 1.0, "voltage_decay": 0.25,
        "tau_grad": 0.03, "scale_grad": 3, "requires_grad": False}
SDNN = {"threshold": 6 / 64, "tau_grad": 0.5, "scale_grad": 1, "requires_grad": False,
        "shared_param": True, "activation": F.relu}


def pilotnet(family: str) -> Net:
    """The blocks in order (``family``: ``lif`` or ``sdnn``), in tests/lava/netx_files.py's
    ``Net``, which exports them as lava-dl's tutorials do."""
    lib = slayer.block.cuba if family == "lif" else slayer.block.sigma_delta
    params = CUBA if family == "lif" else SDNN
    blocks: list[torch.nn.Module] = [lib.Input(params)]
    for cin, cout, stride, padding in CONVS:
        blocks.append(lib.Conv(params, cin, cout, 3, stride=stride, padding=padding))
    blocks.append(lib.Flatten())
    for k, (fin, fout) in enumerate(itertools.pairwise(DENSE)):
        last = k == len(DENSE) - 2
        blocks.append(lib.Output(params, fin, fout) if family == "sdnn" and last
                      else lib.Dense(params, fin, fout))
    return Net(*blocks)


def make(family: str, out: Path, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed + (0 if family == "lif" else 1))
    net = pilotnet(family).eval()
    with torch.no_grad():
        net(torch.zeros((1, *INPUT_SHAPE, 2)))  # slayer sets neuron shapes on the first pass
        stds = LIF_STD if family == "lif" else SDNN_STD
        synapses = [b.synapse for b in net.blocks if hasattr(b, "synapse") and b.synapse is not None]
        for syn, std in zip(synapses, stds, strict=True):
            syn.weight.data = torch.randn(tuple(syn.weight.shape), generator=gen) * std / 64.0
    name = f"pilotnet_{family}.net"
    net.export_hdf5(out / name)
    neurons = 3 * 66 * 200 + 24 * 32 * 99 + 36 * 15 * 49 + 48 * 7 * 24 + 64 * 4 * 22 + 64 * 2 * 20 + sum(DENSE[1:])
    return {"file": name, "family": family, "neurons": neurons, "input_shape": list(INPUT_SHAPE),
            "seed": seed, "weight_std": list(stds),
            "writer": f"slayer.block.{'cuba' if family == 'lif' else 'sigma_delta'} blocks' export_hdf5"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=20240801)
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    entries = [make(family, out, args.seed) for family in ("lif", "sdnn")]
    (out / "pilotnet.json").write_text(json.dumps({"files": entries}, indent=1))
    print(f"wrote {', '.join(e['file'] for e in entries)} to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
