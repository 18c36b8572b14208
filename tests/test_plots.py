"""The homework's pictures: the confusion matrix, the most confident mistakes, augmentations."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from autograd_cnn import metrics, visual
from autograd_cnn.data import transforms
from autograd_cnn.errors import ArgumentError, ShapeError
from autograd_cnn.keras import layers

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def _cells(ax):
    return [t.get_text() for t in ax.texts]


def test_confusion_picture_writes_each_count_and_each_rows_fraction(tmp_path):
    t = np.array([0, 0, 1, 2, 2, 2, 1])
    p = np.eye(3)[[0, 1, 1, 2, 0, 2, 1]]  # probabilities' argmax
    fig = visual.plot_confusion_matrix(t, p, ["a", "b", "c"], path=tmp_path / "out" / "cm.png")
    assert (tmp_path / "out" / "cm.png").read_bytes()[:4] == b"\x89PNG"
    counts, fractions = fig.axes
    assert _cells(counts) == [str(v) for v in metrics.confusion_matrix(t, p).ravel()]
    assert _cells(fractions)[:3] == ["0.50", "0.50", "0.00"]
    assert [x.get_text() for x in counts.get_yticklabels()] == ["a", "b", "c"]
    assert "macro F1" in fig._suptitle.get_text()
    assert len(visual.plot_confusion_matrix(t, p, normalize=True).axes) == 1


def test_mistakes_come_most_confident_first_with_both_labels(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((6, 1, 4, 4))
    t = np.array([0, 1, 2, 0, 1, 2])
    probs = np.array([[0.9, 0.1, 0], [0.6, 0.4, 0], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1], [0, 0.05, 0.95],
                      [0.3, 0.3, 0.4]])
    fig = visual.plot_mistakes(images, t, probs, n=25, path=tmp_path / "m.png", class_names=["x", "y", "z"])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["true: y\npredicted: z (0.95)", "true: x\npredicted: y (0.70)",
                      "true: y\npredicted: x (0.60)"]
    assert (tmp_path / "m.png").exists()
    fig = visual.plot_mistakes(images[:, 0], t, probs.argmax(axis=1), n=1)  # labels: no confidence, first n
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["true: 1\npredicted: 0"]


def test_show_augmentations_draws_originals_beside_n_draws(tmp_path):
    images = np.random.default_rng(1).random((5, 1, 8, 8))
    fig = visual.show_augmentations(transforms.RandomHorizontalFlip(), images, n=3, rows=2,
                                    path=tmp_path / "a.png")
    assert len(fig.axes) == 2 * 4 and (tmp_path / "a.png").exists()
    shown = [ax.images[0].get_array() for ax in fig.axes[:4]]
    for draw in shown[1:]:
        assert np.allclose(draw, shown[0]) or np.allclose(draw, shown[0][:, ::-1])
    fig = visual.show_augmentations(layers.RandomRotation(0.1), images.transpose(0, 2, 3, 1), n=2)
    assert len(fig.axes) == 4 * 3 and "RandomRotation" in fig._suptitle.get_text()


def test_bad_input_names_the_argument():
    with pytest.raises(ArgumentError, match="class_names"):
        visual.plot_confusion_matrix([0, 1], [0, 1], class_names=["a", "b", "c", "d"][:1])
    with pytest.raises(ArgumentError, match="normalize"):
        visual.plot_confusion_matrix([0, 1], [0, 1], normalize="rows")
    with pytest.raises(ShapeError, match="y_pred"):
        visual.plot_mistakes(np.zeros((3, 4, 4)), [0, 1, 1], [0, 1])
    with pytest.raises(ArgumentError, match="n must"):
        visual.plot_mistakes(np.zeros((2, 4, 4)), [0, 1], [1, 0], n=0)


def test_importing_visual_does_not_load_matplotlib():
    code = "import sys, autograd_cnn.visual; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
