"""The simulator's fast paths are exact: float32 GEMMs where the bound proves them exact
(``gemm_format``), float64 or limbs elsewhere, on data drawn on both sides of each bound; the
batch tiles of the neuron recursion (any tile size gives the same result on hypothesis-drawn
sample and free-running networks of every neuron model, both backends); the torch backend on
the CPU under the same argument (the CUDA path is the same code on another device, with TF32
and cuDNN off; no GPU is exercised here)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_free_networks import random_free_network
from test_simulator_vs_reference import random_network

from sakd.hardware.simulator import (
    F32_EXACT,
    F64_EXACT,
    SimulationOverflowError,
    conv_synapse,
    dense_synapse,
    gemm_format,
    simulate,
)
from sakd.hardware.simulator.backends import NumpyOps, TorchOps
from sakd.hardware.simulator.synapses import dense_events

try:
    import torch

    HAVE_TORCH = True
except ImportError:  # pragma: no cover
    HAVE_TORCH = False

BACKENDS = ["numpy", "torch"] if HAVE_TORCH else ["numpy"]


def test_the_narrowest_exact_format_is_chosen():
    assert gemm_format(0) == "float32"
    assert gemm_format(F32_EXACT - 1) == "float32"
    assert gemm_format(F32_EXACT) == "float64"
    assert gemm_format(F64_EXACT - 1) == "float64"
    assert gemm_format(F64_EXACT) is None
    # a smaller float64 limit (tests of the fallbacks) also bounds float32
    assert gemm_format(100, limit=64) is None
    assert gemm_format(63, limit=64) == "float32"
    # binary spikes: fan-in · 256 < 2^24, i.e. every fan-in below 65,536 runs in float32
    assert gemm_format(65535 * 256) == "float32"
    assert gemm_format(65536 * 256) == "float64"


def test_float32_would_round_where_the_bound_fails_and_the_simulator_does_not():
    """Odd sums beyond 2^24: float32 rounds them; the bound sends them to float64."""
    rng = np.random.default_rng(0)
    x = rng.integers(2**14, 2**15, size=(8, 300)) | 1
    w = np.full((4, 300), 255)
    exact = x.astype(object) @ w.T.astype(object)
    assert not np.array_equal((x.astype(np.float32) @ w.T.astype(np.float32)).astype(np.int64),
                              exact.astype(np.int64))  # the hazard is real
    np.testing.assert_array_equal(dense_synapse(x, w), exact.astype(np.int64))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), bits=st.integers(1, 24), kind=st.sampled_from(["dense", "conv"]))
def test_synapses_are_exact_on_both_sides_of_the_float32_bound(seed, bits, kind):
    rng = np.random.default_rng(seed)
    wmax = int(rng.choice([1, 2, 16, 255]))
    if kind == "dense":
        n_in = int(rng.integers(1, 400))
        w = rng.integers(-wmax, wmax + 1, size=(int(rng.integers(1, 9)), n_in))
        x = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=(5, n_in)) if bits > 1 else \
            rng.random((5, n_in)) < 0.3
        exact = x.astype(np.int64).astype(object) @ w.T.astype(object)
        for e in (0, -3, 2):
            want = (exact << e) if e >= 0 else (exact >> -e)
            np.testing.assert_array_equal(dense_synapse(x, w, e), want.astype(np.int64))
        return
    cin = int(rng.integers(1, 40))
    w = rng.integers(-wmax, wmax + 1, size=(int(rng.integers(1, 6)), cin, 3, 3))
    x = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=(2, cin, 5, 5)) if bits > 1 else \
        rng.random((2, cin, 5, 5)) < 0.3
    got = conv_synapse(x, w, (1, 1), (1, 1))
    # the reference: every output as a Python-int sum (no float at all)
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (1, 1), (1, 1))).astype(object)
    want = np.zeros(got.shape, dtype=object)
    for i in range(5):
        for j in range(5):
            patch = xp[:, :, i:i + 3, j:j + 3].reshape(2, -1)
            want[:, :, i, j] = patch @ w.reshape(w.shape[0], -1).T.astype(object)
    want = ((want + 2**23) % 2**24) - 2**23
    np.testing.assert_array_equal(got, want.astype(np.int64))
    if HAVE_TORCH:
        from sakd.hardware.ir import Projection
        from sakd.hardware.simulator.backends import ProjectionPlan
        from sakd.hardware.simulator.synapses import weight_bound

        proj = Projection("p", "a", "b", "conv2d", w, padding=(1, 1))
        ops = TorchOps("cpu")
        plan = ProjectionPlan(proj, (cin, 5, 5), (w.shape[0], 5, 5), np.zeros(1), 0, 0,
                              weight_bound(w))
        plan.prepared = ops.prepare(plan)
        np.testing.assert_array_equal(ops.numpy(ops.synapse(plan, ops.asarray(x))),
                                      want.astype(np.int64))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), graded=st.booleans(), density=st.sampled_from([0.0, 0.001, 0.05, 0.5]))
def test_the_event_driven_dense_path_is_exact(seed, graded, density):
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(1, 300)), int(rng.integers(1, 20))
    w = rng.integers(-256, 256, size=(n_out, n_in))
    mask = rng.random((int(rng.integers(1, 30)), n_in)) < density
    s = np.where(mask, rng.integers(-(2**23), 2**23, size=mask.shape), 0) if graded else mask
    exact = s.astype(np.int64).astype(object) @ w.T.astype(object)
    np.testing.assert_array_equal(dense_events(s, w.T.astype(np.int64).copy()),
                                  exact.astype(np.int64))
    for e in (0, -2):
        want = (exact >> -e) if e < 0 else exact
        np.testing.assert_array_equal(dense_synapse(s, w, e), want.astype(np.int64))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_sample_networks_all_event_driven_equal_the_reference(seed):
    """Every dense block forced onto the event-driven path: the whole network still equals the
    scalar reference (traces, readouts, counts)."""
    from test_simulator_vs_reference import assert_matches_reference

    import sakd.hardware.simulator.synapses as synapses

    saved = synapses.EVENT_DENSITY
    synapses.EVENT_DENSITY = 2.0
    try:
        assert_matches_reference(*random_network(seed), backend="numpy")
    finally:
        synapses.EVENT_DENSITY = saved


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.predictions, b.predictions)
    for name in a.readouts:
        np.testing.assert_array_equal(a.readouts[name], b.readouts[name])
    for name in a.outputs:
        np.testing.assert_array_equal(a.outputs[name], b.outputs[name])
    for name, tr in a.traces.items():
        for key, value in tr.items():
            np.testing.assert_array_equal(value, b.traces[name][key], err_msg=f"{name}.{key}")
    for name, pop in a.counts.populations.items():
        np.testing.assert_array_equal(pop.spikes_per_step,
                                      b.counts.populations[name].spikes_per_step)
        np.testing.assert_array_equal(pop.active_updates, b.counts.populations[name].active_updates)
    for name, proj in a.counts.projections.items():
        np.testing.assert_array_equal(proj.synops, b.counts.projections[name].synops)
        np.testing.assert_array_equal(proj.graded_macs, b.counts.projections[name].graded_macs)


def _runs(monkeypatch, backend, tile, run):
    cls = NumpyOps if backend == "numpy" else TorchOps
    try:
        base = run()
    except SimulationOverflowError:
        return None
    with monkeypatch.context() as m:
        if backend == "numpy":
            m.setattr(cls, "tile_elements", tile)
        else:  # an instance attribute: patch the constructor's result
            init = cls.__init__

            def patched(self, device, init=init):
                init(self, device)
                self.tile_elements = tile

            m.setattr(cls, "__init__", patched)
        tiled = run()
    _same(base, tiled)
    return base


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), tile=st.sampled_from([1, 5, 37, None]))
def test_batch_tiles_change_nothing_on_sample_networks(monkeypatch, backend, seed, tile):
    net, x, T, sequence = random_network(seed)
    names = [p.name for p in net.populations]
    for record in (names, ()):
        _runs(monkeypatch, backend, tile, lambda record=record: simulate(
            net, x, time_steps=T, sequence=sequence, record=record, backend=backend))


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), tile=st.sampled_from([1, 3, 50]))
def test_batch_tiles_change_nothing_on_free_networks(monkeypatch, backend, seed, tile):
    net, x, steps, interval, offset = random_free_network(seed)
    _runs(monkeypatch, backend, tile, lambda: simulate(
        net, x, time_steps=steps, backend=backend, reset_interval=interval, reset_offset=offset,
        record=[p.name for p in net.populations]))


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
def test_torch_restores_the_global_matmul_settings():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision(),
              torch.backends.cudnn.enabled)
    net, x, T, sequence = random_network(7)
    try:
        simulate(net, x, time_steps=T, sequence=sequence, backend="torch")
    except SimulationOverflowError:
        pass
    assert (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision(),
            torch.backends.cudnn.enabled) == before


def _sew_like(seed: int):
    """in → a (conv) → b (conv); c sums one conv weight applied to a (delay 1) and to b (delay
    0), as the lowering writes a SEW spike addition; a dense readout from c and, with the same
    weights, from b (delay 1)."""
    from sakd.hardware.ir import Input, Network, Projection
    from sakd.hardware.neurons.cuba_lif import lif_population

    rng = np.random.default_rng(seed)
    ch = int(rng.integers(1, 5))
    big = rng.random() < 0.3  # Σ|w| beyond 2^23 is impossible here; large weights instead

    def w(shape):
        return 2 * rng.integers(-128 if big else -20, 128 if big else 21, size=shape)

    inp = Input("x", (1, 6, 6), "graded", bits=int(rng.choice([2, 8])), scale=10.0)
    pops = [lif_population(n, (ch, 6, 6), du=int(rng.choice([0, 4095])), dv=int(rng.choice([0, 2048])),
                           vth=int(rng.choice([1, 20, 200])),
                           bias_mant=int(rng.integers(-50, 50)), bias_exp=int(rng.choice([0, 6])))
            for n in ("a", "b", "c")]
    pops.append(lif_population("out", (5,), du=4095, dv=0, vth=0, role="readout"))
    shared = w((ch, ch, 3, 3))
    fc = w((5, ch * 36))
    projs = [Projection("x_a", "x", "a", "conv2d", w((ch, 1, 3, 3)), padding=(1, 1)),
             Projection("a_b", "a", "b", "conv2d", w((ch, ch, 3, 3)), padding=(1, 1)),
             Projection("a_c", "a", "c", "conv2d", shared, padding=(1, 1), delay=1),
             Projection("b_c", "b", "c", "conv2d", shared, padding=(1, 1)),
             Projection("c_out", "c", "out", "dense", fc, weight_exp=int(rng.choice([0, 1]))),
             Projection("b_out", "b", "out", "dense", fc, weight_exp=0, delay=1)]
    net = Network(inp, tuple(pops), tuple(projs), time_steps=int(rng.integers(1, 5)))
    x = rng.integers(-(2 ** (inp.bits - 1)), 2 ** (inp.bits - 1), size=(3, 1, 6, 6))
    return net, x


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), backend=st.sampled_from(BACKENDS))
def test_merged_projections_equal_the_reference(seed, backend):
    """Projections sharing weights into one population (a SEW addition) are evaluated once on
    the summed, latency-aligned spikes: still the scalar reference's traces and counts."""
    from test_simulator_vs_reference import assert_matches_reference

    from sakd.hardware.simulator.runner import merge_groups

    net, x = _sew_like(seed)
    from sakd.hardware.simulator import backends

    ops = backends.make_ops("numpy")
    plans = {}
    for proj in net.projections:
        plan = backends.ProjectionPlan(proj, net.source_shape(proj.source),
                                       net.population(proj.target).shape, np.zeros(1), 0, 0,
                                       int(np.abs(proj.weight).reshape(proj.weight.shape[0], -1)
                                           .sum(1).max()))
        plan.prepared = ops.prepare(plan)
        plans[proj.name] = plan
    groups = merge_groups(net, plans)
    assert sorted(map(sorted, groups["c"])) == [["a_c", "b_c"]]
    assert ("out" in groups) == (net.projections[4].weight_exp == 0)
    assert_matches_reference(net, x, net.time_steps, False, backend)
