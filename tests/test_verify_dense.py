"""``sakd verify`` on detection and segmentation exports: predictions per location of a readout
map, the float-SNN comparison per readout, and the references that cannot apply to an export
refused before any work, with the reason (the end-to-end runs are in test_detection_chip.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sakd.app.common import JobError
from sakd.app.verify import (
    VerifyOptions,
    check_references,
    location_predictions,
    readout_agreement,
    verify_job,
)


def two_readouts(metadata: dict | None = None):
    """graded x (1, 4, 4) -conv-> c (2, 4, 4) -conv-> cls (3, 4, 4) and box (4, 4, 4) readouts."""
    from sakd.hardware.ir import Input, Network, Population, Projection
    from sakd.hardware.neurons import CubaLif
    from sakd.hardware.target import LOIHI2

    rng = np.random.default_rng(0)
    c = Population("c", (2, 4, 4), CubaLif(du=4095, dv=2048, vth=40))
    cls = Population("cls_logits.0", (3, 4, 4), CubaLif.readout(LOIHI2), role="readout")
    box = Population("bbox_reg.0", (4, 4, 4), CubaLif.readout(LOIHI2), role="readout")
    return Network(Input("x", (1, 4, 4), "graded", bits=8, scale=4.0), (c, cls, box), (
        Projection("x_c", "x", "c", "conv2d", rng.integers(-20, 60, (2, 1, 3, 3)) * 2,
                   padding=(1, 1)),
        Projection("c_cls", "c", "cls_logits.0", "conv2d", rng.integers(-30, 60, (3, 2, 1, 1)) * 2),
        Projection("c_box", "c", "bbox_reg.0", "conv2d", rng.integers(-30, 60, (4, 2, 1, 1)) * 2)),
        time_steps=2, metadata=metadata or {})


def test_predictions_are_the_largest_channel_at_each_location():
    values = np.zeros((2, 3, 2, 2))
    values[0, 2, 0, 1] = values[1, 1, 1, 0] = 1.0
    want = np.zeros((2, 2, 2), np.int64)
    want[0, 0, 1], want[1, 1, 0] = 2, 1
    assert np.array_equal(location_predictions(values, (3, 2, 2)), want)
    assert np.array_equal(location_predictions(values.reshape(2, -1), (3, 2, 2)), want)
    # a classifier's (K,) readout: one prediction per sample, ties to the lowest index
    assert location_predictions(np.array([[0.0, 2.0, 2.0], [5.0, 1.0, 0.0]]), (3,)).tolist() == [1, 0]


def test_a_class_readout_agreement_over_every_location_and_over_candidates():
    rng = np.random.default_rng(0)
    reference = 0.3 * rng.normal(size=(2, 3, 4, 4)) - 3.0  # background: every logit low
    reference[:, 1, 0, 0] = 2.0  # one foreground point per sample, class 1
    reference[0, :, 3, 3] = [-2.5, -3.0, -4.0]
    chip = reference.copy()
    chip[0, :, 3, 3] = [-3.0, -2.5, -4.0]  # a background point whose best class differs
    row = readout_agreement("cls_logits.0", (3, 4, 4), chip, reference, classes=True)
    assert row.locations == 16 and row.argmax_compared == 32
    assert row.argmax_agreement == pytest.approx(31 / 32)
    assert row.max_abs_diff == pytest.approx(float(np.abs(chip - reference).max()))
    assert row.correlation is not None and row.float_max_abs == float(np.abs(reference).max())
    # over the points whose best class logit passes the threshold on either side: the two
    # foreground points, both equal
    row = readout_agreement("cls_logits.0", (3, 4, 4), chip, reference, classes=True,
                            threshold=-1.386)
    assert row.argmax_compared == 2 and row.argmax_agreement == 1.0
    box = readout_agreement("bbox_reg.0", (4, 4, 4), chip[:, :1].repeat(4, 1),
                            reference[:, :1].repeat(4, 1), classes=False)
    assert box.argmax_agreement is None and box.argmax_compared is None
    constant = readout_agreement("r", (3,), np.ones((2, 3)), np.ones((2, 3)), classes=True)
    assert constant.correlation is None and constant.argmax_agreement == 1.0


def test_a_readout_of_another_shape_names_the_readout():
    with pytest.raises(JobError, match="readout 'r'.*not this network's"):
        readout_agreement("r", (3, 2, 2), np.zeros((2, 12)), np.zeros((2, 3, 4, 4)), classes=True)


@pytest.fixture()
def dense_export(tmp_path):
    """An export folder of a two-readout network whose export skipped NIR and ONNX."""
    from sakd.hardware.netfile import write_network

    folder = tmp_path / "export"
    folder.mkdir()
    network = two_readouts({"task": "detection", "checkpoint": str(tmp_path / "gone.pt")})
    write_network(network, folder / "network.h5")
    skipped = {"nir": "NIR has no unflatten node", "onnx": "the ONNX writer takes a classifier"}
    (folder / "export_report.json").write_text(json.dumps({"skipped": skipped}))
    return folder, network


@pytest.mark.parametrize("option, message", [
    ("onnx", "--onnx: no ONNX file .* the export could not write one: the ONNX writer takes"),
    ("nir", "--nir: no NIR file .* the export could not write one: NIR has no unflatten node"),
    ("lava", "--lava: this network has 2 readouts \\(cls_logits.0, bbox_reg.0\\); the Lava "
             "reference runner reads one readout population"),
    ("float_snn", "--float: the checkpoint recorded in the network file .*gone.pt.* is missing"),
])
def test_a_reference_that_cannot_apply_is_refused_with_the_reason(dense_export, option, message):
    folder, network = dense_export
    with pytest.raises(JobError, match=message):
        check_references(VerifyOptions(folder, **{option: True}), network)


def test_the_job_refuses_before_any_work(dense_export, monkeypatch):
    import sakd.app.verify as verify

    folder, _ = dense_export

    def ran(*args, **kwargs):
        raise AssertionError("a reference ran")

    monkeypatch.setattr(verify, "verify_float", ran)
    with pytest.raises(JobError, match="--nir"):  # checked before --float runs
        verify_job(VerifyOptions(folder, nir=True, float_snn=True))
    assert not (folder / "verify_report.json").exists()
    with pytest.raises(JobError, match="choose at least one reference: .*--float"):
        verify_job(VerifyOptions(folder))
