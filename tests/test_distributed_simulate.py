"""Sharded simulation: ``torchrun --nproc_per_node 2 -m sakd.cli simulate ...`` (two Gloo
processes on the CPU) writes the report one process writes — every count, accuracy and layer
figure; only the throughput (a timing) differs — and the same traces; the joining of shards
(``concatenate_results``) is checked in-process against one run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sakd.hardware.netfile import write_network
from sakd.hardware.simulator import concatenate_results, simulate


def _network():
    """The tiny registry ConvNet with random weights, lowered for the digits input range
    (BatchNorm statistics chosen so that every layer spikes)."""
    import torch

    from sakd.app.common import load_samples
    from sakd.data.common import input_value_range
    from sakd.export.lower import lower
    from sakd.models import build_model, spikify

    info = load_samples("digits", "test", 1).info
    with torch.random.fork_rng():
        torch.manual_seed(3)
        ann = build_model("test_convnet", num_classes=10, in_channels=1, image_size=[8, 8])
        ann.train()
        with torch.no_grad():
            for _ in range(3):
                ann(torch.randn(16, 1, 8, 8))
            for m in ann.modules():
                if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(0.2, 0.8)
        snn = spikify(ann, 3).eval()
    return lower(snn, input_shape=(1, 8, 8), input_range=input_value_range(info),
                 metadata={"dataset": "digits", "arch_name": "test_convnet"}).network


@pytest.fixture(scope="module")
def network_file(tmp_path_factory) -> Path:
    return write_network(_network(), tmp_path_factory.mktemp("dist") / "network.h5")


def test_joined_shards_equal_one_run():
    net = _network()
    rng = np.random.default_rng(0)
    x = net.input.encode(rng.normal(0, 1, (23, 1, 8, 8)))
    names = [p.name for p in net.populations]
    one = simulate(net, x, record=names)
    parts = [simulate(net, x[lo:hi], record=names) for lo, hi in ((0, 7), (7, 8), (8, 23))]
    joined = concatenate_results(parts)
    np.testing.assert_array_equal(joined.predictions, one.predictions)
    np.testing.assert_array_equal(joined.readout_v, one.readout_v)
    assert joined.counts.samples == 23
    assert joined.counts.mean_per_sample() == one.counts.mean_per_sample()
    for name, pop in one.counts.populations.items():
        np.testing.assert_array_equal(joined.counts.populations[name].spikes_per_step,
                                      pop.spikes_per_step)
        np.testing.assert_array_equal(joined.counts.populations[name].active_updates,
                                      pop.active_updates)
    for name, proj in one.counts.projections.items():
        np.testing.assert_array_equal(joined.counts.projections[name].synops, proj.synops)
    for name, tr in one.traces.items():
        for key, value in tr.items():
            np.testing.assert_array_equal(joined.traces[name][key], value)


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", "-m", "sakd.cli", "simulate", *args]
    proc = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600,
                          cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    return proc


def _without_timing(report: dict) -> dict:
    """The report less its timing and the traces file's own path."""
    return {k: v for k, v in report.items() if k not in ("throughput", "traces")}


@pytest.mark.ddp
@pytest.mark.slow
def test_two_gloo_processes_write_the_report_of_one(network_file, tmp_path):
    from typer.testing import CliRunner

    from sakd.cli import app

    runner = CliRunner()
    x = np.random.default_rng(1).normal(0, 1, (37, 1, 8, 8)).astype(np.float32)
    labels = np.random.default_rng(2).integers(0, 10, 37)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", labels)
    runs = {
        # a data split, an odd number of samples (shards of 25 and 26)
        "data": ["--data", "digits", "--limit", "51"],
        # the user's own arrays, with traces of every population
        "inputs": ["--inputs", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                   "--input-scale", "40", "--traces"],
    }
    for name, args in runs.items():
        one_args = [str(network_file), *args]
        two_args = [str(network_file), *args]
        if name == "inputs":
            one_args.append(str(tmp_path / "one.npz"))
            two_args.append(str(tmp_path / "two.npz"))
        result = runner.invoke(app, ["simulate", *one_args, "-o", str(tmp_path / f"{name}1.json")],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
        proc = _torchrun([*two_args, "-o", str(tmp_path / f"{name}2.json")], tmp_path)
        assert proc.stdout.count("report:") == 1  # rank 0 reports, once
        one = json.loads((tmp_path / f"{name}1.json").read_text())
        two = json.loads((tmp_path / f"{name}2.json").read_text())
        assert _without_timing(one) == _without_timing(two), name
        assert two["throughput"]["samples_per_s"] > 0
        assert one["samples"] == two["samples"] == (51 if name == "data" else 37)
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert sorted(a.files) == sorted(b.files) and len(a.files) > 2
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
