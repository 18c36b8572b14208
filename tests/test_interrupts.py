"""Ctrl-C never replaces a good file: the command line's outputs under a real SIGINT, and the
helpers that write them whole."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import autograd_cnn as ag
from autograd_cnn import cli, cli_files, models

ROOT = Path(__file__).resolve().parents[1]


def _child(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "autograd_cnn", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _interrupt_after(child: subprocess.Popen, marker: str, timeout: float = 120) -> tuple[str, str]:
    """Read the child's stderr until a line starts with ``marker``, send it SIGINT (Ctrl-C), and
    return (stdout, stderr). A watchdog ends the child by its pid if it hangs."""
    watchdog = threading.Timer(timeout, lambda: child.poll() is None and os.kill(child.pid, signal.SIGKILL))
    watchdog.start()
    try:
        seen = []
        for line in child.stderr:
            seen.append(line)
            if line.startswith(marker):
                os.kill(child.pid, signal.SIGINT)
                break
        out, err = child.communicate(timeout=timeout)
        return out, "".join(seen) + err
    finally:
        watchdog.cancel()
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()


def test_ctrl_c_in_train_keeps_the_saved_file_and_exits_130(tmp_path):
    keep = tmp_path / "keep.npz"
    good = models.lecture_mlp()
    ag.save(good.state_dict(), keep)
    before = keep.read_bytes()
    child = _child(["train", "--model", "lecture-mlp", "--limit", "256", "--batch-size", "32",
                    "--epochs", "500", "--save", "keep.npz"], tmp_path)
    out, err = _interrupt_after(child, "Epoch 2/500")
    assert child.returncode == 130, err[-2000:]
    assert keep.read_bytes() == before  # the good file is untouched
    partial = tmp_path / "keep.interrupted.npz"
    assert f"keep.npz is unchanged; the part-trained weights are in {partial.name}" in err
    assert "test accuracy" not in out  # not evaluated
    model = models.lecture_mlp()
    model.load_state_dict(ag.load(partial))  # whole, and the part-trained weights
    assert not all((a.numpy() == b.numpy()).all() for a, b in zip(model.parameters(), good.parameters()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.interrupted.npz", "keep.npz"]


def test_ctrl_c_in_train_without_a_previous_file(tmp_path):
    child = _child(["train", "--model", "lecture-mlp", "--limit", "256", "--batch-size", "32",
                    "--epochs", "500", "--save", "new.npz"], tmp_path)
    _, err = _interrupt_after(child, "Epoch 1/500")
    assert child.returncode == 130, err[-2000:]
    assert "new.npz was not written; the part-trained weights are in new.interrupted.npz" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.interrupted.npz"]


def test_interrupted_name_says_so():
    assert cli.interrupted_name("out/keep.npz") == os.path.join("out", "keep.interrupted.npz")
    assert cli.interrupted_name("w") == "w.interrupted.npz"


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_written_whole_leaves_the_old_file_on_any_failure(tmp_path, error):
    target = tmp_path / "g.svg"
    target.write_text("the good picture")
    with pytest.raises(error):
        with cli.written_whole(str(target)) as part:
            assert Path(part).parent == tmp_path and part.endswith(".svg")  # the writer's format from the suffix
            Path(part).write_text("half a pic")
            raise error()
    assert target.read_text() == "the good picture"
    assert [p.name for p in tmp_path.iterdir()] == ["g.svg"]
    with cli.written_whole(str(target)) as part:
        Path(part).write_text("new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["g.svg"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~cli_files._umask()  # not the temporary file's 0600


def test_folder_written_whole_swaps_in_the_new_folder_or_keeps_the_old(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "index.html").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with cli.folder_written_whole(str(frames)) as part:
            (Path(part) / "index.html").write_text("half")
            raise KeyboardInterrupt
    assert (frames / "index.html").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["frames"]
    with cli.folder_written_whole(str(frames)) as part:
        (Path(part) / "index.html").write_text("new")
    assert (frames / "index.html").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["frames"]


def test_ctrl_c_in_graph_and_export_keeps_the_old_file(tmp_path, monkeypatch, capsys):
    """The interrupt comes while the writer has written half the file (to the temporary name)."""
    from autograd_cnn import visual

    def half_then_ctrl_c(loss, path, *args, **kwargs):
        Path(path).write_text("<svg half")
        raise KeyboardInterrupt
    monkeypatch.setattr(visual, "save", half_then_ctrl_c)
    graph = tmp_path / "g.svg"
    graph.write_text("<svg>good</svg>")
    assert cli.main(["graph", "--out", str(graph)]) == 130
    assert graph.read_text() == "<svg>good</svg>" and [p.name for p in tmp_path.iterdir()] == ["g.svg"]

    pytest.importorskip("onnx")
    import autograd_cnn.onnx as agonnx

    def export_half(model, example, path, **kwargs):
        Path(path).write_bytes(b"\x08half")
        raise KeyboardInterrupt
    monkeypatch.setattr(agonnx, "export", export_half)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"good model")
    assert cli.main(["export", "--out", str(model)]) == 130
    assert model.read_bytes() == b"good model" and sorted(p.name for p in tmp_path.iterdir()) == ["g.svg", "m.onnx"]
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["graph", "--out", "g.jpg"], "--out g.jpg: .jpg is no format graph writes; end the name in .svg"),
    (["graph", "--out", "g.svg", "--format", "png"], "--out g.svg: the name ends in .svg but --format is png"),
    (["export", "--out", "m.txt"], "--out m.txt: the file name must end in .onnx"),
    (["train", "--save", "w.pt"], "--save w.pt: the file name must end in .npz"),
])
def test_output_formats_are_checked_before_any_work(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "_images", lambda *a, **k: pytest.fail("loaded data before checking the output"))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"autograd-cnn {argv[0]}: {message}") and err.count("\n") == 1
    assert not list(tmp_path.iterdir())
