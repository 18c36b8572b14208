"""The autograd-cnn command: info, train, demo, bench (short runs on the shipped digits)."""
from __future__ import annotations

import os
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


def test_solo_in_turn_times_each_framework_in_a_process_of_its_own(tmp_path):
    """The benchmarks' timing harness: one child process per framework and run, each reporting the
    median of its own calls, the environment of a variant passed on to its children only."""
    sys.path.insert(0, str(cli.BENCHMARKS.parent))
    try:
        import common
    finally:
        sys.path.pop(0)
    script = tmp_path / "sleeper.py"
    script.write_text(
        "import argparse, os, sys, time\n"
        f"sys.path.insert(0, {str(cli.BENCHMARKS.parent)!r})\n"
        "import common\n"
        "parser = argparse.ArgumentParser()\n"
        "common.add_solo_arguments(parser)\n"
        "args = parser.parse_args()\n"
        "seconds = {'ours': 0.001, 'torch': 0.004}[args.solo] * (2 if os.environ.get('SLOWER') else 1)\n"
        "print('noise before the result')\n"
        "common.solo_child(lambda: time.sleep(seconds), repeat=3, warmup=1)\n")
    who = {"ours": ("ours", {}), "torch": ("torch", {}), "slow torch": ("torch", {"SLOWER": "1"})}
    results = common.solo_in_turn(str(script), ["sleep"], runs=2, who=who)
    assert set(results) == {("sleep", name) for name in who}
    assert all(len(times) == 2 for times in results.values())
    ours, torch, slow = (min(results[("sleep", name)]) for name in who)
    assert 0.001 <= ours < torch < slow and slow >= 0.008
    text = common.solo_report(results, {"sleep": "a sleep"}, "sleeps")
    assert "2 processes each" in text and text.count("| a sleep") == 2 and "| a sleep; slow torch |" in text
    assert common.spread([1.0, 2.0, 3.0]) == 1.0


def test_images_come_in_each_model_s_layout():
    for input_shape in ((1, 28, 28), (28, 28)):  # the CNNs', the MLPs'
        (x, y), (x_test, _) = cli._images("sample", input_shape, limit=3)
        assert x.shape == (3, *input_shape) and x_test.shape == (3, *input_shape)
        assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1 and y.dtype == np.int64


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "autograd_cnn", "info"], capture_output=True, text=True,
                            timeout=120, cwd=Path(__file__).parent)
    assert result.returncode == 0 and "default backend:" in result.stdout


# --------------------------------------------------------------------------- nothing lost, one-line errors

REPO = Path(__file__).resolve().parents[1]


def _run(*args, env=None, cwd=None, timeout=120):
    """``python -m autograd_cnn ARGS`` in a process of its own, with this checkout on the path."""
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "autograd_cnn", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd or REPO)


def test_help_and_info_work_when_the_backend_variable_is_wrong():
    wrong = {"AUTOGRAD_CNN_BACKEND": "tpu"}
    helped = _run("--help", env=wrong)
    assert helped.returncode == 0 and "usage: autograd-cnn" in helped.stdout, helped.stderr[-2000:]
    info = _run("info", env=wrong)
    assert info.returncode == 0, info.stderr[-2000:]
    assert "AUTOGRAD_CNN_BACKEND=tpu: unknown backend 'tpu'" in info.stdout
    trained = _run("train", "--epochs", "1", "--limit", "8", env=wrong)
    assert trained.returncode != 0 and "Traceback" not in trained.stderr
    assert trained.stderr.strip().splitlines()[-1].startswith("autograd-cnn train: AUTOGRAD_CNN_BACKEND=tpu")
    # A program that imports the package still gets the error at import, as the variable asks.
    imported = subprocess.run([sys.executable, "-c", "import autograd_cnn"], capture_output=True, text=True,
                              timeout=120, env={**os.environ, **wrong, "PYTHONPATH": str(REPO)})
    assert imported.returncode != 0 and "BackendError: AUTOGRAD_CNN_BACKEND=tpu" in imported.stderr


def test_graph_refuses_a_negative_batch(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["graph", "--batch", "-3"])
    assert info.value.code == 2 and "--batch: must be at least 1, got -3" in capsys.readouterr().err


def test_graph_with_a_missing_script_is_a_one_line_error(tmp_path):
    result = _run("graph", "--script", "missing.py", "--out", str(tmp_path / "g.svg"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "autograd-cnn graph: --script missing.py: no such file"


@pytest.mark.parametrize("argv, option", [
    (["train", "--model", "lecture-mlp", "--epochs", "1", "--limit", "64", "--save", "{file}/w.npz"], "--save"),
    (["train", "--model", "lecture-mlp", "--epochs", "1", "--limit", "64", "--save", "{folder}"], "--save"),
    (["demo", "--epochs", "1", "--limit", "64", "--out", "{file}"], "--out"),
    (["graph", "--out", "{file}/g.svg"], "--out"),
    (["graph", "--out", "{folder}/g.svg", "--frames", "{file}/frames"], "--frames"),
    (["export", "--out", "{file}/m.onnx"], "--out"),
])
def test_every_output_path_is_checked_before_any_work(tmp_path, capsys, argv, option):
    """A file where a folder is expected (or a folder where a file is) fails at once, before
    training: it does not lose the run at the end (root writes anywhere: no permission bits here)."""
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "folder").mkdir()
    argv = [a.format(file=tmp_path / "file", folder=tmp_path / "folder") for a in argv]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert "Epoch" not in captured.err and "Total params" not in captured.out  # nothing ran
    line = captured.err.strip()
    assert line.startswith(f"autograd-cnn {argv[0]}: {option} ") and "\n" not in line
    assert "is a file, not a folder" in line or "is a folder" in line


def test_a_path_that_cannot_be_written_is_refused_before_training(tmp_path, capsys, monkeypatch):
    """The check writes a file there and removes it: permission bits, a read-only disk or a full
    one all fail it (here the write itself is made to fail, as root may write anywhere)."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert cli.main(["train", "--model", "lecture-mlp", "--limit", "64", "--save", str(tmp_path / "w.npz")]) == 2
    err = capsys.readouterr().err
    assert f"--save {tmp_path / 'w.npz'}: cannot write in {tmp_path}" in err and "Permission denied" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv, message", [
    (["train", "--lr", "nan"], "--lr: must be a finite number > 0, got nan"),
    (["train", "--lr", "-0.1"], "--lr: must be a finite number > 0, got -0.1"),
    (["train", "--seed", "-1"], "--seed: must be at least 0, got -1"),
    (["graph", "--collapse-depth", "0"], "--collapse-depth: must be at least 1, got 0"),
])
def test_numbers_are_checked_by_the_parser(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_the_demo_s_closing_hint_runs_as_printed(tmp_path):
    pytest.importorskip("matplotlib")
    demo = _run("demo", "--epochs", "1", "--limit", "64", "--no-graphs", "--out", "out", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr[-2000:]
    hint = next(line for line in demo.stdout.splitlines() if line.startswith("Next: "))
    command = hint[len("Next: "):].split(" shows ")[0]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    shown = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env=env)
    assert shown.returncode == 0, f"{command}\n{shown.stderr[-2000:]}"
    assert (tmp_path / "out" / "filters.png").is_file()


def test_train_report_prints_the_classification_report_and_draws_the_confusion_matrix(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "w" / "mlp.npz"
    assert cli.main(["train", "--model", "lecture-mlp", "--epochs", "1", "--limit", "300", "--save", str(path),
                     "--report"]) == 0
    out = capsys.readouterr().out
    report = out.split("test accuracy: ")[1]
    assert report.splitlines()[1].split() == ["precision", "recall", "f1-score", "support"]
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert f"    accuracy                           {accuracy:.2f}       300" in report
    picture = tmp_path / "w" / "mlp.confusion.png"
    assert picture.read_bytes()[:4] == b"\x89PNG" and f"wrote the confusion matrix to {picture}" in out
