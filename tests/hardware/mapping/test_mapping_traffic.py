"""Traffic edges as arrays: every edge, its reach, synapses, cores, hops and messages equal a
synapse-by-synapse enumeration and a loop over single edges (as the per-edge code computed
them), and so do the totals built on them: message-hops, every core's messages in and out and
the energy's hops (to the last bit), every router's and chip link's load (to rounding), on
hypothesis-drawn networks, limits and systems."""

from __future__ import annotations

import json
import re
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mapping_nets import connectivity, conv_net, dense_net, slice_rows

from sakd.hardware.mapping import (
    MappingError,
    SystemProfile,
    TrafficEdge,
    TrafficEdges,
    estimate_time,
    estimate_total_energy,
    map_network,
    place,
    traffic,
)
from sakd.hardware.mapping.place import (
    INPUT,
    hops,
    input_position,
    position_of,
    positions,
    route_tiles,
)
from sakd.hardware.simulator import simulate


def counts_of(net, samples=2, seed=1):
    rng = np.random.default_rng(seed)
    if net.input.encoding == "spikes":
        x = (rng.random((samples, *net.input.shape)) < 0.5).astype(np.int64)
    else:
        x = net.input.encode(rng.normal(size=(samples, *net.input.shape)) * 30)
    return simulate(net, x, time_steps=net.time_steps).counts


def reference_edges(network, mapping):
    """(projection, source slice or None, target slice, reach, synapses) of every pair of
    slices with a nonzero synapse, from the full connectivity matrices, in the documented
    order (projection, target slice, source slice)."""
    rows = {s.id: slice_rows(s, network.population(s.population).shape) for s in mapping.slices}
    out = []
    for proj in network.projections:
        w, mask = connectivity(network, proj)
        if proj.source == network.input.name:
            sources = [(None, np.arange(network.input.size))]
        else:
            sources = [(s, rows[s]) for s in mapping.populations[proj.source].slices]
        for t in mapping.populations[proj.target].slices:
            for s, src in sources:
                block_w, block_m = w[np.ix_(rows[t], src)], mask[np.ix_(rows[t], src)]
                reach = int(np.any(block_w != 0, axis=0).sum())
                if reach:
                    out.append((proj.name, s, t, reach, int(block_m.sum())))
    return out


def where(mapping, core):
    """The position of a core (``INPUT``: where the input enters)."""
    if core == INPUT:
        return input_position(mapping.chip)
    c = mapping.cores[core]
    return position_of(mapping.chip, mapping.system, c.chip, c.x, c.y)


def check_edges(network, mapping, counts):
    edges = mapping.edges
    assert isinstance(edges, TrafficEdges)
    views = list(edges)
    assert len(views) == len(edges) and all(isinstance(e, TrafficEdge) for e in views)
    assert [(e.projection, e.source_slice, e.target_slice, e.reach, e.synapses)
            for e in views] == reference_edges(network, mapping)
    for e in views:
        assert e.source_core == (INPUT if e.source_slice is None
                                 else mapping.slices[e.source_slice].core)
        assert e.target_core == mapping.slices[e.target_slice].core
        assert (e.hops_ew, e.hops_ns, e.hops_interchip) == hops(where(mapping, e.source_core),
                                                                where(mapping, e.target_core))
    if counts is None:
        assert edges.rates is None and all(e.messages_per_sample is None for e in views)
        assert [e.weight for e in views] == [float(e.synapses) for e in views]
        return
    # spikes spread evenly over the source population; input events from the operations
    for e in views:
        if e.source_slice is None:
            pc = counts.projections[e.projection]
            ops = pc.graded_macs if network.input.encoding == "graded" else pc.synops
            rate = float(np.mean(ops)) * network.input.size / pc.synapses / network.input.size
        else:
            pc = counts.populations[mapping.slices[e.source_slice].population]
            rate = float(np.mean(pc.spikes)) / pc.neurons
        assert e.messages_per_sample == rate * e.reach == e.weight
    assert np.array_equal(mapping.messages(counts), edges.messages())
    # the totals of a loop over single edges
    total, per_proj = 0.0, {}
    for e in views:
        per_proj[e.projection] = per_proj.get(e.projection, 0.0) + e.messages_per_sample * e.hops
        total += e.messages_per_sample * e.hops
    assert mapping.message_hops_per_sample == pytest.approx(total)
    for name, p in mapping.projections.items():
        mine = [e for e in views if e.projection == name]
        assert p.edges == len(mine)
        assert p.messages_per_sample == pytest.approx(sum(e.messages_per_sample for e in mine))
        assert p.message_hops_per_sample == pytest.approx(per_proj.get(name, 0.0))
        assert p.max_hops == max((e.hops for e in mine if e.weight > 0), default=0)


def check_loads(network, mapping, counts):
    """Every core's messages, every router's and chip link's load, the traversal and the
    energy's message-hops equal a loop over single edges (the per-route walk of the per-edge
    code): to the last bit, but for router and link loads (summed as range updates: to
    rounding)."""
    chip, system = mapping.chip, mapping.system
    t = estimate_time(mapping, network, counts, 4)
    msgs = mapping.messages(counts) / counts.time_steps
    views = list(mapping.edges)
    msg_in, msg_out, router, links, traverse = {}, {}, {}, {}, 0.0

    def scale(bits):
        return (chip.message_bits + bits) / chip.message_bits

    for e, m in zip(views, msgs.tolist()):
        msg_in[e.target_core] = msg_in.get(e.target_core, 0.0) + m
        if e.source_slice is not None:
            msg_out[e.source_core] = msg_out.get(e.source_core, 0.0) + m
        if m <= 0:
            continue
        if e.source_slice is None:
            load = m * scale(mapping.input_bits if mapping.input_encoding == "graded" else 0)
        else:
            source = network.population(mapping.slices[e.source_slice].population)
            bits = int(getattr(source, "message_bits", 1))
            load = m * scale(bits if bits > 1 else 0)
        route = route_tiles(where(mapping, e.source_core), where(mapping, e.target_core))
        for tile in route:
            router[tile] = router.get(tile, 0.0) + load
        for (x0, y0), (x1, y1) in pairwise(route):
            c0 = (x0 // chip.mesh_tiles_x, y0 // chip.mesh_tiles_y)
            c1 = (x1 // chip.mesh_tiles_x, y1 // chip.mesh_tiles_y)
            if c0 != c1:
                for cx, cy in (c0, c1):
                    k = cy * system.chips_x + (cx if cy % 2 == 0 else system.chips_x - 1 - cx)
                    links[k] = links.get(k, 0.0) + load
        traverse = max(traverse, chip.t_within_tile_ns + e.hops_ew * chip.t_hop_ew_ns
                       + e.hops_ns * chip.t_hop_ns_ns + e.hops_interchip * chip.t_interchip_hop_ns)
    for ct in t.cores:
        assert (ct.messages_in, ct.messages_out) == (msg_in.get(ct.core, 0.0),
                                                     msg_out.get(ct.core, 0.0))
    # routers and links: the same tiles and chips, the same loads up to rounding (summed as
    # range updates, not one route at a time)
    expected = {f"{x},{y}": v for (x, y), v in sorted(router.items())}
    assert list(t.router_messages) == list(expected)
    assert list(t.router_messages.values()) == pytest.approx(list(expected.values()), rel=1e-9)
    assert t.router_ns == pytest.approx(
        max(router.values(), default=0.0) / chip.tile_message_rate_per_s * 1e9, rel=1e-9)
    assert t.interchip_ns == pytest.approx(
        max(links.values(), default=0.0) / chip.interchip_message_rate_per_s * 1e9, rel=1e-9)
    assert t.traverse_ns == traverse
    if t.bottleneck_kind == "router":
        x, y = map(int, re.search(r"global tile \((\d+), (\d+)\)", t.bottleneck).groups())
        assert router[(x, y)] == pytest.approx(max(router.values()), rel=1e-9)
    elif t.bottleneck_kind == "interchip":
        k = int(re.search(r"links of chip (\d+):", t.bottleneck).group(1))
        assert links[k] == pytest.approx(max(links.values()), rel=1e-9)
    e = estimate_total_energy(mapping, t, counts, "loihi")
    hop_sums = {"ew": 0.0, "ns": 0.0, "interchip": 0.0}
    for edge, m in zip(views, mapping.messages(counts).tolist()):
        hop_sums["ew"] += m * edge.hops_ew
        hop_sums["ns"] += m * edge.hops_ns
        hop_sums["interchip"] += m * edge.hops_interchip
    assert e.message_hops == hop_sums


# ---------------------------------------------------------------------------------------------
# hypothesis: small networks, limits that split them, one chip or a grid of chips
# ---------------------------------------------------------------------------------------------


@st.composite
def cases(draw):
    seed = draw(st.integers(0, 2**16))
    zeros = draw(st.sampled_from([0.0, 0.3, 0.8]))
    if draw(st.booleans()):
        net = conv_net(seed=seed, c_in=draw(st.integers(1, 3)), size=draw(st.integers(4, 9)),
                       c1=draw(st.integers(1, 6)), c2=draw(st.integers(1, 6)),
                       hidden=draw(st.integers(2, 12)), classes=3, zeros=zeros,
                       delay=draw(st.sampled_from([0, 2])))
    else:
        net = dense_net(seed=seed, n_in=draw(st.integers(3, 30)),
                        widths=tuple(draw(st.lists(st.integers(2, 30), min_size=1, max_size=3))),
                        zeros=zeros, encoding=draw(st.sampled_from(["graded", "spikes"])))
    overrides = {"max_neurons_per_core": draw(st.integers(2, 24))}
    system = None
    if draw(st.booleans()):  # several small chips: chip-to-chip hops and links
        overrides.update(mesh_tiles_x=2, mesh_tiles_y=1, tile_cores_x=1, tile_cores_y=2,
                         cores_per_chip=4)
        system = SystemProfile(name="test-grid", description="36 chips of 4 cores",
                               chip="loihi2", chips=36, chips_x=6, chips_y=6)
    return net, overrides, system, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_edges_and_their_totals_match_a_loop_over_single_edges(case):
    net, overrides, system, with_counts, share = case
    counts = counts_of(net) if with_counts else None
    try:
        m = map_network(net, system=system, counts=counts, overrides=overrides,
                        share_cores=share)
    except MappingError as exc:  # the drawn limits cannot hold the network: said so
        assert exc.resource is not None
        return
    check_edges(net, m, counts)
    if counts is not None:
        check_loads(net, m, counts)


def test_the_reference_on_fixed_networks_one_chip_and_several():
    net = conv_net(size=12, c1=8, c2=8, zeros=0.2)
    counts = counts_of(net)
    one = map_network(net, counts=counts, overrides={"core_memory_bits": 30000})
    check_edges(net, one, counts)
    check_loads(net, one, counts)
    big = conv_net(c_in=2, size=16, c1=16, c2=16, hidden=64)
    big_counts = counts_of(big)
    many = map_network(big, system="kapoho-point", counts=big_counts,
                       overrides={"max_neurons_per_core": 16})
    assert many.chips_used > 1 and int(many.edges.hops()[2].max()) > 0
    check_edges(big, many, big_counts)
    check_loads(big, many, big_counts)


def test_rows_views_and_plain_json():
    net = conv_net(size=8, c1=4, c2=4)
    m = map_network(net, counts=counts_of(net), overrides={"max_neurons_per_core": 16})
    edges = m.edges
    assert len(edges) > 4
    assert edges[-1] == edges[len(edges) - 1] == list(edges)[-1]
    with pytest.raises(IndexError):
        edges[len(edges)]
    rows = m.to_dict()["edges"]
    assert len(rows) == len(edges)
    for row, e in zip(rows, edges):
        assert row == {**{k: getattr(e, k) for k in TrafficEdge.__dataclass_fields__},
                       "hops": e.hops}
    # the rows of each projection are contiguous, in the network's order
    names = [p.name for p in net.projections]
    assert list(dict.fromkeys(e.projection for e in edges)) == names
    for name in names:
        rows_of = edges.projection_range(name)
        assert {e.projection for e in list(edges)[rows_of]} == {name}
    assert edges.nbytes <= 20 * len(edges)  # four int columns, not an object per edge


def test_small_blocks_give_the_same_mapping_time_and_energy(monkeypatch):
    """Edges built, summed and routed in blocks of a few rows: the same figures (the
    additions of a loop over edges keep their order across blocks; the other sums agree to
    rounding)."""

    net = conv_net(c_in=2, size=16, c1=16, c2=16, hidden=64)
    counts = counts_of(net)

    def run():
        m = map_network(net, system="kapoho-point", counts=counts,
                        overrides={"max_neurons_per_core": 16})
        t = estimate_time(m, net, counts, 4)
        return m, t, estimate_total_energy(m, t, counts, "loihi")

    whole = run()
    for name, value in (("BLOCK_ROWS", 7), ("BLOCK_ENTRIES", 10), ("BLOCK_BINS", 10)):
        monkeypatch.setattr(traffic, name, value)
    blocks = run()
    assert len(whole[0].edges) > 7 * 10
    assert json.dumps(whole[0].to_dict()["edges"]) == json.dumps(blocks[0].to_dict()["edges"])
    assert whole[0].placement_cost == blocks[0].placement_cost
    assert list(whole[1].router_messages) == list(blocks[1].router_messages)
    assert list(whole[1].router_messages.values()) == pytest.approx(
        list(blocks[1].router_messages.values()), rel=1e-9)
    assert [c.messages_in for c in whole[1].cores] == [c.messages_in for c in blocks[1].cores]
    assert whole[2].message_hops == blocks[2].message_hops
    assert whole[2].messages == pytest.approx(blocks[2].messages)
    for name, p in whole[0].projections.items():
        q = blocks[0].projections[name]
        assert (p.edges, p.max_hops) == (q.edges, q.max_hops)
        assert p.mean_hops == pytest.approx(q.mean_hops)
        assert p.message_hops_per_sample == pytest.approx(q.message_hops_per_sample)


def test_above_the_improvement_limit_the_serpentine_fill_stands(monkeypatch):
    net = conv_net(size=12, c1=8, c2=8)
    counts = counts_of(net)
    improved = map_network(net, counts=counts, overrides={"max_neurons_per_core": 16})
    monkeypatch.setattr(place, "IMPROVE_MAX_EDGES", len(improved.edges) - 1)
    m = map_network(net, counts=counts, overrides={"max_neurons_per_core": 16})
    assert any("serpentine fill" in n for n in m.notes)
    assert not any("serpentine fill" in n for n in improved.notes)
    # the cores, in the fill order (topological), on the first positions of the serpentine
    order = sorted(range(m.cores_used), key=lambda c: (
        min([p.name for p in net.populations].index(m.slices[s].population)
            for s in m.cores[c].slices), min(m.cores[c].slices)))
    slots = positions(m.chip, m.system)
    assert [(m.cores[c].x, m.cores[c].y) for c in order] == [(p.x, p.y)
                                                            for p in slots[:m.cores_used]]
    chip = m.chip
    cost = sum(e.weight * (chip.e_hop_ew_pj * e.hops_ew + chip.e_hop_ns_pj * e.hops_ns
                           + chip.e_interchip_hop_pj * e.hops_interchip) for e in m.edges)
    assert m.placement_cost[0] == m.placement_cost[1] == pytest.approx(cost)
    assert improved.placement_cost[1] <= m.placement_cost[1]
    check_edges(net, m, counts)
    check_loads(net, m, counts)
