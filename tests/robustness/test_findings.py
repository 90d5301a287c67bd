"""One test per robustness finding that the two standing suites (bad CLI input, reader fuzz) do not
already cover: trusted metadata, NaN weights, silent changes in NIR/netx files sakd wrote, the
optional float-agreement step, QAT evaluation figures, counts notes, the export folder."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sakd.cli import app
from sakd.errors import SakdError

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], terminal_width=200)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_student):
    from sakd.app.export import ExportOptions, export_checkpoint

    out = tmp_path_factory.mktemp("findings") / "export"
    return export_checkpoint(ExportOptions(trained_student, out)).out_dir


def edited_copy(src, dst, fn):
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)
    return dst


# -- trusted metadata ------------------------------------------------------------------------------


def test_metadata_that_does_not_describe_the_network_is_an_error(exported, tmp_path):
    """model_args.num_classes = 10^6 in network.h5 used to change the ANN baseline silently."""
    from sakd.hardware.ir import Network
    from sakd.hardware.netfile import read_network, write_network

    net = read_network(exported / "network.h5")
    meta = dict(net.metadata, model_args={**net.metadata["model_args"], "num_classes": 10**6})
    forged = Network(net.input, net.populations, net.projections, net.target, meta, net.time_steps)
    folder = tmp_path / "forged"
    folder.mkdir()
    write_network(forged, folder / "network.h5")  # a consistent file, but its metadata lies
    result = invoke("energy", folder, "--limit", "8")
    assert result.exit_code == 2 and "says 1000000 classes" in " ".join(result.output.split())


def test_absurd_or_fractional_time_steps_in_a_file_are_errors(exported, tmp_path):
    from sakd.hardware.netfile import read_network

    for value in (10**7, 4.7, 0):
        path = edited_copy(exported / "network.h5", tmp_path / f"t{value}.h5",
                           lambda f, v=value: f.attrs.__setitem__("time_steps", v))
        with pytest.raises(SakdError, match="time_steps"):
            read_network(path)


def test_nan_weights_name_the_layer(trained_student):
    from sakd.export.lower import lower
    from sakd.train.jobs import load_network

    net, _ = load_network(trained_student)
    with torch.no_grad():
        net.stage1[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(SakdError, match="conv 'stage1.0'.*NaN"):
        lower(net, input_shape=(1, 8, 8), input_range=(-2, 2))


# -- silent changes of files sakd wrote ------------------------------------------------------------


def test_a_netx_file_missing_its_readout_layer_is_refused(exported, tmp_path):
    from sakd.formats.netx import read_netx

    def drop_last(f):
        layers = f["layer"]
        del layers[str(len(layers) - 1)]

    path = edited_copy(exported / "network.netx.h5", tmp_path / "short.netx.h5", drop_last)
    with pytest.raises(SakdError, match="digest"):
        read_netx(path)


def test_a_deleted_netx_bias_is_refused(exported, tmp_path):
    from sakd.formats.netx import read_netx

    def drop_bias(f):
        for key in f["layer"]:
            if "bias" in f["layer"][key]:
                del f["layer"][key]["bias"]
                return

    path = edited_copy(exported / "network.netx.h5", tmp_path / "nobias.netx.h5", drop_bias)
    with pytest.raises(SakdError, match="digest"):
        read_netx(path)


def test_a_flipped_netx_weight_is_refused(exported, tmp_path):
    from sakd.formats.netx import read_netx

    def flip(f):
        w = f["layer/1/weight"][()]
        w.reshape(-1)[0] = w.reshape(-1)[0] + 2
        del f["layer/1/weight"]
        f["layer/1"].create_dataset("weight", data=w)

    path = edited_copy(exported / "network.netx.h5", tmp_path / "flip.netx.h5", flip)
    with pytest.raises(SakdError, match="digest"):
        read_netx(path)


def test_damaged_sakd_metadata_is_not_a_foreign_file(exported, tmp_path):
    from sakd.formats.netx import read_netx

    path = edited_copy(exported / "network.netx.h5", tmp_path / "meta.netx.h5",
                       lambda f: f.attrs.__setitem__("sakd", "{not json"))
    with pytest.raises(SakdError, match="sakd metadata"):
        read_netx(path)
    assert read_netx(path, trust_metadata=False).populations  # as a foreign file, on request


def test_a_delay_node_added_to_a_nir_file_is_refused(exported, tmp_path):
    import nir

    from sakd.formats.nir import read_nir

    graph = nir.read(exported / "network.nir")
    src, dst = next((a, b) for a, b in graph.edges if b in graph.nodes
                    and type(graph.nodes[b]).__name__ == "CubaLIF")
    shape = np.asarray(graph.nodes[dst].tau_mem).shape
    graph.nodes["extra_delay"] = nir.Delay(delay=np.full(shape, 1e-4, np.float32))
    graph.edges.remove((src, dst))
    graph.edges += [(src, "extra_delay"), ("extra_delay", dst)]
    nir.write(tmp_path / "delay.nir", graph)
    with pytest.raises(SakdError, match="nodes or edges differ"):
        read_nir(tmp_path / "delay.nir")


# -- optional steps stay optional ------------------------------------------------------------------


def test_simulation_runs_when_the_recorded_checkpoint_is_unreadable(exported, tmp_path, trained_student):
    from sakd.hardware.ir import Network
    from sakd.hardware.netfile import read_network, write_network

    junk = tmp_path / "gone.pt"
    junk.write_bytes(b"not a checkpoint")
    net = read_network(exported / "network.h5")
    moved = Network(net.input, net.populations, net.projections, net.target,
                    dict(net.metadata, checkpoint=str(junk)), net.time_steps)
    folder = tmp_path / "moved"
    folder.mkdir()
    write_network(moved, folder / "network.h5")
    result = invoke("simulate", folder, "--limit", "10")
    assert result.exit_code == 0, result.output
    report = json.loads((folder / "simulate_report.json").read_text())
    assert report["float_agreement"] is None
    assert any("float agreement skipped" in n for n in report["notes"])


# -- counts and figures ----------------------------------------------------------------------------


def test_a_limit_above_the_split_is_noted(exported, tmp_path):
    out = tmp_path / "r.json"
    result = invoke("simulate", exported, "--limit", "1000", "-o", out)
    assert result.exit_code == 0
    report = json.loads(out.read_text())
    assert report["samples"] == 359 and any("--limit 1000" in n for n in report["notes"])
    assert "--limit 1000 is more than the 359 samples" in " ".join(result.output.split())


def test_eval_of_a_qat_checkpoint_shows_float_and_integer(tmp_path, trained_teacher, tiny_splits,
                                                          tiny_overrides):
    from sakd.app.train import prepare_qat
    from sakd.config import load_config
    from sakd.train.distributed import DistEnv
    from sakd.train.jobs import distill_student

    config = load_config(None, [*tiny_overrides, f"teacher.checkpoint={trained_teacher}",
                                "student.train.epochs=1", "student.qat=true"])
    distill_student(config, tmp_path / "qat", DistEnv(), progress=False, splits=tiny_splits,
                    prepare_qat=prepare_qat)
    out = tmp_path / "eval.json"
    result = invoke("eval", tmp_path / "qat" / "last.pt", "--device", "cpu", "--json", out)
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["qat"] and figures["integer_accuracy"] is not None
    text = " ".join(result.output.split())
    assert "(float forward)" in text and "with the chip's integer weights" in text


def test_a_teacher_arch_that_contradicts_the_checkpoint_is_an_error(tmp_path, trained_teacher):
    result = invoke("distill", "--teacher", trained_teacher, "--set", "teacher.arch=resnet18",
                    "--set", "model.arch=test_convnet", "-o", tmp_path / "s", "--device", "cpu")
    assert result.exit_code == 2 and "teacher.arch is resnet18" in " ".join(result.output.split())


# -- the export folder -----------------------------------------------------------------------------


def test_a_failed_export_leaves_the_old_folder_whole(exported, tmp_path, trained_student, monkeypatch):
    from sakd.app import export as export_job
    from sakd.app.export import ExportOptions

    folder = tmp_path / "keep"
    shutil.copytree(exported, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export_job, "calibrate_lowering", fail)
    with pytest.raises(KeyboardInterrupt):
        export_job.export_checkpoint(ExportOptions(trained_student, folder, calibrate=5))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]  # no staging folder left
