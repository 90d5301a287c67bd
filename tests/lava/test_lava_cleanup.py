"""Killing a Lava run leaves nothing behind: the runner and Lava's workers (one process group)
are ended and the temporary folder removed, whether the parent gets SIGTERM (as ``timeout`` and
batch schedulers send), SIGINT (Ctrl-C) or SIGKILL (then the runner notices and ends itself),
and whether the parent is a Python program or ``sakd verify --lava``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from sakd.hardware.ir import Input, Network, Projection
from sakd.hardware.netfile import write_network
from sakd.hardware.neurons.cuba_lif import lif_population
from sakd.hardware.target import LOIHI2

pytestmark = [pytest.mark.lava, pytest.mark.slow]


def small_network(meta: dict | None = None) -> Network:
    return Network(Input("x", (1, 8, 8), "graded", bits=8),
                   (lif_population("h", (6,), du=4095, dv=2048, vth=50),
                    lif_population("out", (10,), du=4095, dv=0, vth=LOIHI2.readout_vth,
                                   role="readout")),
                   (Projection("a", "x", "h", "dense", np.full((6, 64), 2)),
                    Projection("b", "h", "out", "dense", np.full((10, 6), 2))),
                   metadata=meta or {}, time_steps=2)


@pytest.fixture
def tmp():
    """TMPDIR for the parent: a short folder (Lava's Unix sockets live below it, and pytest-xdist's
    tmp_path can be too long for them); checked empty afterwards, then removed."""
    folder = Path(tempfile.mkdtemp(prefix="sakd-t-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def runner_group(parent: int, deadline: float) -> int:
    """The process group of the Lava runner started by ``parent`` (waits for it to appear)."""
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if int(stat[1]) == parent and b"lava_runner" in cmdline:
                time.sleep(2.0)  # let it start Lava's workers
                return os.getpgid(int(entry.name))
        time.sleep(0.2)
    raise AssertionError("the Lava runner did not start")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_cleaned(pgid: int, tmp: Path, parent: subprocess.Popen, stderr: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (group_alive(pgid) or list(tmp.glob("sakd-lava-*"))):
        time.sleep(0.3)
    try:
        parent.wait(timeout=30)
    except subprocess.TimeoutExpired:
        parent.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack to stderr
        time.sleep(2.0)
        pytest.fail(f"the parent did not exit; its stderr:\n{stderr.read_text()[-6000:]}")
    assert not group_alive(pgid), "Lava processes outlived their parent"
    assert not list(tmp.glob("sakd-lava-*")), "the temporary folder was left behind"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_killing_the_parent_ends_the_runner_group(tmp_path, tmp, sig):
    path = write_network(small_network(), tmp_path / "network.h5")
    script = textwrap.dedent(f"""
        import faulthandler, signal
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        # Ctrl-C as under a terminal: a background job of a non-interactive shell (CI scripts,
        # `make test &`) inherits SIGINT ignored, and then no Python program sees it
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import numpy as np
        from sakd.hardware.lava_bridge import run_lava
        x = np.random.default_rng(0).integers(-100, 100, (400, 1, 8, 8))
        run_lava({str(path)!r}, x, 2, chunk=1)
    """)
    env = {**os.environ, "TMPDIR": str(tmp)}
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        parent = subprocess.Popen([sys.executable, "-c", script], env=env,
                                  stdout=subprocess.DEVNULL, stderr=err)
    try:
        pgid = runner_group(parent.pid, time.monotonic() + 60)
        parent.send_signal(sig)
        assert_cleaned(pgid, tmp, parent, stderr)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_sigterm_to_sakd_verify_lava(tmp_path, tmp):
    """The command as a batch scheduler kills it: exit status 143, nothing left running."""
    folder = tmp_path / "export"
    folder.mkdir()
    write_network(small_network({"dataset": "digits"}), folder / "network.h5")
    (folder / "export_report.json").write_text("{}")
    env = {**os.environ, "TMPDIR": str(tmp)}
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        parent = subprocess.Popen([sys.executable, "-m", "sakd.cli", "verify",
                                   str(folder), "--lava", "--samples", "300"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=err)
    try:
        pgid = runner_group(parent.pid, time.monotonic() + 90)
        parent.send_signal(signal.SIGTERM)
        assert_cleaned(pgid, tmp, parent, stderr)
        assert parent.returncode == 143, stderr.read_text()
        assert "terminated" in stderr.read_text()
    finally:
        if parent.poll() is None:
            parent.kill()
