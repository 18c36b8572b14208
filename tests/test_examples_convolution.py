"""The lecture numbers that examples/convolution_basics.py shows."""
from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

_PATH = pathlib.Path(__file__).resolve().parent.parent / "examples" / "convolution_basics.py"
_spec = importlib.util.spec_from_file_location("convolution_basics", _PATH)
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)


def test_1d_cross_correlations_of_the_lecture():
    assert demo.cross_correlate_1d(demo.RAMP, [-1, 1]) == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    assert demo.cross_correlate_1d(demo.SPARSE, [1, 0, 1]) == [3, 0, 3, 0, 0, 0, 3, 0, 6, 0, 3, 0]


def test_convolution_is_cross_correlation_with_the_flipped_kernel():
    assert demo.convolve_1d(demo.RAMP, [-1, 1]) == [0, 0, 0, -1, -1, -1, -1, 0, 0, 0]
    signal, kernel = [1.0, 2.0, 0.0, -1.0, 3.0], [1.0, 2.0, 3.0]
    assert np.allclose(demo.convolve_1d(signal, kernel), np.convolve(signal, kernel, mode="valid"))


def test_classic_kernels_on_the_lecture_patch():
    values = {name: demo.apply_kernel(demo.PATCH, k)[0, 0] for name, k in demo.KERNELS.items()}
    assert values["vertical edge"] == pytest.approx(-63)
    assert values["box blur"] == pytest.approx(demo.PATCH.mean())
    assert values["edge"] == pytest.approx(4 * 147 - 198 - 205 - 173 - 170)
    assert values["sharpen"] == pytest.approx(values["edge"] + 147)


def test_blur_keeps_a_constant_image_and_edge_kernels_zero_it():
    flat = np.full((5, 5), 7.0)
    assert np.allclose(demo.apply_kernel(flat, demo.KERNELS["box blur"]), 7.0)
    assert np.allclose(demo.apply_kernel(flat, demo.KERNELS["edge"]), 0.0)


def test_output_size_formula_matches_conv2d():
    table = demo.output_size_table(28, 3)
    assert [(case, formula) for case, formula, _ in table] == [("valid", 26), ("same", 28), ("stride 2", 13)]
    for _, formula, shape in table:
        assert tuple(shape) == (formula, formula)
    assert demo.output_size(5, 3, padding=1, stride=2) == 3


def test_lecture_max_pooling():
    assert demo.max_pool_example().tolist() == [[6, 3], [8, 8]]


def test_main_prints_and_saves_the_picture(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    if demo.sample_digit() is None:
        pytest.skip("no sample digit shipped in this installation")
    demo.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "-63.00" in out and "[[6, 3], [8, 8]]" in out
    assert (tmp_path / "kernels_on_a_digit.png").stat().st_size > 1000


def test_main_without_a_digit_skips_the_picture(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "sample_digit", lambda: None)
    demo.main([str(tmp_path)])
    assert "picture skipped" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())
