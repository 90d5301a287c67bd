"""A deliberately simple scalar reference of the IR's simulation semantics, written straight from
shared/spec/fixed-point.md §1 and docs/ir.md: Python ints, one neuron and one synapse at a time,
every step of every population, ring buffers of ``1 + delay`` slots. Tiny networks only.

It shares nothing with ``sakd.hardware.simulator`` (which it checks).
"""

from __future__ import annotations

from collections import deque
from itertools import product

import numpy as np

STATE_MAX = 1 << 23  # u, v are 24-bit
A_LIMIT = 1 << 25  # a << 6 must fit Lava's int32
U_LIMIT = (1 << 31) - (1 << 25)  # u beyond this: Lava's int32 sums of the next step may overflow


def trunc0(p: int) -> int:
    """p / 4096 truncated toward zero."""
    q = abs(p) >> 12
    return q if p >= 0 else -q


def wrap24(x: int) -> int:
    return ((x + (1 << 23)) % (1 << 24)) - (1 << 23)


def lif(
    u: int, v: int, a: int, du: int, dv: int, vth: int, bias: int, readout: bool
) -> tuple[int, int, int]:
    u = trunc0(u * (4096 - (du + 1))) + a * 64
    if u > STATE_MAX:
        u -= 1 << 24
    if u <= -STATE_MAX:
        u += 1 << 24
    v = trunc0(v * (4096 - dv)) + u + bias
    v = max(-(STATE_MAX - 1), min(STATE_MAX - 1, v))
    s = 0 if readout else int(v > vth * 64)
    if s:
        v = 0
    return u, v, s


def dense(w: np.ndarray, weight_exp: int, s: list[int]) -> list[int]:
    out = []
    for row in w.tolist():
        acc = 0
        for wi, si in zip(row, s):
            acc += wi * si
        out.append(acc << weight_exp if weight_exp >= 0 else acc >> -weight_exp)  # floor shift
    return out


def conv(proj, src_shape, s: list[int]) -> list[int]:
    """PyTorch cross-correlation by explicit loops over output neurons and kernel taps."""
    _, h, w = src_shape
    cout, cg, kh, kw = proj.weight.shape
    (sh, sw), (ph, pw), (dh, dw), g = proj.stride, proj.padding, proj.dilation, proj.groups
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    weight = proj.weight.tolist()
    out = []
    for co in range(cout):
        group = co // (cout // g)
        for oy in range(ho):
            for ox in range(wo):
                acc = 0
                for ci_local, ky, kx in product(range(cg), range(kh), range(kw)):
                    iy, ix = oy * sh - ph + ky * dh, ox * sw - pw + kx * dw
                    if 0 <= iy < h and 0 <= ix < w:
                        ci = group * cg + ci_local
                        acc += weight[co][ci_local][ky][kx] * s[(ci * h + iy) * w + ix]
                out.append(wrap24(acc))
    return out


def fanout(proj, src_shape, tgt_shape) -> list[int]:
    """Synapses leaving each source neuron, by enumerating every synapse."""
    n_src = int(np.prod(src_shape))
    counts = [0] * n_src
    if proj.kind == "dense":
        for i in range(n_src):
            counts[i] = int(proj.weight.shape[0])
        return counts
    _, h, w = src_shape
    cout, cg, kh, kw = proj.weight.shape
    _, ho, wo = tgt_shape
    (sh, sw), (ph, pw), (dh, dw), g = proj.stride, proj.padding, proj.dilation, proj.groups
    for co, oy, ox, ci_local, ky, kx in product(
        range(cout), range(ho), range(wo), range(cg), range(kh), range(kw)
    ):
        iy, ix = oy * sh - ph + ky * dh, ox * sw - pw + kx * dw
        if 0 <= iy < h and 0 <= ix < w:
            ci = (co // (cout // g)) * cg + ci_local
            counts[(ci * h + iy) * w + ix] += 1
    return counts


def latencies(net) -> dict[str, int]:
    lat = {net.input.name: 0}
    while len(lat) < len(net.populations) + 1:
        for proj in net.projections:
            if proj.source in lat and proj.target not in lat:
                others = [p for p in net.projections if p.target == proj.target]
                if all(p.source in lat for p in others):
                    lat[proj.target] = lat[proj.source] + 1 + proj.delay
    return lat


def reference_simulate(net, x: np.ndarray, T: int, sequence: bool = False) -> dict:
    """Simulate every sample separately. Returns traces (u, v, s: [T+L, B, *shape]), readout_v,
    and counts {pop: (spikes_per_step [B, T], active [B])}, {proj: (synops [B], graded_macs [B])}."""
    lat = latencies(net)
    L = lat[net.readout.name]
    steps = T + L
    B = x.shape[1] if sequence else x.shape[0]
    pops = {p.name: p for p in net.populations}
    shapes = {net.input.name: net.input.shape, **{p.name: p.shape for p in net.populations}}
    size = {k: int(np.prod(v)) for k, v in shapes.items()}
    fan = {pr.name: fanout(pr, shapes[pr.source], shapes[pr.target]) for pr in net.projections}
    traces = {
        n: {k: np.zeros((steps, B) + p.shape, np.int64) for k in "uvs"} for n, p in pops.items()
    }
    readout_v = np.zeros((B,) + net.readout.shape, np.int64)
    pop_counts = {n: (np.zeros((B, T), np.int64), np.zeros(B, np.int64)) for n in pops}
    proj_counts = {
        pr.name: (np.zeros(B, np.int64), np.zeros(B, np.int64)) for pr in net.projections
    }
    graded = net.input.encoding == "graded"

    for b in range(B):
        u = {n: [0] * size[n] for n in pops}
        v = {n: [0] * size[n] for n in pops}
        out = {n: [0] * size[n] for n in shapes}
        buffers = {
            pr.name: deque([[0] * size[pr.target]] * (1 + pr.delay)) for pr in net.projections
        }
        bias = {
            n: [int(val) << p.neuron.bias_exp for val in p.neuron.full_bias(p.shape).reshape(-1).tolist()]
            for n, p in pops.items()
        }
        for t in range(1, steps + 1):
            # the input's output of step t
            if t <= T:
                frame = x[t - 1, b] if sequence else x[b]
                out[net.input.name] = [int(val) for val in frame.reshape(-1).tolist()]
            else:
                out[net.input.name] = [0] * size[net.input.name]
            # each synapse delivers what it computed 1 + delay steps ago
            delivered = {pr.name: buffers[pr.name].popleft() for pr in net.projections}
            for name, pop in pops.items():
                ell = lat[name]
                if (t - 1 - ell) % T == 0:  # staggered reset before the dynamics
                    u[name] = [0] * size[name]
                    v[name] = [0] * size[name]
                a = [0] * size[name]
                for pr in net.projections:
                    if pr.target == name:
                        a = [x1 + x2 for x1, x2 in zip(a, delivered[pr.name])]
                if any(abs(val) >= A_LIMIT for val in a):
                    raise OverflowError(f"population '{name}': a << 6 out of int32")
                s = [0] * size[name]
                for i in range(size[name]):
                    u[name][i], v[name][i], s[i] = lif(
                        u[name][i],
                        v[name][i],
                        a[i],
                        pop.neuron.du,
                        pop.neuron.dv,
                        pop.neuron.vth,
                        bias[name][i],
                        pop.is_readout,
                    )
                    if abs(u[name][i]) >= U_LIMIT:
                        raise OverflowError(f"population '{name}': u out of Lava's int32 range")
                out[name] = s
                traces[name]["u"][t - 1, b] = np.array(u[name]).reshape(pop.shape)
                traces[name]["v"][t - 1, b] = np.array(v[name]).reshape(pop.shape)
                traces[name]["s"][t - 1, b] = np.array(s).reshape(pop.shape)
                if 1 + ell <= t <= T + ell:  # the window
                    k = t - 1 - ell
                    pop_counts[name][0][b, k] = sum(s)
                    pop_counts[name][1][b] += sum(1 for ai, si in zip(a, s) if ai != 0 or si)
            # each synapse reads its source's output of step t
            for pr in net.projections:
                src = out[pr.source]
                if pr.kind == "dense":
                    buffers[pr.name].append(dense(pr.weight, pr.weight_exp, src))
                else:
                    buffers[pr.name].append(conv(pr, shapes[pr.source], src))
                ell = lat[pr.source]
                if 1 + ell <= t <= T + ell:
                    ops = sum(f for f, val in zip(fan[pr.name], src) if val != 0)
                    if pr.source == net.input.name and graded:
                        proj_counts[pr.name][1][b] += ops
                    else:
                        proj_counts[pr.name][0][b] += sum(
                            f * val for f, val in zip(fan[pr.name], src)
                        )
                        assert ops == sum(f * val for f, val in zip(fan[pr.name], src))
        readout_v[b] = np.array(v[net.readout.name]).reshape(net.readout.shape)
    for name in pops:
        traces[name]["s"] = traces[name]["s"].astype(bool)
    synapses = {pr.name: sum(fan[pr.name]) for pr in net.projections}
    return {
        "traces": traces,
        "readout_v": readout_v,
        "pop_counts": pop_counts,
        "proj_counts": proj_counts,
        "synapses": synapses,
        "latency": L,
    }
