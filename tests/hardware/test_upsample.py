"""The ``upsample`` projection kind (a transposed conv whose kernel equals its stride): its
validation, bit-for-bit equality with the dense 0/1 (expanded) matrix it replaces in the
simulator while its SynOps are the true fan-out, numpy against torch, the network file (schema 4,
round trip, refusals), the ANN twin's count and the formats that cannot hold it."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sakd.hardware import netfile
from sakd.hardware.energy import ann_layers_from_network
from sakd.hardware.ir import (
    Input,
    IRError,
    Network,
    Projection,
    upsample_row_bound,
    upsample_synapses,
)
from sakd.hardware.netfile import NetworkFileError, read_network, write_network
from sakd.hardware.neurons.cuba_lif import lif_population
from sakd.hardware.simulator import simulate, upsample_fanout, upsample_synapse
from sakd.hardware.simulator.runner import projection_dense_macs


def expanded(network: Network, proj: Projection) -> Projection:
    """The dense projection with the upsample's synapse list as its matrix (what the exporter
    wrote before the kind existed)."""
    rows, cols, vals, shape = upsample_synapses(network.source_shape(proj.source), proj.weight,
                                                proj.groups)
    matrix = np.zeros(shape, np.int64)
    matrix[rows, cols] = vals
    return Projection(proj.name, proj.source, proj.target, "dense", matrix,
                      weight_exp=proj.weight_exp, delay=proj.delay, port=proj.port)


def as_dense(network: Network) -> Network:
    return dataclasses.replace(network, projections=tuple(
        expanded(network, p) if p.kind == "upsample" else p for p in network.projections))


def fpn_like(seed: int = 0, *, graded: bool = False, weight_exp: int = 0) -> Network:
    """Input (2, 8, 8) -> c8 (4, 8, 8) -stride 2-> c4 (4, 4, 4) -stride 2-> c2 (4, 2, 2); the
    top-down path: nearest x2 of c2 (depthwise, weight 2) plus a lateral conv of c4 into m4
    (4, 4, 4); a general upsample of m4 (groups 2, position-dependent weights, weight_exp) plus
    a lateral conv of c8 into m8 (4, 8, 8); a readout on m8. With ``graded``, an upsample of the
    graded input itself into c8 as well."""
    rng = np.random.default_rng(seed)

    def w(shape, lo=-40, hi=80):
        return 2 * rng.integers(lo // 2, hi // 2, size=shape)

    inp = Input("x", (2, 8, 8), "graded" if graded else "spikes", bits=6 if graded else None)
    lif = dict(du=4095, dv=2048)
    pops = (
        lif_population("c8", (4, 8, 8), vth=150, **lif),
        lif_population("c4", (4, 4, 4), vth=200, **lif),
        lif_population("c2", (4, 2, 2), vth=200, **lif),
        lif_population("m4", (4, 4, 4), vth=150, bias_mant=np.array([3, 0, -2, 5]), bias_exp=4,
                       **lif),
        lif_population("m8", (4, 8, 8), vth=150, **lif),
        lif_population("out", (3,), du=4095, dv=0, vth=0, role="readout"),
    )
    projs = [
        Projection("x_c8", "x", "c8", "conv2d", w((4, 2, 3, 3), -4 if graded else -40,
                                                 6 if graded else 80), padding=(1, 1)),
        Projection("c8_c4", "c8", "c4", "conv2d", w((4, 4, 3, 3)), stride=(2, 2), padding=(1, 1)),
        Projection("c4_c2", "c4", "c2", "conv2d", w((4, 4, 3, 3)), stride=(2, 2), padding=(1, 1)),
        Projection("up_c2", "c2", "m4", "upsample", np.full((4, 1, 2, 2), 160), stride=(2, 2),
                   groups=4),
        Projection("lat_c4", "c4", "m4", "conv2d", w((4, 4, 1, 1)), delay=1),
        Projection("up_m4", "m4", "m8", "upsample", w((4, 2, 2, 2), -60, 240), stride=(2, 2),
                   groups=2, weight_exp=weight_exp),
        Projection("lat_c8", "c8", "m8", "conv2d", w((4, 4, 1, 1)), delay=3),
        Projection("m8_out", "m8", "out", "dense", w((3, 256))),
    ]
    if graded:
        projs.append(Projection("up_x", "x", "c8", "upsample", w((4, 1, 1, 1), -6, 8),
                                stride=(1, 1), groups=2))
    return Network(inp, pops, tuple(projs), time_steps=4)


def inputs(network: Network, seed: int, batch: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (batch, *network.input.shape)
    if network.input.encoding == "spikes":
        return (rng.random(shape) < 0.5).astype(np.int64)
    lo, hi = network.input.value_range
    return rng.integers(lo, hi + 1, size=shape)


def assert_same_run(a, b, network: Network) -> None:
    for name in network.populations:
        for var, value in a.traces[name.name].items():
            assert np.array_equal(value, b.traces[name.name][var]), (name.name, var)
    for name, value in a.readouts.items():
        assert np.array_equal(value, b.readouts[name]), name


# ---------------------------------------------------------------------------------------------
# validation


def _pair(weight, **kw):
    inp = Input("x", (4, 3, 3), "spikes")
    target = lif_population("u", kw.pop("target_shape", (4, 6, 6)), du=4095, dv=0, vth=0,
                            role="readout")
    proj = Projection("up", "x", "u", "upsample", weight, **kw)
    return Network(inp, (target,), (proj,))


@pytest.mark.parametrize("weight, kw, message", [
    (np.full((4, 1, 2), 2), dict(stride=(2, 2), groups=4), r"upsample weight is \(Cout, Cin/groups, fh, fw\)"),
    (np.full((4, 1, 2, 2), 2), dict(groups=4), r"stride = its kernel \(2, 2\).*set stride=\(2, 2\)"),
    (np.full((4, 1, 2, 2), 2), dict(stride=(2, 2), groups=4, padding=(1, 1)), "no padding or dilation"),
    (np.full((4, 1, 2, 2), 2), dict(stride=(2, 2), groups=4, dilation=(2, 1)), "no padding or dilation"),
    (np.full((4, 2, 2, 2), 2), dict(stride=(2, 2), groups=3), "Cout 4 is not divisible by groups 3"),
    (np.full((4, 2, 2, 2), 2), dict(stride=(2, 2), groups=4), r"needs Cin/groups = 1"),
    (np.full((4, 1, 2, 2), 2), dict(stride=(2, 2), groups=4, target_shape=(4, 6, 4)),
     r"upsample output shape \(4, 6, 6\) .* factor \(2, 2\)\) does not match target 'u' \(4, 6, 4\)"),
    (np.full((4, 1, 2, 2), 3), dict(stride=(2, 2), groups=4, weight_exp=0), None),
    (np.full((4, 1, 2, 2), -3), dict(stride=(2, 2), groups=4), None),
    (np.array([[[[2, -3]]]] * 4), dict(stride=(1, 2), groups=4, target_shape=(4, 3, 6)), "weight -3 is odd"),
    (np.full((4, 1, 2, 2), 2), dict(stride=(2, 2), groups=4, weight_exp=9), "weight_exp 9"),
    (np.zeros((4, 1, 0, 2)), dict(stride=(2, 2), groups=4), "weight is empty"),
])
def test_validation_names_the_projection(weight, kw, message):
    if message is None:  # sign-definite weights of any magnitude <= 255: allowed
        assert _pair(weight, **kw).projections[0].kind == "upsample"
        return
    with pytest.raises(IRError, match=f"projection 'up': .*{message}") as err:
        _pair(weight, **kw)
    assert err.value.node == "up"


def test_a_flat_source_is_refused():
    with pytest.raises(IRError, match=r"projection 'up': upsample needs \(C, H, W\) source"):
        Network(Input("x", (8,), "spikes"),
                (lif_population("u", (8, 2, 2), du=4095, dv=0, vth=0, role="readout"),),
                (Projection("up", "x", "u", "upsample", np.full((8, 1, 2, 2), 2), stride=(2, 2),
                            groups=8),))


def test_shape_bound_fanout_and_digest():
    net = fpn_like()
    up = next(p for p in net.projections if p.name == "up_m4")
    assert up.output_shape((4, 4, 4)) == (4, 8, 8)
    w = up.weight
    assert upsample_row_bound(w) == int(np.abs(w).sum(axis=1).max())
    assert np.all(upsample_fanout((4, 4, 4), w.shape, 2) == 2 * 2 * 2)  # Cout/groups · fh · fw
    assert projection_dense_macs(net, up) == 4 * 8 * 8 * 2
    # the digest covers the kind and its arrays
    other = dataclasses.replace(net, projections=tuple(
        dataclasses.replace(p, weight=p.weight + 2 * (p.name == "up_m4")) if p.kind == "upsample"
        else p for p in net.projections))
    assert other.digest() != net.digest() != as_dense(net).digest()


# ---------------------------------------------------------------------------------------------
# the simulator: the same arithmetic as the dense matrix, the true fan-out


@pytest.mark.parametrize("graded, weight_exp", [(False, 0), (False, -2), (True, 1)])
def test_equals_the_dense_matrix_bit_for_bit_with_true_synops(graded, weight_exp):
    net = fpn_like(1, graded=graded, weight_exp=weight_exp)
    dense = as_dense(net)
    x = inputs(net, 2)
    record = [p.name for p in net.populations]
    got = simulate(net, x, record=record)
    want = simulate(dense, x, record=record)
    assert_same_run(got, want, net)
    sources = {p.name: p.source for p in net.projections if p.kind == "upsample"}
    for name, source in sources.items():
        proj = next(p for p in net.projections if p.name == name)
        cout, _, fh, fw = proj.weight.shape
        per_spike = cout // proj.groups * fh * fw
        n_target = net.population(proj.target).size
        syn, dense_syn = got.counts.projections[name], want.counts.projections[name]
        if source == net.input.name:  # graded input: MACs per nonzero value, the same fan-out
            nonzero = np.count_nonzero(x.reshape(len(x), -1), axis=1) * net.time_steps
            assert np.array_equal(syn.graded_macs, nonzero * per_spike)
            assert np.array_equal(dense_syn.graded_macs, nonzero * n_target)
            continue
        spikes = got.counts.populations[source].spikes  # [B]: spikes in the window
        assert spikes.min() > 0, name  # the test means something: the source fires
        assert np.array_equal(syn.synops, spikes * per_spike), name
        assert np.array_equal(dense_syn.synops, spikes * n_target), name
    # every other projection counts the same
    for name, c in got.counts.projections.items():
        if name not in sources:
            assert np.array_equal(c.synops, want.counts.projections[name].synops), name


@st.composite
def upsample_networks(draw):
    """A random (C, H, W) spike or graded input -> a population -> one or two upsample
    projections (random groups, factors, weights, weight_exp, delays) summed into one
    population, with a shortcut -> a dense readout."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    c = draw(st.sampled_from([1, 2, 4]))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    graded = draw(st.booleans())
    inp = Input("x", (c, h, w), "graded" if graded else "spikes", bits=5 if graded else None)
    groups = draw(st.sampled_from([g for g in (1, 2, 4) if c % g == 0]))
    cout = groups * draw(st.integers(1, 2))
    fh, fw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    wexp = draw(st.sampled_from([0, 0, -1, -3, 2]))
    lo, hi = (-6, 8) if graded else (-128, 127)
    weight = 2 * rng.integers(lo, hi, size=(cout, c // groups, fh, fw))
    weight.reshape(-1)[0] = 2 * hi
    pops = [lif_population("a", (c, h, w), du=4095, dv=2000, vth=60),
            lif_population("u", (cout, h * fh, w * fw), du=int(rng.integers(0, 4096)), dv=1500,
                           vth=int(rng.integers(50, 400)), bias_mant=int(rng.integers(-20, 20)),
                           bias_exp=3),
            lif_population("out", (3,), du=4095, dv=0, vth=0, role="readout")]
    projs = [Projection("x_a", "x", "a", "conv2d", 2 * rng.integers(-4 if graded else -40,
                                                                      8 if graded else 80,
                                                                      size=(c, c, 1, 1))),
             Projection("a_u", "a", "u", "upsample", weight, stride=(fh, fw), groups=groups,
                        weight_exp=wexp, delay=1)]
    if draw(st.booleans()):  # a second, same weights from another source (merged evaluation)
        pops.insert(1, lif_population("b", (c, h, w), du=4095, dv=1000, vth=80))
        projs.append(Projection("x_b", "x", "b", "conv2d",
                                2 * rng.integers(-4 if graded else -30, 8 if graded else 70,
                                                 size=(c, c, 1, 1))))
        projs.append(Projection("b_u", "b", "u", "upsample", weight, stride=(fh, fw),
                                groups=groups, weight_exp=wexp, delay=1))
    if draw(st.booleans()):  # straight from the input, latency-balanced
        projs.append(Projection("x_u", "x", "u", "upsample",
                                2 * rng.integers(-3, 4, size=(cout, c // groups, fh, fw)),
                                stride=(fh, fw), groups=groups, delay=2))
    projs.append(Projection("u_out", "u", "out", "dense",
                            2 * rng.integers(-20, 40, size=(3, cout * h * fh * w * fw))))
    net = Network(inp, tuple(pops), tuple(projs), time_steps=draw(st.integers(1, 4)))
    return net, inputs(net, seed + 1, batch=draw(st.integers(1, 3)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(upsample_networks())
def test_random_networks_equal_the_dense_matrix_and_torch(case):
    net, x = case
    record = [p.name for p in net.populations]
    got = simulate(net, x, record=record)
    assert_same_run(got, simulate(as_dense(net), x, record=record), net)
    torch_run = simulate(net, x, record=record, backend="torch")
    assert_same_run(got, torch_run, net)
    for name, c in got.counts.projections.items():
        assert np.array_equal(c.synops, torch_run.counts.projections[name].synops)
    # unrecorded (window-only) runs give the same readouts and counts
    plain = simulate(net, x)
    for name, value in plain.readouts.items():
        assert np.array_equal(value, got.readouts[name])
    for name, c in plain.counts.projections.items():
        assert np.array_equal(c.synops, got.counts.projections[name].synops)


def test_the_synapse_against_a_loop_reference():
    rng = np.random.default_rng(5)
    groups, cg, og, fh, fw = 2, 3, 2, 3, 2
    w = 2 * rng.integers(-128, 128, size=(groups * og, cg, fh, fw))
    x = rng.integers(-50, 50, size=(2, groups * cg, 2, 3))
    got = upsample_synapse(x, w, groups, weight_exp=-1)
    want = np.zeros_like(got)
    for b in range(2):
        for co in range(groups * og):
            g = co // og
            for i in range(2 * fh):
                for j in range(3 * fw):
                    acc = sum(int(w[co, ci, i % fh, j % fw]) * int(x[b, g * cg + ci, i // fh, j // fw])
                              for ci in range(cg))
                    want[b, co, i, j] = acc >> 1  # floor
    assert np.array_equal(got, want)


# ---------------------------------------------------------------------------------------------
# the network file


def test_round_trip_in_schema_4(tmp_path):
    net = fpn_like(graded=True, weight_exp=-1)
    path = write_network(net, tmp_path / "n.h5")
    back = read_network(path)
    assert back.equals(net) and back.digest() == net.digest()
    with h5py.File(path) as f:
        assert int(f.attrs["schema_version"]) == 4
        kinds = {f[f"projections/{k}"].attrs["kind"] for k in f["projections"]}
        assert "upsample" in kinds
    x = inputs(net, 0)
    assert all(np.array_equal(a, b) for a, b in zip(simulate(net, x).readouts.values(),
                                                    simulate(back, x).readouts.values()))
    # a network without the kind is still written in schema 3 (readable by earlier versions)
    plain = write_network(as_dense(net), tmp_path / "d.h5")
    with h5py.File(plain) as f:
        assert int(f.attrs["schema_version"]) == 3


def test_a_schema_3_file_with_the_kind_is_refused(tmp_path):
    path = write_network(fpn_like(), tmp_path / "n.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = 3
        key = next(k for k in f["projections"] if f[f"projections/{k}"].attrs["kind"] == "upsample")
    with pytest.raises(NetworkFileError, match=rf"n.h5: /projections/{key} attr 'kind': is "
                                               r"'upsample', a kind of schema 4, but the file says "
                                               r"schema 3"):
        read_network(path)


def test_a_reader_of_schema_3_refuses_it_as_newer(tmp_path, monkeypatch):
    path = write_network(fpn_like(), tmp_path / "n.h5")
    monkeypatch.setattr(netfile, "SCHEMA_VERSION", 3)
    with pytest.raises(NetworkFileError, match=r"written by a newer sakd \(schema 4 > 3\)"):
        read_network(path)


# ---------------------------------------------------------------------------------------------
# the ANN twin and the formats


def test_the_ann_twin_counts_one_mac_per_output_and_channel_of_the_group():
    net = fpn_like()
    layers = {layer.name: layer for layer in ann_layers_from_network(net)}
    assert layers["up_c2"].macs == 4 * 4 * 4 * 1  # nearest: one per output value
    assert layers["up_m4"].macs == 4 * 8 * 8 * 2  # two channels per group
    assert layers["up_c2"].weights == 4 * 2 * 2 and layers["up_m4"].weights == 4 * 2 * 2 * 2
    dense = {layer.name: layer for layer in ann_layers_from_network(as_dense(net))}
    assert dense["up_c2"].macs == 64 * 16  # the matrix, out x in
    assert layers["up_c2"].inputs == dense["up_c2"].inputs and \
        layers["up_c2"].outputs == dense["up_c2"].outputs


def test_nir_and_netx_refuse_it_by_name(tmp_path):
    from sakd.formats.netx import NetxExportError, write_netx
    from sakd.formats.nir import NirExportError, write_nir

    net = fpn_like()
    with pytest.raises(NirExportError, match="projection 'up_c2': an upsample projection .*no "
                                             "transposed convolution and no unflatten"):
        write_nir(net, tmp_path / "n.nir")
    with pytest.raises(NetxExportError, match="projection 'up_c2': an upsample projection"):
        write_netx(net, tmp_path / "n.h5")
    assert not (tmp_path / "n.nir").exists() and not (tmp_path / "n.h5").exists()


def test_inspect_shows_the_kind_and_its_factor():
    from sakd.formats.ir import summarize_network

    rows = {r.name: r for r in summarize_network(fpn_like()).layers}
    assert (rows["up_c2"].kind, rows["up_c2"].neuron, rows["up_c2"].shape) == \
        ("upsample", "up2x2 g4", [4, 1, 2, 2])
    assert rows["up_m4"].params == 4 * 2 * 2 * 2
