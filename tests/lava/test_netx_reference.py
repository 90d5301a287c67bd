"""The free-running netx reference (``lava_bridge.run_netx_reference``) on files made by lava-dl's
own exporters (``tests/lava/netx_files.py``).

One session fixture writes the files (one subprocess in the Lava environment); a second runs
every reference job of this module in ONE runner subprocess (``run_netx_reference_batch``:
importing lava-dl's netx, with torch, takes seconds). The tests then check what each run
returned: the documented names and shapes, activity, the input timing of each input mode (from
the first layer's state, against a few lines of LIF arithmetic), the recorder against Lava's
own Monitor, state zeroing between samples against fresh builds, what reset_interval and
reset_offset change, and the refusals (netx's NotImplementedError for pool, its AttributeError
for dense_comp, Lava's compile error for messageBits, and the input modes a neuron cannot take).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from sakd.hardware.lava_bridge import (
    LavaInputError,
    LavaRunError,
    NetxReference,
    NetxReferenceJob,
    run_netx_reference,
    run_netx_reference_batch,
)

lava = pytest.mark.lava
SAMPLES = 2  # of the 3 each file comes with
#: files whose second sample is also run alone in a fresh build (state zeroing between samples)
FRESH = ("cuba_conv_binary", "cuba_input_bias", "sdnn", "rf", "recurrent", "delays_hand")
#: files whose default run also records with Lava's Monitor (one of each neuron family)
MONITORED = ("dense_1d", "sdnn", "rf_iz")
RESET = {"reset_interval": 6, "reset_offset": 0}


def _inputs(files: dict[str, Any], stem: str) -> np.ndarray:
    return np.load(files["dir"] / files["entries"][stem]["inputs"])


def _job(files: dict[str, Any], stem: str, x: np.ndarray | None = None, **over: Any) -> NetxReferenceJob:
    e = files["entries"][stem]
    kw = {"steps": e["steps"], "input_mode": e["input_mode"], **e["options"], **over}
    if x is None:
        x = _inputs(files, stem)[:, :SAMPLES]
    return NetxReferenceJob(files["dir"] / e["file"], x, **kw)


@pytest.fixture(scope="session")
def refs(netx_files: dict[str, Any]) -> dict[str, Any]:
    """Every reference job of this module, run in one subprocess: key -> NetxReference or the
    error it ended with."""
    files = netx_files
    jobs: dict[str, NetxReferenceJob] = {}
    for stem, e in files["entries"].items():
        jobs[f"run:{stem}"] = _job(files, stem, monitor_check=stem in MONITORED)
        for k, also in enumerate(e.get("also", [])):
            jobs[f"also{k}:{stem}"] = _job(files, stem, **also["options"])
    for stem in FRESH:
        jobs[f"fresh:{stem}"] = _job(files, stem, _inputs(files, stem)[:, 1:2])
    x = _inputs(files, "dense_1d")
    jobs["reset"] = _job(files, "dense_1d", x[:, :SAMPLES], **RESET)
    jobs["reset:fresh"] = _job(files, "dense_1d", x[:, 1:2], **RESET)
    jobs["reset:offset2"] = _job(files, "dense_1d", x[:, :1], reset_interval=6, reset_offset=2)
    jobs["output:sdnn"] = _job(files, "sdnn", record="output")
    # inputs or modes the files cannot take
    jobs["bad:port-on-input-neuron"] = _job(files, "cuba_input_a_in", input_mode="port")
    jobs["bad:bias-on-delta"] = _job(files, "sdnn", _inputs(files, "sdnn")[:1, :1].repeat(16, 0),
                                     input_mode="bias")
    jobs["bad:a_in-on-rf"] = _job(files, "rf", input_mode="a_in")
    two = _inputs(files, "dense_1d")[:, :1].copy()
    two[0, 0, 0] = 2
    jobs["bad:binary-not-01"] = _job(files, "dense_1d", two)
    t0 = time.perf_counter()
    out = run_netx_reference_batch(list(jobs.values()), timeout=900)
    seconds = time.perf_counter() - t0
    return {"results": dict(zip(jobs, out)), "jobs": jobs, "seconds": seconds}


def _ok(refs: dict[str, Any], key: str) -> NetxReference:
    res = refs["results"][key]
    if isinstance(res, Exception):
        pytest.fail(f"{key}: {type(res).__name__}: {res}\n{getattr(res, 'stderr', '')[-2000:]}")
    return res


def _runnable(files: dict[str, Any]) -> list[str]:
    return [stem for stem, e in files["entries"].items() if "refused" not in e]


def _group_shapes(path: Path) -> dict[int, tuple[str, bool, tuple[int, ...]]]:
    with h5py.File(path, "r") as f:
        out = {}
        for i in range(len(f["layer"])):
            g = f["layer"][str(i)]
            kind = g["type"][()]
            kind = (kind[0] if np.ndim(kind) else kind).decode()
            out[i] = (kind, "neuron" in g, tuple(int(d) for d in np.atleast_1d(g["shape"][()])))
    return out


STATE = {"LIF": ("u", "v"), "LIFReset": ("u", "v"), "Delta": ("act", "residue"),
         "SigmaDelta": ("sigma", "act", "residue"), "Sigma": ("sigma",),
         "RF": ("real", "imag"), "RF_IZ": ("real", "imag")}


# ---------------------------------------------------------------------------------------------
# every file runs, with the documented names, shapes and contents
# ---------------------------------------------------------------------------------------------


@lava
def test_every_file_runs_with_documented_names_and_shapes(netx_files, refs) -> None:
    for stem in _runnable(netx_files):
        e = netx_files["entries"][stem]
        ref = _ok(refs, f"run:{stem}")
        groups = _group_shapes(netx_files["dir"] / e["file"])
        want = [f"layer{i}" for i, (kind, neuron, _) in groups.items()
                if kind in ("conv", "dense", "dense_rec") or (kind == "input" and neuron)]
        assert ref.names == want == list(ref.layers), (stem, ref.names, want)
        assert ref.steps == e["steps"]
        assert ref.samples == SAMPLES
        assert ref.options["input_mode"] == e["input_mode"]
        for name in ref.names:
            info = ref.layer_info(name)
            shape = groups[int(name[5:])][2]
            assert tuple(info["shape"]) == shape, (stem, name)
            assert sorted(ref.layers[name]) == sorted(("s", *STATE[info["neuron"]])), (stem, name)
            for var, data in ref.layers[name].items():
                assert data.dtype == np.int64, (stem, name, var)
                assert data.shape == (e["steps"], SAMPLES, *shape), (stem, name, var, data.shape)
        for key in ("build_s", "compile_s", "run_s", "total_s", "samples_per_s"):
            assert ref.meta[key] is not None and ref.meta[key] >= 0
        assert ref.meta["run_config"] == "Loihi2SimCfg(select_tag='fixed_pt')"


@lava
def test_neuron_processes_are_the_ones_netx_maps_to(refs) -> None:
    kinds = {stem: [_ok(refs, f"run:{stem}").layer_info(n)["neuron"] for n in _ok(refs, f"run:{stem}").names]
             for stem in ("cuba_conv_graded", "sdnn", "rf", "rf_iz", "recurrent", "dense_1d")}
    assert kinds["cuba_conv_graded"] == ["LIF"] * 4
    assert kinds["sdnn"] == ["Delta", "SigmaDelta", "SigmaDelta", "SigmaDelta", "Sigma"]
    assert kinds["rf"] == ["RF", "RF"]  # RF_PHASE -> RF
    assert kinds["rf_iz"] == ["RF_IZ", "RF_IZ"]  # RF_IZHIKEVICH and a plain RF -> RF_IZ
    assert kinds["recurrent"] == ["LIF", "LIF"]
    assert kinds["dense_1d"] == ["LIF", "LIF"]  # CUBA and LOIHI
    rec = _ok(refs, "run:recurrent").layer_info("layer1")
    assert [s["process"] for s in rec["synapses"]] == ["Dense", "Dense"]  # synapse, synapse_rec
    rf = _ok(refs, "run:rf").layer_info("layer1")
    assert [s["process"] for s in rf["synapses"]] == ["Dense", "Dense"]  # real, imag
    delays = _ok(refs, "run:delays_hand")
    assert [delays.layer_info(n)["synapses"][0]["process"] for n in delays.names] == ["DelayDense"] * 3
    sparse = _ok(refs, "also0:delays_hand")
    assert [sparse.layer_info(n)["synapses"][0]["process"] for n in sparse.names] == ["DelaySparse"] * 3
    assert any("Clamping the delays" in w for w in delays.meta["netx_warnings"])


@lava
def test_every_layer_is_active_but_not_saturated(netx_files, refs) -> None:
    for stem in _runnable(netx_files):
        ref = _ok(refs, f"run:{stem}")
        for name in ref.names:
            s = ref.layers[name]["s"]
            kind = ref.layer_info(name)["neuron"]
            if kind == "Sigma":  # an accumulator: it sends its sigma every step
                assert np.ptp(s) > 0, (stem, name)
                continue
            rate = float((s != 0).mean())
            assert 0.02 < rate < 0.8, (stem, name, kind, rate)


@lava
def test_options_fill_in_netx_defaults(netx_files, refs) -> None:
    graded = _ok(refs, "run:cuba_conv_graded")
    assert graded.options["input_message_bits"] == 8
    assert graded.meta["netx_kwargs"]["input_message_bits"] == 8
    binary = _ok(refs, "run:cuba_conv_binary")
    assert binary.options["input_message_bits"] == 0  # netx's default
    assert "input_message_bits" not in binary.meta["netx_kwargs"]  # not passed to netx
    assert binary.options == {"steps": 16, "input_mode": "port", "input_message_bits": 0,
                              "reset_interval": None, "reset_offset": 0, "spike_exp": 6,
                              "sparse_fc_layer": False, "samples_per_build": SAMPLES,
                              "zero_state": True, "record": "all"}
    assert _ok(refs, "also0:delays_hand").options["sparse_fc_layer"] is True


# ---------------------------------------------------------------------------------------------
# the recorder, the input timing, zeroing between samples
# ---------------------------------------------------------------------------------------------


@lava
def test_recorder_equals_lavas_monitor(refs) -> None:
    for stem in MONITORED:
        report = _ok(refs, f"run:{stem}").meta["monitor_check"]
        assert report and all(report.values()), (stem, report)
        names = _ok(refs, f"run:{stem}").names
        assert len(report) == sum(1 + len(STATE[_ok(refs, f"run:{stem}").layer_info(n)["neuron"]])
                                  for n in names)


def _lif_u(u_prev: np.ndarray, a: np.ndarray, du: int) -> np.ndarray:
    """One LIF current step (PyLifModelBitAcc; no wrap reached here)."""
    p = u_prev.astype(np.int64) * (4096 - (du + 1))
    return np.sign(p) * (np.abs(p) >> 12) + (a.astype(np.int64) << 6)


@lava
def test_port_input_reaches_the_first_neuron_one_step_later(netx_files, refs) -> None:
    """port mode: the first synapse sends at step t what it received at t-1."""
    ref = _ok(refs, "run:dense_1d")
    x = refs["jobs"]["run:dense_1d"].inputs  # [steps, B, 12] binary
    with h5py.File(netx_files["dir"] / "dense_1d.net", "r") as f:
        w = f["layer/1/weight"][()].astype(int).reshape(10, -1)  # 1-D weights, as netx reshapes
    info = ref.layer_info("layer1")
    du = info["neuron_params"]["du"]
    u = ref.layers["layer1"]["u"]
    assert np.all(u[0] == 0)  # nothing has passed the synapse after step 1
    want = np.zeros_like(u[0])
    for t in range(1, ref.steps):
        want = _lif_u(want, x[t - 1] @ w.T, du)
        np.testing.assert_array_equal(u[t], want, err_msg=f"step {t + 1}")
    assert np.abs(u).max() > 0


@lava
def test_a_in_input_reaches_the_neuron_in_the_same_step(refs) -> None:
    ref = _ok(refs, "run:cuba_input_a_in")
    x = refs["jobs"]["run:cuba_input_a_in"].inputs  # [steps, B, 16] currents
    params = ref.layer_info("layer0")["neuron_params"]
    assert params["du"] == 4095  # iDecay 4096: no current memory
    np.testing.assert_array_equal(ref.layers["layer0"]["u"], x.astype(np.int64) << 6)


@lava
def test_bias_input_acts_from_the_first_step(refs) -> None:
    ref = _ok(refs, "run:cuba_input_bias")
    x = refs["jobs"]["run:cuba_input_bias"].inputs  # [steps, B, 2, 8, 8], static
    v, s = ref.layers["layer0"]["v"], ref.layers["layer0"]["s"]
    assert ref.layer_info("layer0")["shape"] == [2, 8, 8]
    np.testing.assert_array_equal(v[0], x[0].astype(np.int64) << 6)  # u = 0: v = bias << 6
    assert not s[0].any() and s.any()
    # each sample's own bias: the neurons fire in proportion to it (sakd layout kept)
    rate = s.mean(axis=0)
    assert np.corrcoef(rate.ravel(), x[0].ravel())[0, 1] > 0.9


@lava
def test_zeroing_between_samples_equals_a_fresh_build(refs) -> None:
    """Sample 2 of a two-sample build (state zeroed after sample 1: neuron Vars, a_buff/a_buf of
    every synapse, both synapses of RecurrentDense and ComplexDense, bias_mant rewritten) equals
    sample 2 run alone in a freshly built network, every layer, every Var, every step."""
    for stem in (*FRESH, "reset"):
        both = _ok(refs, f"run:{stem}" if stem != "reset" else "reset")
        fresh = _ok(refs, f"fresh:{stem}" if stem != "reset" else "reset:fresh")
        assert both.options["samples_per_build"] == SAMPLES and fresh.samples == 1
        for name in both.names:
            for var, data in both.layers[name].items():
                np.testing.assert_array_equal(data[:, 1:2], fresh.layers[name][var],
                                              err_msg=f"{stem} {name}.{var}")
    # the checks mean something: the first sample leaves state the second must not see
    delays = _ok(refs, "run:delays_hand")
    assert delays.layers["layer3"]["s"][:, 0].any()


@lava
def test_sparse_fc_layer_gives_the_same_run(refs) -> None:
    dense, sparse = _ok(refs, "run:delays_hand"), _ok(refs, "also0:delays_hand")
    for name in dense.names:
        for var in dense.layers[name]:
            np.testing.assert_array_equal(dense.layers[name][var], sparse.layers[name][var],
                                          err_msg=f"{name}.{var}")


# ---------------------------------------------------------------------------------------------
# reset_interval / reset_offset (netx: layer k resets at time_step % R == (offset + 1 + k) % R)
# ---------------------------------------------------------------------------------------------


@lava
def test_reset_interval_resets_each_layer_at_its_staggered_step(netx_files, refs) -> None:
    free, reset, shifted = _ok(refs, "run:dense_1d"), _ok(refs, "reset"), _ok(refs, "reset:offset2")
    R = RESET["reset_interval"]
    assert reset.meta["steps_per_sample"] == 18  # 16 steps rounded up to a multiple of R
    assert [reset.layer_info(n)["neuron"] for n in reset.names] == ["LIFReset"] * 2
    x = refs["jobs"]["reset"].inputs
    with h5py.File(netx_files["dir"] / "dense_1d.net", "r") as f:
        w1 = f["layer/1/weight"][()].astype(int).reshape(10, -1)
    def reset_steps(offset: int, k: int) -> list[int]:
        """1-based steps at which layer k resets; step 1 (all state still 0) changes nothing."""
        return [t for t in range(2, reset.steps + 1) if t % R == (offset + 1 + k) % R]

    for run, offset in ((reset, 0), (shifted, 2)):
        for k, name in enumerate(run.names):
            info = run.layer_info(name)
            assert info["neuron_params"]["reset_interval"] == R
            assert info["neuron_params"]["reset_offset"] % R == (offset + 1 + k) % R
            first = reset_steps(offset, k)[0]
            b = run.samples
            for var in ("u", "v", "s"):  # identical to the free run before the first reset
                np.testing.assert_array_equal(run.layers[name][var][:first - 1],
                                              free.layers[name][var][:first - 1, :b])
            later = slice(first - 1, None)
            assert not np.array_equal(run.layers[name]["u"][later], free.layers[name]["u"][later, :b])
    assert reset_steps(0, 0) == [7, 13] and reset_steps(2, 0) == [3, 9, 15]
    # the first layer at its reset steps: u = v = 0 before the dynamics, so u = a << 6
    for run, offset in ((reset, 0), (shifted, 2)):
        du = run.layer_info("layer1")["neuron_params"]["du"]
        u = run.layers["layer1"]["u"]
        for t in reset_steps(offset, 0):
            a = x[t - 2, :run.samples] @ w1.T  # what the synapse received at step t-1
            np.testing.assert_array_equal(u[t - 1], _lif_u(np.zeros_like(u[0]), a, du))
            assert not np.array_equal(u[t - 1], free.layers["layer1"]["u"][t - 1, :run.samples])


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------


@lava
def test_files_netx_refuses_give_its_error(netx_files, refs) -> None:
    for stem, e in netx_files["entries"].items():
        if "refused" not in e:
            continue
        res = refs["results"][f"run:{stem}"]
        assert isinstance(res, LavaRunError), (stem, res)
        want = e["refused"]
        assert res.cause == want["cause"], (stem, res.cause, str(res))
        assert want["match"] in str(res), (stem, str(res))
        assert res.stage == want.get("stage", "build"), (stem, res.stage)
    pool = refs["results"]["run:refuse_pool"]
    assert "NotImplementedError: pool is not implemented" in str(pool)
    comp = refs["results"]["run:refuse_dense_comp"]
    assert "AttributeError" in str(comp) and "create_complex_dense" in str(comp)


@lava
def test_input_modes_a_neuron_cannot_take_are_refused(refs) -> None:
    res = refs["results"]
    assert isinstance(res["bad:port-on-input-neuron"], LavaInputError)
    assert "use input_mode 'a_in' or 'bias'" in str(res["bad:port-on-input-neuron"])
    assert isinstance(res["bad:bias-on-delta"], LavaInputError)
    assert "Delta neuron of /layer/0 has no bias_mant" in str(res["bad:bias-on-delta"])
    assert isinstance(res["bad:a_in-on-rf"], LavaInputError)
    assert "RF neuron of /layer/1 has no a_in" in str(res["bad:a_in-on-rf"])
    assert isinstance(res["bad:binary-not-01"], LavaInputError)
    assert "input_message_bits" in str(res["bad:binary-not-01"])


def test_jobs_are_checked_before_any_run(tmp_path) -> None:
    """Bad options, a missing file and non-integer inputs are LavaInputErrors raised before a
    runner starts (no Lava environment needed)."""
    f = tmp_path / "x.net"
    f.write_bytes(b"")
    x = np.zeros((4, 1, 3), int)
    for bad in ({"steps": 0}, {"steps": 4, "input_mode": "spikes"},
                {"steps": 4, "reset_interval": 0}, {"steps": 4, "input_message_bits": -1},
                {"steps": 4, "samples_per_build": 0}, {"steps": 4, "spike_exp": 1.5}):
        with pytest.raises(LavaInputError):
            NetxReferenceJob(f, x, **bad)
    with pytest.raises(LavaInputError, match="no such netx file"):
        run_netx_reference(tmp_path / "missing.net", x, steps=4)
    with pytest.raises(LavaInputError, match="integers"):
        run_netx_reference_batch([NetxReferenceJob(f, np.full((4, 1, 3), 0.5), steps=4)])


@lava
def test_record_output_keeps_only_the_last_layer_unchanged(refs) -> None:
    full, last = _ok(refs, "run:sdnn"), _ok(refs, "output:sdnn")
    assert last.names == full.names and list(last.layers) == [full.names[-1]]
    assert last.options["record"] == "output"
    for var, data in full.layers[full.names[-1]].items():
        np.testing.assert_array_equal(last.layers[full.names[-1]][var], data)

