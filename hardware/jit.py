"""Optional compiled kernels (numba) for the simulator's CPU path.

A fused kernel runs a neuron model's integer step for a whole window (every sample, step and
neuron) in one compiled loop, with the state in registers, instead of a dozen numpy passes per
step; it is the same sequence of integer operations, and the tests check it bit for bit against
the model's numpy ``step``. numba is optional: it is in the main environment, not in the Lava
reference environment (Python 3.10, numpy + h5py + Lava only), where every kernel is simply
absent and the runner uses the numpy steps.

``SAKD_SIM_KERNELS=0`` in the environment switches the kernels off (``kernels_enabled``).

numpy only at import; numba is imported on first use. Python 3.10 compatible.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import Any

#: the environment variable that switches the compiled kernels off ("0", "false", "no", "off")
KERNELS_ENV = "SAKD_SIM_KERNELS"


@cache
def numba_available() -> bool:
    """Whether numba imports here (cached: the import is tried once)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def kernels_enabled() -> bool:
    """numba is importable and ``SAKD_SIM_KERNELS`` does not switch the kernels off."""
    off = os.environ.get(KERNELS_ENV, "1").strip().lower() in ("0", "false", "no", "off")
    return not off and numba_available()


def compiled(build: Callable[[Any], Callable[..., Any]]) -> Callable[[], Callable[..., Any]]:
    """A decorator for a kernel factory ``build(numba) -> compiled function``: returns a getter
    that compiles on first call (numba's on-disk cache keeps the machine code between runs) and
    returns the same function afterwards."""

    @cache
    def get() -> Callable[..., Any]:
        import numba

        return build(numba)

    return get
