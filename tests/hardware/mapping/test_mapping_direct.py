"""A netx-style input layer (a population fed by a ``direct`` projection: the host writes each
neuron's input, no synapse) maps: one input axon and one 1-bit identity synapse per neuron,
every input value a message every step, no ANN layer; and a conv box stores its receptive
field only (memory proportional to the box, not to the source)."""

from __future__ import annotations

import numpy as np
import pytest
from mapping_nets import conv_net, pop, weights

from sakd.hardware.energy import ann_layers_from_network
from sakd.hardware.ir import Input, Network, Projection
from sakd.hardware.mapping import estimate_time, load_chip, map_network
from sakd.hardware.mapping.resources import axon_list_bits, project_into_box
from sakd.hardware.simulator import simulate


def input_layer_net(seed: int = 0) -> Network:
    """x (2, 10, 10) -direct-> inp (2, 10, 10) -conv3x3-> c (4, 10, 10) -dense-> out (3,)."""
    rng = np.random.default_rng(seed)
    shape = (2, 10, 10)
    return Network(
        Input("x", shape, "graded", bits=8, scale=1.0),
        (pop("inp", shape), pop("c", (4, 10, 10)), pop("out", (3,), readout=True)),
        (Projection("x_inp", "x", "inp", "direct", np.int64(1)),
         Projection("inp_c", "inp", "c", "conv2d", weights(rng, (4, 2, 3, 3)), padding=(1, 1)),
         Projection("c_out", "c", "out", "dense", weights(rng, (3, 400)))),
        time_steps=4)


@pytest.fixture(scope="module")
def mapped():
    net = input_layer_net()
    x = np.random.default_rng(1).integers(0, 120, size=(2, *net.input.shape))
    counts = simulate(net, net.input.encode(x), time_steps=4).counts
    chip = load_chip("loihi2", {"max_neurons_per_core": 64})
    return net, counts, map_network(net, chip, counts=counts)


def test_a_direct_projection_is_an_identity_on_the_input_layer(mapped):
    m = mapped[2]
    chip = m.chip
    inp = m.populations["inp"]
    assert len(inp.slices) == 4  # 200 neurons, 64 per core
    for sid in inp.slices:
        s = m.slices[sid]
        n = s.neurons
        assert s.synapses_by_projection["x_inp"] == n
        core = m.cores[s.core]
        if len(core.slices) == 1:  # a core of its own: its axons and memory are the slice's
            assert core.amounts["input_axons"] == n
            assert core.amounts["synapse_memory_bits"] == int(axon_list_bits(np.ones(n), 1,
                                                                             chip).sum())
    assert any("identity" in note for note in m.notes)


def test_direct_input_messages_are_every_value_every_step(mapped):
    net, counts, m = mapped
    messages = m.messages(counts)
    direct = [i for i, e in enumerate(m.edges) if e.projection == "x_inp"]
    assert len(direct) == len(m.populations["inp"].slices)  # one edge per slice, from the input
    assert sum(messages[i] for i in direct) == pytest.approx(net.input.size * 4)
    t = estimate_time(m, net, counts, time_steps=4)
    assert t.step_ns > 0


def test_the_ann_twin_has_no_layer_for_a_direct_projection():
    net = input_layer_net()
    assert [layer.name for layer in ann_layers_from_network(net)] == ["inp_c", "c_out"]


def test_a_conv_box_keeps_its_receptive_field_only():
    net = conv_net(size=32, c1=4, c2=8)
    proj = next(p for p in net.projections if p.name == "c1_c2")  # stride 2, pad 1: a 2 x 2 output box reads 5 x 5 inputs
    chip = load_chip("loihi2")
    part = project_into_box(net, proj, ((0, 8), (4, 6), (4, 6)), chip, 8)
    assert part.sources.size == 4 * 5 * 5 < net.population("c1").size
    assert np.all(np.diff(part.sources) > 0)
    assert part.fanout.sum() == part.synapses and part.reach.sum() == part.input_axons
