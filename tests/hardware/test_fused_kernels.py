"""The simulator's compiled and shortcut paths equal the general ones bit for bit: the fused
CUBA-LIF window kernel (numba) against the model's numpy ``step`` applied step by step, whole
simulations with the kernels on and off (``SAKD_SIM_KERNELS``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_free_networks import random_free_network
from test_simulator_fast import _same
from test_simulator_vs_reference import random_network

from sakd.hardware.jit import KERNELS_ENV, kernels_enabled, numba_available
from sakd.hardware.neurons.cuba_lif import CubaLif
from sakd.hardware.simulator import SimulationOverflowError, simulate
from sakd.hardware.simulator.backends import NumpyOps, TorchOps
from sakd.hardware.target import get_target

needs_numba = pytest.mark.skipif(not numba_available(), reason="numba is not installed")
SPEC = get_target("loihi2")


def _stepwise(model, shape, readout, a, bias_in, resets, count, read):
    """What ``run_window`` must return, from the model's numpy ``step`` (as the runner does it)."""
    ops = NumpyOps()
    n, batch = a.shape[:2]
    prepared = model.prepare(ops, shape, SPEC, readout)
    state = model.initial_state(ops, (batch,) + shape)
    spikes = np.zeros((n, batch) + shape, bool)
    active = np.zeros(batch, np.int64)
    kept = np.zeros((batch,) + shape, np.int64)
    for t in range(n):
        if resets[t]:
            state = model.initial_state(ops, (batch,) + shape)
        inputs = {"a_in": a[t]}
        if bias_in is not None:
            inputs["bias"] = bias_in[t]
        state, s = model.step(state, inputs, prepared)
        spikes[t] = s
        if count[0] <= t < count[0] + count[1]:
            busy = s | (a[t] != 0)
            if bias_in is not None:
                busy = busy | (bias_in[t] != 0)
            active += busy.reshape(batch, -1).sum(1)
        if t == read:
            kept = state["v"].copy()
    window = spikes[count[0] : count[0] + count[1]]
    return spikes, window.reshape(count[1], batch, -1).sum(-1), active, \
        window.sum(0).reshape(batch, -1), \
        kept.reshape(batch, -1) if read >= 0 else np.zeros((batch, 0), np.int64)


@needs_numba
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), readout=st.booleans(), bias_port=st.booleans(),
       static=st.booleans())
def test_the_fused_lif_window_equals_the_numpy_steps(seed, readout, bias_port, static):
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in rng.integers(1, 5, size=int(rng.integers(1, 4))))
    n, batch = int(rng.integers(1, 9)), int(rng.integers(1, 4))
    # the decays at and between their extremes (no decay, no memory), thresholds near the inputs
    du = int(rng.choice([-1, 0, 1, 409, 2048, 4094, 4095]))
    dv = int(rng.choice([0, 1, 307, 2048, 4095, 4096]))
    per_channel = rng.random() < 0.5
    bias = rng.integers(-4096, 4096, size=(shape[0],) if per_channel else ()) \
        if rng.random() < 0.7 else 0
    model = CubaLif(du=du, dv=dv, vth=int(rng.integers(0, 1 << 17)), bias_mant=bias,
                    bias_exp=int(rng.integers(0, 8)))
    if readout:
        model = CubaLif.readout(SPEC, bias_mant=bias, bias_exp=model.bias_exp)
    # inputs up to 2^19: u wraps (a << 6 beyond 2^23) and v saturates in some draws
    reach = int(rng.choice([2, 300, 1 << 12, 1 << 19]))
    a = rng.integers(-reach, reach + 1, size=(1 if static else n, batch) + shape)
    a = np.where(rng.random(a.shape) < 0.3, 0, a)
    a_full = np.broadcast_to(a, (n, batch) + shape)
    bias_in = rng.integers(-4096, 4096, size=(n, batch) + shape) if bias_port else None
    resets = rng.random(n) < 0.25
    resets[0] = True
    w0 = int(rng.integers(0, n))
    count = (w0, int(rng.integers(1, n - w0 + 1)))
    read = int(rng.integers(-1, n))
    inputs = {"a_in": a_full}
    if bias_in is not None:
        inputs["bias"] = bias_in
    prepared = model.prepare(NumpyOps(), shape, SPEC, readout)
    run = model.run_window(NumpyOps(), inputs, prepared, resets, count, read, batch, shape)
    assert run is not None
    spikes, per_step, active, fired, kept = _stepwise(model, shape, readout, np.array(a_full),
                                                     bias_in, resets, count, read)
    np.testing.assert_array_equal(run.spikes.reshape(spikes.shape), spikes)
    np.testing.assert_array_equal(run.per_step, per_step)
    np.testing.assert_array_equal(run.active, active)
    np.testing.assert_array_equal(run.fired, fired)
    np.testing.assert_array_equal(run.read, kept)


def test_no_kernel_without_numba_or_off_the_numpy_backend(monkeypatch):
    model = CubaLif(du=100, dv=200, vth=10)
    args = ({"a_in": np.zeros((2, 1, 3), np.int64)}, None, np.zeros(2, bool), (0, 2), -1, 1, (3,))
    prepared = model.prepare(NumpyOps(), (3,), SPEC, False)
    monkeypatch.setenv(KERNELS_ENV, "0")
    assert not kernels_enabled()
    assert model.run_window(NumpyOps(), args[0], prepared, *args[2:]) is None
    monkeypatch.setenv(KERNELS_ENV, "1")
    assert kernels_enabled() == numba_available()
    try:
        torch_ops = TorchOps("cpu")
    except Exception:  # pragma: no cover - torch is in the main environment
        return
    assert model.run_window(torch_ops, args[0], prepared, *args[2:]) is None


def _with_and_without_kernels(monkeypatch, run):
    monkeypatch.setenv(KERNELS_ENV, "0")
    try:
        plain = run()
    except SimulationOverflowError:
        return
    monkeypatch.setenv(KERNELS_ENV, "1")
    _same(plain, run())


@needs_numba
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_sample_networks_equal_with_and_without_kernels(monkeypatch, seed):
    net, x, T, sequence = random_network(seed)
    names = [p.name for p in net.populations]
    for record in ((), names[:1]):  # the fused path runs the populations nobody records
        _with_and_without_kernels(monkeypatch, lambda record=record: simulate(
            net, x, time_steps=T, sequence=sequence, record=record))


@needs_numba
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1))
def test_free_networks_equal_with_and_without_kernels(monkeypatch, seed):
    net, x, steps, interval, offset = random_free_network(seed)
    _with_and_without_kernels(monkeypatch, lambda: simulate(
        net, x, time_steps=steps, reset_interval=interval, reset_offset=offset))


@needs_numba
@pytest.mark.parametrize("du", [4095, 0])
def test_the_fused_window_keeps_the_wrap_boundaries(du):
    """u = -2^23 wraps to +2^23 and u = +2^23 stays (Lava's wrap into (-2^23, 2^23]); v
    saturates at +-(2^23 - 1): inputs that land exactly on each boundary."""
    model = CubaLif(du=du, dv=4096, vth=(1 << 17) - 1)
    a = np.array([[[-(1 << 17), 1 << 17, (1 << 17) + 1, -(1 << 17) - 1]]] * 3, np.int64)
    prepared = model.prepare(NumpyOps(), (4,), SPEC, False)
    run = model.run_window(NumpyOps(), {"a_in": a}, prepared, np.array([True, False, False]),
                           (0, 3), 2, 1, (4,))
    assert run is not None
    spikes, per_step, active, fired, kept = _stepwise(model, (4,), False, a, None,
                                                     np.array([True, False, False]), (0, 3), 2)
    for got, want in ((run.read, kept), (run.spikes, spikes), (run.per_step, per_step),
                      (run.active, active), (run.fired, fired)):
        np.testing.assert_array_equal(got, want)
