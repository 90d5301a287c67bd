"""Chip and system profiles: every figure sourced, user files, overrides, and errors that name
the file and the field."""

from __future__ import annotations

import json

import pytest
from mapping_nets import pop

from sakd.hardware.errors import SakdError
from sakd.hardware.mapping import (
    CERTAINTIES,
    ChipProfileError,
    list_chips,
    list_systems,
    load_chip,
    load_system,
    neuron_state_bits,
)
from sakd.hardware.mapping.profile import CHIP_DIR


def test_builtin_chips_and_systems_load_and_every_figure_is_sourced():
    assert set(list_chips()) >= {"loihi", "loihi2"}
    assert set(list_systems()) >= {"loihi2-chip", "kapoho-point", "hala-point", "loihi-chip"}
    for name in list_chips():
        chip = load_chip(name)
        assert chip.cores_per_chip == chip.cores_x * chip.cores_y // 1
        for key, fig in chip.figures.items():
            assert fig.certainty in CERTAINTIES, key
            assert fig.source.strip() and fig.unit.strip(), key
    l1, l2 = load_chip("loihi"), load_chip("loihi2")
    assert (l1.cores_per_chip, l1.max_neurons_per_core, l1.input_axons_per_core,
            l1.output_axons_per_core, l1.synapse_memory_bits) == (128, 1024, 4096, 4096, 16384 * 64)
    assert not l1.shared_memory and l2.shared_memory
    assert (l2.max_neurons_per_core, l2.core_memory_bits, l2.embedded_cores) == (8192, 192 * 1024 * 8, 6)
    assert (l1.e_hop_ew_pj, l1.e_hop_ns_pj, l1.t_synop_ns) == (3.0, 4.0, 3.5)
    assert l1.figure("t_synop_ns").certainty == "pre-silicon"
    assert l2.figure("input_axons_per_core").certainty == "assumed"
    assert l2.figure("static_power_w").certainty == "measured"
    kp, hp = load_system("kapoho-point"), load_system("hala-point")
    assert (kp.chip, kp.chips, hp.chips, hp.usable_cores_per_chip) == ("loihi2", 8, 1152, 122)


def test_neuron_state_bits_reads_the_neuron_model():
    chip = load_chip("loihi2")
    assert neuron_state_bits(pop("p", (4,)), chip) == 24 + 24 + 13
    assert neuron_state_bits(pop("r", (4,), readout=True), chip) == 61


def test_overrides_replace_values_and_are_labelled():
    chip = load_chip("loihi2", overrides={"core_memory_bits": 1 << 16, "shared_weights": False})
    assert chip.core_memory_bits == 1 << 16 and chip.shared_weights is False
    fig = chip.figure("core_memory_bits")
    assert (fig.certainty, fig.source) == ("user", "user override")
    assert "1572864" in fig.note
    assert "core_memory_bits" in chip.assumptions()
    with pytest.raises(ChipProfileError, match="override 'no_such'"):
        load_chip("loihi2", overrides={"no_such": 1})
    with pytest.raises(ChipProfileError, match="override 'max_neurons_per_core'.*integer"):
        load_chip("loihi2", overrides={"max_neurons_per_core": 2.5})
    with pytest.raises(ChipProfileError, match="override 'shared_weights'"):
        load_chip("loihi2", overrides={"shared_weights": 1})
    with pytest.raises(ChipProfileError, match="cores_per_chip"):
        load_chip("loihi2", overrides={"cores_per_chip": 64})  # no longer matches the mesh


def _copy(tmp_path, name="loihi2", edit=None):
    data = json.loads((CHIP_DIR / f"{name}.json").read_text())
    if edit:
        edit(data)
    path = tmp_path / "mychip.json"
    path.write_text(json.dumps(data))
    return path


def test_a_users_file_works_like_a_builtin(tmp_path):
    def edit(d):
        d["name"] = "mychip"
        d["figures"]["max_neurons_per_core"]["value"] = 2048
    chip = load_chip(_copy(tmp_path, edit=edit))
    assert chip.name == "mychip" and chip.max_neurons_per_core == 2048
    assert chip.path.endswith("mychip.json")
    assert load_chip(str(_copy(tmp_path))).core_memory_bits == load_chip("loihi2").core_memory_bits


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["figures"].pop("t_synop_ns"), r"field 'figures.t_synop_ns': missing"),
    (lambda d: d["figures"].update(bogus={"value": 1, "unit": "u", "source": "s",
                                          "certainty": "assumed"}), r"'figures.bogus': unknown"),
    (lambda d: d["figures"]["t_synop_ns"].update(certainty="guessed"), r"t_synop_ns.certainty"),
    (lambda d: d["figures"]["t_synop_ns"].update(source=" "), r"t_synop_ns.source"),
    (lambda d: d["figures"]["t_synop_ns"].update(value="fast"), r"t_synop_ns.value.*number"),
    (lambda d: d["figures"]["max_neurons_per_core"].update(value=0), r"max_neurons_per_core.value"),
    (lambda d: d["figures"]["cores_per_chip"].update(value=None), r"cores_per_chip.value.*null"),
    (lambda d: d["figures"]["t_synop_ns"].pop("unit"), r"t_synop_ns.unit': missing"),
    (lambda d: d.update(extra=1), r"field 'extra': unknown"),
    (lambda d: d.pop("name"), r"field 'name': missing"),
    (lambda d: d["figures"]["synapse_memory_bits"].update(value=1024),
     r"core_memory_bits.*excludes"),
])
def test_bad_chip_files_name_the_file_and_the_field(tmp_path, edit, match):
    path = _copy(tmp_path, edit=edit)
    with pytest.raises(ChipProfileError, match=match) as info:
        load_chip(path)
    assert "mychip.json" in str(info.value)
    assert isinstance(info.value, SakdError)


def test_unreadable_and_unknown_profiles(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ChipProfileError, match="broken.json: not valid JSON"):
        load_chip(bad)
    with pytest.raises(ChipProfileError, match="unknown chip profile 'loihi3'.*loihi, loihi2"):
        load_chip("loihi3")
    with pytest.raises(ChipProfileError, match="file not found"):
        load_chip(tmp_path / "absent.json")
    with pytest.raises(ChipProfileError, match="unknown system 'nope'.*kapoho-point"):
        load_system("nope")


def test_system_files(tmp_path):
    path = tmp_path / "rack.json"
    fig = {"unit": "chips", "source": "my lab", "certainty": "measured"}
    path.write_text(json.dumps({"name": "rack", "chip": "loihi2", "figures": {
        "chips": dict(fig, value=6), "chips_x": dict(fig, value=3), "chips_y": dict(fig, value=2)}}))
    system = load_system(path)
    assert (system.name, system.chips, system.chips_x, system.chips_y) == ("rack", 6, 3, 2)
    path.write_text(json.dumps({"name": "rack", "chip": "loihi2", "figures": {
        "chips": dict(fig, value=7), "chips_x": dict(fig, value=3), "chips_y": dict(fig, value=2)}}))
    with pytest.raises(ChipProfileError, match=r"rack.json: field 'figures.chips': 7 chips"):
        load_system(path)
    path.write_text(json.dumps({"name": "rack", "figures": {}}))
    with pytest.raises(ChipProfileError, match=r"rack.json: field 'chip': missing"):
        load_system(path)
