"""network.h5: round trip, and a clear NetworkFileError for every kind of bad file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from sakd.hardware.ir import Input, IRError, Network, Projection
from sakd.hardware.netfile import SCHEMA_VERSION, NetworkFileError, read_network, write_network
from sakd.hardware.neurons.cuba_lif import lif_population
from sakd.hardware.simulator import simulate


def make_net() -> Network:
    rng = np.random.default_rng(0)
    inp = Input("img", (2, 6, 6), "graded", bits=8, scale=12.5)
    pops = (
        lif_population(
            "stage1.lif",
            (4, 6, 6),
            du=4095,
            dv=2048,
            vth=300,
            bias_mant=np.array([1, -2, 3, 0]),
            bias_exp=6,
            scale=1.5,
            origin="features.1",
        ),
        lif_population(
            "stage2.lif",
            (4, 3, 3),
            du=100,
            dv=0,
            vth=2**17 - 1,
            bias_mant=rng.integers(-4096, 4096, (4, 3, 3)),
            bias_exp=7,
            origin="features.4",
        ),
        lif_population(
            "fc", (10,), du=4095, dv=0, vth=0, bias_mant=-5, role="readout", scale=3.0, origin="fc"
        ),
    )
    projs = (
        Projection(
            "stage1.conv",
            "img",
            "stage1.lif",
            "conv2d",
            2 * rng.integers(-128, 128, (4, 2, 3, 3)),
            padding=(1, 1),
        ),
        Projection(
            "stage2.conv",
            "stage1.lif",
            "stage2.lif",
            "conv2d",
            2 * rng.integers(-128, 128, (4, 2, 3, 3)),
            stride=(2, 2),
            padding=(1, 1),
            groups=2,
        ),
        Projection(
            "head",
            "stage2.lif",
            "fc",
            "dense",
            2 * rng.integers(-128, 128, (10, 36)),
            weight_exp=-3,
        ),
        Projection(
            "skip",
            "img",
            "fc",
            "dense",
            2 * rng.integers(-128, 128, (10, 72)),
            weight_exp=2,
            delay=2,
        ),
        # a big weight array (stored compressed)
        Projection(
            "big", "stage1.lif", "fc", "dense", 2 * rng.integers(-128, 128, (10, 144)), delay=1
        ),
    )
    meta = {
        "architecture": "tiny",
        "classes": ["a"] * 10,
        "normalization": {"mean": [0.5]},
        "exporter": "0.1.0",
        "git": "abc123",
    }
    return Network(inp, pops, projs, "loihi2", meta, time_steps=4)


def test_round_trip(tmp_path):
    net = make_net()
    path = write_network(net, tmp_path / "sub" / "network.h5")
    back = read_network(path)
    assert back.equals(net)
    assert back.metadata == net.metadata
    assert back.latencies == net.latencies
    assert [p.origin for p in back.populations] == ["features.1", "features.4", "fc"]
    assert back.input.scale == 12.5 and back.populations[0].scale == 1.5
    assert back.time_steps == 4 and back.target is not None and back.digest() == net.digest()
    # layout and dtypes of the schema
    with h5py.File(path) as f:
        # no upsample projection: the lowest schema that holds it, 3 (docs/ir.md)
        assert f.attrs["format"] == "sakd-ir" and f.attrs["schema_version"] == 3 < SCHEMA_VERSION
        assert sorted(f["populations"]) == ["000", "001", "002"]
        assert f["populations/000"].attrs["model"] == "cuba_lif"
        assert f["populations/000/neuron/bias_mant"].dtype == np.int32
        assert f["populations/000/neuron"].attrs["du"] == 4095
        assert f.attrs["time_steps"] == 4 and f.attrs["digest"] == net.digest()
        assert f["projections/001/weight"].fletcher32  # a checksum on every array
        assert f["projections/001/weight"].dtype == np.int16
        assert f["target"].attrs["weight_max"] == 254
    x = net.input.encode(np.random.default_rng(1).random((3, 2, 6, 6)))
    np.testing.assert_array_equal(
        simulate(back, x, time_steps=2).readout_v, simulate(net, x, time_steps=2).readout_v
    )


def test_write_is_atomic_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "network.h5"
    write_network(make_net(), path)
    write_network(make_net(), path)  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["network.h5"]
    with pytest.raises(TypeError):
        write_network("not a network", tmp_path / "x.h5")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["network.h5"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such network file"):
        read_network(tmp_path / "nope.h5")


def test_garbage_file(tmp_path):
    path = tmp_path / "network.h5"
    path.write_bytes(b"this is not HDF5" * 100)
    with pytest.raises(NetworkFileError, match="not a readable HDF5 file"):
        read_network(path)


def test_truncated_file(tmp_path):
    path = write_network(make_net(), tmp_path / "network.h5")
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 100, 600):
        bad = tmp_path / f"cut{cut}.h5"
        bad.write_bytes(data[:cut])
        with pytest.raises(NetworkFileError, match=str(bad.name)):
            read_network(bad)


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def test_wrong_format(tmp_path):
    path = _edit(
        write_network(make_net(), tmp_path / "n.h5"),
        lambda f: f.attrs.__setitem__("format", "netx"),
    )
    with pytest.raises(NetworkFileError, match=r"n.h5: / attr 'format': is 'netx', not 'sakd-ir'"):
        read_network(path)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f.create_group("layer")
    with pytest.raises(
        NetworkFileError, match="plain.h5: / attr 'format': missing attribute: not a sakd IR file"
    ):
        read_network(plain)


def test_newer_schema(tmp_path):
    path = _edit(
        write_network(make_net(), tmp_path / "n.h5"),
        lambda f: f.attrs.__setitem__("schema_version", 7),
    )
    with pytest.raises(
        NetworkFileError, match=r"written by a newer sakd \(schema 7 > 4\); upgrade sakd"
    ):
        read_network(path)


def test_a_schema_2_file_still_reads_with_its_recorded_digest(tmp_path):
    """Schema 2 had no schedule, limits, message_bits or port; its digest did not cover them."""
    net = make_net()

    def to_schema_2(f):
        f.attrs["schema_version"] = 2
        for key in ("schedule", "limits"):
            del f.attrs[key]
        for g in f["populations"].values():
            del g.attrs["message_bits"]
        for g in f["projections"].values():
            del g.attrs["port"]

    path = _edit(write_network(net, tmp_path / "n.h5"), to_schema_2)
    back = read_network(path)
    assert back.equals(net) and back.digest() == net.digest()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda f: f["populations/001/neuron"].attrs.__delitem__("du"),
            "/populations/001: neuron model 'cuba_lif': missing parameter",
        ),
        (
            lambda f: f["projections/002"].__delitem__("weight"),
            "/projections/002/weight: missing dataset",
        ),
        (lambda f: f.__delitem__("input"), "/input: missing group"),
        (lambda f: f.__delitem__("metadata"), "/metadata: missing group"),
        (
            lambda f: f["target"].attrs.__delitem__("max_delay"),
            "/target attr 'max_delay': missing attribute",
        ),
        (
            lambda f: f.attrs.__delitem__("schema_version"),
            "/ attr 'schema_version': missing attribute",
        ),
    ],
)
def test_missing_key(tmp_path, edit, match):
    path = _edit(write_network(make_net(), tmp_path / "n.h5"), edit)
    with pytest.raises(NetworkFileError, match=match):
        read_network(path)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        # node-level value -> the node's key and the IR's message
        (
            lambda f: f["populations/000"].attrs.__setitem__("role", "teacher"),
            "/populations/000: population 'stage1.lif': role 'teacher'",
        ),
        # target-level value (checked by the Network) -> still the node's key
        (
            lambda f: f["populations/001/neuron"].attrs.__setitem__("dv", 5000),
            r"/populations/001: population 'stage2.lif': dv 5000 is outside \[0, 4096\]",
        ),
        (
            lambda f: f["projections/000/weight"].__setitem__((0, 0, 0, 0), 255),
            "/projections/000: projection 'stage1.conv': weight 255 is outside",
        ),
        (
            lambda f: f["projections/002"].attrs.__setitem__("weight_exp", 9),
            "/projections/002: projection 'head': weight_exp 9 is outside",
        ),
        (
            lambda f: f["projections/003"].attrs.__setitem__("delay", 0),
            "/populations/002: population 'fc': unequal latency",
        ),
        (
            lambda f: f["projections/000"].attrs.__setitem__("source", "nothing"),
            "/projections/000: projection 'stage1.conv': unknown source 'nothing'",
        ),
        # wrong types in the file
        (
            lambda f: f["populations/000/neuron"].attrs.__setitem__("vth", 1.5),
            "/populations/000/neuron attr 'vth': expected an integer, got 1.5",
        ),
        (
            lambda f: f["target"].attrs.__setitem__("weight_max", 126),
            "/target attr 'weight_max': is 126 but target 'loihi2' has 254",
        ),
        (
            lambda f: f["metadata"].attrs.__setitem__("json", "{not json"),
            "/metadata attr 'json': not valid JSON",
        ),
        (
            lambda f: f.attrs.__setitem__("target", "loihi9"),
            "/target attr 'name': is 'loihi2' but / attr 'target' is 'loihi9'",
        ),
        (
            lambda f: f["populations"].move("002", "005"),
            "/populations: entries .* are not numbered 0..2",
        ),
    ],
)
def test_bad_values(tmp_path, edit, match):
    path = _edit(write_network(make_net(), tmp_path / "n.h5"), edit)
    with pytest.raises(NetworkFileError, match=match) as info:
        read_network(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, IRError) and isinstance(info.value, ValueError)


def _write_schema_1(network: Network, path) -> None:
    """A file in the layout sakd 0.1 wrote (schema 1): CUBA-LIF parameters on the population,
    T in the metadata, no digest."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "sakd-ir"
        f.attrs["schema_version"] = 1
        f.attrs["target"] = network.target.name
        tgt = f.create_group("target")
        for key, value in network.target.as_dict().items():
            tgt.attrs[key] = value
        import json

        meta = dict(network.metadata, time_steps=network.time_steps)
        f.create_group("metadata").attrs["json"] = json.dumps(meta)
        g = f.create_group("input")
        for key in ("name", "encoding", "bits", "scale"):
            g.attrs[key] = getattr(network.input, key)
        g.attrs["shape"] = np.asarray(network.input.shape)
        for i, pop in enumerate(network.populations):
            g = f.create_group(f"populations/{i:03d}")
            for key in ("name", "role", "scale", "origin"):
                g.attrs[key] = getattr(pop, key)
            g.attrs["shape"] = np.asarray(pop.shape)
            for key in ("du", "dv", "vth", "bias_exp"):
                g.attrs[key] = getattr(pop.neuron, key)
            g.create_dataset("bias_mant", data=pop.neuron.bias_mant.astype(np.int32))
        for i, proj in enumerate(network.projections):
            g = f.create_group(f"projections/{i:03d}")
            for key in ("name", "source", "target", "kind", "weight_exp", "delay", "groups"):
                g.attrs[key] = getattr(proj, key)
            for key in ("stride", "padding", "dilation"):
                g.attrs[key] = np.asarray(getattr(proj, key))
            g.create_dataset("weight", data=proj.weight.astype(np.int16))


def test_reads_schema_1(tmp_path):
    """Files sakd 0.1 wrote still read: a CUBA-LIF per population, T from the metadata."""
    net = make_net()
    _write_schema_1(net, tmp_path / "v1.h5")
    back = read_network(tmp_path / "v1.h5")
    assert back.time_steps == 4 and "time_steps" not in back.metadata
    assert [p.neuron.equals(q.neuron) for p, q in zip(back.populations, net.populations)] == [True] * 3
    x = net.input.encode(np.random.default_rng(2).random((2, 2, 6, 6)))
    np.testing.assert_array_equal(simulate(back, x).readout_v, simulate(net, x).readout_v)


def test_a_valid_edit_is_caught_by_the_digest(tmp_path):
    """A change that keeps every value legal (a weight 2 -> 4) is not silently a new network."""
    def edit(f):
        w = f["projections/002/weight"][()]
        w[0, 0] = 4 if w[0, 0] != 4 else 2
        del f["projections/002/weight"]
        f["projections/002"].create_dataset("weight", data=w)

    path = _edit(write_network(make_net(), tmp_path / "n.h5"), edit)
    with pytest.raises(NetworkFileError, match="digest.*does not match the file's contents"):
        read_network(path)
