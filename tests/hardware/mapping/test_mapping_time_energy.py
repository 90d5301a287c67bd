"""Time per step and energy in all: the parts add up, static = power x time, and the ANN
baseline priced like for like."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mapping_nets import conv_net, dense_net

from sakd.hardware.energy import (
    ProfileError,
    ann_layers_from_network,
    estimate_ann_energy_with_memory,
    estimate_snn_energy,
    estimate_snn_energy_with_memory,
    load_memory_model,
    load_profile,
)
from sakd.hardware.mapping import (
    MappingError,
    estimate_time,
    estimate_total_energy,
    map_network,
)
from sakd.hardware.simulator import simulate


@pytest.fixture(scope="module")
def run():
    net = conv_net(size=12, c1=8, c2=8, zeros=0.2)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, *net.input.shape)) * 30
    counts = simulate(net, net.input.encode(x), time_steps=net.time_steps).counts
    mapping = map_network(net, counts=counts, overrides={"core_memory_bits": 30000})
    return net, counts, mapping


def test_step_time_is_the_slowest_part_plus_traversal_and_barrier(run):
    net, counts, m = run
    t = estimate_time(m, net, counts, time_steps=4)
    assert t.label == "estimate"
    parts = max(t.compute_ns, t.router_ns, t.interchip_ns)
    assert t.step_ns == pytest.approx(parts + t.traverse_ns + t.barrier_ns)
    assert t.compute_ns == pytest.approx(max(c.time_ns for c in t.cores))
    assert t.latency_steps == net.latency
    assert t.latency_s == pytest.approx((4 + net.latency) * t.step_ns * 1e-9)
    assert t.throughput_pipelined_per_s == pytest.approx(1 / (4 * t.step_ns * 1e-9))
    assert t.throughput_unpipelined_per_s < t.throughput_pipelined_per_s
    assert t.bottleneck_kind in ("core", "router", "interchip")
    if t.bottleneck_kind == "core":
        assert f"core {t.bottleneck_core}" in t.bottleneck
        assert any(p in t.bottleneck for p in ("c1", "c2", "h", "out"))
    # the work of every core adds up to the counts
    synops = sum(float(np.mean(p.synops)) + float(np.mean(p.graded_macs))
                 for p in counts.projections.values())
    assert sum(c.synops for c in t.cores) * counts.time_steps == pytest.approx(synops)
    neurons = sum(p.size for p in net.populations)
    assert sum(c.updates_active + c.updates_inactive for c in t.cores) == pytest.approx(neurons)
    assert t.constants["t_synop_ns"].value == m.chip.t_synop_ns
    json.dumps(t.to_dict())


def test_slower_operations_give_slower_steps(run):
    net, counts, _ = run
    fast = map_network(net, counts=counts, overrides={"core_memory_bits": 30000})
    slow = map_network(net, counts=counts, overrides={"core_memory_bits": 30000,
                                                      "t_synop_ns": 37.0})
    tf, ts = estimate_time(fast, net, counts, 4), estimate_time(slow, net, counts, 4)
    assert ts.compute_ns > tf.compute_ns and ts.step_ns > tf.step_ns


def test_total_energy_is_dynamic_plus_static_and_static_is_power_times_time(run):
    net, counts, m = run
    t = estimate_time(m, net, counts, time_steps=4)
    e = estimate_total_energy(m, t, counts, "loihi")
    assert e.total_pj == pytest.approx(e.dynamic_pj + e.static_pj)
    assert e.dynamic_pj == pytest.approx(e.operations_pj + e.routing_pj)
    assert e.operations_pj == pytest.approx(estimate_snn_energy(counts, "loihi").total_pj)
    power = m.chip.static_power_w
    assert e.static_pj == pytest.approx(power * m.chips_used * 4 * t.step_ns * 1e-9 * 1e12)
    assert e.static_unpipelined_pj == pytest.approx(
        power * m.chips_used * (4 + net.latency) * t.step_ns * 1e-9 * 1e12)
    hops = sum(msg * edge.hops_ew for msg, edge in zip(m.messages(counts), m.edges))
    assert e.message_hops["ew"] == pytest.approx(hops)
    assert e.routing_by_kind_pj["ew"] == pytest.approx(hops * m.chip.e_hop_ew_pj)
    assert e.routing_pj == pytest.approx(sum(e.routing_by_kind_pj.values()))
    assert any("Loihi 1 pre-silicon" in c for c in e.caveats)
    json.dumps(e.to_dict())


def test_a_chip_without_static_power_lists_it_as_not_counted(run):
    spikes = dense_net(n_in=12, widths=(10, 4), encoding="spikes")
    rng = np.random.default_rng(0)
    c = simulate(spikes, (rng.random((2, 12)) < 0.5).astype(np.int64), time_steps=4).counts
    m = map_network(spikes, chip="loihi", counts=c)
    t = estimate_time(m, spikes, c, 4)
    e = estimate_total_energy(m, t, c, "loihi")
    assert e.static_pj is None and "static" in e.not_counted
    assert e.total_pj == pytest.approx(e.dynamic_pj)
    m2 = map_network(spikes, chip="loihi", counts=c, overrides={"static_power_w": 0.5})
    e2 = estimate_total_energy(m2, estimate_time(m2, spikes, c, 4), c, "loihi")
    assert "static" not in e2.not_counted and e2.static_pj > 0
    with pytest.raises(MappingError, match="the time estimate is for loihi2"):
        estimate_total_energy(m2, estimate_time(run[2], run[0], run[1], 4), c, "loihi")


def test_counts_must_belong_to_the_network(run):
    net, counts, m = run
    other = dense_net()
    with pytest.raises(MappingError, match="counts: no counts of population"):
        estimate_time(m, other, counts, 4)
    with pytest.raises(MappingError, match="time_steps must be a positive integer"):
        estimate_time(m, net, counts, 0)


def test_the_ann_baseline_on_the_same_footing(run):
    net, counts, _ = run
    layers = ann_layers_from_network(net)
    assert [layer.name for layer in layers] == [p.name for p in net.projections]
    assert layers[0].macs == 8 * 12 * 12 * 2 * 9  # Cout x Ho x Wo x Cin x kh x kw
    ann = estimate_ann_energy_with_memory(net, "cmos45-int8")
    arith = sum(layer.macs for layer in layers) * load_profile("cmos45-int8").per_mac
    assert ann.arithmetic_pj == pytest.approx(arith)
    assert ann.memory_full_reuse_pj < ann.memory_no_reuse_pj
    assert ann.total_full_reuse_pj < ann.total_no_reuse_pj
    mem = load_memory_model("cmos45-memory")
    # every MAC of the first layer reads an 8-bit weight (tiny buffer: the 8 KB figure) and an
    # 8-bit input (2 x 12 x 12 bytes: the 8 KB figure too): 2 x 8/64 x 10 pJ
    first = ann.layers[layers[0].name]
    expected = layers[0].macs * 2 * 8 / 64 * 10.0 + layers[0].outputs * 8 / 64 * 10.0
    assert first.memory_no_reuse_pj == pytest.approx(expected)
    assert mem.word_pj(8192) == 10.0 and mem.word_pj(32768) == 20.0
    assert mem.word_pj(1 << 20) == 100.0 and mem.word_pj(2 << 20) == pytest.approx(1950.0)
    assert mem.word_pj(100) == 10.0  # no smaller figure published: not made cheaper
    assert mem.word_pj((8192 + 32768) / 2) == pytest.approx(15.0)
    snn = estimate_snn_energy_with_memory(counts, net, "cmos45-int8")
    synops = sum(float(np.mean(p.synops)) for p in counts.projections.values())
    assert snn.arithmetic_pj == pytest.approx(
        synops * 0.03 + sum(float(np.mean(p.graded_macs)) for p in counts.projections.values()) * 0.23)
    assert snn.total_no_reuse_pj > snn.arithmetic_pj
    # reuse never costs more than no reuse, layer by layer, however sparse the activity
    for layer in snn.layers.values():
        assert layer.memory_full_reuse_pj <= layer.memory_no_reuse_pj + 1e-9
    dense = next(p for p in net.projections if p.kind == "dense")
    w_pj = mem.access_pj(dense.weight.size, 8)
    used = float(np.mean(counts.projections[dense.name].synops))
    assert snn.layers[dense.name].memory_full_reuse_pj == pytest.approx(
        min(used, 4 * dense.weight.size) * w_pj)
    json.dumps(ann.as_dict())
    with pytest.raises(ProfileError, match="has no per_mac"):
        estimate_ann_energy_with_memory(net, "loihi")


def test_bad_memory_models_name_the_file_and_field(tmp_path):
    path = tmp_path / "mem.json"
    path.write_text(json.dumps({"name": "m", "source": "s", "certainty": "assumed",
                                "word_bits": 64, "sram": [{"size_bytes": 10, "pj_per_word": 1},
                                                          {"size_bytes": 5, "pj_per_word": 2}],
                                "dram_pj_per_word": {"low": 1, "high": 2}}))
    with pytest.raises(ProfileError, match=r"mem.json: field 'sram\[1\].size_bytes': sizes must"):
        load_memory_model(path)
    with pytest.raises(ProfileError, match="unknown memory model 'nope'"):
        load_memory_model("nope")
