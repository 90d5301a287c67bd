"""Partition: split every population into per-core slices that fit, then let small slices share
a core (docs/mapping.md, "Partition").

1. Populations are visited in *reverse* topological order, so that when a population is split,
   every population its spikes go to is split already: the output-axon entries of each of its
   neurons (the number of destination slices it reaches) are known.
2. A population is tiled into equal boxes (``resources.Box``): (C, H, W) populations along
   channels, rows and columns, others along their flattened neurons. The candidate tilings are
   ordered by their number of boxes (ties: fewer channel splits, then squarer spatial tiles);
   the search gallops up the box counts from a lower bound (neurons, additive memories) and
   then bisects back, taking the first tiling all of whose boxes fit every resource of a core.
   A box that already fails with a single neuron means no tiling can work: ``MappingError``
   names the population, the resource, the need, the capacity and what to change.
3. ``pack_cores``: first-fit decreasing bin packing of the slices onto cores, largest
   utilization first; a slice goes onto the first core whose every resource still holds it.
   Packed slices add up their resources (input axons shared by two slices are counted twice:
   a conservative count).

Deterministic: no randomness, ties broken by declaration order. numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sakd.hardware.ir import Network, Population
from sakd.hardware.target import TargetSpec

from .errors import MappingError
from .profile import ChipProfile
from .resources import (
    RESOURCES,
    Box,
    BoxUsage,
    box_flat_indices,
    box_usage,
    capacity,
    format_bits,
    neuron_layout,
    neuron_state_bits,
    over_capacity,
    weight_bits,
)


@dataclass(frozen=True)
class Slice:
    """One block of one population, the unit that goes onto a core. ``id``: its place in the
    partition (populations in topological order, boxes in C, H, W order)."""

    id: int
    population: str
    index: int
    box: Box
    usage: BoxUsage


@dataclass(frozen=True)
class Partition:
    """Every population's slices. ``tilings``: boxes per axis of each population's layout.
    ``out_counts``: per population (and the input), int64 per neuron, the number of
    destination slices its spikes go to."""

    slices: tuple[Slice, ...]
    by_population: dict[str, tuple[int, ...]]
    tilings: dict[str, tuple[int, ...]]
    out_counts: dict[str, np.ndarray]


def check_network(network: Network, chip: ChipProfile, target: TargetSpec | None) -> dict[str, int]:
    """What the chip cannot carry at all, whatever the partition; returns the weight bits of
    every projection."""
    inp = network.input
    if inp.encoding == "graded" and inp.bits > chip.max_message_bits:
        raise MappingError(
            f"input '{inp.name}': sends {inp.bits}-bit graded messages, a {chip.name} chip "
            f"carries messages of at most {chip.max_message_bits} bit(s); encode the input as "
            f"spikes, or map onto a chip with graded spikes (loihi2)", resource="message_bits")
    for pop in network.populations:
        bits = int(getattr(pop, "message_bits", 1))
        if bits > chip.max_message_bits:
            raise MappingError(
                f"population '{pop.name}': its neurons send {bits}-bit graded messages, a "
                f"{chip.name} chip carries messages of at most {chip.max_message_bits} bit(s); "
                f"use a binary-spiking neuron model or a chip with graded spikes",
                population=pop.name, resource="message_bits")
    wbits: dict[str, int] = {}
    for proj in network.projections:
        if proj.delay > chip.max_delay:
            raise MappingError(
                f"projection '{proj.name}': delay {proj.delay} exceeds the {chip.max_delay} "
                f"steps a {chip.name} synapse can delay; shorten the path or insert relay "
                f"populations", population=proj.target, resource="delay")
        try:
            wbits[proj.name] = weight_bits(proj, chip, target)
        except ValueError as exc:
            raise MappingError(f"projection '{proj.name}': {exc}; quantize its weights to "
                               f"{chip.max_weight_bits} bits", population=proj.target,
                               resource="weight_bits") from exc
    return wbits


def partition_network(network: Network, chip: ChipProfile,
                      target: TargetSpec | None = None) -> Partition:
    """Split every population of ``network`` into slices that fit one core of ``chip``."""
    wbits = check_network(network, chip, target)
    order = network.topological_order()
    out_counts = {network.input.name: np.zeros(network.input.size, dtype=np.int64)}
    out_counts.update({p: np.zeros(network.population(p).size, dtype=np.int64) for p in order})
    boxes_of: dict[str, list[tuple[Box, BoxUsage]]] = {}
    tilings: dict[str, tuple[int, ...]] = {}
    for name in reversed(order):
        pop = network.population(name)
        tiling, boxes = _tile(network, pop, chip, out_counts[name], wbits, target)
        tilings[name] = tiling
        boxes_of[name] = boxes
        for _, usage in boxes:  # this population's slices are destinations of its sources
            reached: dict[str, list[np.ndarray]] = {}
            for part in usage.projections:
                reached.setdefault(part.source, []).append(part.sources[part.reach])
            for source, hits in reached.items():  # one entry per source neuron and slice
                # (each part's sources are distinct: only several parts need a union)
                out_counts[source][hits[0] if len(hits) == 1
                                   else np.unique(np.concatenate(hits))] += 1
    slices: list[Slice] = []
    by_pop: dict[str, tuple[int, ...]] = {}
    for name in order:
        ids = []
        for i, (box, usage) in enumerate(boxes_of[name]):
            ids.append(len(slices))
            slices.append(Slice(len(slices), name, i, box, usage))
        by_pop[name] = tuple(ids)
    return Partition(tuple(slices), by_pop, tilings, out_counts)


# ---------------------------------------------------------------------------------------------
# tiling one population
# ---------------------------------------------------------------------------------------------


def _axis_counts(size: int) -> list[int]:
    """Every distinct number of equal boxes along an axis of ``size``: ceil(size / b)."""
    return sorted({-(-size // b) for b in range(1, size + 1)})


def _ranges(size: int, n: int) -> list[tuple[int, int]]:
    b = -(-size // n)
    return [(lo, min(lo + b, size)) for lo in range(0, size, b)]


def _boxes(layout: tuple[int, ...], splits: tuple[int, ...]) -> list[Box]:
    axes = [_ranges(s, n) for s, n in zip(layout, splits)]
    out: list[Box] = [()]
    for ranges in axes:
        out = [box + (r,) for box in out for r in ranges]
    return out


def _middle(layout: tuple[int, ...], splits: tuple[int, ...]) -> Box:
    """A box of full size away from the borders (the worst case for fan-in)."""
    box = []
    for s, n in zip(layout, splits):
        ranges = _ranges(s, n)
        k = min(len(ranges) // 2, max(len(ranges) - 2, 0))
        box.append(ranges[k])
    return tuple(box)


def _candidates(layout: tuple[int, ...], max_neurons: int) -> list[tuple[int, tuple[int, ...]]]:
    """(boxes, splits) of every tiling whose boxes hold at most ``max_neurons`` neurons, in
    search order: fewer boxes first; then fewer channel splits; then squarer spatial tiles."""
    per_axis = [_axis_counts(s) for s in layout]
    out = []
    if len(layout) == 1:
        for n in per_axis[0]:
            if -(-layout[0] // n) <= max_neurons:
                out.append((len(_ranges(layout[0], n)), (n,)))
        return sorted(out)
    c, h, w = layout
    for nc in per_axis[0]:
        bc = -(-c // nc)
        for ny in per_axis[1]:
            by = -(-h // ny)
            if bc * by > max_neurons:
                continue
            for nx in per_axis[2]:
                bx = -(-w // nx)
                if bc * by * bx > max_neurons:
                    continue
                splits = (len(_ranges(c, nc)), len(_ranges(h, ny)), len(_ranges(w, nx)))
                out.append((splits[0] * splits[1] * splits[2], splits))
    out = sorted(set(out), key=lambda t: (t[0], t[1][0], abs(t[1][1] - t[1][2]), t[1][1]))
    return out


def _fits(usage: BoxUsage, chip: ChipProfile) -> bool:
    return not over_capacity(usage.amounts(chip), chip)


def _tile(network: Network, pop: Population, chip: ChipProfile, out_count: np.ndarray,
          wbits: dict[str, int], target: TargetSpec | None
          ) -> tuple[tuple[int, ...], list[tuple[Box, BoxUsage]]]:
    layout = neuron_layout(pop.shape)
    n_neurons = pop.size
    _check_single_neurons(network, pop, layout, chip, out_count, wbits, target)
    cands = _candidates(layout, chip.max_neurons_per_core)
    whole = box_usage(network, pop, tuple((0, s) for s in layout), chip, out_count, wbits, target)
    amounts = whole.amounts(chip)
    bound = math.ceil(n_neurons / chip.max_neurons_per_core)
    for resource in ("neuron_memory_bits", "synapse_memory_bits", "core_memory_bits",
                     "output_axons"):
        cap = capacity(chip, resource)
        if cap is not None:
            bound = max(bound, math.ceil(amounts[resource] / cap))
    levels = sorted({n for n, _ in cands})
    by_level: dict[int, list[tuple[int, ...]]] = {}
    for n, splits in cands:
        by_level.setdefault(n, []).append(splits)
    cache: dict[int, tuple[tuple[int, ...], list[tuple[Box, BoxUsage]]] | None] = {}

    def try_level(i: int):
        if i in cache:
            return cache[i]
        result = None
        for splits in by_level[levels[i]]:
            mid = box_usage(network, pop, _middle(layout, splits), chip, out_count, wbits, target)
            if not _fits(mid, chip):
                continue
            boxes = _boxes(layout, splits)
            usages = []
            for box in boxes:
                usage = box_usage(network, pop, box, chip, out_count, wbits, target)
                if not _fits(usage, chip):
                    break
                usages.append((box, usage))
            else:
                result = (splits, usages)
                break
        cache[i] = result
        return result

    start = next((i for i, n in enumerate(levels) if n >= bound), len(levels) - 1)
    bad, step, i = start - 1, 1, start
    found = None
    while i < len(levels):  # gallop up the box counts
        found = try_level(i)
        if found is not None:
            break
        bad, i, step = i, i + step, step * 2
    if found is None:
        i = len(levels) - 1
        found = try_level(i)
        if found is None:
            raise _no_tiling(pop, chip, network, layout, out_count, wbits, target)
    lo, hi = bad, i  # try_level(lo) failed (or lo < start), try_level(hi) works
    while hi - lo > 1:  # bisect back towards the fewest boxes that fit
        mid_i = (lo + hi) // 2
        res = try_level(mid_i)
        if res is not None:
            cache.pop(hi, None)  # a tiling with more boxes is not needed any more (memory)
            hi, found = mid_i, res
        else:
            lo = mid_i
    return found


def _valid_taps(n_out: int, size: int, k: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """int64 [n_out, k]: 1 where output position o's kernel tap j reads inside the input."""
    o = np.arange(n_out)[:, None]
    i = o * stride - pad + np.arange(k)[None, :] * dil
    return ((i >= 0) & (i < size)).astype(np.int64)


def _fan_in(network: Network, pop: Population) -> np.ndarray:
    """int64 per neuron (flat): nonzero synapses into it, over all its projections."""
    total = np.zeros(pop.size, dtype=np.int64)
    for proj in network.projections_into(pop.name):
        if proj.kind == "direct":  # one identity synapse per neuron
            total += 1
            continue
        if proj.kind == "dense":
            total += np.count_nonzero(proj.weight, axis=1)
            continue
        _, h, w = network.source_shape(proj.source)
        _, ho, wo = pop.shape
        _, _, kh, kw = proj.weight.shape
        if proj.kind == "upsample":  # target (c, i, j) reads w[c, :, i % fh, j % fw]
            taps = (proj.weight != 0).sum(axis=1)  # [cout, fh, fw]
            total += np.tile(taps, (1, ho // kh, wo // kw)).reshape(-1)
            continue
        vy = _valid_taps(ho, h, kh, proj.stride[0], proj.padding[0], proj.dilation[0])
        vx = _valid_taps(wo, w, kw, proj.stride[1], proj.padding[1], proj.dilation[1])
        taps = (proj.weight != 0).sum(axis=1)  # [cout, kh, kw]
        total += np.einsum("ckl,yk,xl->cyx", taps, vy, vx, optimize=True).reshape(-1)
    return total


def _unit_box(layout: tuple[int, ...], flat: int) -> Box:
    idx = np.unravel_index(flat, layout)
    return tuple((int(i), int(i) + 1) for i in idx)


def _check_single_neurons(network: Network, pop: Population, layout: tuple[int, ...],
                          chip: ChipProfile, out_count: np.ndarray, wbits: dict[str, int],
                          target: TargetSpec | None) -> None:
    """The neurons most likely not to fit a core on their own (largest fan-in, most
    destinations): if one of them does not fit, no partition can work."""
    if not network.projections_into(pop.name):
        return
    worst = {int(np.argmax(_fan_in(network, pop))), int(np.argmax(out_count))}
    for flat in sorted(worst):
        usage = box_usage(network, pop, _unit_box(layout, flat), chip, out_count, wbits, target)
        if not _fits(usage, chip):
            raise _single_neuron_error(pop, chip, usage, network)


def _single_neuron_error(pop: Population, chip: ChipProfile, usage: BoxUsage,
                         network: Network) -> MappingError:
    resource, need, cap = over_capacity(usage.amounts(chip), chip)[0]
    label = f"population '{pop.name}'"
    if resource in ("synapse_memory_bits", "core_memory_bits"):
        what = "synapse memory" if resource == "synapse_memory_bits" else "core memory"
        extra = ""
        if resource == "core_memory_bits":
            extra = (f" (with {format_bits(usage.neuron_memory_bits)} of neuron state and "
                     f"delay buffers)")
        return MappingError(
            f"{label}: one neuron's fan-in of {usage.synapses_nonzero:,} synapses needs "
            f"{format_bits(need)} of {what}{extra}, a {chip.name} core has {format_bits(cap)}; "
            f"split the layer, reduce its fan-in, or use sparse weights",
            population=pop.name, resource=resource)
    if resource == "input_axons":
        sources = ", ".join(sorted({p.source for p in usage.projections}))
        return MappingError(
            f"{label}: one neuron receives spikes from {need:,} distinct source neurons "
            f"(of {sources}), a {chip.name} core has {cap:,} input axons; reduce the fan-in "
            f"(a smaller kernel, fewer input channels per group, a narrower source layer)",
            population=pop.name, resource=resource)
    if resource == "output_axons":
        targets = ", ".join(sorted({p.target for p in network.projections_from(pop.name)}))
        return MappingError(
            f"{label}: one neuron sends spikes to {need:,} destination cores (slices of "
            f"{targets}), a {chip.name} core has {cap:,} output axon slots; reduce its fan-out "
            f"or the number of cores its targets are split into",
            population=pop.name, resource=resource)
    return MappingError(
        f"{label}: one neuron needs {format_bits(need)} of neuron memory "
        f"({neuron_state_bits(pop, chip)} bits of state and {usage.delay_buffer_bits} bits of "
        f"delay buffers), a {chip.name} core has {format_bits(cap)}; reduce the delays",
        population=pop.name, resource=resource)


def _no_tiling(pop: Population, chip: ChipProfile, network: Network, layout: tuple[int, ...],
               out_count: np.ndarray, wbits: dict[str, int],
               target: TargetSpec | None) -> MappingError:
    """Even one neuron per core fails somewhere: find the neuron and say why."""
    for flat in range(pop.size):
        usage = box_usage(network, pop, _unit_box(layout, flat), chip, out_count, wbits, target)
        if not _fits(usage, chip):
            return _single_neuron_error(pop, chip, usage, network)
    return MappingError(f"population '{pop.name}': no tiling fits a {chip.name} core",
                        population=pop.name)


# ---------------------------------------------------------------------------------------------
# packing slices onto cores
# ---------------------------------------------------------------------------------------------


def utilization(amounts: dict[str, int], chip: ChipProfile) -> dict[str, float | None]:
    """Resource -> fraction of one core used (None where the chip has no such limit)."""
    out: dict[str, float | None] = {}
    for resource in RESOURCES:
        cap = capacity(chip, resource)
        out[resource] = None if cap is None else amounts[resource] / cap
    return out


#: open cores per block of the first-fit search (``pack_cores``)
PACK_BLOCK = 64


def pack_cores(partition: Partition, chip: ChipProfile, network: Network,
               share: bool = True) -> list[list[int]]:
    """First-fit decreasing: slice ids per core. Slices are taken largest utilization first
    (ties: topological order, then box order); each goes onto the first core that still holds
    every resource of it, else onto a new core. ``share=False``: one slice per core (as Lava's
    compiler places every layer on cores of its own)."""
    if not share:
        return [[s.id] for s in partition.slices]
    order = {name: i for i, name in enumerate(network.topological_order())}
    amounts = [s.usage.amounts(chip) for s in partition.slices]
    caps = {r: capacity(chip, r) for r in RESOURCES}

    def size(i: int) -> float:
        fr = [amounts[i][r] / c for r, c in caps.items() if c is not None]
        return max(fr) if fr else 0.0

    items = sorted(range(len(partition.slices)),
                   key=lambda i: (-size(i), order[partition.slices[i].population],
                                  partition.slices[i].index))
    # Exact first fit, without scanning every open core for every slice: the open cores are
    # kept in blocks of ``PACK_BLOCK``, each with the most any of its cores has left per
    # resource. A block whose most left falls short of the slice in some resource cannot hold
    # it and is skipped whole; the first block that may hold it is scanned (vectorized) for
    # its first core that does. Same cores, in the same order, as a scan of every core;
    # unlimited resources never bind.
    limit = np.array([np.inf if caps[r] is None else float(caps[r]) for r in RESOURCES])
    need = np.array([[float(a[r]) for r in RESOURCES] for a in amounts]).reshape(-1, len(RESOURCES))
    n_res = len(RESOURCES)
    loads = np.zeros((len(items), n_res))
    block_room = np.full((-(-len(items) // PACK_BLOCK) or 1, n_res), -np.inf)
    cores: list[list[int]] = []
    for i in items:
        nb = -(-len(cores) // PACK_BLOCK)
        k = -1
        for b in np.flatnonzero(np.all(need[i] <= block_room[:nb], axis=1)):
            lo = int(b) * PACK_BLOCK
            hi = min(lo + PACK_BLOCK, len(cores))
            fits = np.flatnonzero(np.all(loads[lo:hi] + need[i] <= limit, axis=1))
            if len(fits):
                k = lo + int(fits[0])
                cores[k].append(i)
                break
        if k < 0:
            k = len(cores)
            cores.append([i])
        loads[k] += need[i]
        b = k // PACK_BLOCK
        lo = b * PACK_BLOCK
        block_room[b] = (limit - loads[lo:min(lo + PACK_BLOCK, len(cores))]).max(axis=0)
    for core in cores:
        core.sort()
    return cores


def slice_neurons(partition: Partition, network: Network, slice_id: int) -> np.ndarray:
    """int64 flat indices of the neurons of a slice in its population."""
    s = partition.slices[slice_id]
    return box_flat_indices(s.box, neuron_layout(network.population(s.population).shape))
