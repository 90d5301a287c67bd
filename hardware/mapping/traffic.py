"""Traffic: the spike edges of a mapped network, one row of aligned arrays per edge
(docs/mapping.md, "Traffic").

Every (source slice, target slice) pair of a projection with at least one nonzero synapse is an
*edge*. Its traffic is, with measured counts, the messages it carries per sample: the source
population's mean spikes per sample x (source neurons of the slice that reach the target slice)
/ (neurons of the population), i.e. spikes spread evenly over the neurons (the counts hold
population totals only). A spike to several slices sends one message to each. The input's
events per sample are estimated from its projection's operations (``graded_macs`` for a graded
input, ``synops`` for a spike input) divided by the mean structural fan-out of an input neuron.
Without counts the traffic is the edge's structural synapse count, and nothing is reported per
sample.

Representation. ``TrafficEdges`` keeps what only the edge knows, as aligned arrays of one row
per edge: source and target slice, reach and synapses (16 bytes an edge: the SEW-ResNet-18 at
224 x 224 has 121 million edges). What follows from other facts is looked up per block of rows
when asked for: the projection (rows are ordered by projection, in the network's order, then by
target slice, then source slice), the cores (from the slices' cores), the hops of the X-Y route
(from the cores' positions) and the messages per sample (a rate per source slice, from the
counts, x reach). ``TrafficEdge`` is the view of one row (``edges[i]``, iteration). The input's
edges have source slice -1 and source core ``INPUT``, one per projection from the input and
target slice.

Every core's messages in and out and the energy's message-hops are added edge by edge, in
order (``np.add.at``, ``in_order_sum``), as a loop over single edges adds them: the same numbers
to the last bit. The per-projection sums are ``np.sum``'s over blocks of ``BLOCK_ROWS`` rows,
the router and link loads range updates (``routes.MeshLoads``): the same to rounding.

Units: messages per sample, hops per message. numpy only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sakd.hardware.counts import NetworkCounts
from sakd.hardware.ir import Network

from .partition import Partition, slice_neurons
from .place import INPUT
from .profile import ChipProfile
from .resources import ProjectionInBox

#: rows per block of the column methods' callers (bounds their scratch memory)
BLOCK_ROWS = 1 << 22
#: source-neuron entries per vectorized block of ``build_edges`` (bounds its scratch memory)
BLOCK_ENTRIES = 1 << 22
#: (target slice, source slice) bins per block of ``build_edges``
BLOCK_BINS = 1 << 22


@dataclass(frozen=True, slots=True)
class TrafficEdge:
    """One edge, as a row of ``TrafficEdges``: spikes of ``projection`` from one slice
    (``source_slice`` None: the input) to another. ``reach``: source neurons of the slice with a
    nonzero synapse into the target slice; ``synapses``: structural synapses between them;
    ``weight``: the traffic placement used (messages per sample with counts, else synapses);
    hops of the X-Y route (``place.hops``)."""

    projection: str
    source_slice: int | None
    target_slice: int
    source_core: int
    target_core: int
    reach: int
    synapses: int
    weight: float
    hops_ew: int
    hops_ns: int
    hops_interchip: int
    messages_per_sample: float | None

    @property
    def hops(self) -> int:
        return self.hops_ew + self.hops_ns + self.hops_interchip


@dataclass(frozen=True, eq=False)
class SourceRates:
    """Messages per sample that one reaching source neuron sends, under one set of counts:
    ``slice_rate`` (float64 [slices]): its population's mean spikes per sample / its neurons;
    ``input_rate`` (float64 [projections]): a projection's input events per sample / input
    neurons (0 for projections not from the input)."""

    slice_rate: np.ndarray
    input_rate: np.ndarray


@dataclass(frozen=True, eq=False)
class TrafficEdges:
    """Every edge of a mapping (see the module docstring): aligned int arrays of one row per
    edge (``source_slice`` -1 for the input; ``synapses`` int32, or int64 where a count needs
    it), the rows of projection k being ``bounds[k]:bounds[k + 1]``; and what the rows' other
    columns are looked up in: ``slice_core`` (int32 [slices]: the core of every slice),
    ``core_xy`` (int32 [cores + 1, 4]: (cx, cy, gx, gy) of every core, the input's last: row
    ``INPUT``; None before placement) and ``rates`` (the mapping's counts; None without).

    Column methods take ``rows`` (a slice; all rows by default); iterate big mappings in
    ``blocks()``."""

    projections: tuple[str, ...]
    projection_from_input: tuple[bool, ...]
    bounds: np.ndarray  # int64 [projections + 1]
    source_slice: np.ndarray  # int32 [E]
    target_slice: np.ndarray  # int32 [E]
    reach: np.ndarray  # int32 [E]: source neurons with a nonzero synapse into the target slice
    synapses: np.ndarray  # int32 or int64 [E]: structural synapses between them
    slice_core: np.ndarray  # int32 [slices]
    core_xy: np.ndarray | None = None
    rates: SourceRates | None = None

    def __len__(self) -> int:
        return int(self.target_slice.shape[0])

    def blocks(self, rows: slice = slice(None), size: int | None = None) -> Iterator[slice]:
        """Consecutive slices of at most ``size`` (default ``BLOCK_ROWS``) rows covering
        ``rows``."""
        lo, hi, _ = rows.indices(len(self))
        size = size or BLOCK_ROWS
        for start in range(lo, hi, size):
            yield slice(start, min(start + size, hi))

    def projection_range(self, name: str) -> slice:
        """The rows of projection ``name``."""
        k = self.projections.index(name)
        return slice(int(self.bounds[k]), int(self.bounds[k + 1]))

    def projection(self, rows: slice = slice(None)) -> np.ndarray:
        """int64: the index (into ``projections``) of every row's projection."""
        lo, hi, _ = rows.indices(len(self))
        return np.searchsorted(self.bounds, np.arange(lo, hi), side="right") - 1

    def from_input(self, rows: slice = slice(None)) -> np.ndarray:
        """bool: the rows whose source is the network's input."""
        return self.source_slice[rows] < 0

    def source_core(self, rows: slice = slice(None)) -> np.ndarray:
        """int32: every row's source core (``INPUT`` for the input)."""
        src = self.source_slice[rows]
        return np.where(src < 0, np.int32(INPUT), self.slice_core[np.maximum(src, 0)])

    def target_core(self, rows: slice = slice(None)) -> np.ndarray:
        """int32: every row's target core."""
        return self.slice_core[self.target_slice[rows]]

    def hops(self, rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """int32 (east-west tile hops, north-south tile hops, chip-to-chip hops) of every row's
        X-Y route (``place.hops``); zeros before placement."""
        if self.core_xy is None:
            zeros = np.zeros(len(self.target_slice[rows]), dtype=np.int32)
            return zeros, zeros, zeros
        a, b = self.core_xy[self.source_core(rows)], self.core_xy[self.target_core(rows)]
        ix, iy = np.abs(a[:, 0] - b[:, 0]), np.abs(a[:, 1] - b[:, 1])
        return np.abs(a[:, 2] - b[:, 2]) - ix, np.abs(a[:, 3] - b[:, 3]) - iy, ix + iy

    def messages(self, rows: slice = slice(None),
                 rates: SourceRates | None = None) -> np.ndarray | None:
        """float64: every row's messages per sample under ``rates`` (by default the mapping's
        own; None when it has none): the source's rate x reach."""
        rates = rates if rates is not None else self.rates
        if rates is None:
            return None
        src = self.source_slice[rows]
        rate = np.where(src < 0, rates.input_rate[self.projection(rows)],
                        rates.slice_rate[np.maximum(src, 0)])
        return rate * self.reach[rows]

    def weight(self, rows: slice = slice(None)) -> np.ndarray:
        """float64: the traffic the placement weighs, messages per sample with counts, else
        structural synapses."""
        m = self.messages(rows)
        return m if m is not None else self.synapses[rows].astype(np.float64)

    def columns(self, rows: slice = slice(None)) -> dict[str, Any]:
        """Every field of ``TrafficEdge`` and ``hops``, as Python lists over ``rows``."""
        src = self.source_slice[rows].tolist()
        m = self.messages(rows)
        ew, ns, ic = self.hops(rows)
        return {
            "projection": [self.projections[k] for k in self.projection(rows).tolist()],
            "source_slice": [None if s < 0 else s for s in src],
            "target_slice": self.target_slice[rows].tolist(),
            "source_core": self.source_core(rows).tolist(),
            "target_core": self.target_core(rows).tolist(),
            "reach": self.reach[rows].tolist(),
            "synapses": self.synapses[rows].tolist(),
            "weight": self.weight(rows).tolist(),
            "hops_ew": ew.tolist(),
            "hops_ns": ns.tolist(),
            "hops_interchip": ic.tolist(),
            "messages_per_sample": [None] * len(src) if m is None else m.tolist(),
            "hops": (ew.astype(np.int64) + ns + ic).tolist(),
        }

    def __getitem__(self, i: int) -> TrafficEdge:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"edge {i} of {n}")
        i = int(i) % n
        row = {k: v[0] for k, v in self.columns(slice(i, i + 1)).items()}
        del row["hops"]
        return TrafficEdge(**row)

    def __iter__(self) -> Iterator[TrafficEdge]:
        for rows in self.blocks(size=1 << 16):
            cols = self.columns(rows)
            del cols["hops"]
            for values in zip(*cols.values()):
                yield TrafficEdge(*values)

    def to_list(self) -> list[dict[str, Any]]:
        """Every edge as a plain dict (``TrafficEdge``'s fields, then ``hops``)."""
        cols = self.columns()
        names = list(cols)
        return [dict(zip(names, row)) for row in zip(*cols.values())]

    @property
    def nbytes(self) -> int:
        """Bytes of the per-edge arrays."""
        return int(self.source_slice.nbytes + self.target_slice.nbytes + self.reach.nbytes
                   + self.synapses.nbytes)


def in_order_sum(values: np.ndarray, start: float = 0.0) -> float:
    """``start`` + the sum of ``values`` added one at a time in array order, as a loop over
    edges adds (``np.sum`` adds pairwise: more accurate, other last bits)."""
    if not len(values):
        return float(start)
    return float(np.cumsum(np.concatenate([[start], values]), dtype=np.float64)[-1])


# ---------------------------------------------------------------------------------------------
# building the edges
# ---------------------------------------------------------------------------------------------


def build_edges(network: Network, part: Partition, core_of_slice: np.ndarray) -> TrafficEdges:
    """Every edge of ``part`` (the slices present in each target slice's receptive field
    only), with the cores of ``core_of_slice`` (int, slice id -> core); not placed, no rates.

    Per projection, blocks of target slices are counted at once: each source neuron entry of a
    target slice gets the key (target slice of the block, source slice), and one ``bincount``
    over the keys gives every pair's reach and synapses, in (target, source) order."""
    labels: dict[str, np.ndarray] = {}  # population -> int32 per neuron: its slice's index
    for name, sids in part.by_population.items():
        lab = np.empty(network.population(name).size, dtype=np.int32)
        for k, sid in enumerate(sids):
            lab[slice_neurons(part, network, sid)] = k
        labels[name] = lab
    out = {key: _Column() for key in ("source", "target", "reach", "synapses")}
    bounds = [0]
    for proj in network.projections:
        from_input = proj.source == network.input.name
        src_ids = (np.array([-1], dtype=np.int32) if from_input
                   else np.asarray(part.by_population[proj.source], dtype=np.int32))
        lab = None if from_input else labels[proj.source]
        block: list[tuple[int, ProjectionInBox]] = []
        rows = entries = 0
        for tid in part.by_population[proj.target]:
            share = next(p for p in part.slices[tid].usage.projections
                         if p.projection == proj.name)
            if block and (entries + len(share.reach) > BLOCK_ENTRIES
                          or (len(block) + 1) * len(src_ids) > BLOCK_BINS):
                rows += _count_block(block, lab, src_ids, out)
                block, entries = [], 0
            block.append((tid, share))
            entries += len(share.reach)
        rows += _count_block(block, lab, src_ids, out)
        bounds.append(bounds[-1] + rows)

    source, target = out["source"].join(np.int32), out["target"].join(np.int32)
    reach, synapses = out["reach"].join(np.int32), out["synapses"].join(np.int32)
    return TrafficEdges(tuple(p.name for p in network.projections),
                        tuple(p.source == network.input.name for p in network.projections),
                        np.asarray(bounds, dtype=np.int64), source, target, reach, synapses,
                        np.asarray(core_of_slice, dtype=np.int32))


class _Column:
    """One column of ``build_edges``, appended block by block: small blocks are joined into
    chunks of ``CHUNK_BYTES`` as they come (large arrays go back to the system when freed,
    a heap of small ones may not), the chunks into one array at the end, each freed once
    copied: about one column's size of scratch."""

    CHUNK_BYTES = 1 << 26

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.pending: list[np.ndarray] = []
        self.pending_bytes = 0

    def append(self, values: np.ndarray) -> None:
        self.pending.append(values)
        self.pending_bytes += values.nbytes
        if self.pending_bytes >= self.CHUNK_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.chunks.append(np.concatenate(self.pending))
            self.pending, self.pending_bytes = [], 0

    def join(self, dtype: type) -> np.ndarray:
        """Every value, in order (``dtype``, or wider where a chunk is wider)."""
        self._flush()
        wide = np.result_type(dtype, *[c.dtype for c in self.chunks])
        out = np.empty(sum(len(c) for c in self.chunks), dtype=wide)
        at = 0
        while self.chunks:
            chunk = self.chunks.pop(0)
            out[at:at + len(chunk)] = chunk
            at += len(chunk)
        return out


def _count_block(block: list[tuple[int, ProjectionInBox]], lab: np.ndarray | None,
                 src_ids: np.ndarray, out: dict[str, _Column]) -> int:
    """Append the edges into the target slices of ``block`` ((slice id, its
    ``ProjectionInBox``) of one projection) to ``out``; ``lab``: the source slice's index of
    every source neuron (None: the input, one source); ``src_ids``: the source slices' ids.
    Returns the edges found."""
    if not block:
        return 0
    n_src = len(src_ids)
    k_of = [np.zeros(len(s.reach), dtype=np.int64) if lab is None else lab[s.sources]
            for _, s in block]
    local = np.repeat(np.arange(len(block), dtype=np.int64), [len(k) for k in k_of])
    key = local * n_src + np.concatenate(k_of)
    bins = len(block) * n_src
    reach = np.bincount(key, weights=np.concatenate([s.reach for _, s in block]), minlength=bins)
    syn = np.bincount(key, weights=np.concatenate([s.fanout for _, s in block]), minlength=bins)
    hit = np.flatnonzero(reach > 0)  # ascending: by target slice, then source slice
    out["source"].append(src_ids[hit % n_src])
    out["target"].append(np.asarray([t for t, _ in block], dtype=np.int32)[hit // n_src])
    out["reach"].append(reach[hit].astype(np.int32))
    syn = syn[hit]
    fits = not len(syn) or syn.max() <= np.iinfo(np.int32).max
    out["synapses"].append(syn.astype(np.int32 if fits else np.int64))  # int64 where needed
    return len(hit)


# ---------------------------------------------------------------------------------------------
# rates, placement, routes
# ---------------------------------------------------------------------------------------------


def input_events_per_sample(input_size: int, input_encoding: str, counts: NetworkCounts,
                            projection: str) -> float:
    """Estimated input events per sample seen by ``projection`` (from the input): its
    operations per sample / the mean structural fan-out of an input neuron. A direct
    projection (no synapses: the host writes each neuron's input) carries every input value
    every step: ``input_size x T``, an upper bound (zeros are counted too)."""
    pc = counts.projections[projection]
    if pc.synapses == 0:
        return float(input_size * counts.time_steps)
    ops = pc.graded_macs if input_encoding == "graded" else pc.synops
    return float(np.mean(ops)) * input_size / pc.synapses


def source_rates(input_size: int, input_encoding: str, counts: NetworkCounts,
                 slice_population: Sequence[str], edges: TrafficEdges) -> SourceRates:
    """The messages per sample of one reaching source neuron of every slice and of the input
    of every projection from it, under ``counts`` (spikes spread evenly over a population's
    neurons; input events by ``input_events_per_sample``). ``slice_population``: the
    population of every slice, by slice id."""
    rate: dict[str, float] = {}
    for name in dict.fromkeys(slice_population):
        pc = counts.populations[name]
        rate[name] = float(np.mean(pc.spikes)) / pc.neurons
    inputs = [input_events_per_sample(input_size, input_encoding, counts, name) / input_size
              if from_input else 0.0
              for name, from_input in zip(edges.projections, edges.projection_from_input)]
    return SourceRates(np.array([rate[n] for n in slice_population], dtype=np.float64),
                       np.array(inputs, dtype=np.float64))


def core_coordinates(positions: Sequence[Any], origin: Any) -> np.ndarray:
    """int32 [cores + 1, 4]: (cx, cy, gx, gy) of every core's position (``place.Position``),
    the input's ``origin`` last, so that row ``INPUT`` (-1) is the input."""
    rows = [(p.cx, p.cy, p.gx, p.gy) for p in positions] + [(origin.cx, origin.cy, origin.gx,
                                                             origin.gy)]
    return np.array(rows, dtype=np.int32).reshape(-1, 4)


def core_pair_traffic(edges: TrafficEdges) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source core, target core, weight) of every pair of cores an edge joins, the weights
    of its edges added in edge order; pairs in ascending (source, target) order (``INPUT``
    first). Every column at once: for the sizes that ``place.IMPROVE_MAX_EDGES`` admits."""
    shift = np.int64(1 << 32)
    key = (edges.source_core().astype(np.int64) - INPUT) * shift + edges.target_core()
    pairs, inv = np.unique(key, return_inverse=True)
    weight = np.bincount(inv.reshape(-1), weights=edges.weight(), minlength=len(pairs))
    return ((pairs // shift + INPUT).astype(np.int64), (pairs % shift).astype(np.int64),
            weight)


def placement_cost(chip: ChipProfile, edges: TrafficEdges) -> float:
    """The placement's cost (``place.place``: traffic x per-hop energies over every edge's
    route), summed block by block over the edges of a placed mapping."""
    total = 0.0
    for rows in edges.blocks():
        ew, ns, ic = edges.hops(rows)
        hop = chip.e_hop_ew_pj * ew + chip.e_hop_ns_pj * ns + chip.e_interchip_hop_pj * ic
        total += float((edges.weight(rows) * hop).sum())
    return total
