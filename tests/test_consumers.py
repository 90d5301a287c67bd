"""The exports against independent consumers, on a small digits student trained here (test
ConvNet, T = 4; teacher and student 3 epochs each on the digits training split; ~20 s).

NIR (``network.nir``, the *integer* network, voltages in v_int/64, "layered" timing) is read by
code that is not sakd's: spikingjelly 2.0's ``import_from_nir`` (nirtorch's interpreter with
spikingjelly's node maps and neurons) and nirtorch's interpreter with NIR's own neuron equations
(``sakd.app.verify.run_nir_nirtorch``). Each is run step by step for T steps on the encoded integer
input; the prediction is the argmax of the readout's voltage after T steps (NIR edges are
instantaneous, so NIR step t is the float SNN's step t). What spikingjelly cannot take as written,
and how it is read instead (the file is never changed; see ``sakd.app.verify.run_nir_spikingjelly``):

- dt: our writer stores τ as float32, so τ_syn = dt is float32(1e-4) < 1e-4 and spikingjelly
  refuses the file at dt = 1e-4 ("time constants must be at least dt"); the readers use
  dt = float32(1e-4), which also makes dt/τ_mem · r exactly 1.
- The readout is an ``I`` node, which spikingjelly does not map ("Unknown node type"): it is
  dropped from the imported graph and integrated by NIR's equation (v += dt·r·I) outside it.
- **> vs ≥**: NIR, Lava and sakd's simulator fire on ``v > θ``; spikingjelly (and the float SNN)
  on ``v ≥ θ``. The integer network's voltages land exactly on θ often, so with spikingjelly's
  own rule the file is a different network: measured on this student 99.4 % prediction agreement
  with the simulator and 98.6 % with the float SNN (readout voltages off by up to 572 v-units).
  With the thresholds raised to the next float64 (``v ≥ θ'`` ⟺ ``v > θ``) spikingjelly, and the
  nirtorch reader, reproduce the simulator: 100 % of the predictions, readout voltages within
  1.3e-4 (dt·r computed from float32 values).

Agreement with the float SNN (``load_network(ckpt)`` → ``snn(x)``): the NIR file is the quantized
network, so a reader that reproduces it matches the float SNN exactly as well as sakd's simulator
does. Measured on digits students like this one (seeds 1-4, 3-5 epochs, T 4-8, test ConvNet and
ConvNet): 97.2-99.2 % of the 359 test predictions (this one: 99.16 %), the same figure for the
simulator and both readers (checked on four of them). All of the gap is the quantization (8-bit
weights, 8-bit graded input): the samples whose float-SNN prediction
survives running the float SNN with the chip's dequantized weights and input ("stable", 97-99 %
of them) agree at 99.7-100 %. So the ≥ 99 % criterion is asserted on the stable samples, and
the overall figure (below 99 % for some seeds) is asserted at ≥ 97 % and reported.

ONNX: onnxruntime against torch, max |logit difference| ≤ 1e-4 on the digits test set for the
student SNN (unrolled over T) and the ANN teacher. Measured: 0.0 (student) and ~3e-6 (teacher).
A spike whose membrane potential lies within float32 rounding of the threshold could go the other
way in onnxruntime and move a logit by a whole weight (tests/export/test_onnx.py); so the strict
bound is asserted on the samples whose every potential stays ``MARGIN`` away from the threshold,
and on all samples only as many may exceed it as there are near-threshold samples.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

T = 4
OVERRIDES = [
    "name=consumers", "seed=3", "model.arch=test_convnet", "data.augment=false",
    "data.batch_size=32", "data.eval_batch_size=256", "data.val_fraction=0.1",
    "teacher.train.epochs=3", "teacher.train.lr=0.01",
    f"student.time_steps={T}", "student.train.epochs=3", "student.train.lr=0.003",
]
AGREEMENT = 0.99
ATOL = 1e-4
MARGIN = 1e-5  # as tests/export/test_onnx.py: ~2x the largest ORT-vs-torch difference of H
ALL = 100_000  # --samples: the whole test split


@pytest.fixture(scope="session")
def consumer_export(tmp_path_factory, digits_splits) -> SimpleNamespace:
    """A digits teacher and SAKD student trained here, exported with ``formats="auto"``."""
    from sakd.app.export import ExportOptions, export_checkpoint
    from sakd.config import load_config
    from sakd.train.distributed import DistEnv
    from sakd.train.jobs import distill_student, train_teacher

    root = tmp_path_factory.mktemp("consumers")
    train_teacher(load_config(None, OVERRIDES), root / "teacher", DistEnv(), progress=False,
                  splits=digits_splits)
    teacher = root / "teacher" / "last.pt"
    distill_student(load_config(None, [*OVERRIDES, f"teacher.checkpoint={teacher}"]),
                    root / "student", DistEnv(), progress=False, splits=digits_splits)
    student = root / "student" / "last.pt"
    result = export_checkpoint(ExportOptions(student, root / "export"))
    assert {"ir", "nir", "onnx", "onnx-teacher"} <= set(result.files), result.files
    return SimpleNamespace(dir=root / "export", student=student, teacher=teacher)


@pytest.fixture(scope="session")
def test_split(consumer_export):
    from sakd.app.common import load_samples

    samples = load_samples("digits", "test", None)
    return samples.x, samples.y


# ---------------------------------------------------------------------------------------------
# NIR


def test_nir_through_independent_readers(consumer_export, test_split):
    """The NIR file through spikingjelly's importer and nirtorch's interpreter on the whole
    digits test split: the simulator's predictions (≥ 99 %, measured 100 %) and the float SNN's
    (≥ 99 % where the quantization leaves the float prediction unchanged; see the module
    docstring for > vs ≥ and for the quantization's share)."""
    import nir

    from sakd.app.nir_readers import run_nir_spikingjelly
    from sakd.app.verify import verify_nir
    from sakd.hardware.netfile import read_network
    from sakd.train.jobs import load_network

    x, _ = test_split
    report = verify_nir(consumer_export.dir, ALL)
    assert report.samples == len(x) and report.time_steps == T
    readers = report.readers
    print(json.dumps({k: {f: getattr(v, f) for f in ("agreement_vs_simulator",
                                                     "agreement_vs_float_snn",
                                                     "agreement_vs_float_snn_on_stable",
                                                     "max_readout_diff_vs_simulator")}
                      for k, v in readers.items()}, indent=1))

    for name in ("spikingjelly", "nirtorch"):  # NIR's rule, v > theta
        entry = readers[name]
        assert entry.loaded, entry
        assert entry.agreement_vs_simulator >= AGREEMENT, (name, entry)
        assert entry.max_readout_diff_vs_simulator <= 1e-2, (name, entry)  # v-units
        assert entry.agreement_vs_float_snn_on_stable >= AGREEMENT, (name, entry)
        # the reader reproduces the simulator, so it agrees with the float SNN as the simulator
        # does (the quantization's share, which depends on the training, is not the reader's)
        assert abs(entry.agreement_vs_float_snn - report.simulator_vs_float_snn) <= 1 - AGREEMENT
    quantization = report.quantization
    assert quantization["stable_samples"] >= 0.95 * len(x), quantization
    assert report.ok and report.reader == "spikingjelly"
    # spikingjelly's own rule (v >= theta) reads another network: reported, loosely bounded
    assert readers["spikingjelly (own rule)"].loaded
    assert readers["spikingjelly (own rule)"].agreement_vs_simulator >= 0.95

    # the same figures computed here, outside verify_nir's bookkeeping
    network = read_network(consumer_export.dir / "network.h5")
    graph = nir.read(str(consumer_export.dir / "network.nir"))
    dt = float(np.float32(1e-4))
    out = run_nir_spikingjelly(graph, network.input.encode(x.numpy()), T, dt)
    snn, _ = load_network(consumer_export.student)
    with torch.no_grad():
        float_pred = snn(x).argmax(1).numpy()
    agreement = float((out.argmax(1) == float_pred).mean())
    assert agreement == pytest.approx(readers["spikingjelly"].agreement_vs_float_snn)


def test_nir_unadapted_import_fails_only_as_documented(consumer_export):
    """spikingjelly's importer on the file as written, without sakd.app.verify's adaptations: today
    it refuses it for the two reasons in the module docstring (float32 τ_syn < dt at dt = 1e-4;
    the ``I`` readout at dt = float32(1e-4)). A writer change that makes it load is welcome; a
    new reason to refuse the file is not."""
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    path = str(consumer_export.dir / "network.nir")
    for dt, documented in ((1e-4, "at least dt"), (float(np.float32(1e-4)), "Unknown node type")):
        try:
            import_from_nir(path, dt=dt)
        except ValueError as exc:
            assert documented in str(exc) or "Unknown node type" in str(exc), (dt, exc)


# ---------------------------------------------------------------------------------------------
# ONNX


@pytest.mark.parametrize("which", ["student", "teacher"])
def test_onnxruntime_matches_torch_on_digits(consumer_export, test_split, which):
    from sakd.app.verify import onnx_verdict
    from sakd.formats.onnx import check_onnx, threshold_margins
    from sakd.train.jobs import load_network

    x, _ = test_split
    ckpt = consumer_export.student if which == "student" else consumer_export.teacher
    path = consumer_export.dir / ("student.onnx" if which == "student" else "teacher.onnx")
    network, _ = load_network(ckpt)
    result = check_onnx(network, path, x, atol=ATOL)
    print(which, result)
    assert result["samples"] == len(x)
    if which == "teacher":
        assert result["max_abs_diff"] <= ATOL and result["prediction_agreement"] == 1.0, result
        return
    margins = threshold_margins(network, x)
    clear = margins >= MARGIN
    assert clear.float().mean() >= 0.9, f"{int((~clear).sum())} of {len(x)} near threshold"
    strict = result if bool(clear.all()) else check_onnx(network, path, x[clear], atol=ATOL)
    assert strict["max_abs_diff"] <= ATOL and strict["prediction_agreement"] == 1.0, strict
    assert result["samples_over_atol"] <= int((~clear).sum()), result
    # verify's rule: every sample over atol is a spike flipped at a threshold
    assert onnx_verdict(result) and result["unexplained"] == 0, result


# ---------------------------------------------------------------------------------------------
# the command


def test_verify_cli_onnx_and_nir(consumer_export):
    from typer.testing import CliRunner

    from sakd.cli import app

    out = consumer_export.dir / "verify_consumers.json"
    result = CliRunner().invoke(app, ["verify", str(consumer_export.dir), "--onnx", "--nir",
                                      "--samples", "64", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "NIR reader spikingjelly" in result.output and "verified" in result.output
    report = json.loads(Path(out).read_text())
    assert report["ok"] and report["nir"]["ok"] and report["nir"]["samples"] == 64
    assert report["nir"]["readers"]["nirtorch"]["agreement_vs_simulator"] >= AGREEMENT
    assert {c["model"] for c in report["onnx"]} == {"student", "teacher"}
    assert report["network_digest"]
