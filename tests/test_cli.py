"""The autograd-cnn command: info, train, demo, bench (short runs on the shipped digits)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import cli, data, models


def test_every_command_has_help():
    parser = cli.build_parser()
    for name in ("demo", "train", "info", "bench"):
        assert name in cli.COMMANDS
        with pytest.raises(SystemExit) as info:
            parser.parse_args([name, "--help"])
        assert info.value.code == 0


def test_info(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"autograd_cnn {ag.__version__}" in out and "available backends: numpy" in out


def test_train_mlp_and_save(tmp_path, capsys):
    path = tmp_path / "ckpt" / "mlp.npz"
    assert cli.main(["train", "--model", "lecture-mlp", "--epochs", "2", "--limit", "600",
                     "--save", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sample: 600 training and 600 test images" in out
    assert "407,050" in out or "407050" in out  # the summary
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert 0.5 < accuracy <= 1.0  # ten classes: chance is 0.1
    model = models.lecture_mlp()
    model.load_state_dict(ag.load(str(path)))
    (x, y), _ = data.load_images("sample", limit=600)
    probs = model.predict(x)
    assert (probs.argmax(1) == y).mean() > 0.5  # the saved weights are the trained ones


def test_train_cnn_with_an_optimizer_and_learning_rate(capsys):
    assert cli.main(["train", "--model", "lecture-cnn", "--epochs", "1", "--limit", "256",
                     "--optimizer", "adam", "--lr", "0.002", "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "104,202" in out or "104202" in out
    assert "test accuracy: " in out


def test_train_without_the_data_set_says_what_to_do(offline, capsys):
    assert cli.main(["train", "--dataset", "mnist", "--limit", "10"]) == 1
    err = capsys.readouterr().err
    assert "mnist: could not find train-images-idx3-ubyte.gz" in err and "AUTOGRAD_CNN_DATA" in err


def test_train_rejects_unknown_names(capsys):
    for argv in (["train", "--model", "resnet-1000"], ["train", "--dataset", "imagenet"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_trains_saves_and_draws(tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert cli.main(["demo", "--epochs", "1", "--limit", "256", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "104,202" in out or "104202" in out
    assert "test accuracy: " in out
    assert (out_dir / "lecture_cnn.npz").is_file()
    model = models.lecture_cnn()
    model.load_state_dict(ag.load(str(out_dir / "lecture_cnn.npz")))
    if "graph pictures skipped" in out:
        pytest.skip("the graph renderer is not available: " + out.split("graph pictures skipped: ")[1][:200])
    for kind in ("forward", "backward", "both"):
        svg = out_dir / f"lecture_cnn_{kind}.svg"
        assert svg.is_file() and svg.read_text().lstrip().startswith(("<?xml", "<svg"))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_demo_without_dot_keeps_the_training_output(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # `dot` can no longer be found
    assert cli.main(["demo", "--epochs", "1", "--limit", "128", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "test accuracy: " in out and (tmp_path / "out" / "lecture_cnn.npz").is_file()
    assert "graph pictures skipped: visual: Graphviz's `dot` program is not on PATH" in out
    assert not list((tmp_path / "out").glob("*.svg"))
    for kind in ("forward", "backward", "both"):  # DOT text needs no `dot`
        assert (tmp_path / "out" / f"lecture_cnn_{kind}.dot").read_text().startswith("digraph")


def test_bench_outside_a_source_checkout(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "BENCHMARKS", tmp_path / "benchmarks" / "run_all.py")
    assert cli.main(["bench"]) == 1
    assert "the benchmarks live in the source repository" in capsys.readouterr().err


def test_bench_runs_the_suite_script():
    assert cli.BENCHMARKS.is_file()  # this test runs from the source checkout
    # An unknown benchmark name makes run_all.py stop before running anything.
    result = subprocess.run([sys.executable, "-m", "autograd_cnn", "bench", "--only", "no-such-benchmark"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "no benchmark named no-such-benchmark" in result.stderr
    assert "accuracy" in result.stderr  # it lists the ones there are


def test_run_all_finds_every_benchmark_script():
    sys.path.insert(0, str(cli.BENCHMARKS.parent))
    try:
        import run_all
    finally:
        sys.path.pop(0)
    names = [p.name for p in run_all.scripts()]
    assert "accuracy.py" in names and "run_all.py" not in names and "common.py" not in names
    assert names == sorted(names)
    assert run_all.accepts(cli.BENCHMARKS.parent / "accuracy.py", "--quick")


def test_images_come_in_each_model_s_layout():
    for input_shape in ((1, 28, 28), (28, 28)):  # the CNNs', the MLPs'
        (x, y), (x_test, _) = cli._images("sample", input_shape, limit=3)
        assert x.shape == (3, *input_shape) and x_test.shape == (3, *input_shape)
        assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1 and y.dtype == np.int64


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "autograd_cnn", "info"], capture_output=True, text=True,
                            timeout=120, cwd=Path(__file__).parent)
    assert result.returncode == 0 and "default backend:" in result.stdout
