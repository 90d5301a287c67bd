"""Config: YAML -> --set overrides -> validation -> the resolved config in the run directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sakd.config import (
    Config,
    ConfigError,
    config_from_dict,
    dump_config,
    load_config,
    parse_override,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_follow_the_authors_neuron():
    config = load_config()
    n = config.student.neuron
    assert (n.tau, n.v_threshold, n.v_reset, n.decay_input, n.surrogate, n.alpha) == \
        (2.0, 1.0, 0.0, False, "atan", 2.0)
    assert n.detach_reset == "per-site" and config.student.time_steps == 4


def test_yaml_file_is_read():
    config = load_config(CONFIGS / "digits.yaml")
    assert config.name == "digits" and config.data.batch_size == 32
    assert config.teacher.train.lr == pytest.approx(0.003)
    assert config.distill.temperature == 4.0 and config.teacher.train.epochs == 30


def test_overrides_nested_keys_and_types(tmp_path):
    config = load_config(CONFIGS / "digits.yaml", [
        "student.train.lr=1e-3",  # YAML 1.1 reads this as a string: must still be a float
        "student.neuron.tau=3",  # int -> float
        "data.batch_size=8",
        "data.augment=false",
        "teacher.train.grad_clip=null",
        "student.train.grad_clip=2.5",
        "distill.taps=[stage1, stage2]",
        "distill.adapter_kernel=3",
        "student.neuron.detach_reset=true",  # a YAML boolean for a string literal option
        "data.root=/some/where",
        "name = spaced ",
    ])
    assert config.student.train.lr == 0.001 and isinstance(config.student.train.lr, float)
    assert config.student.neuron.tau == 3.0 and isinstance(config.student.neuron.tau, float)
    assert config.data.batch_size == 8 and config.data.augment is False
    assert config.teacher.train.grad_clip is None and config.student.train.grad_clip == 2.5
    assert config.distill.taps == ["stage1", "stage2"] and config.distill.adapter_kernel == 3
    assert config.student.neuron.detach_reset == "true"
    assert config.data.root == "/some/where" and config.name == "spaced"
    # untouched keys keep the file's values; the last override wins
    assert config.teacher.train.lr == pytest.approx(0.003)
    assert load_config(None, ["seed=1", "seed=2"]).seed == 2


def test_parse_override():
    assert parse_override("a.b=0.5") == ("a.b", 0.5)
    assert parse_override("a=x=y") == ("a", "x=y")
    assert parse_override("a=") == ("a", None)


@pytest.mark.parametrize("override, message", [
    ("data.batchsize=3", r"unknown config key 'data.batchsize'; did you mean 'data.batch_size'\?"),
    ("studnet.time_steps=2", r"unknown config key 'studnet'; did you mean 'student'\?"),
    ("distill.kd=everything", r"distill.kd: 'everything' is not one of \['both', 'logits'"),
    ("data.batch_size=abc", r"data.batch_size: expected an integer, got 'abc'"),
    ("data.batch_size=2.5", r"data.batch_size: expected an integer, got 2.5"),
    ("data.augment=3", r"data.augment: expected true or false, got 3"),
    ("student.train.lr=fast", r"student.train.lr: expected a number, got 'fast'"),
    ("student.time_steps=0", r"student.time_steps must be >= 1 \(got 0\)"),
    ("data.val_fraction=1.0", r"data.val_fraction must be in \[0, 1\)"),
    ("student.neuron.tau=1", r"student.neuron.tau must be > 1"),
    ("teacher.train.lr=-1", r"teacher.train.lr must be > 0 \(got -1.0\)"),
    ("data=3", r"data: expected a mapping of DataConfig fields"),
    ("seed.x=1", r"'seed' is a value, not a section"),
])
def test_bad_keys_and_values_name_the_key(override, message):
    # "seed.x" needs an existing value at "seed" to collide with
    base = ["seed=0"] if override.startswith("seed.") else []
    with pytest.raises(ConfigError, match=message):
        load_config(None, base + [override])


@pytest.mark.parametrize("override, message", [
    ("data.batch_size", r"override 'data.batch_size' is not of the form key=value"),
    ("=3", r"override '=3' has an empty key"),
    ("data.batch_size=[1", r"override 'data.batch_size=\[1': value is not valid YAML"),
])
def test_bad_set_syntax(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(listy)
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  archh: convnet\n")
    with pytest.raises(ConfigError, match=r"'model.archh'; did you mean 'model.arch'"):
        load_config(typo)
    both = ["teacher.checkpoint=a.pt", "teacher.weights=b.pth"]
    with pytest.raises(ConfigError, match="exclusive"):
        load_config(None, both)


def test_resolved_config_round_trips(tmp_path):
    config = load_config(CONFIGS / "digits.yaml", ["student.train.lr=2e-4", "distill.taps=[stage2]",
                                                   "student.neuron.detach_reset=false",
                                                   "distill.adapter_kernel=3"])
    path = tmp_path / "run" / "config.yaml"
    dump_config(config, path)
    assert yaml.safe_load(path.read_text())["student"]["train"]["lr"] == 2e-4
    again = load_config(path)
    assert again == config
    assert config_from_dict(config.to_dict()) == config
    assert isinstance(again, Config)
