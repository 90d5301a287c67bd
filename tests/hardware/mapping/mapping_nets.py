"""Small IR networks for the mapping tests, and a brute-force reference of their connectivity
(every synapse enumerated one by one) to check the mapper's vectorized counts against."""

from __future__ import annotations

import numpy as np

from sakd.hardware.ir import Input, Network, Population, Projection
from sakd.hardware.neurons import CubaLif
from sakd.hardware.target import LOIHI2


def pop(name, shape, readout=False):
    neuron = CubaLif.readout(LOIHI2) if readout else CubaLif(du=4095, dv=2048, vth=40)
    return Population(name, shape, neuron, role="readout" if readout else "spiking")


def weights(rng, shape, zeros=0.0, lo=-30, hi=60):
    """Even integer weights in the Loihi 2 range, a fraction ``zeros`` of them zero."""
    w = rng.integers(lo, hi, size=shape) * 2
    if zeros:
        w[rng.random(shape) < zeros] = 0
    return w


def conv_net(seed=0, c_in=2, size=8, c1=4, c2=8, hidden=20, classes=5, zeros=0.0, delay=0):
    """x (c_in, size, size) -conv3x3 pad1-> c1 (c1, size, size) -conv3x3 stride2 pad1->
    c2 (c2, size/2, size/2) -dense-> h (hidden,) -dense-> out (classes,) readout."""
    rng = np.random.default_rng(seed)
    half = (size + 1) // 2
    return Network(
        Input("x", (c_in, size, size), "graded", bits=8, scale=4.0),
        (pop("c1", (c1, size, size)), pop("c2", (c2, half, half)), pop("h", (hidden,)),
         pop("out", (classes,), readout=True)),
        (Projection("x_c1", "x", "c1", "conv2d", weights(rng, (c1, c_in, 3, 3), zeros),
                    padding=(1, 1)),
         Projection("c1_c2", "c1", "c2", "conv2d", weights(rng, (c2, c1, 3, 3), zeros),
                    stride=(2, 2), padding=(1, 1), delay=delay),
         Projection("c2_h", "c2", "h", "dense", weights(rng, (hidden, c2 * half * half), zeros)),
         Projection("h_out", "h", "out", "dense", weights(rng, (classes, hidden), zeros))),
        time_steps=4,
    )


def dense_net(seed=0, n_in=30, widths=(40, 10), zeros=0.0, encoding="graded"):
    rng = np.random.default_rng(seed)
    pops, projs, prev, prev_n = [], [], "x", n_in
    for i, n in enumerate(widths):
        name = f"l{i}"
        pops.append(pop(name, (n,), readout=i == len(widths) - 1))
        projs.append(Projection(f"{prev}_{name}", prev, name, "dense",
                                weights(rng, (n, prev_n), zeros)))
        prev, prev_n = name, n
    inp = Input("x", (n_in,), encoding, bits=8 if encoding == "graded" else 1)
    return Network(inp, tuple(pops), tuple(projs), time_steps=4)


# ---------------------------------------------------------------------------------------------
# brute-force reference
# ---------------------------------------------------------------------------------------------


def connectivity(network, proj):
    """(weights, structural mask) as dense [target neurons, source neurons] matrices, every
    conv or upsample synapse enumerated one at a time."""
    n_src = int(np.prod(network.source_shape(proj.source)))
    tshape = network.population(proj.target).shape
    n_tgt = int(np.prod(tshape))
    if proj.kind == "dense":
        w = np.asarray(proj.weight)
        return w, np.ones_like(w, dtype=bool)
    _, h, wd = network.source_shape(proj.source)
    cout, cin_g, kh, kw = proj.weight.shape
    _, ho, wo = tshape
    cpg = cout // proj.groups
    w_full = np.zeros((n_tgt, n_src), dtype=np.int64)
    mask = np.zeros((n_tgt, n_src), dtype=bool)
    if proj.kind == "upsample":  # target (co, yo, xo) reads cell (yo // kh, xo // kw) only
        for co in range(cout):
            for yo in range(ho):
                for xo in range(wo):
                    t = (co * ho + yo) * wo + xo
                    for cl in range(cin_g):
                        ci = (co // cpg) * cin_g + cl
                        s = (ci * h + yo // kh) * wd + xo // kw
                        w_full[t, s] = proj.weight[co, cl, yo % kh, xo % kw]
                        mask[t, s] = True
        return w_full, mask
    for co in range(cout):
        g = co // cpg
        for yo in range(ho):
            for xo in range(wo):
                t = (co * ho + yo) * wo + xo
                for cl in range(cin_g):
                    ci = g * cin_g + cl
                    for ky in range(kh):
                        yi = yo * proj.stride[0] - proj.padding[0] + ky * proj.dilation[0]
                        if not 0 <= yi < h:
                            continue
                        for kx in range(kw):
                            xi = xo * proj.stride[1] - proj.padding[1] + kx * proj.dilation[1]
                            if not 0 <= xi < wd:
                                continue
                            s = (ci * h + yi) * wd + xi
                            w_full[t, s] = proj.weight[co, cl, ky, kx]
                            mask[t, s] = True
    return w_full, mask


def slice_rows(mapping_slice, shape):
    """Flat neuron indices of a SliceMapping's box in a population of ``shape``."""
    layout = tuple(shape) if len(shape) == 3 else (int(np.prod(shape)),)
    grids = np.meshgrid(*[np.arange(lo, hi) for lo, hi in mapping_slice.box], indexing="ij")
    return np.ravel_multi_index([g.reshape(-1) for g in grids], layout)
