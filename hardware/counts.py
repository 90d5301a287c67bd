"""Exact per-sample operation counts of a simulated network (shared/spec/energy.md).

All counts are per sample and cover each population's window of T steps (docs/ir.md): what one
inference costs when samples are streamed through the chip with staggered resets. For a
free-running network (a netx file of another tool) the window is every simulated step.
A graded message (sigma-delta, a LIF layer with netx ``messageBits``) counts as one message of
``message_bits`` payload bits; each message costs one synaptic operation per structural fan-out,
like a spike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class PopulationCounts:
    """Counts of one population. Arrays are int64 with one entry per sample (axis 0)."""

    name: str
    neurons: int
    time_steps: int
    spikes_per_step: np.ndarray  # int64 [B, T]: messages (spikes) in window step k = 1..T
    active_updates: np.ndarray  # int64 [B]: neuron-steps that received a nonzero input or fired
    message_bits: int = 1  # bits of each message on the chip (1: a binary spike; more: graded)

    @property
    def messages(self) -> np.ndarray:
        """int64 [B]: messages per sample (a graded message counts once, whatever its value)."""
        return self.spikes_per_step.sum(axis=1)

    @property
    def spikes(self) -> np.ndarray:
        """int64 [B]: spikes per sample."""
        return self.spikes_per_step.sum(axis=1)

    @property
    def updates(self) -> int:
        """Neuron updates per sample (active and inactive): neurons x T."""
        return self.neurons * self.time_steps

    @property
    def inactive_updates(self) -> np.ndarray:
        return self.updates - self.active_updates

    @property
    def firing_rate(self) -> np.ndarray:
        """float64 [B]: spikes / (neurons x T)."""
        return self.spikes / float(self.updates)


@dataclass(frozen=True)
class ProjectionCounts:
    """Counts of one projection. Arrays are int64 with one entry per sample."""

    name: str
    source: str
    target: str
    synapses: int  # structural synapse count (dense: out x in; conv: sum of all fan-outs)
    synops: np.ndarray  # int64 [B]: sum over source spikes of their structural fan-out
    graded_macs: np.ndarray  # int64 [B]: for a graded-input source, nonzero inputs x fan-out; else 0
    dense_flops: int  # MACs of the same layer run densely once (the "SOPs = rate x T x FLOPs" convention)


@dataclass(frozen=True)
class NetworkCounts:
    """Counts of every population and projection, in network order."""

    time_steps: int
    samples: int
    populations: dict[str, PopulationCounts] = field(default_factory=dict)
    projections: dict[str, ProjectionCounts] = field(default_factory=dict)

    def mean_per_sample(self) -> dict[str, dict[str, float]]:
        """Plain-number summary: mean per sample of each quantity, keyed by layer name."""
        summary: dict[str, dict[str, float]] = {}
        for pop in self.populations.values():
            summary[pop.name] = {
                "neurons": pop.neurons,
                "spikes": float(pop.spikes.mean()),
                "message_bits": pop.message_bits,
                "firing_rate": float(pop.firing_rate.mean()),
                "active_updates": float(pop.active_updates.mean()),
                "inactive_updates": float(pop.inactive_updates.mean()),
            }
        for proj in self.projections.values():
            summary[proj.name] = {
                "synapses": proj.synapses,
                "synops": float(proj.synops.mean()),
                "graded_macs": float(proj.graded_macs.mean()),
                "dense_flops": proj.dense_flops,
            }
        return summary


def concatenate_counts(parts: Sequence[NetworkCounts]) -> NetworkCounts:
    """The counts of several runs of one network (consecutive sample ranges) as one: every
    per-sample array concatenated in order (exact: integers are only moved)."""
    if not parts:
        raise ValueError("concatenate_counts needs at least one NetworkCounts")
    first = parts[0]
    pops = {name: replace(pop,
                          spikes_per_step=np.concatenate([p.populations[name].spikes_per_step
                                                          for p in parts]),
                          active_updates=np.concatenate([p.populations[name].active_updates
                                                         for p in parts]))
            for name, pop in first.populations.items()}
    projs = {name: replace(proj,
                           synops=np.concatenate([p.projections[name].synops for p in parts]),
                           graded_macs=np.concatenate([p.projections[name].graded_macs
                                                       for p in parts]))
             for name, proj in first.projections.items()}
    return NetworkCounts(time_steps=first.time_steps, samples=sum(p.samples for p in parts),
                         populations=pops, projections=projs)
