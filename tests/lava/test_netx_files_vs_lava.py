"""sakd against lava-dl's own ``netx.hdf5.Network``: every layer's messages and every neuron state
at every step, bit for bit.

Two sets of files, each run in ONE reference subprocess (``run_netx_reference_batch``):

- files written by lava-dl's own exporters (``tests/lava/netx_files.py``: slayer blocks'
  ``export_hdf5`` for CUBA, sigma-delta, resonate-and-fire and recurrent networks, with graded
  input, input neurons fed through ``a_in`` or ``bias``, scalar / axonal / per-synapse delays,
  ``sparse_fc_layer`` and 1-D weights), under netx's run options (``reset_interval``,
  ``reset_offset``);
- the same networks as sakd writes them (``write_netx`` of what it read): Lava runs sakd's files;
- random netx files of every kind (``tests/netx_random.py``), three per family.

netx 0.6 cannot run a layer whose neuron carries ``messageBits`` (``messageBits`` is not among
its NetDict's array keys, so the neuron's ``num_message_bits`` is a NetDict, not a number, and
Lava's compiler fails comparing it with 0). What netx means by it is the width of the layer's
messages: for CUBA a binary LIF spike sent in a graded message of that many bits (the sums are
the binary network's), for SDNN the width of its graded messages (Lava's models send the full
value whatever the width). So such a file is compared against Lava's run of the same file with
``messageBits`` removed, and sakd's populations are checked to carry the file's widths (for
counts and energy).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from sakd.formats.netx import NetxImportError, read_netx, write_netx
from sakd.hardware.lava_bridge import NetxReference, NetxReferenceJob, run_netx_reference_batch
from sakd.hardware.simulator import SimulationResult, simulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from netx_random import FAMILIES, random_netx_file

lava = pytest.mark.lava
SAMPLES = 2
RANDOM_SEEDS = range(3 * len(FAMILIES))
#: netx run options tried on the exporter files beyond each file's own
RESETS = {"dense_1d": ({"reset_interval": 6, "reset_offset": 0},
                       {"reset_interval": 5, "reset_offset": 2}),
          "cuba_conv_binary": ({"reset_interval": 4, "reset_offset": 1},),
          "sdnn": ({"reset_interval": 4, "reset_offset": 0},)}  # netx ignores it for SDNN


def _message_bits(path: Path, types: tuple[str, ...] = ("CUBA", "LOIHI", "SDNN")) -> dict[int, int]:
    """``{layer index: messageBits}`` of the neurons of those types that carry the key."""
    found = {}
    with h5py.File(path, "r") as f:
        for key in f["layer"]:
            g = f["layer"][key]
            if "neuron" in g and "messageBits" in g["neuron"]:
                kind = g["neuron"]["type"][()]
                kind = (kind[0] if np.ndim(kind) else kind).decode()
                if kind in types:
                    found[int(key)] = int(np.asarray(g["neuron"]["messageBits"][()]).reshape(-1)[0])
    return found


def _without_message_bits(path: Path, out: Path) -> Path:
    """A copy without neuron/messageBits keys, which netx 0.6 cannot run (module docstring)."""
    shutil.copyfile(path, out)
    with h5py.File(out, "a") as f:
        for index in _message_bits(path):
            del f["layer"][str(index)]["neuron"]["messageBits"]
    return out


def _read(path: Path, job: NetxReferenceJob):
    options: dict[str, Any] = {"input_message_bits": job.input_message_bits,
                               "spike_exp": job.spike_exp, "sparse_fc_layer": job.sparse_fc_layer}
    if job.input_mode != "port":
        options["input_mode"] = job.input_mode
    return read_netx(path, **options)


def _run_sakd(path: Path, job: NetxReferenceJob) -> SimulationResult:
    net = _read(path, job)
    x = np.asarray(job.inputs)
    sequence = x.ndim == len(net.input.shape) + 2
    if job.input_mode == "bias" and sequence:  # the reference writes each sample's x[0] into bias_mant
        x, sequence = x[0], False
    return simulate(net, x, time_steps=job.steps, sequence=sequence,
                    record=[p.name for p in net.populations],
                    reset_interval=job.reset_interval, reset_offset=job.reset_offset)


def _assert_bit_exact(ref: NetxReference, got: SimulationResult, label: str) -> int:
    """Every layer, message and state variable, every step; returns the values compared."""
    assert sorted(got.traces) == sorted(ref.names), (label, sorted(got.traces), ref.names)
    compared = 0
    for name in ref.names:
        for var, want in ref.layers[name].items():
            have = np.asarray(got.traces[name][var]).astype(np.int64)
            assert have.shape == want.shape, (label, name, var, have.shape, want.shape)
            if not np.array_equal(have, want):
                bad = np.argwhere(have != want)[0]
                pytest.fail(f"{label}: {name}/{var} differs first at (step, sample, ...) "
                            f"{tuple(bad)}: sakd {have[tuple(bad)]}, Lava {want[tuple(bad)]} "
                            f"({int((have != want).sum())} of {have.size} values)")
            compared += have.size
    return compared


def _ok(result: Any, label: str) -> NetxReference:
    if isinstance(result, Exception):
        pytest.fail(f"{label}: the Lava run failed: {type(result).__name__}: {result}\n"
                    f"{getattr(result, 'stderr', '')[-2000:]}")
    return result


@pytest.fixture(scope="module")
def exporter_runs(netx_files: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """key -> (file sakd reads, job, Lava's result) for every exporter file and run option."""
    folder, stripped = netx_files["dir"], tmp_path_factory.mktemp("stripped")
    written = tmp_path_factory.mktemp("written")
    cases: dict[str, tuple[Path, Path, NetxReferenceJob]] = {}
    for stem, e in netx_files["entries"].items():
        path = folder / e["file"]
        if "refused" in e and not _message_bits(path):
            continue
        lava_path = path
        if _message_bits(path):
            lava_path = _without_message_bits(path, stripped / e["file"])
        x = np.load(folder / e["inputs"])[:, :SAMPLES]
        base = {"input_mode": e["input_mode"], **e["options"]}
        variants = [("", {})] + [(f"also{k}", a["options"]) for k, a in enumerate(e.get("also", []))]
        variants += [(f"reset{k}", r) for k, r in enumerate(RESETS.get(stem, ()))]
        for tag, over in variants:
            job = NetxReferenceJob(lava_path, x, e["steps"], **{**base, **over})
            cases[f"{stem}{':' + tag if tag else ''}"] = (path, lava_path, job)
        if lava_path == path:  # sakd writes the network it read; Lava runs sakd's file
            mine = write_netx(_read(path, NetxReferenceJob(path, x, e["steps"], **base)),
                              written / e["file"])
            cases[f"{stem}:written"] = (mine, mine, NetxReferenceJob(mine, x, e["steps"], **base))
    results = run_netx_reference_batch([c[2] for c in cases.values()], timeout=900)
    return {key: (c[0], c[2], res) for (key, c), res in zip(cases.items(), results)}


@lava
def test_sakd_runs_every_exporter_file_bit_exactly_as_lava(netx_files, exporter_runs) -> None:
    kinds: set[str] = set()
    compared = 0
    for key, (path, job, result) in exporter_runs.items():
        ref = _ok(result, key)
        got = _run_sakd(path, job)
        compared += _assert_bit_exact(ref, got, key)
        kinds.update(ref.layer_info(n)["neuron"] for n in ref.names)
    assert kinds == {"LIF", "LIFReset", "Delta", "SigmaDelta", "Sigma", "RF", "RF_IZ"}
    assert compared > 100_000
    # every exporter file netx runs is in the comparison, and sakd's own writing of it
    runnable = {s for s, e in netx_files["entries"].items() if "refused" not in e}
    assert runnable <= {k.split(":")[0] for k in exporter_runs}
    assert runnable <= {k.split(":")[0] for k in exporter_runs if k.endswith(":written")}


@lava
def test_graded_cuba_output_is_binary_spikes_in_wider_messages(netx_files, exporter_runs) -> None:
    path, job, result = exporter_runs["cuba_graded_out"]
    assert _message_bits(path) == {1: 8, 2: 16}
    net = _read(path, job)
    assert [p.message_bits for p in net.populations] == [8, 16, 1]
    _assert_bit_exact(_ok(result, "cuba_graded_out"), _run_sakd(path, job), "cuba_graded_out")


@lava
def test_what_netx_refuses_sakd_refuses_for_the_same_reason(netx_files) -> None:
    for stem, e in netx_files["entries"].items():
        refused = e.get("refused")
        if refused is None or refused.get("stage") == "compile":  # compile: graded CUBA, above
            continue
        with pytest.raises(NetxImportError) as info:
            read_netx(netx_files["dir"] / e["file"])
        assert refused["cause"] in str(info.value), (stem, str(info.value))


@pytest.fixture(scope="module")
def random_runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, Path, NetxReferenceJob, Any]]:
    folder = tmp_path_factory.mktemp("netx-random")
    cases = []
    for seed in RANDOM_SEEDS:
        path = folder / f"random{seed}.net"
        case = random_netx_file(path, seed)
        lava_path = path
        if _message_bits(path):
            lava_path = _without_message_bits(path, folder / f"random{seed}.lava.net")
        options = dict(case.options)
        job = NetxReferenceJob(lava_path, case.inputs, case.steps,
                               input_mode=options.pop("input_mode", "port"),
                               reset_interval=case.reset_interval, reset_offset=case.reset_offset,
                               **options)
        cases.append((case, path, job))
    results = run_netx_reference_batch([c[2] for c in cases], timeout=900)
    return [(*c, r) for c, r in zip(cases, results)]


@lava
def test_sakd_runs_random_netx_files_of_every_kind_bit_exactly_as_lava(random_runs) -> None:
    families: set[str] = set()
    for case, path, job, result in random_runs:
        label = f"{path.name} ({', '.join(case.covers)})"
        ref = _ok(result, label)
        _assert_bit_exact(ref, _run_sakd(path, job), label)
        families.add(case.family)
    assert families == set(FAMILIES)
