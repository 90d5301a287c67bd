"""netx HDF5 writer and reader (sakd.formats.netx): the schema lava-dl's netx reads, exact
round trips, what netx cannot express, the readout semantics, and (with the Lava environment)
bit-exactness against Lava's netx loader."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import random_snn

from sakd.formats.netx import (
    NetxExportError,
    NetxImportError,
    netx_hardware_notes,
    read_netx,
    write_netx,
)
from sakd.hardware.ir import Input, Network, Projection
from sakd.hardware.lava_bridge import lava_unavailable_reason
from sakd.hardware.neurons.cuba_lif import lif_population
from sakd.hardware.simulator import simulate

ARCHS = {"test_convnet": (1, 8, 8), "convnet": (1, 8, 8), "test_convnet_pool": (1, 8, 8),
         "test_resnet": (3, 8, 8), "test_sew_resnet": (3, 8, 8)}


def lowered(arch: str) -> Network:
    return random_snn.lowered(arch, ARCHS[arch])


def text(ds) -> str:
    return ds[()].reshape(-1)[0].decode("ascii")


def check_schema(net: Network, path) -> list[str]:
    """Every layer group against the netx schema and the IR; returns the layer types."""
    spec = net.target_spec
    types = []
    with h5py.File(path, "r") as f:
        layers = f["layer"]
        assert sorted(layers.keys(), key=int) == [str(i) for i in range(len(layers))]
        chain = list(zip(net.projections, net.populations))
        k = 0
        src_shape = net.input.shape
        for i in range(len(layers)):
            g = layers[str(i)]
            assert g["type"].dtype == np.dtype("S10") and g["type"].shape == (1,)
            kind = text(g["type"])
            types.append(kind)
            if kind == "input":
                assert set(g) == {"type", "shape"}
                assert tuple(g["shape"][()]) == net.input.shape
                continue
            if kind == "flatten":
                assert len(src_shape) == 3
                continue
            proj, pop = chain[k]
            k += 1
            assert tuple(g["shape"][()]) == pop.shape and g["shape"].dtype.kind == "i"
            w = g["weight"][()]
            assert w.dtype == np.float32 and np.array_equal(w, proj.weight)  # integer values
            if kind == "conv":
                assert proj.kind == "conv2d" and w.shape == proj.weight.shape  # (Cout, Cin/g, kh, kw)
                for key in ("stride", "padding", "dilation"):
                    assert tuple(g[key][()]) == getattr(proj, key) and g[key].dtype.kind == "i"
                assert g["groups"][()] == proj.groups
            else:
                assert kind == "dense" and proj.kind == "dense" and w.shape == proj.weight.shape
            bias = g["bias"][()] if "bias" in g else np.zeros(pop.shape[0])
            mant = np.broadcast_to(pop.neuron.bias_mant, (pop.shape[0],))
            assert np.array_equal(bias * 64, mant * 2.0 ** pop.neuron.bias_exp)  # netx's bias_exp = 6
            n = g["neuron"]
            assert text(n["type"]) == "CUBA" and n["type"].dtype == np.dtype("S10")
            assert n["iDecay"][()] == pop.neuron.du + 1 and n["vDecay"][()] == pop.neuron.dv
            assert n["vThMant"][()] == (spec.readout_vth if pop.is_readout else pop.neuron.vth)
            assert n["refDelay"][()] == 1 and n["gradedSpike"][()] == 0
            src_shape = pop.shape
        assert k == len(chain)
        assert f.attrs["input_message_bits"] == net.input.bits
    return types


@pytest.mark.parametrize("arch", ["test_convnet", "convnet"])
def test_schema_and_round_trip(tmp_path, arch):
    net = lowered(arch)
    path = write_netx(net, tmp_path / "net.netx.h5")
    types = check_schema(net, path)
    assert types[0] == "input" and types[-1] == "dense" and types.count("flatten") == 1
    assert types.index("flatten") == types.index("dense") - 1
    assert read_netx(path).equals(net)
    if arch == "convnet":  # bias_exp 7: netx's mantissa (bias_exp 6) is twice the IR's
        assert any(p.neuron.bias_exp == 7 for p in net.populations)


def test_readout_has_an_explicit_neuron(tmp_path):
    net = lowered("test_convnet")
    path = write_netx(net, tmp_path / "net.netx.h5")
    with h5py.File(path, "r") as f:
        n = f["layer"][str(len(f["layer"]) - 1)]["neuron"]
        assert (n["iDecay"][()], n["vDecay"][()], n["vThMant"][()]) == (4096, 0, 1 << 17)


def test_readout_semantics_match_the_ir(tmp_path):
    """The network netx describes (read back without our metadata: free-running, as netx runs
    it) simulates identically when run as the file's sakd metadata says netx reproduces the
    IR: the sample for T steps, then zeros, reset_interval T and reset_offset 1, the readout's v
    at step T + L."""
    net = lowered("test_convnet")
    back = read_netx(write_netx(net, tmp_path / "net.netx.h5"), trust_metadata=False)
    assert not back.equals(net)  # names, scales and metadata are netx's
    assert back.schedule == "free" and net.schedule == "sample"
    x = net.input.encode(np.random.default_rng(0).normal(size=(16, 1, 8, 8)))
    T, L = 4, net.latency
    a = simulate(net, x, time_steps=T, record=["readout"])
    seq = np.concatenate([np.broadcast_to(x[None], (T,) + x.shape), np.zeros((L,) + x.shape, x.dtype)])
    b = simulate(back, seq, sequence=True, time_steps=T + L, reset_interval=T, reset_offset=1,
                 record=[back.readout.name])
    assert np.array_equal(a.readout_v, b.readout_v) and np.array_equal(a.predictions, b.predictions)
    assert np.array_equal(a.traces["readout"]["v"], b.traces[back.readout.name]["v"])


def netx_default_readout_v(net: Network, x, T: int) -> np.ndarray:
    """v at step T + L of netx's readout without neuron (iDecay 0 -> du = -1, vDecay 4096):
    u accumulates 64·a (no decay), v = u + bias << 6 each step (fixed-point.md §2.1)."""
    sim = simulate(net, x, time_steps=T, record=[net.readout.name])
    u_ir = sim.traces[net.readout.name]["u"]  # du = 4095: u_t = 64·a_t
    L = net.latency
    u = u_ir[L:L + T].sum(0)  # the readout's window
    return u + net.readout.neuron.effective_bias(net.readout.shape)


def test_netx_default_readout_differs_when_biased():
    """The finding: netx's neuron-less readout adds the bias once, the IR's every step."""
    w = np.array([[2, 2], [0, 0]])
    bias = np.array([0, 3])
    net = Network(Input("x", (2,), "spikes"),
                  (lif_population("out", (2,), du=4095, dv=0, vth=1 << 17, bias_mant=bias, bias_exp=6,
                              role="readout"),),
                  (Projection("w", "x", "out", "dense", w),))
    T = 4
    x = np.array([[1, 0]])
    ir = simulate(net, x, time_steps=T)
    netx = netx_default_readout_v(net, x, T)
    assert np.array_equal(ir.readout_v - netx, (T - 1) * (bias << 6)[None])
    assert ir.predictions[0] == 1 and np.argmax(netx[0]) == 0
    # without a bias they agree
    lowered_net = lowered("test_convnet")
    x = lowered_net.input.encode(np.random.default_rng(1).normal(size=(8, 1, 8, 8)))
    diff = simulate(lowered_net, x, time_steps=T).readout_v - netx_default_readout_v(lowered_net, x, T)
    assert np.array_equal(diff, np.broadcast_to((T - 1) * lowered_net.readout.neuron.effective_bias(lowered_net.readout.shape), diff.shape))


def strip_readout_neuron(path, zero_bias: bool) -> None:
    with h5py.File(path, "r+") as f:
        g = f["layer"][str(len(f["layer"]) - 1)]
        del g["neuron"]
        if zero_bias and "bias" in g:
            del g["bias"]
        for key in list(f.attrs):
            del f.attrs[key]


def test_neuronless_readout_is_read_as_netx_runs_it(tmp_path):
    """A file whose last dense layer has no neuron: netx's default neuron (iDecay 0, vDecay 4096,
    vThMant 2^17), an integrator whose v is u + bias, read as a readout and simulated as netx
    runs it: with the sample for T steps, reset_interval T and reset_offset 1, v at step T + L
    is the window's 64·Σa plus the bias once (netx_default_readout_v)."""
    net = lowered("test_convnet")
    T, L = 4, net.latency
    x = net.input.encode(np.random.default_rng(2).normal(size=(8, 1, 8, 8)))
    seq = np.concatenate([np.broadcast_to(x[None], (T,) + x.shape), np.zeros((L,) + x.shape, x.dtype)])
    for zero_bias in (False, True):
        path = write_netx(net, tmp_path / "net.netx.h5")
        strip_readout_neuron(path, zero_bias=zero_bias)
        back = read_netx(path, input_message_bits=8)
        r = back.readout.neuron
        assert (r.du, r.dv, r.vth, back.readout.role) == (-1, 4096, 1 << 17, "readout")
        got = simulate(back, seq, sequence=True, time_steps=T + L, reset_interval=T, reset_offset=1)
        want = netx_default_readout_v(net, x, T)
        if zero_bias:
            want = want - net.readout.neuron.effective_bias(net.readout.shape)
        assert np.array_equal(got.readout_v, want)


def test_foreign_spiking_last_layer_is_the_output(tmp_path):
    """A slayer-style file (no sakd metadata) whose last layer spikes: it runs free, and its
    output is its spike count (the predictions its argmax)."""
    rng = np.random.default_rng(3)
    path = tmp_path / "slayer.net"
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        for i, (kind, shape) in enumerate([("input", (2, 4, 4)), ("conv", (3, 4, 4)),
                                           ("flatten", (48,)), ("dense", (5,))]):
            g = layer.create_group(str(i))
            g.create_dataset("type", (1,), "S10", [kind.encode()])
            g.create_dataset("shape", data=np.array(shape))
            if kind in ("conv", "dense"):
                w_shape = (3, 2, 3, 3) if kind == "conv" else (5, 48)
                g.create_dataset("weight", data=2.0 * rng.integers(-60, 60, size=w_shape))
                if kind == "conv":
                    for key, v in (("stride", 1), ("padding", 1), ("dilation", 1), ("groups", 1)):
                        g.create_dataset(key, data=v)
                n = g.create_group("neuron")
                n.create_dataset("type", data="CUBA")
                for key, v in (("iDecay", 4096), ("vDecay", 1024), ("vThMant", 80), ("refDelay", 1)):
                    n.create_dataset(key, data=v)
    net = read_netx(path)
    assert [p.name for p in net.populations] == ["layer1", "layer3"]
    assert net.input.encoding == "spikes" and net.schedule == "free" and not net.readouts
    assert [p.name for p in net.outputs] == ["layer3"]
    x = (rng.random((6, 2, 4, 4)) < 0.5).astype(np.int64)
    sim = simulate(net, x, time_steps=8, record=["layer3"])
    spikes = sim.traces["layer3"]["s"].sum(0)
    assert np.array_equal(sim.outputs["layer3"], spikes) and spikes.sum() > 0
    assert np.array_equal(sim.predictions, spikes.reshape(6, -1).argmax(1))
    assert sim.counts.populations["layer3"].spikes_per_step.shape == (6, 8)


# ---------------------------------------------------------------------------------------------
# what netx cannot express


@pytest.mark.parametrize("arch", ["test_resnet", "test_sew_resnet"])
def test_residual_network_is_refused(tmp_path, arch):
    with pytest.raises(NetxExportError, match="population 'relu': fan-out.*residual.*NIR") as err:
        write_netx(lowered(arch), tmp_path / "net.netx.h5")
    assert err.value.node == "relu"
    assert not (tmp_path / "net.netx.h5").exists()


def test_fan_in_is_refused(tmp_path):
    net = Network(Input("x", (4,), "spikes"),
                  (lif_population("a", (4,), du=4095, dv=0, vth=5),
                   lif_population("b", (4,), du=4095, dv=0, vth=5),
                   lif_population("r", (2,), du=4095, dv=0, vth=1 << 17, role="readout")),
                  (Projection("xa", "x", "a", "dense", np.full((4, 4), 2)),
                   Projection("xb", "x", "b", "dense", np.full((4, 4), 2)),
                   Projection("ar", "a", "r", "dense", np.full((2, 4), 2)),
                   Projection("br", "b", "r", "dense", np.full((2, 4), -2))))
    with pytest.raises(NetxExportError, match="input 'x': fan-out"):
        write_netx(net, tmp_path / "n.h5")


def test_max_pool_or_population_is_refused(tmp_path):
    net = lowered("test_convnet_pool")
    with pytest.raises(NetxExportError, match="population 'maxpool'.*OR population") as err:
        write_netx(net, tmp_path / "net.netx.h5")
    assert err.value.node == "maxpool"
    # opt-in: as the grouped conv layer it is in the IR (verified against Lava)
    path = write_netx(net, tmp_path / "net.netx.h5", or_as_conv=True)
    assert "conv" in check_schema(net, path) and read_netx(path).equals(net)


def chain(weight, *, weight_exp=0, delay=0, bias=0, bias_exp=6, conv_bias=None):
    pops = [lif_population("h", (3,), du=4095, dv=0, vth=5, bias_mant=bias, bias_exp=bias_exp),
            lif_population("r", (2,), du=4095, dv=0, vth=1 << 17, role="readout")]
    projs = [Projection("xh", "x", "h", "dense", weight, weight_exp=weight_exp),
             Projection("hr", "h", "r", "dense", np.array([[2, -2, 2], [-2, 2, 0]]), delay=delay)]
    inp = Input("x", (4,), "spikes")
    if conv_bias is not None:
        inp = Input("x", (1, 3, 3), "spikes")
        pops[0] = lif_population("h", (2, 3, 3), du=4095, dv=0, vth=5, bias_mant=conv_bias, bias_exp=6)
        projs = [Projection("xh", "x", "h", "conv2d", np.full((2, 1, 3, 3), 2), padding=(1, 1)),
                 Projection("hr", "h", "r", "dense", np.full((2, 18), 2))]
    return Network(inp, tuple(pops), tuple(projs))


@pytest.mark.parametrize("kwargs, match", [
    ({"weight": np.zeros((3, 4), np.int64)}, "projection 'xh': an all-zero weight matrix"),
    ({"weight": -2 * np.ones((3, 4), np.int64)},
     "projection 'xh': netx's optimize_weight_bits and Lava's clip and truncation would change"),
    ({"weight": np.full((3, 4), 3), "weight_exp": -1}, "projection 'xh': weight_exp -1 with weights"),
    ({"weight": np.full((3, 4), 2), "delay": 2}, "projection 'hr': delay 2 in a sample network"),
    ({"weight": np.full((3, 4), 2), "bias": np.array([1, 2, 3]), "bias_exp": 3},
     "population 'h': bias_exp 3 < 6"),
    ({"weight": np.full((3, 4), 2), "conv_bias": np.arange(18).reshape(2, 3, 3)},
     "population 'h': a per-neuron bias on a convolutional layer"),
])
def test_unexpressible_layers_are_named(tmp_path, kwargs, match):
    path = tmp_path / "n.h5"
    path.write_bytes(b"old")
    with pytest.raises(NetxExportError, match=match):
        write_netx(chain(**kwargs), path)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["n.h5"]


def test_a_weight_exponent_netx_can_rescale_is_written_exactly(tmp_path):
    """weight_exp 1 has no netx key, but the file's weights 2·W come back as the same map."""
    net = chain(np.full((3, 4), 2), weight_exp=1)
    path = write_netx(net, tmp_path / "n.h5")
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["layer/1/weight"][()], np.full((3, 4), 4))
    assert read_netx(path).equals(net)


def test_exact_low_bias_exp_is_accepted(tmp_path):
    net = chain(np.full((3, 4), 2), bias=np.array([8, -16, 0]), bias_exp=3)
    path = write_netx(net, tmp_path / "n.h5")
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["layer/1/bias"][()], [1, -2, 0])
    assert read_netx(path).equals(net)


def test_hardware_notes_name_biases_beyond_the_13_bit_mantissa(tmp_path):
    """bias_exp 7 with mantissa 4095 is 8190 at netx's bias_exp 6: exact in Lava (int16), beyond
    Loihi 2's 13-bit mantissa, so the note names the population; 2047 at exp 7 (4094) fits."""
    wide = chain(np.full((3, 4), 2), bias=np.array([4095, -3, 0]), bias_exp=7)
    notes = netx_hardware_notes(wide)
    assert len(notes) == 1 and notes[0].startswith("population 'h': bias mantissa up to 8190")
    assert "13-bit range [-4096, 4095]" in notes[0] and "bias_exp 7" in notes[0]
    assert read_netx(write_netx(wide, tmp_path / "n.h5")).equals(wide)  # written all the same
    assert netx_hardware_notes(chain(np.full((3, 4), 2), bias=np.array([2047, -2048, 0]),
                                     bias_exp=7)) == []
    assert netx_hardware_notes(chain(np.full((3, 4), 2), bias=np.array([4095, -4096, 0]))) == []


def test_truncated_or_foreign_file(tmp_path):
    path = write_netx(lowered("test_convnet"), tmp_path / "net.netx.h5")
    data = path.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(NetxImportError, match="cut.h5"):
        read_netx(tmp_path / "cut.h5")
    with h5py.File(tmp_path / "pool.h5", "w") as f:
        f.create_dataset("layer/0/type", (1,), "S10", [b"input"])
        f.create_dataset("layer/0/shape", data=np.array([1, 4, 4]))
        f.create_dataset("layer/1/type", (1,), "S10", [b"pool"])
    with pytest.raises(NetxImportError, match="pool.h5: /layer/1: pool is not implemented"):
        read_netx(tmp_path / "pool.h5")


# ---------------------------------------------------------------------------------------------
# against Lava's own netx loader


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.skipif(lava_unavailable_reason() is not None, reason=str(lava_unavailable_reason()))
def test_lava_netx_runs_the_file_bit_exactly(tmp_path):
    from sakd.hardware.lava_bridge import run_lava

    net = lowered("test_convnet")
    path = write_netx(net, tmp_path / "net.netx.h5")
    x = net.input.encode(np.random.default_rng(1).normal(size=(4, 1, 8, 8)))
    got = run_lava(path, x, 4, netx=True, input_message_bits=net.input.bits, timeout=600)
    sim = simulate(net, x, time_steps=4, record=[p.name for p in net.populations])
    assert np.array_equal(got.readout_v.reshape(sim.readout_v.shape), sim.readout_v)
    for name, pop in zip(got.names, net.populations):
        assert np.array_equal(got.spikes[name].astype(bool), sim.traces[pop.name]["s"]), pop.name
