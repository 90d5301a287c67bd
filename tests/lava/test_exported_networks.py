"""Networks produced by the real exporter, bit for bit against Intel Lava.

Each ``lava`` test builds a tiny registry model with random weights and batch-norm statistics
chosen so that it spikes (every spiking population fires on 1 %–90 % of its (neuron, step)
pairs, checked, so that an agreement means something), spikifies it (T = 4), lowers it with
``sakd.export.lower.lower`` and runs a few samples through ``sakd.hardware.simulator.simulate``
and through Lava 0.10's bit-accurate CPU models (``sakd.hardware.lava_bridge.run_lava``: the IR
file ``network.h5``, and for the sequential networks also the netx file written by
``sakd.formats.netx.write_netx`` and loaded by lava-dl's netx). Required: identical spikes of
every population at every one of the T + L steps, identical u and v traces and an identical
readout v (``sakd.app.verify.compare_runs``; a failure names the first divergence).

Networks: ``test_convnet`` (conv, conv, dense, dense; IR and netx), ``test_resnet``
(Spiking-ResNet: residual fan-in, identity and downsample shortcuts balanced by delays),
``test_sew_resnet`` (SEW: spike-sum residuals split into fan-in projections, delays),
``test_convnet_pool`` (max-pool OR population, average pool folded into the classifier; IR and
netx with ``or_as_conv``) and the full-size digits ``convnet`` (1x8x8, 10 classes, digits test
samples; IR and netx).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sakd.app.verify import compare_runs
from sakd.export.lower import Lowering, lower
from sakd.formats.netx import NetxExportError, is_or_population, netx_chain, write_netx
from sakd.hardware.ir import Network
from sakd.hardware.lava_bridge import LavaResult, run_lava
from sakd.hardware.netfile import write_network
from sakd.hardware.simulator import SimulationResult, simulate
from sakd.models import build_model, spikify

pytestmark = pytest.mark.lava

T = 4
SAMPLES = 3
RATE_RANGE = (0.01, 0.90)
TINY_RANGE = (-3.0, 3.0)  # the normalized input range the tiny models are lowered for


def tiny_lowering(
    arch: str,
    shape: tuple[int, int, int],
    classes: int = 5,
    seed: int = 0,
    input_range: tuple[float, float] = TINY_RANGE,
) -> Lowering:
    """A registry model with random weights and BN statistics that make it spike, lowered."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        ann = build_model(
            arch, num_classes=classes, in_channels=shape[0], image_size=list(shape[1:])
        )
        ann.train()
        with torch.no_grad():
            for _ in range(3):  # running statistics of random inputs
                ann(torch.randn(16, *shape))
            for m in ann.modules():
                if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(0.2, 0.8)  # positive shifts: every layer fires, none saturates
        snn = spikify(ann, T).eval()
    return lower(snn, input_shape=shape, input_range=input_range)


def random_inputs(net: Network, seed: int, n: int = SAMPLES) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.clip(rng.standard_normal((n,) + net.input.shape), *TINY_RANGE)
    return net.input.encode(x)


def simulate_all(net: Network, x: np.ndarray) -> SimulationResult:
    return simulate(net, x, time_steps=T, record=[p.name for p in net.populations])


def assert_active(net: Network, sim: SimulationResult) -> dict[str, float]:
    """Every spiking population fires on 1 %–90 % of its (neuron, step) pairs in its window."""
    rates = {}
    for pop in net.populations:
        if pop.is_readout:
            continue
        ell = net.latencies[pop.name]
        rates[pop.name] = float(np.asarray(sim.traces[pop.name]["s"])[ell : ell + T].mean())
    weak = {k: round(v, 4) for k, v in rates.items() if not RATE_RANGE[0] <= v <= RATE_RANGE[1]}
    assert not weak, f"window firing rates outside {RATE_RANGE} make the check weak: {weak}"
    return rates


def assert_identical(
    net: Network,
    sim: SimulationResult,
    got: LavaResult,
    label: str,
    names: dict[str, str] | None = None,
) -> None:
    """Spikes, u and v of every population at every step and the readout v, identical."""
    assert got.latency == sim.latency == net.latency, (label, got.latency, sim.latency)
    cmp = compare_runs(net, sim, got, label, names)
    checked = {c.population for c in cmp.populations}
    assert checked == {p.name for p in net.populations}, (
        f"{label}: populations not compared: {sorted({p.name for p in net.populations} - checked)}"
    )
    for check in cmp.populations:
        assert {"spikes", "u", "v"} <= set(check.compared), (
            label,
            check.population,
            check.compared,
        )
    if not cmp.identical:
        lines = [
            f"{label}: {c.population}: first divergence {c.first_divergence}"
            for c in cmp.populations
            if not c.identical
        ]
        pytest.fail("\n".join(lines) or f"{label}: readout v differs")
    np.testing.assert_array_equal(got.readout_v, sim.readout_v)
    np.testing.assert_array_equal(got.predictions, sim.predictions)


def check_ir(tmp_path: Path, net: Network, x: np.ndarray) -> SimulationResult:
    sim = simulate_all(net, x)
    assert_active(net, sim)
    path = write_network(net, tmp_path / "network.h5")
    got = run_lava(path, x, T, traces=True, timeout=600)
    assert sorted(got.names) == sorted(p.name for p in net.populations)
    assert_identical(net, sim, got, "IR -> Lava")
    return sim


def check_netx(
    tmp_path: Path, net: Network, x: np.ndarray, sim: SimulationResult, **netx_kw
) -> None:
    path = write_netx(net, tmp_path / "network.netx.h5", **netx_kw)
    got = run_lava(
        path, x, T, netx=True, input_message_bits=net.input.bits, traces=True, timeout=600
    )
    chain = [layer.pop.name for layer in netx_chain(net, **netx_kw)]
    assert len(got.names) == len(chain) == len(net.populations), (got.names, chain)
    names = dict(zip(chain, got.names))
    assert names[net.readout.name] == got.readout
    assert_identical(net, sim, got, "netx -> Lava", names)


# ---------------------------------------------------------------------------------------------


def test_convnet(tmp_path):
    """test_convnet (conv stride 1, conv stride 2, dense, dense readout) through the IR and
    through its netx file (Lava Conv layers, flatten, netx Dense after optimize_weight_bits)."""
    low = tiny_lowering("test_convnet", (1, 8, 8))
    net = low.network
    x = random_inputs(net, 0)
    sim = check_ir(tmp_path, net, x)
    check_netx(tmp_path, net, x, sim)


def test_resnet(tmp_path):
    """Spiking-ResNet: a residual add is fan-in into one population; the identity shortcut (a
    depthwise conv) and the downsample shortcut need latency-balancing delays (DelaySparse)."""
    net = tiny_lowering("test_resnet", (3, 8, 8)).network
    fan_in = [p.name for p in net.populations if len(net.projections_into(p.name)) > 1]
    delayed = [p.name for p in net.projections if p.delay]
    assert len(fan_in) >= 2 and len(delayed) >= 2, (fan_in, delayed)
    check_ir(tmp_path, net, random_inputs(net, 1))
    with pytest.raises(NetxExportError, match="fan-in|fan-out"):
        write_netx(net, tmp_path / "refused.netx.h5")


def test_sew_resnet(tmp_path):
    """SEW-ResNet: the spike sum of a block and its shortcut becomes fan-out of both into every
    consumer (fan-in there), with delays up to 2 steps."""
    net = tiny_lowering("test_sew_resnet", (3, 8, 8)).network
    fan_in = [p.name for p in net.populations if len(net.projections_into(p.name)) > 1]
    delays = sorted({p.delay for p in net.projections if p.delay})
    assert len(fan_in) >= 2 and max(delays) >= 2, (fan_in, delays)
    check_ir(tmp_path, net, random_inputs(net, 2))


def test_convnet_pool(tmp_path):
    """Max pooling becomes an OR population (depthwise all-2 kernel, du = dv = 4095, vth = 1);
    the average pool is folded into the classifier's dense matrix. IR, and netx with the OR
    population written as a grouped conv layer (``or_as_conv``)."""
    low = tiny_lowering("test_convnet_pool", (1, 8, 8))
    net = low.network
    ors = [p.name for p in net.populations if is_or_population(net, p)]
    assert len(ors) == 1, ors
    assert any(n.op == "avgpool" for n in low.graphs["trace"].nodes)
    assert not any(n.op == "avgpool" for n in low.graphs["fold_average_pooling"].nodes)
    fc = net.projections_into(net.readout.name)[0]
    assert fc.kind == "dense" and fc.weight.shape[1] == net.population(fc.source).size
    x = random_inputs(net, 3)
    sim = check_ir(tmp_path, net, x)
    with pytest.raises(NetxExportError, match="max-pooling"):
        write_netx(net, tmp_path / "refused.netx.h5")
    check_netx(tmp_path, net, x, sim, or_as_conv=True)


def test_digits_convnet(tmp_path):
    """The full-size digits ``convnet`` (1x8x8, 10 classes; three conv stages, fc1, readout) on
    digits test samples, through the IR and netx."""
    from sakd.app.common import load_samples
    from sakd.data.common import input_value_range as input_range

    samples = load_samples("digits", "test", SAMPLES)
    images, info = samples.x, samples.info
    low = tiny_lowering(
        "convnet",
        (info.in_channels, *info.image_size),
        classes=info.num_classes,
        seed=5,
        input_range=input_range(info),
    )
    net = low.network
    assert net.readout.shape == (10,)
    x = net.input.encode(images.numpy())
    sim = check_ir(tmp_path, net, x)
    check_netx(tmp_path, net, x, sim)
