"""The energy model (sakd.hardware.energy) on hand-made counts, with totals worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sakd.hardware.counts import NetworkCounts, PopulationCounts, ProjectionCounts
from sakd.hardware.energy import (
    PROFILE_DIR,
    TERMS,
    EnergyProfile,
    ProfileError,
    estimate_ann_energy,
    estimate_snn_energy,
    list_profiles,
    load_profile,
    sops_convention,
)

BUILTIN = ("cmos45-fp32", "cmos45-int8", "loihi", "spinnaker2")


def hand_counts() -> NetworkCounts:
    """graded input 'in' -enc-> pop1 (10 neurons) -fc-> out (3, readout); B = 2, T = 4.

    sample 0: enc 100 graded MACs; pop1 4 spikes, 20 active updates; fc 12 SynOps; out 12 active.
    sample 1: enc 140 graded MACs; pop1 6 spikes, 30 active updates; fc 18 SynOps; out 12 active.
    """
    i64 = np.int64
    pop1 = PopulationCounts("pop1", neurons=10, time_steps=4,
                            spikes_per_step=np.array([[1, 2, 0, 1], [3, 1, 1, 1]], dtype=i64),
                            active_updates=np.array([20, 30], dtype=i64))
    out = PopulationCounts("out", neurons=3, time_steps=4,
                           spikes_per_step=np.zeros((2, 4), dtype=i64),
                           active_updates=np.array([12, 12], dtype=i64))
    enc = ProjectionCounts("enc", source="in", target="pop1", synapses=90,
                           synops=np.zeros(2, dtype=i64), graded_macs=np.array([100, 140], dtype=i64),
                           dense_flops=96)
    fc = ProjectionCounts("fc", source="pop1", target="out", synapses=30,
                          synops=np.array([12, 18], dtype=i64), graded_macs=np.zeros(2, dtype=i64),
                          dense_flops=30)
    return NetworkCounts(time_steps=4, samples=2, populations={"pop1": pop1, "out": out},
                         projections={"enc": enc, "fc": fc})


# ---------------------------------------------------------------------------------------------
# profiles


def test_builtin_profiles_load_with_the_spec_constants():
    assert list_profiles() == sorted(BUILTIN)
    loihi = load_profile("loihi")
    assert (loihi.per_synop, loihi.per_mac) == (23.6, None)
    assert (loihi.per_neuron_update_active, loihi.per_neuron_update_inactive) == (81.0, 52.0)
    assert loihi.per_spike == 1.7
    fp32, int8 = load_profile("cmos45-fp32"), load_profile("cmos45-int8")
    assert (fp32.per_synop, fp32.per_mac) == (0.9, 4.6)
    assert (int8.per_synop, int8.per_mac) == (0.03, 0.23)
    for p in (fp32, int8):
        assert p.per_neuron_update_active is None and p.per_neuron_update_inactive is None
    spin = load_profile("spinnaker2")
    assert (spin.per_synop, spin.per_mac) == (450.0, None)
    assert spin.per_neuron_update_active == spin.per_neuron_update_inactive == 2190.0
    for name in BUILTIN:
        profile = load_profile(name)
        assert profile.name == name and profile.source and profile.caveats
        assert profile.path == str(PROFILE_DIR / f"{name}.yaml")
    assert any("pre-silicon" in c for c in loihi.caveats)
    assert any("2409.08290" in c for c in fp32.caveats)
    assert any("encoding layer" in c for c in int8.caveats)
    assert "Davies" in loihi.source and "Horowitz" in fp32.source and "1903.08941" in spin.source


def test_unknown_profile_lists_the_known_names():
    with pytest.raises(ProfileError) as err:
        load_profile("loihi3")
    assert isinstance(err.value, ValueError)
    for name in BUILTIN:
        assert name in str(err.value)


def test_user_profile_file_in_other_units(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nunits: nJ\nsource: me\nper_synop: 0.5\nper_mac: 1e-3\n"
                    "per_neuron_update_active: 2\n")
    profile = load_profile(path)
    assert profile.name == "mine" and profile.path == str(path)
    assert profile.per_synop == pytest.approx(500.0) and profile.per_mac == pytest.approx(1.0)
    assert profile.per_neuron_update_active == pytest.approx(2000.0)
    assert profile.per_neuron_update_inactive is None and profile.caveats == ()
    assert load_profile(str(path)) == profile


@pytest.mark.parametrize("text, field", [
    ("name: x\nunits: pJ\nper_synop: 1\n", "source"),
    ("name: x\nunits: pJ\nsource: s\nper_synop: abc\n", "per_synop"),
    ("name: x\nunits: pJ\nsource: s\nper_synop: -1\n", "per_synop"),
    ("name: x\nunits: pJ\nsource: s\nper_synop: .nan\n", "per_synop"),
    ("name: x\nunits: kWh\nsource: s\nper_synop: 1\n", "units"),
    ("name: x\nunits: pJ\nsource: s\nper_synops: 1\n", "per_synops"),
    ("name: x\nunits: pJ\nsource: s\nper_neuron_update_active: 3\n", "per_synop"),
    ("name: x\nunits: pJ\nsource: s\nper_synop: 1\ncaveats: just one string\n", "caveats"),
    ("name: [x]\nunits: pJ\nsource: s\nper_synop: 1\n", "name"),
])
def test_malformed_profile_names_file_and_field(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and f"'{field}'" in str(err.value)


@pytest.mark.parametrize("text", ["per_synop: [1, 2\n", "- a list\n- not a mapping\n"])
def test_unreadable_profile_names_the_file(tmp_path, text):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match="broken.yaml"):
        load_profile(path)


def test_missing_profile_file(tmp_path):
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "absent.yaml")


# ---------------------------------------------------------------------------------------------
# the known mistake: no time per op in an energy


def test_no_time_per_op_is_added_to_energy(tmp_path):
    counts = hand_counts()
    estimate = estimate_snn_energy(counts, "loihi")
    # 15 SynOps per sample (mean) at 23.6 pJ each, not 23.6 + 3.5 (Table 2's ns per op)
    assert estimate.layers["fc"].energy_pj["synops"] == pytest.approx(15 * 23.6, rel=1e-12)
    assert estimate.layers["fc"].energy_pj["synops"] != pytest.approx(15 * (23.6 + 3.5))
    import yaml

    data = yaml.safe_load((PROFILE_DIR / "loihi.yaml").read_text())
    assert not any("time" in key or "ns" in key.split("_") for key in data)
    assert data["per_synop"] == 23.6 and 3.5 not in data.values()
    path = tmp_path / "timed.yaml"
    path.write_text("name: t\nunits: pJ\nsource: s\nper_synop: 23.6\ntime_per_synop_ns: 3.5\n")
    with pytest.raises(ProfileError, match="not an energy"):
        load_profile(path)


# ---------------------------------------------------------------------------------------------
# SNN energy, worked by hand


def test_loihi_energy_by_hand():
    estimate = estimate_snn_energy(hand_counts(), load_profile("loihi"))
    # sample 0: fc 12 x 23.6 = 283.2; pop1 20 x 81 + 20 x 52 + 4 x 1.7 = 2666.8; out 12 x 81 = 972
    # sample 1: fc 18 x 23.6 = 424.8; pop1 30 x 81 + 10 x 52 + 6 x 1.7 = 2960.2; out 972
    np.testing.assert_allclose(estimate.per_sample_pj, [3922.0, 4357.0], rtol=1e-12)
    assert estimate.total_pj == pytest.approx(4139.5, rel=1e-12)
    assert estimate.total_j == pytest.approx(4139.5e-12, rel=1e-12)
    assert estimate.layers["pop1"].total_pj == pytest.approx((2666.8 + 2960.2) / 2, rel=1e-12)
    assert estimate.layers["out"].energy_pj == pytest.approx(
        {"active_updates": 972.0, "inactive_updates": 0.0, "spikes": 0.0})
    assert estimate.layers["enc"].total_pj == 0.0
    # loihi has no per-MAC energy: the 120 graded MACs per sample are not counted, and said so
    assert estimate.not_counted == {"graded_macs": 120.0}
    assert not estimate.complete
    assert estimate.by_term_pj["graded_macs"] == 0.0
    assert sum(estimate.by_term_pj.values()) == pytest.approx(estimate.total_pj, rel=1e-12)
    assert estimate.ops == pytest.approx({"synops": 15, "graded_macs": 120, "active_updates": 37,
                                          "inactive_updates": 15, "spikes": 5})


@pytest.mark.parametrize("name, total, missing", [
    ("cmos45-fp32", 15 * 0.9 + 120 * 4.6,
     {"active_updates": 37.0, "inactive_updates": 15.0, "spikes": 5.0}),
    ("cmos45-int8", 15 * 0.03 + 120 * 0.23,
     {"active_updates": 37.0, "inactive_updates": 15.0, "spikes": 5.0}),
    # 52 neuron updates per sample ((10 + 3) x 4), active or not, at 2.19 nJ
    ("spinnaker2", 15 * 450 + 52 * 2190, {"graded_macs": 120.0, "spikes": 5.0}),
])
def test_other_profiles_by_hand(name, total, missing):
    estimate = estimate_snn_energy(hand_counts(), name)
    assert estimate.total_pj == pytest.approx(total, rel=1e-12)
    assert estimate.not_counted == missing


def test_missing_constant_with_no_operations_is_not_reported():
    counts = hand_counts()
    no_input = NetworkCounts(4, 2, counts.populations, {"fc": counts.projections["fc"]})
    assert "graded_macs" not in estimate_snn_energy(no_input, "loihi").not_counted


def test_estimate_rejects_counts_of_the_wrong_shape():
    counts = hand_counts()
    bad = NetworkCounts(4, 3, counts.populations, counts.projections)  # says 3 samples, has 2
    with pytest.raises(ValueError, match="one count per sample"):
        estimate_snn_energy(bad, "loihi")


def test_profile_dataclass_validates():
    with pytest.raises(ProfileError, match="per_synop"):
        EnergyProfile("x", "", "s", per_synop=-1.0)
    with pytest.raises(ProfileError, match="needs per_synop or per_mac"):
        EnergyProfile("x", "", "s")
    assert set(TERMS.values()) <= set(EnergyProfile("x", "", "s", per_mac=1.0).constants())


# ---------------------------------------------------------------------------------------------
# ANN baseline and the SOPs convention


def test_ann_energy():
    macs = {"conv": 96, "fc": 30, "total": 126}
    fp32 = estimate_ann_energy(macs, "cmos45-fp32")
    assert fp32.macs == {"conv": 96, "fc": 30} and fp32.total_macs == 126
    assert fp32.energy_pj == pytest.approx({"conv": 96 * 4.6, "fc": 30 * 4.6})
    assert fp32.total_pj == pytest.approx(126 * 4.6) and fp32.total_j == pytest.approx(126 * 4.6e-12)
    assert estimate_ann_energy({"conv": 96, "fc": 30}, "cmos45-int8").total_pj == \
        pytest.approx(126 * 0.23)
    with pytest.raises(ProfileError, match="no per_mac"):
        estimate_ann_energy(macs, "loihi")
    with pytest.raises(ValueError, match="not the sum"):
        estimate_ann_energy({"conv": 96, "total": 100}, "cmos45-int8")


def test_sops_convention_by_hand():
    sops = sops_convention(hand_counts())
    # fc: pop1 rate = [4, 6] / (10 x 4) -> [0.1, 0.15]; x T = 4 x FLOPs = 30 -> [12, 18], mean 15
    assert sops.per_projection["fc"] == pytest.approx(15.0, rel=1e-12)
    # enc: graded input, not spikes: T x FLOPs = 4 x 96 MACs
    assert sops.per_projection["enc"] == 384.0
    assert sops.input_kind == {"enc": "graded", "fc": "spikes"}
    assert (sops.sops, sops.graded_macs) == (pytest.approx(15.0), 384.0)
    assert any("not spikes" in note for note in sops.notes)
    energy, missing = sops.energy_pj("cmos45-int8")
    assert energy == pytest.approx(15 * 0.03 + 384 * 0.23) and missing == []
    energy, missing = sops.energy_pj("loihi")
    assert energy == pytest.approx(15 * 23.6) and missing == ["graded_macs"]


def test_sops_convention_spike_input_rate_from_synops():
    i64 = np.int64
    proj = ProjectionCounts("p", source="in", target="a", synapses=20, synops=np.array([40, 80], i64),
                            graded_macs=np.zeros(2, i64), dense_flops=20)
    pop = PopulationCounts("a", 2, 5, np.zeros((2, 5), i64), np.zeros(2, i64))
    sops = sops_convention(NetworkCounts(5, 2, {"a": pop}, {"p": proj}))
    # dense: rate = SynOps / (T x synapses), so SOPs = rate x T x FLOPs = SynOps here
    assert sops.input_kind == {"p": "input-spikes"} and sops.sops == pytest.approx(60.0)


def test_energy_module_imports_without_torch():
    import subprocess
    import sys

    code = ("import sys, sakd.hardware.energy; "
            "assert 'torch' not in sys.modules and 'yaml' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
