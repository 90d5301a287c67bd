"""The fast simulator equals the scalar reference (reference_sim.py) exactly, on random small
networks: every population's spikes, u and v at every step, the readout v and every count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from reference_sim import reference_simulate

from sakd.hardware import simulator as sim_mod
from sakd.hardware.ir import Input, Network, Population, Projection, conv2d_output_shape
from sakd.hardware.neurons.cuba_lif import lif_population
from sakd.hardware.simulator import (
    SimulationInputError,
    SimulationOverflowError,
    conv_fanout,
    conv_synapse,
    dense_synapse,
    readout_to_float,
    simulate,
)

try:
    import torch  # noqa: F401

    HAVE_TORCH = True
except ImportError:  # pragma: no cover
    HAVE_TORCH = False

# per-projection bound on |a| of the generated dense layers: above the 2^18 that keeps u in 24 bits,
# and a sum of several can pass the 2^25 of Lava's int32 (both sides must then raise)
A_SAFE = 1 << 24


# ---------------------------------------------------------------------------------------------
# random networks


def _even_weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Even integers in [-256, 254], with the extremes and zeros over-represented."""
    w = 2 * rng.integers(-128, 128, size=shape)
    mode = rng.integers(4)
    if mode == 1:
        w = 2 * rng.integers(-8, 8, size=shape)
    pick = rng.random(shape)
    w = np.where(pick < 0.08, -256, np.where(pick < 0.16, 254, np.where(pick < 0.25, 0, w)))
    return w


def _population(
    rng: np.random.Generator, name: str, shape: tuple[int, ...], readout: bool
) -> Population:
    du = int(rng.choice([0, 1, 2048, 4094, 4095, rng.integers(0, 4096)]))
    dv = int(rng.choice([0, 1, 2048, 4095, 4096, rng.integers(0, 4097)]))
    vth = int(rng.choice([0, 1, rng.integers(0, 64), rng.integers(0, 2048), 2**17 - 1]))
    if readout:
        vth = int(rng.choice([0, 2**17]))
    kind = rng.integers(4)
    bshape = [(), (shape[0],), shape, ()][kind]
    bias = rng.integers(-4096, 4096, size=bshape)
    if rng.random() < 0.3:
        bias = np.zeros(bshape, np.int64)
    elif rng.random() < 0.3:
        bias = rng.choice([-4096, 4095, -1, 1], size=bshape)
    return lif_population(
        name,
        shape,
        du=du,
        dv=dv,
        vth=vth,
        bias_mant=bias,
        bias_exp=int(rng.integers(0, 8)),
        role="readout" if readout else "spiking",
    )


def _conv_params(rng: np.random.Generator, src: tuple[int, ...], cout: int):
    """A random conv2d that fits ``src`` (C, H, W): kernel, stride, padding, dilation, groups."""
    c, h, w = src
    for _ in range(20):
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        padding = (int(rng.integers(0, 3)), int(rng.integers(0, 2)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        divisors = [g for g in range(1, c + 1) if c % g == 0 and cout % g == 0]
        groups = int(rng.choice(divisors))
        try:
            out = conv2d_output_shape(src, (cout, c // groups, kh, kw), stride, padding, dilation)
        except ValueError:
            continue
        if out[1] * out[2] <= 16:
            return (kh, kw), stride, padding, dilation, groups, out
    return (1, 1), (1, 1), (0, 0), (1, 1), 1, (cout, h, w)


def _dense_exp(rng: np.random.Generator, w: np.ndarray, xmax: int) -> int:
    """A weight_exp in [-8, 7] that keeps |a| below A_SAFE (so the sum of a few stays in int32)."""
    bound = int(np.abs(w).sum(axis=1).max()) * xmax
    exp = int(rng.integers(-8, 8))
    while exp > -8 and (bound << exp if exp >= 0 else bound >> -exp) >= A_SAFE:
        exp -= 1
    return exp


def random_network(seed: int) -> tuple[Network, np.ndarray, int, bool]:
    rng = np.random.default_rng(seed)
    spikes = bool(rng.integers(2))
    bits = 1 if spikes else int(rng.choice([2, 5, 8, 12, 16, 24]))
    if rng.integers(3):
        in_shape: tuple[int, ...] = (
            int(rng.integers(1, 3)),
            int(rng.integers(2, 5)),
            int(rng.integers(2, 5)),
        )
    else:
        in_shape = (int(rng.integers(1, 7)),)
    inp = Input("x", in_shape, "spikes" if spikes else "graded", bits=bits, scale=1.0)
    xmax = {"x": 1 if spikes else 1 << (bits - 1)}
    shapes = {"x": in_shape}
    latency = {"x": 0}
    chain = ["x"]
    pops: list[Population] = []
    projs: list[Projection] = []
    n_pops = int(rng.integers(1, 4))
    for k in range(n_pops):
        name = f"p{k}"
        src = chain[-1]
        readout = k == n_pops - 1
        delay = int(rng.choice([0, 0, 1, 2]))
        if len(shapes[src]) == 3 and rng.random() < 0.6:
            cout = int(rng.integers(1, 4))
            kernel, stride, padding, dilation, groups, out = _conv_params(rng, shapes[src], cout)
            w = _even_weights(rng, (cout, shapes[src][0] // groups) + kernel)
            projs.append(
                Projection(
                    f"{src}_{name}",
                    src,
                    name,
                    "conv2d",
                    w,
                    delay=delay,
                    stride=stride,
                    padding=padding,
                    dilation=dilation,
                    groups=groups,
                )
            )
            shape = out
        else:
            shape = (
                (int(rng.integers(1, 3)), 2, 2)
                if rng.random() < 0.3
                else (int(rng.integers(1, 6)),)
            )
            w = _even_weights(rng, (int(np.prod(shape)), int(np.prod(shapes[src]))))
            projs.append(
                Projection(
                    f"{src}_{name}",
                    src,
                    name,
                    "dense",
                    w,
                    weight_exp=_dense_exp(rng, w, xmax[src]),
                    delay=delay,
                )
            )
        pops.append(_population(rng, name, shape, readout))
        shapes[name] = shape
        xmax[name] = 1
        latency[name] = latency[src] + 1 + delay
        chain.append(name)
    # skip / parallel projections, latency-balanced with a delay
    for j in range(int(rng.integers(0, 3))):
        t_idx = int(rng.integers(1, len(chain)))
        s_idx = int(rng.integers(0, t_idx))
        src, tgt = chain[s_idx], chain[t_idx]
        delay = latency[tgt] - latency[src] - 1
        if delay < 0 or delay > 62:
            continue
        w = _even_weights(rng, (int(np.prod(shapes[tgt])), int(np.prod(shapes[src]))))
        proj = None
        if len(shapes[src]) == 3 and len(shapes[tgt]) == 3:
            for _ in range(10):  # a conv that happens to produce the target shape
                kernel, stride, padding, dilation, groups, out = _conv_params(
                    rng, shapes[src], shapes[tgt][0]
                )
                if out == shapes[tgt]:
                    wc = _even_weights(rng, (shapes[tgt][0], shapes[src][0] // groups) + kernel)
                    proj = Projection(
                        f"skip{j}",
                        src,
                        tgt,
                        "conv2d",
                        wc,
                        delay=delay,
                        stride=stride,
                        padding=padding,
                        dilation=dilation,
                        groups=groups,
                    )
                    break
        if proj is None:
            proj = Projection(
                f"skip{j}",
                src,
                tgt,
                "dense",
                w,
                weight_exp=_dense_exp(rng, w, xmax[src]),
                delay=delay,
            )
        projs.append(proj)
    order = list(rng.permutation(len(pops)))
    net = Network(inp, tuple(pops[i] for i in order), tuple(projs))
    T = int(rng.integers(1, 4))
    B = int(rng.integers(1, 3))
    sequence = bool(rng.integers(2))
    lo, hi = inp.value_range
    shape = (T, B) + in_shape if sequence else (B,) + in_shape
    if spikes:
        x = (rng.random(shape) < rng.choice([0.2, 0.5, 0.9])).astype(np.int64)
    else:
        x = rng.integers(lo, hi + 1, size=shape)
        pick = rng.random(shape)
        x = np.where(pick < 0.1, lo, np.where(pick < 0.2, hi, np.where(pick < 0.35, 0, x)))
    return net, x, T, sequence


def assert_matches_reference(
    net: Network, x: np.ndarray, T: int, sequence: bool, backend: str
) -> None:
    names = [p.name for p in net.populations]
    try:
        ref = reference_simulate(net, x, T, sequence)
    except OverflowError:
        # beyond Lava's int32 state: the simulator must refuse too (the same checks, every step)
        event("int32 overflow")
        with pytest.raises(SimulationOverflowError):
            simulate(net, x, time_steps=T, sequence=sequence, record=names, backend=backend)
        return
    event("simulated")
    res = simulate(net, x, time_steps=T, sequence=sequence, record=names, backend=backend)
    assert res.latency == ref["latency"]
    for name in names:
        for key in ("u", "v", "s"):
            np.testing.assert_array_equal(
                res.traces[name][key], ref["traces"][name][key], err_msg=f"{name}.{key}"
            )
    np.testing.assert_array_equal(res.readout_v, ref["readout_v"])
    flat = ref["readout_v"].reshape(ref["readout_v"].shape[0], -1)
    np.testing.assert_array_equal(res.predictions, np.argmax(flat, axis=1))
    # the window-only schedule (nothing recorded, chunked by one sample) and a mixed one (one
    # population recorded: it and its ancestors run every step, the rest their windows only)
    # give the same readout and counts
    one = names[len(names) // 2]
    mixed = simulate(net, x, time_steps=T, sequence=sequence, record=[one], backend=backend)
    for key in ("u", "v", "s"):
        np.testing.assert_array_equal(mixed.traces[one][key], ref["traces"][one][key])
    for run in (
        res,
        simulate(net, x, time_steps=T, sequence=sequence, backend=backend, batch_size=1),
        mixed,
    ):
        np.testing.assert_array_equal(run.readout_v, ref["readout_v"])
        for name in names:
            pc = run.counts.populations[name]
            np.testing.assert_array_equal(
                pc.spikes_per_step, ref["pop_counts"][name][0], err_msg=name
            )
            np.testing.assert_array_equal(
                pc.active_updates, ref["pop_counts"][name][1], err_msg=name
            )
        for proj in net.projections:
            pc = run.counts.projections[proj.name]
            np.testing.assert_array_equal(
                pc.synops, ref["proj_counts"][proj.name][0], err_msg=proj.name
            )
            np.testing.assert_array_equal(
                pc.graded_macs, ref["proj_counts"][proj.name][1], err_msg=proj.name
            )
            assert pc.synapses == ref["synapses"][proj.name]


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_numpy_backend_equals_reference(seed):
    assert_matches_reference(*random_network(seed), backend="numpy")


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_torch_backend_equals_reference(seed):
    assert_matches_reference(*random_network(seed), backend="torch")


# ---------------------------------------------------------------------------------------------
# synapses and counts against brute force


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_conv_synops_equal_brute_force_over_output_positions(seed):
    rng = np.random.default_rng(seed)
    src = (int(rng.integers(1, 4)), int(rng.integers(1, 7)), int(rng.integers(1, 7)))
    cout = int(rng.integers(1, 5))
    kernel, stride, padding, dilation, groups, out = _conv_params(rng, src, cout)
    wshape = (cout, src[0] // groups) + kernel
    fan = conv_fanout(src, wshape, stride, padding, dilation, groups)
    # brute force: for every output position, every input position its receptive field reads
    brute = np.zeros(src, np.int64)
    for co in range(cout):
        g = co // (cout // groups)
        for oy in range(out[1]):
            for ox in range(out[2]):
                for ci in range(g * wshape[1], (g + 1) * wshape[1]):
                    for ky in range(kernel[0]):
                        for kx in range(kernel[1]):
                            iy = oy * stride[0] - padding[0] + ky * dilation[0]
                            ix = ox * stride[1] - padding[1] + kx * dilation[1]
                            if 0 <= iy < src[1] and 0 <= ix < src[2]:
                                brute[ci, iy, ix] += 1
    np.testing.assert_array_equal(fan, brute)
    # and the simulator's SynOps of a spike input are spikes x that fan-out
    net = Network(
        Input("x", src, "spikes"),
        (lif_population("r", out, du=4095, dv=0, vth=0, role="readout"),),
        (
            Projection(
                "c",
                "x",
                "r",
                "conv2d",
                np.zeros(wshape, np.int64),
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
            ),
        ),
    )
    x = (rng.random((3,) + src) < 0.4).astype(np.int64)
    res = simulate(net, x, time_steps=2)
    want = 2 * (x.reshape(3, -1) * brute.reshape(-1)).sum(axis=1)
    np.testing.assert_array_equal(res.counts.projections["c"].synops, want)
    assert res.counts.projections["c"].synapses == int(brute.sum())


def _torch_conv_int(x: np.ndarray, w: np.ndarray, stride, padding, dilation, groups) -> np.ndarray:
    import torch

    with torch.backends.cudnn.flags(enabled=False):
        y = torch.nn.functional.conv2d(
            torch.from_numpy(x).double(),
            torch.from_numpy(w).double(),
            None,
            stride,
            padding,
            dilation,
            groups,
        )
    return y.numpy().astype(np.int64)


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_conv_synapse_equals_torch_conv2d(seed):
    """conv_synapse is PyTorch's cross-correlation (values small enough for float64), wrapped."""
    rng = np.random.default_rng(seed)
    src = (int(rng.integers(1, 5)), int(rng.integers(1, 9)), int(rng.integers(1, 9)))
    cout = int(rng.integers(1, 5))
    kernel, stride, padding, dilation, groups, _ = _conv_params(rng, src, cout)
    w = _even_weights(rng, (cout, src[0] // groups) + kernel)
    x = rng.integers(-(2**15), 2**15, size=(2,) + src)
    got = conv_synapse(x, w, stride, padding, dilation, groups)
    want = _torch_conv_int(x, w, stride, padding, dilation, groups)
    np.testing.assert_array_equal(got, ((want + 2**23) % 2**24) - 2**23)


def test_limb_split_is_exact_when_the_float64_bound_fails():
    """Force the fallback with a tiny exactness limit: the result must not change."""
    rng = np.random.default_rng(1)
    x = rng.integers(-(2**23), 2**23, size=(5, 2, 6, 6))
    w = _even_weights(rng, (3, 2, 3, 3))
    direct = conv_synapse(x, w, (1, 1), (1, 1))
    split = conv_synapse(x, w, (1, 1), (1, 1), limit=1 << 14)
    np.testing.assert_array_equal(direct, split)
    xd = rng.integers(-(2**23), 2**23, size=(4, 30))
    wd = _even_weights(rng, (7, 30))
    exact = xd.astype(object) @ wd.T.astype(object)  # Python ints
    np.testing.assert_array_equal(dense_synapse(xd, wd, 0, limit=1 << 14), exact.astype(np.int64))
    np.testing.assert_array_equal(dense_synapse(xd, wd, -3), (exact >> 3).astype(np.int64))
    np.testing.assert_array_equal(
        dense_synapse(xd, wd, 2, limit=1 << 20), (exact << 2).astype(np.int64)
    )


# ---------------------------------------------------------------------------------------------
# input validation and options


def small_net(encoding: str = "graded", bits: int = 8) -> Network:
    return Network(
        Input("x", (1, 2, 2), encoding, bits=bits if encoding == "graded" else None),
        (lif_population("r", (3,), du=4095, dv=0, vth=0, role="readout", scale=2.0),),
        (
            Projection(
                "p", "x", "r", "dense", np.array([[2, 0, -2, 4], [0, 2, 2, 2], [-2, -2, 0, 0]])
            ),
        ),
    )


@pytest.mark.parametrize(
    ("inputs", "kwargs", "match"),
    [
        (np.zeros((2, 1, 2, 3), np.int64), {}, r"shape \(2, 1, 2, 3\); expected \[B, 1, 2, 2\]"),
        (np.zeros((3, 2, 1, 2, 2), np.int64), {}, "sequence=True"),
        (np.zeros((2, 2, 1, 2, 2), np.int64), {"sequence": True}, "with T = 3"),
        (np.zeros((2, 1, 2, 2), np.float32), {}, "dtype float32.*encode"),
        (np.full((2, 1, 2, 2), np.nan), {}, "NaN"),
        (np.full((2, 1, 2, 2), 128), {}, r"value 128 is out of range.*\[-128, 127\]"),
        (np.full((2, 1, 2, 2), -129), {}, "value -129 is out of range"),
        (np.zeros((0, 1, 2, 2), np.int64), {}, "no samples"),
        (np.zeros((2, 1, 2, 2), np.int64), {"record": ["nope"]}, "cannot record 'nope'"),
        (np.zeros((2, 1, 2, 2), np.int64), {"backend": "jax"}, "unknown backend"),
        (np.zeros((2, 1, 2, 2), np.int64), {"device": "cuda"}, "CPU only"),
        (np.zeros((2, 1, 2, 2), np.int64), {"batch_size": 0}, "batch_size"),
        (np.array(["a"] * 4).reshape(1, 1, 2, 2), {}, "non-integer dtype"),
    ],
)
def test_input_validation(inputs, kwargs, match):
    kwargs.setdefault("time_steps", 3)
    with pytest.raises(SimulationInputError, match=match):
        simulate(small_net(), inputs, **kwargs)


def test_spike_inputs_must_be_binary():
    with pytest.raises(SimulationInputError, match="spike input takes 0 or 1"):
        simulate(small_net("spikes"), np.full((1, 1, 2, 2), 2), time_steps=2)
    with pytest.raises(SimulationInputError, match="time_steps"):
        simulate(small_net("spikes"), np.ones((1, 1, 2, 2), np.int64), time_steps=0)


def test_encode_then_simulate_and_readout_to_float():
    net = small_net()
    x = net.input.encode(
        np.array([[[[0.5, 1.5], [2.5, -1000.0]]]])
    )  # rint: half to even, then clip
    assert x.tolist() == [[[[0, 2], [2, -128]]]]
    res = simulate(net, x, time_steps=2)
    # x = [0, 2, 2, -128]; a = W x = [0 + 0 - 4 - 512, 0 + 4 + 4 - 256, 0 - 4 + 0 + 0] = [-516, -248, -4]
    # v = 2 steps x 64 a (du = 4095, dv = 0)
    assert res.readout_v.tolist() == [[-66048, -31744, -512]]
    assert res.predictions.tolist() == [2]
    # mean float logits = v / (64 * scale 2 * T 2)
    np.testing.assert_allclose(readout_to_float(net, res.readout_v, 2), [[-258.0, -124.0, -2.0]])


def test_synaptic_input_beyond_lavas_int32_is_an_error():
    def net(weight_exp: int, du: int) -> Network:
        return Network(
            Input("x", (4,), "graded", bits=24),
            (lif_population("r", (1,), du=du, dv=0, vth=0, role="readout"),),
            (Projection("p", "x", "r", "dense", np.full((1, 4), 2), weight_exp=weight_exp),),
        )

    x = np.full((1, 4), 2**23 - 1)
    # a = 8 (2^23 - 1) << 1 ~ 2^27: a << 6 does not fit int32
    with pytest.raises(SimulationOverflowError, match="population 'r': summed synaptic input a"):
        simulate(net(1, 4095), x, time_steps=1)
    # a ~ 2^26 >> 3 = 2^23 fits, and with du = 4095 u = a << 6 ~ 2^29 each step: fine
    ok = simulate(net(-3, 4095), x, time_steps=3)
    # 8 (2^23 - 1) >> 3 = 8388607 (floor); u = 64 a = 536870848 -> wraps once to 520093632
    assert ok.readout_v.tolist() == [[min(3 * 520093632, 2**23 - 1)]]
    # with du = 0 the current accumulates (about 2^29 more per step, one 2^24 wrap) past what
    # Lava's int32 holds within 5 steps
    with pytest.raises(SimulationOverflowError, match="population 'r': u reaches .*at step"):
        simulate(net(-3, 0), x, time_steps=6)


def test_progress_and_chunks():
    net = small_net()
    x = np.random.default_rng(0).integers(-128, 128, size=(7, 1, 2, 2))
    calls = []
    chunked = simulate(
        net, x, time_steps=3, batch_size=3, progress=lambda d, t: calls.append((d, t))
    )
    whole = simulate(net, x, time_steps=3)
    assert calls == [(3, 7), (6, 7), (7, 7)]
    np.testing.assert_array_equal(chunked.readout_v, whole.readout_v)
    assert chunked.counts.samples == 7


def test_result_shapes_and_predictions_ties():
    net = small_net()
    res = simulate(net, np.zeros((2, 1, 2, 2), np.int64), time_steps=2, record=["r"])
    assert res.readout_v.shape == (2, 3) and res.readout_v.dtype == np.int64
    assert res.predictions.tolist() == [0, 0]  # all-equal readout: the lowest index
    assert res.traces["r"]["u"].shape == (2 + 1, 2, 3)
    assert res.counts.populations["r"].spikes_per_step.shape == (2, 2)
    assert (res.time_steps, res.latency, res.backend) == (2, 1, "numpy")


def test_sim_module_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; import sakd.hardware.simulator, sakd.hardware.netfile, sakd.hardware.ir; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert sim_mod.BACKENDS == ("numpy", "torch")
