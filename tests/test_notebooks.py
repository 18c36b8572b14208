"""The lecture notebooks run top to bottom in a fresh kernel, and show their pictures inline.

They are stored without outputs. The kernel is ``python3``: the running interpreter, found through
ipykernel (in a fresh virtual environment, ``pip install ipykernel`` is all it needs).
"""
from __future__ import annotations

import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
PICTURES = ("image/svg+xml", "image/png", "text/html")
# The data sets beside the checkout (CI has them); the homework notebook falls back to the shipped digits.
SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def test_there_is_one_notebook_per_lecture_topic():
    names = [p.stem for p in NOTEBOOKS]
    assert names == ["01_convolution_basics", "02_mlp", "03_cnn", "04_backprop_by_picture", "05_gradient_health",
                     "06_keras_lecture", "07_homework_fashion_mnist"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_is_stored_without_outputs_and_runs(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    # The kernel imports this checkout's package, and draws with matplotlib's inline backend.
    root = str(pathlib.Path(__file__).parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    if SHARED_DATA.is_dir() and not os.environ.get("AUTOGRAD_CNN_DATA"):  # real Fashion-MNIST where present
        monkeypatch.setenv("AUTOGRAD_CNN_DATA", str(SHARED_DATA))
    client = nbclient.NotebookClient(nb, timeout=120, startup_timeout=60, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell on any error; ends the kernel
    shown = [kind for c in nb.cells if c.cell_type == "code" for out in c.outputs
             for kind in out.get("data", {}) if kind in PICTURES]
    assert shown, f"{path.name} displayed no picture"
