"""The walkthrough notebooks (notebooks/*.ipynb): stored without outputs, and each executes without
an error, in order, in the Jupyter kernel of this environment (nbclient, kernel ``python3``).

The notebooks run with the notebooks folder as their working directory and write only under
``SAKD_NOTEBOOK_RUNS``, here one temporary folder shared by the three, so notebook 2 exports
notebook 1's student and notebook 3 simulates notebook 2's export, as when a user runs them in
order. About three minutes on two CPU cores."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# notebook -> (its folder under SAKD_NOTEBOOK_RUNS, files it must have written there)
EXPECTED = {
    "01_sakd_distillation.ipynb": ("01_distillation", [
        "teacher/best.pt", "student/best.pt", "scratch/best.pt", "student/metrics.jsonl",
        "training_curves.png"]),
    "02_export_and_inspect.ipynb": ("02_export", [
        "export/network.h5", "export/network.nir", "export/network.netx.h5", "export/student.onnx",
        "export/teacher.onnx", "export/export_report.json", "graph_student.png",
        "graph_residual.png"]),
    "03_on_chip_simulation.ipynb": ("03_simulation", [
        "raster.png", "firing_rates.png", "energy.png", "simulate_report.json"]),
    "04_deploy_your_own_spikingjelly_model.ipynb": ("04_own_model", [
        "weights.pt", "export_py/network.h5", "export_py/export_report.json",
        "export_cli/network.h5", "export_cli/network.nir", "export_cli/student.onnx",
        "firing_rates.png"]),
    "05_detection_on_chip.ipynb": ("05_detection", [
        "teacher/last.pt", "student/last.pt", "export/network.h5", "export/export_report.json",
        "simulate_report.json", "boxes.png"]),
}
# notebook -> (the earlier notebook's output it uses when present, what it makes otherwise)
REUSES = {
    "02_export_and_inspect.ipynb": ("01_distillation/student/best.pt", "quick_student"),
    "03_on_chip_simulation.ipynb": ("02_export/export/network.h5", "export"),
}
CELL_TIMEOUT_S = 300


def _run(notebook: nbformat.NotebookNode, runs: Path, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("SAKD_NOTEBOOK_RUNS", str(runs))  # the kernel inherits the environment
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError (with the cell and its traceback) on an error
    return notebook


def _outputs(notebook: nbformat.NotebookNode, output_type: str | None = None) -> list[dict]:
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
            if output_type is None or out.output_type == output_type]


def test_notebooks_are_listed_and_stored_without_outputs():
    found = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
    assert found == sorted(EXPECTED), "notebooks/ and tests/test_notebooks.py disagree"
    readme = (NOTEBOOKS / "README.md").read_text()
    for name in found:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(notebook)
        assert name in readme, f"notebooks/README.md does not list {name}"
        assert notebook.metadata.get("kernelspec", {}).get("name") == "python3", name
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (
                    f"{name}, cell {index}: stored with outputs; clear them before committing")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """The SAKD_NOTEBOOK_RUNS folder shared by the notebooks of this module, in order."""
    return tmp_path_factory.mktemp("notebook_runs")


@pytest.mark.slow
def test_kernel_is_this_environment(runs, monkeypatch):
    """The ``python3`` kernel must be this interpreter (the venv's), not a system Python."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import sys, sakd\nprint(sys.prefix)\nprint(sakd.__file__)")])
    _run(notebook, runs, monkeypatch)
    prefix, package = _outputs(notebook, "stream")[0]["text"].split()
    assert Path(prefix).resolve() == Path(sys.prefix).resolve()
    assert Path(package).resolve() == Path(sys.modules["sakd"].__file__).resolve()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPECTED))  # in this order: 2 uses 1's outputs, 3 uses 2's
def test_notebook_executes(name, runs, monkeypatch):
    notebook = _run(nbformat.read(NOTEBOOKS / name, as_version=4), runs, monkeypatch)
    errors = _outputs(notebook, "error")
    assert not errors, f"{name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    folder, files = EXPECTED[name]
    missing = [f for f in files if not (runs / folder / f).is_file()]
    assert not missing, f"{name} did not write {missing} under {runs / folder}"
    figures = [out for out in _outputs(notebook) if "image/png" in out.get("data", {})]
    assert figures, f"{name} displayed no figure"
    for f in files:
        if f.endswith(".png"):
            assert (runs / folder / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f
    reused, fallback = REUSES.get(name, (None, None))
    if reused is not None and (runs / reused).is_file():  # run in order: no work done twice
        assert not (runs / folder / fallback).exists(), f"{name} did not reuse {reused}"
