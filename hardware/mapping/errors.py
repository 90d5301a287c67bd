"""Errors of the chip-mapping package. Both derive from ``SakdError``: they are inputs a user can
fix, and every message names the thing and says what to change."""

from __future__ import annotations

from sakd.hardware.errors import SakdError


class ChipProfileError(SakdError):
    """An unknown chip or system name, or a profile file that cannot be used. The message names
    the file and the field (``"loihi2.json: field 'figures.cores_per_chip': ..."``)."""


class MappingError(SakdError):
    """A network that cannot be mapped onto the chip or system. The message names the population
    (or projection), the resource, what it needs, what a core (or the system) has, and what to
    change. ``population`` and ``resource`` hold the names, for programs."""

    def __init__(self, message: str, *, population: str | None = None,
                 resource: str | None = None) -> None:
        super().__init__(message)
        self.population = population
        self.resource = resource
