"""Placement: deterministic, improving, multi-chip when one chip is too small; geometry."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from mapping_nets import conv_net, dense_net

from sakd.hardware.mapping import load_chip, load_system, map_network
from sakd.hardware.mapping.place import hops, input_position, position_of, positions, route_tiles
from sakd.hardware.mapping.profile import single_chip_system
from sakd.hardware.simulator import simulate


def counts_of(net, samples=2, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, *net.input.shape)) * 30
    return simulate(net, net.input.encode(x), time_steps=net.time_steps).counts


def test_placement_is_deterministic_and_json_able():
    net = conv_net(size=12, c1=8, c2=8)
    a = map_network(net, overrides={"core_memory_bits": 30000})
    b = map_network(net, overrides={"core_memory_bits": 30000})
    da, db = a.to_dict(), b.to_dict()
    assert json.dumps(da, sort_keys=True) == json.dumps(db, sort_keys=True)
    assert da["cores_used"] == a.cores_used >= 4
    assert len({(c.chip, c.x, c.y) for c in a.cores}) == a.cores_used  # one core per position
    cost0, cost1 = a.placement_cost
    assert cost1 <= cost0


def test_counts_weight_the_traffic_and_give_message_hops_per_sample():
    net = conv_net(size=12, c1=8, c2=8)
    counts = counts_of(net)
    m = map_network(net, counts=counts, overrides={"core_memory_bits": 30000})
    assert m.traffic == "counts"
    assert m.message_hops_per_sample == pytest.approx(
        sum(p.message_hops_per_sample for p in m.projections.values()))
    total = sum(e.messages_per_sample * e.hops for e in m.edges)
    assert m.message_hops_per_sample == pytest.approx(total)
    for p in m.projections.values():
        assert p.mean_hops <= p.max_hops
    # spikes spread evenly: a projection's messages = its source's spikes x destinations per neuron
    c1_msgs = m.projections["c1_c2"].messages_per_sample
    spikes = float(counts.populations["c1"].spikes.mean())
    reach = sum(e.reach for e in m.edges if e.projection == "c1_c2")
    assert c1_msgs == pytest.approx(spikes * reach / 8 / 12 / 12)
    plain = map_network(net, overrides={"core_memory_bits": 30000})
    assert plain.traffic == "synapses" and plain.message_hops_per_sample is None
    assert all(p.messages_per_sample is None for p in plain.projections.values())


def test_a_network_larger_than_one_chip_maps_onto_several():
    net = conv_net(c_in=2, size=16, c1=16, c2=16, hidden=64)
    ov = {"max_neurons_per_core": 16}
    m = map_network(net, system="kapoho-point", overrides=ov, counts=counts_of(net))
    assert m.cores_used > 128 and m.chips_used == -(-m.cores_used // 128)
    assert {c.chip for c in m.cores} == set(range(m.chips_used))
    assert any(e.hops_interchip > 0 for e in m.edges)
    assert sum(p.interchip_message_hops_per_sample for p in m.projections.values()) > 0
    # a system's published core count limits the cores per chip (Hala Point: 122)
    hp = map_network(net, system="hala-point", overrides=ov)
    per_chip = {}
    for c in hp.cores:
        per_chip[c.chip] = per_chip.get(c.chip, 0) + 1
    assert max(per_chip.values()) <= 122 and hp.chips_used == -(-hp.cores_used // 122)


def test_geometry():
    chip = load_chip("loihi2")
    one = positions(chip, single_chip_system(chip))
    assert len(one) == 128 and len({(p.x, p.y) for p in one}) == 128
    assert {p.x for p in one} == set(range(16)) and {p.y for p in one} == set(range(8))
    # the serpentine keeps consecutive positions within one tile hop
    for a, b in itertools.pairwise(one):
        assert sum(hops(a, b)) <= 1
    kp = load_system("kapoho-point")
    many = positions(chip, kp)
    assert len(many) == 8 * 128
    a, b = many[0], many[-1]
    ew, ns, ic = hops(a, b)
    assert hops(b, a) == (ew, ns, ic) and ic == abs(a.cx - b.cx) + abs(a.cy - b.cy) > 0
    assert len(route_tiles(a, b)) == ew + ns + ic + 1
    assert position_of(chip, kp, b.chip, b.x, b.y) == b
    assert input_position(chip) == position_of(chip, kp, 0, 0, 0)
    assert hops(input_position(chip), one[0]) == (0, 0, 0)


def test_small_network_fits_one_core_next_to_the_input():
    m = map_network(dense_net(n_in=8, widths=(6, 3)))
    assert (m.cores_used, m.chips_used) == (1, 1)
    assert all(e.hops == 0 for e in m.edges)
