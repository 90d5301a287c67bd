"""sakd.hardware.mapping: does a network fit a chip, on how many cores and chips, how fast, and
how much energy in all (docs/mapping.md).

- ``load_chip`` / ``load_system``: resource profiles (``chips/*.json``): every limit, time and
  energy with its source and certainty; a user's JSON file works the same; ``overrides=``.
- ``map_network(network, chip="loihi2", system=None, counts=None, overrides=None) -> Mapping``:
  partition every population into per-core slices that fit every resource, pack small slices
  onto shared cores, place the cores on the mesh of one chip or several and route the traffic.
- ``estimate_time(mapping, network, counts, time_steps) -> TimeEstimate``: time per step from
  the busiest core, router and chip link plus mesh traversal and the barrier; latency and
  throughput per inference (an estimate).
- ``estimate_total_energy(mapping, time_estimate, counts, profile) -> TotalEnergy``: dynamic
  energy (operations and routed message-hops) and static power x run time, reported apart.

numpy and the stdlib only (``json`` for the profiles); Python 3.10 compatible.
"""

from .energy_total import TotalEnergy, estimate_total_energy
from .errors import ChipProfileError, MappingError
from .mapper import (
    CoreMapping,
    Mapping,
    PopulationMapping,
    ProjectionMapping,
    SliceMapping,
    map_network,
)
from .profile import (
    CERTAINTIES,
    ChipProfile,
    Figure,
    SystemProfile,
    list_chips,
    list_systems,
    load_chip,
    load_system,
)
from .resources import neuron_state_bits
from .timing import CoreTime, TimeEstimate, estimate_time
from .traffic import TrafficEdge, TrafficEdges

__all__ = [
    "CERTAINTIES",
    "ChipProfile",
    "ChipProfileError",
    "CoreMapping",
    "CoreTime",
    "Figure",
    "Mapping",
    "MappingError",
    "PopulationMapping",
    "ProjectionMapping",
    "SliceMapping",
    "SystemProfile",
    "TimeEstimate",
    "TotalEnergy",
    "TrafficEdge",
    "TrafficEdges",
    "estimate_time",
    "estimate_total_energy",
    "list_chips",
    "list_systems",
    "load_chip",
    "load_system",
    "map_network",
    "neuron_state_bits",
]
