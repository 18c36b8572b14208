"""pyproject.toml reads without a warning from the setuptools it asks for."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_project_metadata_reads_without_a_warning(monkeypatch):
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} predates the SPDX licence string (77)")
    from setuptools.config import pyprojecttoml
    from setuptools.dist import Distribution

    monkeypatch.chdir(REPO)  # the readme is found beside pyproject.toml
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = pyprojecttoml.apply_configuration(Distribution(), "pyproject.toml")
    assert [str(w.message).splitlines()[0] for w in caught] == []
    assert dist.metadata.license_expression == "MIT"
