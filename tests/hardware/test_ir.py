"""IR nodes and network validation: every rule raises an IRError that names the node."""

from __future__ import annotations

import numpy as np
import pytest

from sakd.hardware.ir import (
    Input,
    IRError,
    Network,
    Projection,
    conv2d_output_shape,
)
from sakd.hardware.neurons.cuba_lif import lif_population
from sakd.hardware.target import LOIHI2


def pop(name, shape=(4,), role="spiking", **kw):
    kw.setdefault("du", 4095)
    kw.setdefault("dv", 2048)
    kw.setdefault("vth", 0 if role == "readout" else 100)
    return lif_population(name, shape, role=role, **kw)


def dense(name, src, tgt, out, inp, value=2, **kw):
    return Projection(name, src, tgt, "dense", np.full((out, inp), value), **kw)


def mixed(name, src, tgt, out, inp, value, **kw):
    """A mixed-sign matrix (one -2) holding ``value`` elsewhere."""
    w = np.full((out, inp), value)
    w[0, 0] = -2
    return Projection(name, src, tgt, "dense", w, **kw)


def chain(**overrides):
    """x (1, 4, 4) -conv-> c (2, 4, 4) -dense-> h (5,) -dense-> out (3,) readout."""
    parts = {
        "inp": Input("x", (1, 4, 4), "graded", bits=8, scale=4.0),
        "pops": [pop("c", (2, 4, 4)), pop("h", (5,)), pop("out", (3,), role="readout")],
        "projs": [
            Projection("x_c", "x", "c", "conv2d", np.full((2, 1, 3, 3), 2), padding=(1, 1)),
            dense("c_h", "c", "h", 5, 32),
            dense("h_out", "h", "out", 3, 5),
        ],
    }
    parts.update(overrides)
    return Network(
        parts["inp"], tuple(parts["pops"]), tuple(parts["projs"]), metadata={"classes": 3}
    )


def test_valid_network_and_queries():
    net = chain()
    assert net.latencies == {"c": 1, "h": 2, "out": 3}
    assert net.latency == 3
    assert net.readout.name == "out"
    assert net.topological_order() == ("c", "h", "out")
    assert [p.name for p in net.projections_into("h")] == ["c_h"]
    assert [p.name for p in net.projections_from("x")] == ["x_c"]
    assert net.population("h").shape == (5,)
    with pytest.raises(KeyError):
        net.population("nope")
    assert net.source_shape("x") == (1, 4, 4)
    assert net.target_spec is LOIHI2


def test_arrays_are_frozen_copies():
    w = np.full((5, 32), 2)
    p = Projection("c_h", "c", "h", "dense", w)
    w[0, 0] = 4
    assert p.weight[0, 0] == 2 and p.weight.dtype == np.int64
    with pytest.raises(ValueError):
        p.weight[0, 0] = 6
    q = pop("a", (2, 3, 3), bias_mant=[1, -2])
    with pytest.raises(ValueError):
        q.neuron.bias_mant[0] = 5
    with pytest.raises(AttributeError):
        q.du = 3  # frozen dataclass


def test_pickle_keeps_arrays_frozen():
    import copy
    import pickle

    net = chain()
    back = pickle.loads(pickle.dumps(net))
    assert back.equals(net) and back.latencies == net.latencies
    assert not back.projections[1].weight.flags.writeable
    assert not back.populations[0].neuron.bias_mant.flags.writeable
    assert copy.deepcopy(net).equals(net)


def test_bias_shapes_and_full_bias():
    assert pop("a", (2, 2, 2), bias_mant=3).neuron.full_bias((2, 2, 2)).tolist() == [[[3, 3], [3, 3]]] * 2
    full = pop("a", (2, 1, 2), bias_mant=[1, -2]).neuron.full_bias((2, 1, 2))
    assert full.tolist() == [[[1, 1]], [[-2, -2]]] and full.dtype == np.int64
    assert pop("a", (2, 1, 2), bias_mant=[[[1, 2]], [[3, 4]]]).neuron.full_bias((2, 1, 2)).tolist() == [
        [[1, 2]],
        [[3, 4]],
    ]
    assert pop("a", (3,), bias_mant=[1, 2, 3], bias_exp=2).neuron.effective_bias((3,)).tolist() == [4, 8, 12]
    with pytest.raises(IRError, match=r"population 'a': bias_mant shape \(3,\)"):
        pop("a", (2, 2, 2), bias_mant=[1, 2, 3])
    with pytest.raises(IRError, match="population 'a': .*bias_mant must hold integers"):
        pop("a", (2,), bias_mant=[0.5, 1])


def test_equals():
    assert chain().equals(chain())
    other = chain(
        pops=[pop("c", (2, 4, 4), vth=101), pop("h", (5,)), pop("out", (3,), role="readout")]
    )
    assert not chain().equals(other)
    assert not chain().equals("network")
    a = dense("p", "a", "b", 2, 2)
    assert a.equals(dense("p", "a", "b", 2, 2))
    assert not a.equals(dense("p", "a", "b", 2, 2, value=4))
    assert not a.equals(dense("p", "a", "b", 2, 2, delay=1))
    assert Input("x", (3,), "spikes").equals(Input("x", [3], "spikes", bits=1, scale=1))


def test_input_encode():
    graded = Input("x", (4,), "graded", bits=4, scale=2.0)
    # x * 2 = [0.5, 1.5, 2.5, -20] -> rint (half to even) [0, 2, 2, -20] -> clip to [-8, 7]
    assert graded.encode([0.25, 0.75, 1.25, -10.0]).tolist() == [0, 2, 2, -8]
    assert graded.encode([100.0]).tolist() == [7]
    with pytest.raises(IRError, match="input 'x': cannot encode NaN"):
        graded.encode([np.nan])
    spikes = Input("s", (2,), "spikes")
    assert spikes.encode(np.array([1.0, 0.0])).tolist() == [1, 0]
    with pytest.raises(IRError, match="input 's': a spike input takes only the values 0 and 1"):
        spikes.encode([0.5, 1.0])
    assert graded.value_range == (-8, 7) and spikes.value_range == (0, 1)


def test_conv2d_output_shape():
    assert conv2d_output_shape((3, 32, 32), (64, 3, 3, 3), (1, 1), (1, 1), (1, 1)) == (64, 32, 32)
    assert conv2d_output_shape((3, 32, 32), (64, 3, 3, 3), (2, 2), (1, 1), (1, 1)) == (64, 16, 16)
    assert conv2d_output_shape((1, 7, 9), (2, 1, 3, 2), (2, 3), (0, 1), (2, 1)) == (2, 2, 4)
    with pytest.raises(ValueError, match="does not fit"):
        conv2d_output_shape((1, 2, 2), (1, 1, 5, 5))


# ---------------------------------------------------------------------------------------------
# node rules


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Input("", (3,)), "name must be a non-empty string"),
        (lambda: Input("x", (2, 2)), r"input 'x': shape \(2, 2\) must have 1 or 3 dimensions"),
        (lambda: Input("x", (0,)), "input 'x': shape must be a non-empty tuple of positive"),
        (lambda: Input("x", (3,), "analog"), "input 'x': encoding 'analog'"),
        (lambda: Input("x", (3,), "spikes", bits=8), "input 'x': a spike input has bits = 1"),
        (
            lambda: Input("x", (3,), "graded", bits=1),
            "input 'x': a graded input needs at least 2 bits",
        ),
        (
            lambda: Input("x", (3,), "graded", scale=float("nan")),
            "input 'x': scale must be a finite positive",
        ),
        (lambda: pop("p", role="teacher"), "population 'p': role 'teacher'"),
        (lambda: pop("p", du=1.5), "population 'p': .*du must be an integer"),
        (lambda: pop("p", scale=0.0), "population 'p': scale must be a finite positive"),
        (
            lambda: Projection("q", "a", "b", "sparse", np.zeros((1, 1))),
            "projection 'q': kind 'sparse'",
        ),
        (
            lambda: Projection("q", "a", "b", "dense", np.zeros((1, 1, 1))),
            r"projection 'q': a dense weight is \(out, in\)",
        ),
        (
            lambda: Projection("q", "a", "b", "conv2d", np.zeros((1, 1))),
            "projection 'q': a conv2d weight is",
        ),
        (
            lambda: Projection("q", "a", "b", "dense", np.zeros((1, 1)), stride=2),
            "apply to conv2d only",
        ),
        (
            lambda: Projection("q", "a", "b", "conv2d", np.zeros((1, 1, 1, 1)), weight_exp=1),
            "projection 'q': weight_exp 1 on a conv2d projection; Lava's Conv ignores weight_exp",
        ),
        (
            lambda: Projection("q", "a", "b", "conv2d", np.zeros((3, 1, 1, 1)), groups=2),
            "projection 'q': Cout 3 is not divisible by groups 2",
        ),
        (
            lambda: Projection("q", "a", "b", "dense", np.zeros((1, 1)), delay=-1),
            "projection 'q': delay -1",
        ),
        (
            lambda: Projection("q", "a", "b", "conv2d", np.zeros((1, 1, 1, 1)), stride=0),
            r"projection 'q': stride \(0, 0\)",
        ),
        (lambda: Projection("q", "a", "b", "dense", np.array([[np.inf]])), "NaN or infinite"),
        (lambda: Projection("q", "a", "b", "dense", np.array([["w"]])), "must be an integer array"),
    ],
)
def test_node_rules(make, match):
    with pytest.raises(IRError, match=match):
        make()


def with_first(*, pops=None, projs=None):
    base = chain()
    return chain(pops=pops or list(base.populations), projs=projs or list(base.projections))


@pytest.mark.parametrize(
    ("kwargs", "match", "node"),
    [
        ({"du": 4096}, r"population 'c': du 4096 is outside \[0, 4095\]", "c"),
        ({"du": -1}, r"population 'c': du -1 is outside \[0, 4095\]", "c"),
        ({"dv": 4097}, r"population 'c': dv 4097 is outside \[0, 4096\]", "c"),
        ({"vth": 2**17}, r"population 'c': vth 131072 is outside \[0, 131071\]", "c"),
        ({"vth": -1}, "population 'c': vth -1 is outside", "c"),
        ({"bias_mant": 4096}, r"population 'c': bias_mant 4096 is outside \[-4096, 4095\]", "c"),
        ({"bias_mant": np.array([0, -4097])}, "population 'c': bias_mant -4097 is outside", "c"),
        ({"bias_exp": 8}, r"population 'c': bias_exp 8 is outside \[0, 7\]", "c"),
        ({"bias_exp": -1}, "population 'c': bias_exp -1 is outside", "c"),
    ],
)
def test_population_ranges(kwargs, match, node):
    base = chain()
    first = base.populations[0]
    params = {"du": first.neuron.du, "dv": first.neuron.dv, "vth": first.neuron.vth, "bias_mant": 0, "bias_exp": 0}
    params.update(kwargs)
    bad = lif_population("c", first.shape, **params)
    with pytest.raises(IRError, match=match) as info:
        with_first(pops=[bad, *base.populations[1:]])
    assert info.value.node == node


def test_readout_threshold_may_be_the_never_firing_value():
    base = chain()
    ok = pop("out", (3,), role="readout", vth=2**17)
    assert with_first(pops=[*base.populations[:2], ok]).readout.neuron.vth == 2**17


@pytest.mark.parametrize(
    ("proj", "match"),
    [
        (
            mixed("c_h", "c", "h", 5, 32, value=255),
            r"projection 'c_h': weight 255 is outside \[-256, 254\]; loihi2 mixed-sign weights are even integers",
        ),
        (
            mixed("c_h", "c", "h", 5, 32, value=253),
            r"projection 'c_h': weight 253 is odd; loihi2 mixed-sign weights are even integers in \[-256, 254\]",
        ),
        (
            dense("c_h", "c", "h", 5, 32, value=256),
            r"projection 'c_h': weight 256 is outside \[0, 255\]; loihi2 excitatory weights are integers",
        ),
        (dense("c_h", "c", "h", 5, 32, value=-258), "projection 'c_h': weight -258 is outside"),
        (
            dense("c_h", "c", "h", 5, 32, weight_exp=8),
            r"projection 'c_h': weight_exp 8 is outside \[-8, 7\]",
        ),
        (
            dense("c_h", "c", "h", 5, 32, weight_exp=-9),
            "projection 'c_h': weight_exp -9 is outside",
        ),
        (
            dense("c_h", "c", "h", 5, 32, delay=63),
            r"projection 'c_h': delay 63 is outside \[0, 62\]",
        ),
        (
            dense("c_h", "c", "h", 5, 31),
            r"projection 'c_h': dense weight shape \(5, 31\) does not match \(out, in\) = \(5, 32\)",
        ),
        (dense("c_h", "c", "h", 4, 32), r"does not match \(out, in\) = \(5, 32\)"),
        (dense("c_h", "zz", "h", 5, 32), "projection 'c_h': unknown source 'zz'"),
        (dense("c_h", "c", "zz", 5, 32), "projection 'c_h': target 'zz' is unknown"),
        (dense("c_h", "c", "x", 5, 32), "projection 'c_h': target 'x' is the input"),
    ],
)
def test_projection_rules(proj, match):
    base = chain()
    projs = [base.projections[0], proj, base.projections[2]]
    with pytest.raises(IRError, match=match) as info:
        with_first(projs=projs)
    assert info.value.node == "c_h"


@pytest.mark.parametrize(
    ("conv", "match"),
    [
        (
            Projection(
                "x_c", "x", "c", "conv2d", np.full((2, 1, 3, 3), 2)
            ),  # no padding: 2x2 output
            r"projection 'x_c': conv2d output shape \(2, 2, 2\) .* does not match target 'c' \(2, 4, 4\)",
        ),
        (
            Projection("x_c", "x", "c", "conv2d", np.full((2, 2, 3, 3), 2), padding=1),
            r"projection 'x_c': conv2d weight shape \(2, 2, 3, 3\) needs Cin/groups = 1",
        ),
        (
            Projection("x_c", "x", "c", "conv2d", np.full((2, 1, 9, 9), 2)),
            "projection 'x_c': a 9x9 kernel",
        ),
        (
            Projection("x_c", "x", "c", "conv2d", np.array([255, -2]).reshape(2, 1, 1, 1)),
            "projection 'x_c': weight 255",
        ),
    ],
)
def test_conv_rules(conv, match):
    base = chain()
    with pytest.raises(IRError, match=match):
        with_first(projs=[conv, *base.projections[1:]])


def test_conv_needs_chw_shapes():
    base = chain()
    bad = Projection("h_out", "h", "out", "conv2d", np.full((3, 5, 1, 1), 2))
    with pytest.raises(
        IRError, match=r"projection 'h_out': conv2d needs \(C, H, W\) source and target"
    ):
        with_first(projs=[*base.projections[:2], bad])


# ---------------------------------------------------------------------------------------------
# graph rules


def test_duplicate_names():
    base = chain()
    with pytest.raises(IRError, match="population 'x': name already used by input 'x'"):
        with_first(pops=[*base.populations, pop("x")])
    with pytest.raises(IRError, match="projection 'h': name already used by population 'h'"):
        with_first(projs=[*base.projections, dense("h", "c", "h", 5, 32)])
    with pytest.raises(IRError, match="population 'c': name already used by population 'c'"):
        with_first(pops=[*base.populations, pop("c", (2, 4, 4))])


def test_cycle():
    base = chain()
    back = dense("h_c", "h", "c", 32, 5)  # h -> c closes c -> h -> c
    with pytest.raises(
        IRError, match="population '(c|h)': part of a cycle (c -> h -> c|h -> c -> h)"
    ) as info:
        with_first(projs=[*base.projections, back])
    assert info.value.node in ("c", "h")
    self_loop = dense("h_h", "h", "h", 5, 5)
    with pytest.raises(IRError, match="population 'h': part of a cycle h -> h"):
        with_first(projs=[*base.projections, self_loop])


def test_unreachable_population():
    base = chain()
    orphan = pop("orphan", (5,))
    with pytest.raises(IRError, match="population 'orphan': not reachable from input 'x'"):
        with_first(
            pops=[*base.populations, orphan],
            projs=[*base.projections, dense("o_out", "orphan", "out", 3, 5)],
        )


def test_readout_rules():
    base = chain()
    # several readouts are allowed (a detector has one per head output), each a sink
    with pytest.raises(IRError, match="population 'h': the readout has an outgoing projection"):
        with_first(pops=[base.populations[0], pop("h", (5,), role="readout"), base.populations[2]])
    two = with_first(pops=[*base.populations, pop("out2", (2,), role="readout")],
                     projs=[*base.projections, dense("h_out2", "h", "out2", 2, 5)])
    assert [p.name for p in two.readouts] == ["out", "out2"]
    with pytest.raises(IRError, match="2 readouts"):
        two.readout  # noqa: B018 - a classifier's single readout is ambiguous here
    with pytest.raises(IRError, match="network: no readout population"):
        with_first(pops=[*base.populations[:2], pop("out", (3,))])
    # a second sink that is not the readout
    extra = [*base.populations, pop("dead", (2,))]
    with pytest.raises(
        IRError, match="population 'dead': has no outgoing projections but is not a readout"
    ):
        with_first(pops=extra, projs=[*base.projections, dense("h_dead", "h", "dead", 2, 5)])
    # the readout feeding something
    extra = [*base.populations, pop("after", (2,))]
    with pytest.raises(
        IRError, match="population 'out': the readout has an outgoing projection 'o_a'"
    ):
        with_first(pops=extra, projs=[*base.projections, dense("o_a", "out", "after", 2, 3)])


def test_unequal_latency_names_both_paths():
    base = chain()
    skip = dense("skip", "c", "out", 3, 32)  # c -> out: latency 2, but c -> h -> out: 3
    with pytest.raises(IRError) as info:
        with_first(projs=[*base.projections, skip])
    msg = str(info.value)
    assert msg.startswith("population 'out': unequal latency")
    assert "'x' -> 'c' -> 'h' -> 'out'" in msg and "'x' -> 'c' -> 'out'" in msg
    assert "add 1 to the delay of projection 'skip'" in msg
    assert info.value.node == "out"
    # balanced with a delay it is valid, and the latencies are unchanged
    ok = with_first(projs=[*base.projections, dense("skip", "c", "out", 3, 32, delay=1)])
    assert ok.latency == 3


def test_network_level_type_errors():
    base = chain()
    with pytest.raises(IRError, match="unknown target 'loihi9'"):
        Network(base.input, base.populations, base.projections, target="loihi9")
    with pytest.raises(IRError, match="network: metadata must be JSON-able"):
        Network(base.input, base.populations, base.projections, metadata={"f": object()})
    with pytest.raises(IRError, match="network: no populations"):
        Network(base.input, (), ())
    # metadata is normalised through JSON (tuples become lists, numpy scalars numbers)
    net = Network(
        base.input, base.populations, base.projections, metadata={"t": (1, 2), "n": np.int64(4)}
    )
    assert net.metadata == {"t": [1, 2], "n": 4}


def test_input_bits_against_target():
    base = chain()
    with pytest.raises(IRError, match=r"input 'x': bits 25 is outside \[2, 24\]"):
        chain(
            inp=Input("x", (1, 4, 4), "graded", bits=25),
            pops=list(base.populations),
            projs=list(base.projections),
        )


def test_frozen_weights_are_shared_and_others_copied():
    """A read-only int64 array (the copies of one conv in a lowered SEW-ResNet) is shared as it
    is; anything else is copied, so a later change of the caller's array cannot reach the IR."""
    from sakd.hardware.values import frozen_int_array

    frozen = np.arange(6, dtype=np.int64).reshape(2, 3) * 2
    frozen.flags.writeable = False
    assert frozen_int_array(frozen, "weight", "projection 'p'", "p") is frozen
    writable = np.arange(6, dtype=np.int64).reshape(2, 3)
    kept = frozen_int_array(writable, "weight", "projection 'p'", "p")
    writable[0, 0] = 99
    assert kept is not writable and kept[0, 0] == 0 and not kept.flags.writeable
    view = frozen[:, :2]  # read-only, but a view: copied (its base decides what it holds)
    assert frozen_int_array(view, "weight", "projection 'p'", "p") is not view
