"""Partition and packing: every core within every limit (on hypothesis-drawn networks and
limits), the counts equal a brute-force enumeration of the synapses, and every error names the
population, the resource, the need and what a core has."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mapping_nets import connectivity, conv_net, dense_net, pop, slice_rows, weights

from sakd.hardware.ir import Input, Network, Projection
from sakd.hardware.mapping import MappingError, SystemProfile, map_network
from sakd.hardware.mapping.resources import (
    RESOURCES,
    axon_list_bits,
    capacity,
    index_bits,
    neuron_state_bits,
)


def check_against_reference(network, mapping):
    """Every limit holds; the slices tile every population; input axons, synapses, output
    axons, neuron memory and conv synapse lists equal a synapse-by-synapse count."""
    chip = mapping.chip
    for core in mapping.cores:
        for r in RESOURCES:
            cap = capacity(chip, r)
            if cap is not None:
                assert core.amounts[r] <= cap, (core.id, r, core.amounts[r], cap)
    rows_of = {}
    for p in network.populations:
        parts = [slice_rows(mapping.slices[s], p.shape) for s in mapping.populations[p.name].slices]
        rows = np.concatenate(parts)
        assert np.array_equal(np.sort(rows), np.arange(p.size)), p.name
        for s, r in zip(mapping.populations[p.name].slices, parts):
            rows_of[s] = r
    conn = {proj.name: connectivity(network, proj) for proj in network.projections}
    reached = {p.name: np.zeros(p.size, dtype=np.int64) for p in network.populations}
    for s in mapping.slices:
        rows = rows_of[s.id]
        by_source = {}
        for proj in network.projections_into(s.population):
            w, _ = conn[proj.name]
            hit = np.any(w[rows] != 0, axis=0)
            by_source[proj.source] = by_source.get(proj.source, False) | hit
        for source, hit in by_source.items():
            if source in reached:
                reached[source] += hit
    for s in mapping.slices:
        rows = rows_of[s.id]
        target = network.population(s.population)
        axons = nnz = struct = 0
        delay = max(p.delay for p in network.projections_into(s.population))
        for proj in network.projections_into(s.population):
            w, mask = conn[proj.name]
            block = w[rows]
            axons += int(np.count_nonzero(np.any(block != 0, axis=0)))
            nnz += int(np.count_nonzero(block))
            struct += int(mask[rows].sum())
            assert s.synapses_by_projection[proj.name] == int(mask[rows].sum())
        assert s.amounts["input_axons"] == axons
        assert (s.synapses_nonzero, s.synapses) == (nnz, struct)
        assert s.amounts["output_axons"] == int(reached[s.population][rows].sum())
        state = neuron_state_bits(target, chip)
        assert s.amounts["neuron_memory_bits"] == len(rows) * (state + (delay + 1) * chip.delay_slot_bits)
        # conv synapse lists: groups of nonzero synapses per input axon, index and delay fields
        per_target = 0
        for proj in network.projections_into(s.population):
            w, _ = conn[proj.name]
            nz_per_source = np.count_nonzero(w[rows], axis=0)
            mant = proj.weight // 2
            wb = max(max(abs(int(mant.min())), int(mant.max())).bit_length()
                     + (mant.min() < 0), 1)
            db = chip.delay_field_bits if proj.delay else 0
            sparse = int(axon_list_bits(nz_per_source, wb + index_bits(len(rows), chip) + db,
                                        chip).sum())
            if proj.kind == "dense":
                dense = int(axon_list_bits(np.where(nz_per_source > 0, len(rows), 0), wb + db,
                                           chip).sum())
                per_target += min(sparse, dense)
            else:
                per_target += sparse
        assert s.synapse_bits_per_target == per_target
        if not chip.shared_weights:
            assert s.amounts["synapse_memory_bits"] == per_target


# ---------------------------------------------------------------------------------------------
# hypothesis: random networks and random limits
# ---------------------------------------------------------------------------------------------


@st.composite
def networks(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    if draw(st.booleans()):
        shape = (draw(st.integers(1, 3)), draw(st.integers(3, 7)), draw(st.integers(3, 7)))
    else:
        shape = (draw(st.integers(3, 30)),)
    inp = Input("x", shape, "graded", bits=8)
    zeros = draw(st.sampled_from([0.0, 0.4, 0.9]))
    pops, projs, prev, cur = [], [], "x", shape
    for i in range(draw(st.integers(1, 3))):
        name = f"p{i}"
        delay = draw(st.sampled_from([0, 0, 2]))
        layer = draw(st.sampled_from(["conv2d", "upsample", "dense"])) if len(cur) == 3 \
            else "dense"
        if layer == "upsample":  # a transposed conv whose kernel equals its stride
            cin = cur[0]
            groups = draw(st.sampled_from([g for g in (1, 2, cin) if cin % g == 0]))
            cout = groups * draw(st.integers(1, 2))
            fh, fw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
            w = weights(rng, (cout, cin // groups, fh, fw), zeros)
            w.reshape(-1)[0] = 2
            pops.append(pop(name, (cout, cur[1] * fh, cur[2] * fw)))
            projs.append(Projection(f"{prev}_{name}", prev, name, "upsample", w, stride=(fh, fw),
                                    groups=groups, delay=delay))
            cur = (cout, cur[1] * fh, cur[2] * fw)
        elif layer == "conv2d":
            cin = cur[0]
            groups = draw(st.sampled_from([g for g in (1, 2) if cin % g == 0]))
            cout = groups * draw(st.integers(1, 3))
            k = draw(st.integers(1, 3))
            stride, pad, dil = draw(st.integers(1, 2)), draw(st.integers(0, 1)), draw(st.integers(1, 2))
            ho = (cur[1] + 2 * pad - dil * (k - 1) - 1) // stride + 1
            wo = (cur[2] + 2 * pad - dil * (k - 1) - 1) // stride + 1
            if ho < 1 or wo < 1:
                k, dil, pad, stride = 1, 1, 0, 1
                ho, wo = cur[1], cur[2]
            w = weights(rng, (cout, cin // groups, k, k), zeros)
            w.reshape(-1)[0] = 2  # at least one nonzero weight
            pops.append(pop(name, (cout, ho, wo)))
            projs.append(Projection(f"{prev}_{name}", prev, name, "conv2d", w, stride=stride,
                                    padding=pad, dilation=dil, groups=groups, delay=delay))
            cur = (cout, ho, wo)
        else:
            n_in, n_out = int(np.prod(cur)), draw(st.integers(2, 24))
            w = weights(rng, (n_out, n_in), zeros)
            w[0, 0] = 2
            pops.append(pop(name, (n_out,)))
            projs.append(Projection(f"{prev}_{name}", prev, name, "dense", w, delay=delay))
            cur = (n_out,)
        prev = name
    w = weights(rng, (3, int(np.prod(cur))), zeros)
    w[0, 0] = 2
    pops.append(pop("out", (3,), readout=True))
    projs.append(Projection(f"{prev}_out", prev, "out", "dense", w))
    return Network(inp, tuple(pops), tuple(projs), time_steps=2)


@st.composite
def limits(draw):
    chip = draw(st.sampled_from(["loihi", "loihi2"]))
    ov = {"max_neurons_per_core": draw(st.integers(2, 64)),
          "input_axons_per_core": draw(st.integers(8, 400)),
          "output_axons_per_core": draw(st.integers(8, 400)),
          "shared_weights": draw(st.booleans())}
    if chip == "loihi":
        ov["synapse_memory_bits"] = draw(st.integers(500, 60000))
        ov["max_message_bits"] = 8
    else:
        ov["core_memory_bits"] = draw(st.integers(2000, 150000))
    return chip, ov


def grid(chip):
    return SystemProfile(name="test-grid", description="64 chips", chip=chip, chips=64,
                         chips_x=8, chips_y=8)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), limits())
def test_partitions_respect_every_limit_and_match_a_brute_force_count(network, lim):
    chip, overrides = lim
    try:
        mapping = map_network(network, chip=chip, system=grid(chip), overrides=overrides)
    except MappingError as exc:
        # a genuine impossibility, named: check the input-axon one against the reference
        assert exc.population in {p.name for p in network.populations} or exc.resource == "cores"
        assert exc.resource in (*RESOURCES, "cores")
        if exc.resource == "input_axons":  # some neuron alone has more sources than axons
            fan_in = sum((connectivity(network, p)[0] != 0).sum(axis=1)
                         for p in network.projections_into(exc.population))
            assert int(np.max(fan_in)) > overrides["input_axons_per_core"]
            assert "input axons" in str(exc)
        return
    check_against_reference(network, mapping)


# ---------------------------------------------------------------------------------------------
# fixed cases
# ---------------------------------------------------------------------------------------------


def test_reference_on_the_default_chips():
    net = conv_net(zeros=0.3, delay=2)
    for chip, ov in (("loihi2", None), ("loihi", {"max_message_bits": 8}),
                     ("loihi2", {"shared_weights": False, "core_memory_bits": 40000})):
        check_against_reference(net, map_network(net, chip=chip, overrides=ov))


def upsample_net(seed=0, zeros=0.0, delay=0):
    """An FPN-like piece: x (2, 6, 6) -conv-> c (4, 6, 6) -nearest x2 (depthwise upsample)-> u
    (4, 12, 12) and, beside it, a general upsample (groups 2, position-dependent weights) of c
    into u; u -dense-> out."""
    rng = np.random.default_rng(seed)
    near = np.full((4, 1, 2, 2), 2)
    general = weights(rng, (4, 2, 2, 2), zeros)
    general.reshape(-1)[0] = 2
    return Network(
        Input("x", (2, 6, 6), "graded", bits=8, scale=4.0),
        (pop("c", (4, 6, 6)), pop("u", (4, 12, 12)), pop("out", (3,), readout=True)),
        (Projection("x_c", "x", "c", "conv2d", weights(rng, (4, 2, 3, 3), zeros), padding=(1, 1)),
         Projection("c_u", "c", "u", "upsample", near, stride=(2, 2), groups=4, delay=delay),
         Projection("c_u2", "c", "u", "upsample", general, stride=(2, 2), groups=2, delay=delay),
         Projection("u_out", "u", "out", "dense", weights(rng, (3, 4 * 144), zeros))),
        time_steps=2)


@pytest.mark.parametrize("chip, ov", [
    ("loihi2", {"max_neurons_per_core": 40}),
    ("loihi2", {"shared_weights": False, "max_neurons_per_core": 50}),
    ("loihi", {"max_message_bits": 8, "max_neurons_per_core": 64})])
def test_upsample_projections_match_a_brute_force_count(chip, ov):
    """Every upsample synapse (one per target neuron and channel of its group) enumerated one by
    one: the slices' synapses, input axons and per-target lists agree, and a shared-weight
    chip stores the kernel once per core."""
    net = upsample_net(zeros=0.3, delay=1)
    mapping = map_network(net, chip=chip, overrides=ov)
    check_against_reference(net, mapping)
    u = mapping.populations["u"]
    assert len(u.slices) > 1
    # structural synapses: each target neuron holds one per channel of its group (1 + 2)
    assert sum(mapping.slices[i].synapses for i in u.slices) == 4 * 144 * (1 + 2)
    if mapping.chip.shared_weights:
        enc = {sl.encodings["c_u"] for sl in mapping.slices if sl.population == "u"}
        assert enc == {"shared"}


def test_a_large_dense_layer_is_split_by_synapse_memory():
    net = dense_net(n_in=600, widths=(256, 10), encoding="spikes")
    m = map_network(net, chip="loihi")  # 7-bit weights, 128 KB synapse memory per core
    p = m.populations["l0"]
    # dense encoding: an input axon's 256 targets = 4 groups of 64 x 7 + 10 bits, each rounded
    # up to 8 words of 64 bits: 2,048 bits per axon; 600 axons = 1.17 Mbit > 1 Mbit -> 2 slices
    assert p.binding_resource == "synapse_memory_bits"
    assert len(p.slices) == 2
    assert m.slices[p.slices[0]].amounts["synapse_memory_bits"] == 600 * 2 * 512  # 128 rows
    for s in p.slices:
        assert m.slices[s].amounts["synapse_memory_bits"] <= 16384 * 64


def test_small_populations_share_a_core_unless_asked_not_to():
    net = dense_net(n_in=10, widths=(8, 6, 4))
    shared = map_network(net)
    assert shared.cores_used == 1
    assert len(shared.cores[0].slices) == 3
    alone = map_network(net, share_cores=False)
    assert alone.cores_used == 3
    assert all(len(c.slices) == 1 for c in alone.cores)


def test_conv_weights_are_counted_both_ways():
    net = conv_net(c_in=4, size=16, c1=16, c2=16)
    shared = map_network(net, overrides={"shared_weights": True})
    unshared = map_network(net, overrides={"shared_weights": False})
    s, u = shared.populations["c1"], unshared.populations["c1"]
    assert s.synapse_bits_shared < s.synapse_bits_per_target
    assert u.synapse_bits_shared < u.synapse_bits_per_target
    assert len(u.slices) >= len(s.slices)  # per-target lists take more memory
    used = sum(unshared.slices[i].amounts["synapse_memory_bits"] for i in u.slices)
    assert used == u.synapse_bits_per_target
    enc = {e for sl in shared.slices if sl.population == "c1" for e in sl.encodings.values()}
    assert enc == {"shared"}
    enc = {e for sl in unshared.slices if sl.population == "c1" for e in sl.encodings.values()}
    assert enc == {"sparse"}


def test_binding_resource_and_utilization_are_reported():
    m = map_network(conv_net(), chip="loihi", overrides={"max_message_bits": 8})
    for p in m.populations.values():
        assert p.binding_resource in RESOURCES
        assert 0 < p.binding_utilization <= 1.0
    for c in m.cores:
        assert c.binding_resource in RESOURCES
        assert c.utilization["core_memory_bits"] is None  # Loihi 1: no shared memory
        assert all(u is None or 0 <= u <= 1 for u in c.utilization.values())


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def test_a_fan_in_larger_than_synapse_memory_is_named():
    net = dense_net(n_in=3000, widths=(4, 2))
    with pytest.raises(MappingError) as info:
        map_network(net, chip="loihi2", overrides={"core_memory_bits": 8192,
                                                   "input_axons_per_core": 8192})
    msg = str(info.value)
    nnz = int(np.count_nonzero(net.projections[0].weight, axis=1).max())
    assert f"population 'l0': one neuron's fan-in of {nnz:,} synapses needs" in msg
    assert "KB of core memory" in msg and "a loihi2 core has 1.0 KB" in msg
    assert "split the layer, reduce its fan-in, or use sparse weights" in msg
    assert (info.value.population, info.value.resource) == ("l0", "core_memory_bits")


def test_too_many_distinct_sources_for_the_input_axons_is_named():
    net = dense_net(n_in=5000, widths=(4, 2))
    with pytest.raises(MappingError, match=r"population 'l0': one neuron receives spikes from "
                                           r"[\d,]+ distinct source neurons \(of x\), a loihi2 core has 4,096 input axons"):
        map_network(net)


def test_too_many_destinations_for_the_output_axons_is_named():
    net = dense_net(n_in=4, widths=(2, 64, 2))
    with pytest.raises(MappingError, match=r"population 'l0': one neuron sends spikes to 32 "
                                           r"destination cores .*16 output axon slots"):
        map_network(net, overrides={"max_neurons_per_core": 2, "output_axons_per_core": 16})


def test_what_the_chip_cannot_carry_at_all():
    with pytest.raises(MappingError, match=r"input 'x': sends 8-bit graded messages, a loihi "
                                           r"chip carries messages of at most 1 bit"):
        map_network(dense_net(), chip="loihi")
    map_network(dense_net(encoding="spikes"), chip="loihi")  # spikes are fine
    with pytest.raises(MappingError, match=r"projection 'c1_c2': delay 2 exceeds the 1 steps"):
        map_network(conv_net(delay=2), overrides={"max_delay": 1})
    with pytest.raises(MappingError, match=r"projection 'x_l0': its weights need \d bits, a "
                                           r"loihi2 synapse holds 3"):
        map_network(dense_net(), overrides={"max_weight_bits": 3})


def test_a_network_too_big_for_the_system_names_the_chips_it_needs():
    net = conv_net(c_in=2, size=16, c1=16, c2=16, hidden=64)
    ov = {"max_neurons_per_core": 16}  # c1 alone: 4,096 neurons = 256 cores
    with pytest.raises(MappingError, match=r"needs (\d+) cores, i\.e\. (\d+) loihi2 chips .* "
                                           r"system 'loihi2-chip' has 1 chip") as info:
        map_network(net, system="loihi2-chip", overrides=ov)
    assert info.value.resource == "cores"
    cores, chips = (int(g) for g in re.search(r"needs (\d+) cores, i\.e\. (\d+)",
                                              str(info.value)).groups())
    assert cores > 128 and chips == -(-cores // 128)
    assert f"a system of at least {chips} chips" in str(info.value)
    with pytest.raises(MappingError, match=r"network: needs"):
        map_network(net, overrides=ov)  # no system: one chip


def test_mismatched_inputs_are_errors():
    net = dense_net()
    with pytest.raises(MappingError, match="system 'kapoho-point' is built of loihi2 chips"):
        map_network(net, chip="loihi", system="kapoho-point")
    with pytest.raises(MappingError, match="needs an IR Network"):
        map_network("net.h5")
    with pytest.raises(MappingError, match="counts must be NetworkCounts"):
        map_network(net, counts={"l0": 3})


def plain_first_fit(partition, chip, network):
    """First-fit decreasing as first written: every open core scanned for every slice."""
    order = {name: i for i, name in enumerate(network.topological_order())}
    amounts = [s.usage.amounts(chip) for s in partition.slices]
    caps = {r: capacity(chip, r) for r in RESOURCES}

    def size(i):
        fr = [amounts[i][r] / c for r, c in caps.items() if c is not None]
        return max(fr) if fr else 0.0

    items = sorted(range(len(partition.slices)),
                   key=lambda i: (-size(i), order[partition.slices[i].population],
                                  partition.slices[i].index))
    cores, loads = [], []
    for i in items:
        for k, load in enumerate(loads):
            if all(caps[r] is None or load[r] + amounts[i][r] <= caps[r] for r in RESOURCES):
                cores[k].append(i)
                for r in RESOURCES:
                    load[r] += amounts[i][r]
                break
        else:
            cores.append([i])
            loads.append(dict(amounts[i]))
    return [sorted(c) for c in cores]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), limits(), st.sampled_from([1, 2, 3, 64]))
def test_block_first_fit_packs_exactly_as_a_scan_of_every_core(network, lim, block):
    from sakd.hardware.mapping import load_chip
    from sakd.hardware.mapping import partition as part_mod

    chip_name, overrides = lim
    chip = load_chip(chip_name, overrides)
    try:
        part = part_mod.partition_network(network, chip, network.target_spec)
    except MappingError:
        return
    saved = part_mod.PACK_BLOCK
    part_mod.PACK_BLOCK = block
    try:
        packed = part_mod.pack_cores(part, chip, network)
    finally:
        part_mod.PACK_BLOCK = saved
    assert packed == plain_first_fit(part, chip, network)
