"""The float LIF settings of a student (no torch import: the config reads them)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from sakd.errors import SakdError

SURROGATE_NAMES = ("atan", "sigmoid")


class NeuronSettingsError(SakdError):
    """LIF settings that spikingjelly or the chip cannot use."""


@dataclass(frozen=True)
class LIFSettings:
    """spikingjelly LIF settings (the defaults are the authors', sakd.md §2.1): H = (1 - 1/tau)
    V + X (decay_input=False); spike if H >= v_threshold; hard reset V = v_reset after a spike.
    ``detach_reset``: "per-site" is each neuron site's own choice as in the authors' code (True
    for the stem and after residual adds, False inside blocks and everywhere in SEW), or
    true/false everywhere."""

    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: float | None = 0.0  # None: soft reset (V - theta), which the chip cannot run
    decay_input: bool = False
    surrogate: Literal["atan", "sigmoid"] = "atan"
    alpha: float = 2.0
    detach_reset: Literal["per-site", "true", "false"] = "per-site"

    def __post_init__(self) -> None:
        for name in ("tau", "v_threshold", "v_reset", "alpha"):
            value = getattr(self, name)
            if value is None and name == "v_reset":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise NeuronSettingsError(f"{name} must be a finite number (got {value!r})")
        if self.surrogate not in SURROGATE_NAMES:
            raise NeuronSettingsError(f"unknown surrogate '{self.surrogate}'; choose one of "
                                      f"{list(SURROGATE_NAMES)}")
        if self.tau <= 1.0:
            raise NeuronSettingsError(f"tau must be > 1 (spikingjelly LIF; got {self.tau})")
        if self.v_threshold <= 0:
            raise NeuronSettingsError(f"v_threshold must be > 0 (got {self.v_threshold})")
        if self.alpha <= 0:
            raise NeuronSettingsError(f"alpha must be > 0 (got {self.alpha})")
        if self.detach_reset not in ("per-site", "true", "false"):
            raise NeuronSettingsError(f"detach_reset must be per-site, true or false (got "
                                      f"{self.detach_reset!r})")
