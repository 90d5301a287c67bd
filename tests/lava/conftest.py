"""Lava cross-checks: tests marked ``lava`` need the Lava reference environment (``.venv-lava``,
built by ``make lava-env`` / ``scripts/make_lava_env.sh``) and are skipped, with the reason, when
it is missing."""

from __future__ import annotations

import pytest

from sakd.hardware.lava_bridge import lava_unavailable_reason


@pytest.fixture(autouse=True)
def _skip_without_lava(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("lava") is not None:
        reason = lava_unavailable_reason()
        if reason is not None:
            pytest.skip(reason)
