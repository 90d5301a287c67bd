"""What a block of neurons costs a core: neuron state, delay buffers, synapse memory, input and
output axons (docs/mapping.md, "The resource model").

A *box* is a block of one population's neurons: for a (C, H, W) population a product of three
half-open ranges (channels x rows x columns), for any other shape a range of the flattened
neurons. ``project_into_box`` counts, for one projection into one box, the synapses it stores,
the distinct source neurons whose spikes reach the box (its input axons) and the synapse memory
those synapses take in the chip's format. Units: bits for memories, counts otherwise.

Synapse memory format (the Loihi format as nengo-loihi models it, ``SynapseConfig.bits_per_axon``):
each input axon owns a list of synapses, stored in groups of at most ``synapse_group_max``
synapses; a group takes ``n x bits_per_synapse + synapse_group_header_bits`` bits rounded up to
whole ``synapse_word_bits`` words. A synapse holds its weight (the bits its projection's weights
need, at most ``max_weight_bits``), a target index in the *sparse* encoding
(``max(sparse_index_bits_min, ceil(log2(box neurons)))`` bits) and a delay field
(``delay_field_bits``) when its projection has a delay. A dense projection is stored in the
cheaper of the *dense* encoding (every target of the box, zeros included, no index) and the
*sparse* one (nonzero weights only, with an index). A conv2d projection is stored either as
per-target synapse lists (sparse, nonzero weights) or, when the chip shares convolutional weights
(``shared_weights``), as its kernel once per core: ``Cout_box x Cin/groups x kh x kw`` weights
plus one group header per input axon. Both counts are always computed and reported. An upsample
projection is stored the same two ways: per-target synapse lists (each target neuron holds one
synapse per channel of its group, to the one source cell it reads), or its kernel
``Cout_box x Cin/groups x fh x fw`` once per core.

Assumptions (stated in the chip profiles too): a projection with delay d needs d + 1 dendritic
accumulator slots (``delay_slot_bits`` each) per target neuron, and a neuron keeps one ring of
slots for all its inputs (the largest delay into it counts). Input axons and reach use nonzero
weights: a source whose every weight into the box is zero needs no axon and sends no message
there.

numpy only; Python 3.10 compatible.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from sakd.hardware.ir import Network, Population, Projection
from sakd.hardware.target import LOIHI2, TargetSpec

from .profile import ChipProfile

Box = tuple[tuple[int, int], ...]  # half-open (lo, hi) per axis of the population's layout


# ---------------------------------------------------------------------------------------------
# neuron state
# ---------------------------------------------------------------------------------------------


def neuron_state_bits(population: Population, chip: ChipProfile,
                      target: TargetSpec | None = None) -> int:
    """Bits one neuron of ``population`` keeps in its core's memory: the one place the mapper
    asks a neuron model for its size.

    The model's state variables at their declared widths (CUBA-LIF: a 24-bit current u and a
    24-bit voltage v) plus every array parameter at the width of its range on ``target``
    (CUBA-LIF: the 13-bit bias mantissa), stored per neuron as Loihi's compartments hold their
    bias, whatever the array's shape: 61 bits for a CUBA-LIF on ``LOIHI2``. Scalar parameters
    (decays, threshold, bias exponent) are per-population configuration, not per-neuron
    state. (``chip`` is taken for chips whose state layout differs; none does yet.)
    """
    del chip  # the same layout on every chip modelled so far
    spec = target if target is not None else LOIHI2
    model = population.neuron
    bits = sum(var.bits for var in type(model).state)
    for fld in model.parameters():
        if fld.metadata.get("array"):
            lo, hi = fld.metadata["limits"](spec, population.is_readout)
            bits += _range_bits(int(lo), int(hi))
    return int(bits)


def _range_bits(lo: int, hi: int) -> int:
    """Bits of an integer register holding every value of [lo, hi] (two's complement if lo < 0)."""
    if lo >= 0:
        return max(hi.bit_length(), 1)
    return max((-lo - 1).bit_length(), hi.bit_length()) + 1


def neuron_layout(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes a population is tiled along: (C, H, W) stays, anything else is flattened."""
    if len(shape) == 3:
        return tuple(int(d) for d in shape)
    return (int(np.prod(shape)),)


def box_size(box: Box) -> int:
    size = 1
    for lo, hi in box:
        size *= hi - lo
    return size


def box_flat_indices(box: Box, layout: tuple[int, ...]) -> np.ndarray:
    """int64 flat (C, H, W-order) indices of the neurons of ``box``."""
    if len(layout) == 1:
        (lo, hi), = box
        return np.arange(lo, hi, dtype=np.int64)
    (c0, c1), (y0, y1), (x0, x1) = box
    _, h, w = layout
    c = np.arange(c0, c1, dtype=np.int64)[:, None, None]
    y = np.arange(y0, y1, dtype=np.int64)[None, :, None]
    x = np.arange(x0, x1, dtype=np.int64)[None, None, :]
    return ((c * h + y) * w + x).reshape(-1)


# ---------------------------------------------------------------------------------------------
# synapse memory format
# ---------------------------------------------------------------------------------------------


def weight_bits(projection: Projection, chip: ChipProfile, target: TargetSpec | None = None) -> int:
    """Bits per stored weight of ``projection``: the signed (when any weight is negative) or
    unsigned width of its weight mantissas ``w / weight_step``, at least 1 (a direct
    projection: 1). Raises ValueError when it exceeds the chip's ``max_weight_bits`` (the
    caller names the projection)."""
    if projection.kind == "direct":
        return 1
    spec = target if target is not None else LOIHI2
    mant = projection.weight // spec.weight_step
    lo, hi = int(mant.min()), int(mant.max())
    bits = max(abs(lo), hi).bit_length() + (1 if lo < 0 else 0)
    bits = max(bits, 1)
    if bits > chip.max_weight_bits:
        raise ValueError(f"its weights need {bits} bits, a {chip.name} synapse holds "
                         f"{chip.max_weight_bits}")
    return bits


def index_bits(box_neurons: int, chip: ChipProfile) -> int:
    """Bits of a target index in the sparse encoding for a box of ``box_neurons`` neurons."""
    need = math.ceil(math.log2(box_neurons)) if box_neurons > 1 else 1
    return max(chip.sparse_index_bits_min, need)


def axon_list_bits(n_synapses: np.ndarray | int, bits_per_synapse: int,
                   chip: ChipProfile) -> np.ndarray:
    """Bits the synapse lists of input axons take: per axon, groups of at most
    ``synapse_group_max`` synapses, each ``n x bits_per_synapse + header`` rounded up to whole
    words. int64, same shape as ``n_synapses``; an axon with no synapse takes 0 bits."""
    n = np.asarray(n_synapses, dtype=np.int64)
    g, word, head = chip.synapse_group_max, chip.synapse_word_bits, chip.synapse_group_header_bits
    full, rest = n // g, n % g
    full_bits = -(-(g * bits_per_synapse + head) // word) * word
    rest_bits = np.where(rest > 0, -(-(rest * bits_per_synapse + head) // word) * word, 0)
    return full * full_bits + rest_bits


# ---------------------------------------------------------------------------------------------
# one projection into one box
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SourceBlock:
    """The source neurons of one projection into one box and their structural synapses into
    it, kept compact (the partition keeps one per slice and projection: hundreds of thousands):
    source neuron ``c x plane + q`` for every channel c of ``channels`` (lo, hi) and every
    position q of ``positions`` (in that order, ascending), sending ``per_channel[c - lo] x
    per_position[q's index]`` synapses into the box (scalars stand for a constant). A flat
    source is one plane (``plane`` 1, ``positions`` [0]), its neurons the "channels"."""

    channels: tuple[int, int]
    plane: int
    positions: np.ndarray  # int64 [p]: positions within a channel plane, ascending
    per_channel: np.ndarray | int  # int64 [channels] or one value for all
    per_position: np.ndarray | int  # int64 [p] or one value for all

    def __len__(self) -> int:
        return (self.channels[1] - self.channels[0]) * len(self.positions)

    def sources(self) -> np.ndarray:
        """int32 [k]: flat indices of the source neurons."""
        c = np.arange(*self.channels, dtype=np.int64)
        return (c[:, None] * self.plane + self.positions[None, :]).reshape(-1).astype(np.int32)

    def fanout(self) -> np.ndarray:
        """int32 [k]: their structural synapses into the box (zero weights included)."""
        n_c, n_p = self.channels[1] - self.channels[0], len(self.positions)
        per_c = np.full(n_c, self.per_channel, dtype=np.int64) \
            if np.ndim(self.per_channel) == 0 else self.per_channel
        per_p = np.full(n_p, self.per_position, dtype=np.int64) \
            if np.ndim(self.per_position) == 0 else self.per_position
        return (per_c[:, None] * per_p[None, :]).reshape(-1).astype(np.int32)

    def synapses(self) -> int:
        """The sum of ``fanout()``, without making it."""
        n_c, n_p = self.channels[1] - self.channels[0], len(self.positions)
        per_c = n_c * int(self.per_channel) if np.ndim(self.per_channel) == 0 \
            else int(np.sum(self.per_channel))
        per_p = n_p * int(self.per_position) if np.ndim(self.per_position) == 0 \
            else int(np.sum(self.per_position))
        return per_c * per_p


def flat_block(lo: int, hi: int, fanout: int) -> SourceBlock:
    """The flat source neurons [lo, hi), each with ``fanout`` synapses into the box."""
    return SourceBlock((lo, hi), 1, np.zeros(1, dtype=np.int64), fanout, 1)


@dataclass(frozen=True)
class ProjectionInBox:
    """What one projection puts into one box of its target. ``sources``, ``fanout`` and
    ``reach`` are aligned arrays over the source neurons with at least one structural synapse
    into the box (a conv box's receptive field, not the whole source: memory stays
    proportional to the box); ``block`` keeps the first two compact (made on request), ``reach``
    is kept. ``synapse_bits`` is the chip's choice; the other encodings are kept for the report
    (``shared_bits`` None for dense projections)."""

    projection: str
    source: str
    synapses: int  # structural (source, target) pairs, zero weights included
    synapses_nonzero: int
    input_axons: int  # distinct source neurons with a nonzero weight into the box
    synapse_bits: int
    encoding: str  # "dense" | "sparse" | "shared"
    per_target_bits: int  # the best per-target-list encoding (dense or sparse)
    shared_bits: int | None  # conv2d: kernel stored once (whatever the chip's flag)
    block: SourceBlock  # the source neurons with a synapse here, and their fan-out into the box
    reach: np.ndarray  # bool [k]: whether one of their weights into the box is nonzero

    @property
    def sources(self) -> np.ndarray:
        """int32 [k]: flat indices of the source neurons with a synapse here (ascending)."""
        return self.block.sources()

    @property
    def fanout(self) -> np.ndarray:
        """int32 [k]: their structural synapses into the box (zeros included)."""
        return self.block.fanout()


def project_into_box(network: Network, projection: Projection, box: Box, chip: ChipProfile,
                     wbits: int) -> ProjectionInBox:
    """Count ``projection``'s synapses into ``box`` of its target and the memory they take."""
    target = network.population(projection.target)
    layout = neuron_layout(target.shape)
    m = box_size(box)
    dbits = chip.delay_field_bits if projection.delay > 0 else 0
    sparse_bits_per_syn = wbits + index_bits(m, chip) + dbits
    if projection.kind == "direct":
        # the input's value i enters neuron i of the target (netx's input layer): stored as an
        # identity, one input axon and one 1-bit synapse per neuron (an assumption: how the
        # chip feeds a neuron's input port from the host is not public)
        if len(layout) == 1:
            block = flat_block(box[0][0], box[0][1], 1)
        else:
            (c0, c1), (y0, y1), (x0, x1) = box
            _, h, w = layout
            rows = np.arange(y0, y1, dtype=np.int64)[:, None] * w + np.arange(x0, x1)[None, :]
            block = SourceBlock((c0, c1), h * w, rows.reshape(-1), 1, 1)
        bits = int(axon_list_bits(np.ones(m, dtype=np.int32), 1, chip).sum())
        return ProjectionInBox(projection.name, projection.source, m, m, m, bits, "identity",
                               bits, None, block, np.ones(m, dtype=bool))
    if projection.kind == "dense":
        rows = box_flat_indices(box, layout)
        block = projection.weight[rows]
        nnz = np.count_nonzero(block, axis=0).astype(np.int64)
        reach = nnz > 0
        dense_bits = int(axon_list_bits(np.where(reach, m, 0), wbits + dbits, chip).sum())
        sparse_bits = int(axon_list_bits(nnz, sparse_bits_per_syn, chip).sum())
        if dense_bits <= sparse_bits:
            per_target, encoding = dense_bits, "dense"
        else:
            per_target, encoding = sparse_bits, "sparse"
        return ProjectionInBox(projection.name, projection.source, int(m * block.shape[1]),
                               int(nnz.sum()), int(reach.sum()), per_target, encoding,
                               per_target, None, flat_block(0, block.shape[1], m), reach)
    field, fanout_nz, n_channels_in_box = _conv_fanout_into_box(network, projection, box)
    reach = fanout_nz > 0
    per_target = int(axon_list_bits(fanout_nz, sparse_bits_per_syn, chip).sum())
    _, cin_g, kh, kw = projection.weight.shape
    n_axons = int(reach.sum())
    kernel_bits = n_channels_in_box * cin_g * kh * kw * (wbits + dbits)
    head_bits = n_axons * chip.synapse_group_header_bits
    word = chip.synapse_word_bits
    shared = -(-(kernel_bits + head_bits) // word) * word if n_axons else 0
    if chip.shared_weights:
        bits, encoding = shared, "shared"
    else:
        bits, encoding = per_target, "sparse"
    return ProjectionInBox(projection.name, projection.source, field.synapses(),
                           int(fanout_nz.sum()), n_axons, int(bits), encoding, per_target,
                           int(shared), field, reach)


def _axis_reach(size: int, k: int, stride: int, pad: int, dil: int, lo: int, hi: int) -> np.ndarray:
    """bool [size, k]: input position i feeds, through kernel tap j, an output in [lo, hi)."""
    i = np.arange(size)[:, None]
    j = np.arange(k)[None, :]
    num = i + pad - j * dil
    o = num // stride
    return (num % stride == 0) & (o >= lo) & (o < hi)


@functools.lru_cache(maxsize=4096)
def _axis_field(size: int, k: int, stride: int, pad: int, dil: int, lo: int,
                hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(int64 input positions that feed an output in [lo, hi), int64 [positions, k]: which of
    their taps do), read-only: the same rows and columns recur in box after box (cached)."""
    reach = _axis_reach(size, k, stride, pad, dil, lo, hi)
    idx = np.flatnonzero(reach.any(axis=1))
    taps = reach[idx].astype(np.int64)
    idx.flags.writeable = taps.flags.writeable = False
    return idx, taps


@functools.lru_cache(maxsize=4096)
def _upsample_axis_field(size: int, f: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """``_axis_field`` of an upsample projection (factor ``f`` along one axis): source position
    i feeds targets ``i·f .. i·f + f − 1``, tap a the target ``i·f + a``; (the positions with a
    target in [lo, hi), int64 [positions, f]: which taps do), read-only, cached."""
    reach = (np.arange(size)[:, None] * f + np.arange(f)[None, :])
    reach = (reach >= lo) & (reach < hi)
    idx = np.flatnonzero(reach.any(axis=1))
    taps = reach[idx].astype(np.int64)
    idx.flags.writeable = taps.flags.writeable = False
    return idx, taps


@functools.lru_cache(maxsize=4096)
def _upsample_field(h: int, w: int, fh: int, fw: int, y0: int, y1: int, x0: int, x1: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``_conv_field`` of an upsample projection: the source cells under target rows [y0, y1)
    x columns [x0, x1), with the same four arrays (taps of rows, taps of columns, positions,
    structural taps per position), read-only, cached."""
    ys, ry = _upsample_axis_field(h, fh, y0, y1)
    xs, rx = _upsample_axis_field(w, fw, x0, x1)
    spatial = np.outer(ry.sum(axis=1), rx.sum(axis=1)).reshape(-1)
    position = (ys[:, None] * w + xs[None, :]).reshape(-1)
    spatial.flags.writeable = position.flags.writeable = False
    return ry, rx, position, spatial


@functools.lru_cache(maxsize=4096)
def _conv_field(h: int, w: int, kh: int, kw: int, geometry: tuple[int, ...], y0: int, y1: int,
                x0: int, x1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The receptive field of output rows [y0, y1) x columns [x0, x1) in an h x w source
    (``geometry``: stride, padding, dilation, each (y, x)): (int64 [rows, kh] taps of its
    rows, int64 [columns, kw] taps of its columns, int64 positions (y x w + x) in a channel
    plane, ascending, int64 structural taps of each position), read-only; cached: the same
    rows and columns recur in box after box."""
    sy, sx, py, px, dy, dx = geometry
    ys, ry = _axis_field(h, kh, sy, py, dy, y0, y1)
    xs, rx = _axis_field(w, kw, sx, px, dx, x0, x1)
    spatial = np.outer(ry.sum(axis=1), rx.sum(axis=1)).reshape(-1)  # all > 0
    position = (ys[:, None] * w + xs[None, :]).reshape(-1)
    spatial.flags.writeable = position.flags.writeable = False
    return ry, rx, position, spatial


_PREFIX_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _nonzero_prefix(weight: np.ndarray) -> np.ndarray:
    """int64 [Cout + 1, Cin/groups, kh, kw]: nonzero weights of output channels [0, c), so that
    a box's nonzero taps over channels [lo, hi) are one subtraction. Cached per weight array
    (the partition asks for the same projection's boxes thousands of times)."""
    key = id(weight)
    hit = _PREFIX_CACHE.get(key)
    if hit is not None and hit[0] is weight:
        return hit[1]
    if len(_PREFIX_CACHE) >= 64:
        _PREFIX_CACHE.clear()
    nz = (weight != 0).astype(np.int64)
    prefix = np.concatenate([np.zeros((1, *nz.shape[1:]), dtype=np.int64), np.cumsum(nz, axis=0)])
    _PREFIX_CACHE[key] = (weight, prefix)
    return prefix


def _conv_fanout_into_box(network: Network, projection: Projection, box: Box
                          ) -> tuple[SourceBlock, np.ndarray, int]:
    """(the source neurons with a structural synapse into ``box`` and their structural
    fan-out, their nonzero fan-out (int64, aligned), channels of the box): the rows and
    columns of its receptive field, in the channels of its groups. A conv2d or an upsample
    projection (whose "taps" are the offsets (a, b) of a target within its source cell: the
    target (co, i, j) reads tap (i % fh, j % fw) of source cell (i // fh, j // fw))."""
    _, h, w = network.source_shape(projection.source)
    cout, cin_g, kh, kw = projection.weight.shape
    (c0, c1), (y0, y1), (x0, x1) = box
    if projection.kind == "upsample":
        ry, rx, position, spatial = _upsample_field(h, w, kh, kw, y0, y1, x0, x1)
    else:
        ry, rx, position, spatial = _conv_field(
            h, w, kh, kw, tuple(int(v) for v in (*projection.stride, *projection.padding,
                                                  *projection.dilation)), y0, y1, x0, x1)
    cpg = cout // projection.groups
    cum = _nonzero_prefix(projection.weight)
    g0, g1 = c0 // cpg, (c1 - 1) // cpg + 1  # the groups the box's channels fall in
    per_channel, fans_nz = [], []
    for g in range(g0, g1):
        lo, hi = max(c0, g * cpg), min(c1, (g + 1) * cpg)
        k = cum[hi] - cum[lo]  # [cin_g, kh, kw]: nonzero taps summed over the box's channels
        # sum over taps (kh, kw) of k[c, kh, kw] ry[y, kh] rx[x, kw]: two matrix products
        fans_nz.append(np.matmul(ry, np.matmul(k, rx.T)).reshape(-1))
        per_channel.append(np.full(cin_g, hi - lo, dtype=np.int64))
    block = SourceBlock((g0 * cin_g, g1 * cin_g), h * w, position,
                        np.concatenate(per_channel), spatial)
    return block, np.concatenate(fans_nz).astype(np.int64), c1 - c0


# ---------------------------------------------------------------------------------------------
# one box: every resource
# ---------------------------------------------------------------------------------------------

#: the resources a core has, in report order
RESOURCES = ("neurons", "neuron_memory_bits", "synapse_memory_bits", "core_memory_bits",
             "input_axons", "output_axons")


def capacity(chip: ChipProfile, resource: str) -> int | None:
    """What one core of ``chip`` has of ``resource`` (None: not a separate limit)."""
    return {
        "neurons": chip.max_neurons_per_core,
        "neuron_memory_bits": chip.neuron_memory_bits,
        "synapse_memory_bits": chip.synapse_memory_bits,
        "core_memory_bits": chip.core_memory_bits,
        "input_axons": chip.input_axons_per_core,
        "output_axons": chip.output_axons_per_core,
    }[resource]


@dataclass(frozen=True)
class BoxUsage:
    """Every resource one box of a population takes (bits for memories)."""

    neurons: int
    neuron_state_bits: int
    delay_buffer_bits: int
    synapse_bits: int
    synapse_bits_per_target: int  # conv weights as per-target lists, whatever the chip does
    synapse_bits_shared: int  # conv weights stored once per core (dense projections as chosen)
    input_axons: int
    output_axons: int
    synapses: int
    synapses_nonzero: int
    projections: tuple[ProjectionInBox, ...]

    @property
    def neuron_memory_bits(self) -> int:
        return self.neuron_state_bits + self.delay_buffer_bits

    def amounts(self, chip: ChipProfile) -> dict[str, int]:
        """Resource -> amount used, by the names of ``RESOURCES`` (a shared core memory holds
        the neuron memory and the synapses; separate memories are counted apart)."""
        shared = chip.shared_memory
        return {
            "neurons": self.neurons,
            "neuron_memory_bits": self.neuron_memory_bits,
            "synapse_memory_bits": self.synapse_bits,
            "core_memory_bits": self.neuron_memory_bits + self.synapse_bits if shared else 0,
            "input_axons": self.input_axons,
            "output_axons": self.output_axons,
        }


def box_usage(network: Network, population: Population, box: Box, chip: ChipProfile,
              out_counts: np.ndarray, wbits: dict[str, int],
              target: TargetSpec | None = None) -> BoxUsage:
    """Every resource ``box`` of ``population`` takes. ``out_counts``: int64 per neuron (flat),
    the number of destination slices its spikes go to (its output-axon entries)."""
    layout = neuron_layout(population.shape)
    m = box_size(box)
    incoming = network.projections_into(population.name)
    parts = tuple(project_into_box(network, p, box, chip, wbits[p.name]) for p in incoming)
    max_delay = max((p.delay for p in incoming), default=0)
    flat = box_flat_indices(box, layout)
    return BoxUsage(
        neurons=m,
        neuron_state_bits=m * neuron_state_bits(population, chip, target),
        delay_buffer_bits=m * (max_delay + 1) * chip.delay_slot_bits,
        synapse_bits=sum(p.synapse_bits for p in parts),
        synapse_bits_per_target=sum(p.per_target_bits for p in parts),
        synapse_bits_shared=sum(p.shared_bits if p.shared_bits is not None else p.synapse_bits
                                for p in parts),
        input_axons=sum(p.input_axons for p in parts),
        output_axons=int(out_counts[flat].sum()),
        synapses=sum(p.synapses for p in parts),
        synapses_nonzero=sum(p.synapses_nonzero for p in parts),
        projections=parts,
    )


def over_capacity(amounts: dict[str, int], chip: ChipProfile) -> list[tuple[str, int, int]]:
    """(resource, amount, capacity) for every resource ``amounts`` exceeds."""
    out = []
    for resource in RESOURCES:
        cap = capacity(chip, resource)
        if cap is not None and amounts[resource] > cap:
            out.append((resource, amounts[resource], cap))
    return out


def format_bits(bits: float) -> str:
    """Bits as KB / MB (1 KB = 1,024 bytes), for messages."""
    nbytes = bits / 8
    if nbytes >= 1024 * 1024:
        return f"{nbytes / (1024 * 1024):.1f} MB"
    if nbytes >= 1024:
        return f"{nbytes / 1024:.1f} KB"
    return f"{nbytes:.0f} bytes"
