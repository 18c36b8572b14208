"""The lecture examples, run through their main functions on small parts of the shipped digits."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import autograd_cnn as ag
from autograd_cnn import data, models

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"


def example(name: str):
    """Import examples/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mnist_mlp_follows_the_lecture(capsys):
    accuracy = example("mnist_mlp").main(["--dataset", "sample", "--epochs", "2", "--limit", "1000"])
    out = capsys.readouterr().out
    assert 0.6 < accuracy <= 1.0  # 1,000 digits, 2 epochs; chance is 0.1
    assert "407,050" in out or "407050" in out
    assert "prediction[0].argmax():" in out and f"test accuracy: {accuracy}" in out


def test_mnist_cnn_follows_the_lecture(capsys):
    accuracy = example("mnist_cnn").main(["--dataset", "sample", "--epochs", "2", "--limit", "600"])
    out = capsys.readouterr().out
    assert 0.3 < accuracy <= 1.0
    assert "104,202" in out or "104202" in out
    assert "(None, 128, 3, 3)" in out  # the summary's shapes, channels first


def test_auto_falls_back_to_the_shipped_sample(offline, capsys):
    example("mnist_mlp").main(["--epochs", "1", "--limit", "200"])
    out = capsys.readouterr().out
    assert "mnist is not available" in out and "fashion-mnist is not available" in out
    assert "using the 5,000 MNIST digits that ship with the package" in out


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").is_file(), reason="no shared Fashion-MNIST here")
def test_auto_takes_fashion_mnist_when_mnist_is_missing(offline, monkeypatch, capsys):
    monkeypatch.setenv(data.DATA_ENV, str(FASHION.parent))
    example("mnist_cnn").main(["--epochs", "1", "--limit", "200"])
    out = capsys.readouterr().out
    assert "mnist is not available" in out and "fashion-mnist is not available" not in out
    assert "ship with the package" not in out


def test_what_the_cnn_sees_writes_the_pictures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    written = example("what_the_cnn_sees").main(["--epochs", "1", "--limit", "256", "--out", str(tmp_path)])
    names = sorted(p.name for p in written)
    assert names == ["feature_maps_conv1.png", "feature_maps_conv2.png", "feature_maps_conv3.png", "filters.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_what_the_cnn_sees_reads_saved_weights(tmp_path):
    pytest.importorskip("matplotlib")
    sees = example("what_the_cnn_sees")
    ag.manual_seed(3)
    model = models.lecture_cnn()
    model.save(str(tmp_path / "cnn.npz"))
    loaded = sees.trained_cnn(str(tmp_path / "cnn.npz"), epochs=0, limit=None)
    first = list(loaded.children())[0].weight.numpy()
    assert (first == model[0].weight.numpy()).all()
    (_, _), (x_test, _) = data.load_images("sample", limit=1)
    maps = sees.feature_maps(loaded, x_test[0])
    assert [(name, m.shape) for name, m in maps] == [
        ("conv1", (32, 26, 26)), ("conv2", (64, 11, 11)), ("conv3", (128, 3, 3))]
    assert all((m >= 0).all() for _, m in maps)  # ReLU outputs
