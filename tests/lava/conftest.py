"""Lava cross-checks: tests marked ``lava`` need the Lava reference environment (``.venv-lava``,
built by ``make lava-env`` / ``scripts/make_lava_env.sh``) and are skipped, with the reason, when
it is missing."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from sakd.hardware.lava_bridge import lava_environment, lava_unavailable_reason

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _skip_without_lava(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("lava") is not None:
        reason = lava_unavailable_reason()
        if reason is not None:
            pytest.skip(reason)


@pytest.fixture(scope="session")
def netx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The exporter-made files and their manifest (``tests/lava/netx_files.py``)."""
    reason = lava_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("netx-files")
    t0 = time.perf_counter()
    proc = subprocess.run([str(lava_environment()), str(HERE / "netx_files.py"), str(out)],
                          cwd=out, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    entries = {Path(e["file"]).stem: e for e in manifest["files"]}
    return {"dir": out, "entries": entries, "seconds": time.perf_counter() - t0}
