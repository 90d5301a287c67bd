"""A scalar reference of the free-running schedule (netx semantics, docs/ir.md) for every neuron
model, written straight from Lava's fixed-point process models (``lava.proc.lif``,
``lava.proc.sdn``, ``lava.proc.rf``, ``lava.proc.rf_iz``; shared/spec/fixed-point.md §1): Python
ints, one neuron at a time, every population at every step, one ring buffer per projection.

It shares nothing with ``sakd.hardware.simulator`` or ``sakd.hardware.neurons`` (which it
checks): the dynamics below are written out again from Lava's source.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from reference_sim import conv, dense, trunc0

STATE_MAX = 1 << 23
INT32 = 1 << 31


def trunc(p: int, bits: int) -> int:
    q = abs(p) >> bits
    return q if p >= 0 else -q


def _zeros(model: str, n: int) -> dict[str, list[int]]:
    names = {"cuba_lif": ("u", "v"), "delta": ("act", "residue"),
             "sigma_delta": ("sigma", "act", "residue"), "sigma": ("sigma",),
             "rf": ("real", "imag"), "rf_iz": ("real", "imag")}[model]
    return {k: [0] * n for k in names}


def _check32(what: str, value: int) -> None:
    if abs(value) >= INT32:
        raise OverflowError(f"{what} {value} beyond int32")


def neuron_step(pop, st: dict[str, list[int]], inputs: dict[str, list[int]], bias: list[int],
                readout: bool) -> list[int]:
    """One step of every neuron of ``pop`` (in place on ``st``); returns the messages."""
    m = pop.neuron
    model = m.model
    n = len(next(iter(st.values())))
    out = [0] * n
    for i in range(n):
        a = inputs.get(m.ports[0], [0] * n)[i]
        if model == "cuba_lif":
            if abs(a) >= 1 << 25:
                raise OverflowError("a << 6 beyond int32")
            extra = inputs.get("bias", [0] * n)[i] << m.bias_exp
            u = trunc0(st["u"][i] * (4096 - (m.du + 1))) + (a << 6)
            if u > STATE_MAX:
                u -= 1 << 24
            if u <= -STATE_MAX:
                u += 1 << 24
            _check32("u", u)  # one wrap cannot bring it back: Lava's int32 u has overflowed
            v = trunc0(st["v"][i] * (4096 - m.dv)) + u + bias[i] + extra
            v = max(-(STATE_MAX - 1), min(STATE_MAX - 1, v))
            s = 0 if readout else int(v > m.vth * 64)
            st["u"][i], st["v"][i] = u, (0 if s else v)
            out[i] = s
        elif model in ("delta", "sigma_delta"):
            k = m.spike_exp + m.state_exp
            vth = m.vth << k
            if model == "delta":
                x = a << k
                _check32("a << k", x)
            else:
                sigma = st["sigma"][i] + a
                _check32("sigma", sigma)
                st["sigma"][i] = sigma
                x = max(sigma + bias[i], 0)
                _check32("activation", sigma + bias[i])
            change = x - st["act"][i]
            _check32("x - act", change)
            d = change + st["residue"][i]
            _check32("d", d)
            s = d if abs(d) >= vth else 0
            st["residue"][i] = d - s
            st["act"][i] = x
            out[i] = s >> m.state_exp
        elif model == "sigma":
            sigma = st["sigma"][i] + a
            _check32("sigma", sigma)
            st["sigma"][i] = sigma
            out[i] = sigma
        else:  # rf, rf_iz
            e, q = m.state_exp, m.decay_bits
            ar = a
            ai = inputs.get("a_imag_in", [0] * n)[i]
            for val in (ar, ai):
                if abs(val) >= INT32 >> e:
                    raise OverflowError("RF input << state_exp beyond int32")
            re, im = st["real"][i], st["imag"][i]
            new_re = trunc(m.cos_decay * re, q) - trunc(m.sin_decay * im, q) + (ar << e)
            new_im = trunc(m.sin_decay * re, q) + trunc(m.cos_decay * im, q) + (ai << e)
            lim = STATE_MAX - 1
            new_re = max(-lim, min(lim, new_re))
            new_im = max(-lim, min(lim, new_im))
            vth = m.vth << e
            if model == "rf":
                s = int(new_re >= vth and new_im >= 0 and im < 0)
                st["real"][i], st["imag"][i] = new_re, new_im
            else:
                s = int(new_im >= vth)
                st["real"][i] = 0 if s else new_re
                st["imag"][i] = vth - 1 if s else new_im
            out[i] = s
    return out


def reference_free(net, x: np.ndarray, steps: int, reset_interval: int | None = None,
                   reset_offset: int = 0) -> dict:
    """Every sample from the zero state for ``steps`` steps; a static input ``x`` [B, *shape].
    Returns {"traces": {pop: {var|"s": [steps, B, *shape]}}, "outputs": {pop: [B, *shape]}}."""
    pops = list(net.populations)
    shapes = {net.input.name: net.input.shape, **{p.name: p.shape for p in pops}}
    size = {k: int(np.prod(v)) for k, v in shapes.items()}
    B = x.shape[0]
    resettable = {"cuba_lif"}
    traces = {p.name: {k: np.zeros((steps, B) + p.shape, np.int64)
                       for k in (*_zeros(p.neuron.model, 1), "s")} for p in pops}
    for b in range(B):
        st = {p.name: _zeros(p.neuron.model, size[p.name]) for p in pops}
        out = {name: [0] * size[name] for name in shapes}
        bufs = {pr.name: deque([[0] * size[pr.target]] * pr.latency) for pr in net.projections
                if pr.kind != "direct"}
        biases = {}
        for p in pops:
            if hasattr(p.neuron, "bias_mant"):
                full = np.broadcast_to(
                    p.neuron.bias_mant.reshape((-1,) + (1,) * (len(p.shape) - 1))
                    if p.neuron.bias_mant.ndim == 1 and len(p.shape) > 1 else p.neuron.bias_mant,
                    p.shape).reshape(-1).tolist()
                shift = getattr(p.neuron, "bias_exp", None)
                if shift is None:
                    shift = p.neuron.spike_exp + p.neuron.state_exp
                biases[p.name] = [int(v) << shift for v in full]
            else:
                biases[p.name] = [0] * size[p.name]
        for t in range(1, steps + 1):
            out[net.input.name] = [int(v) for v in x[b].reshape(-1).tolist()]
            delivered = {name: buf.popleft() for name, buf in bufs.items()}
            new_out = {}
            for k, p in enumerate(pops):
                if (reset_interval is not None and p.neuron.model in resettable
                        and t % reset_interval == (reset_offset + 1 + k) % reset_interval):
                    st[p.name] = _zeros(p.neuron.model, size[p.name])
                inputs: dict[str, list[int]] = {}
                for pr in net.projections:
                    if pr.target != p.name:
                        continue
                    a = out[pr.source] if pr.kind == "direct" else delivered[pr.name]
                    cur = inputs.setdefault(pr.port, [0] * size[p.name])
                    inputs[pr.port] = [c + v for c, v in zip(cur, a)]
                s = neuron_step(p, st[p.name], inputs, biases[p.name], p.is_readout)
                new_out[p.name] = s
                for key, vals in st[p.name].items():
                    traces[p.name][key][t - 1, b] = np.array(vals).reshape(p.shape)
                traces[p.name]["s"][t - 1, b] = np.array(s).reshape(p.shape)
            out.update(new_out)
            for pr in net.projections:
                if pr.kind == "direct":
                    continue
                src = out[pr.source]
                bufs[pr.name].append(dense(pr.weight, pr.weight_exp, src) if pr.kind == "dense"
                                     else conv(pr, shapes[pr.source], src))
    outputs = {}
    for p in net.outputs:
        if p.is_readout:
            outputs[p.name] = traces[p.name][p.neuron.readout_state][-1]
        else:
            outputs[p.name] = traces[p.name]["s"].sum(0)
    return {"traces": traces, "outputs": outputs}
