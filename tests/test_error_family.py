"""One error family: every error the public API raises for bad input is an AutogradError (and the
matching built-in), never a bare ValueError, TypeError, RuntimeError or KeyError, so that
``except ag.AutogradError`` catches whatever the library refuses, and each message names the
call, the value and what to do."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import autograd_cnn
import autograd_cnn as ag
from autograd_cnn import data, nn, visual
from autograd_cnn.nn import callbacks

PACKAGE = Path(autograd_cnn.__file__).parent
BARE = {"ValueError", "TypeError", "RuntimeError", "KeyError"}


def bare_raises(source: str) -> list[tuple[int, str]]:
    """(line, name) of each ``raise ValueError(...)`` (or a bare TypeError, RuntimeError,
    KeyError, called or not) in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in BARE:
                found.append((node.lineno, exc.id))
    return sorted(found)


def test_the_walker_finds_a_bare_raise_in_every_form():
    source = ("def f(x):\n    if x:\n        raise ValueError('no')\n    raise KeyError\n"
              "try:\n    pass\nexcept OSError as err:\n    raise RuntimeError('x') from err\n"
              "raise ShapeError('fine')\nraise err\n")
    assert bare_raises(source) == [(3, "ValueError"), (4, "KeyError"), (8, "RuntimeError")]


def test_no_module_raises_a_bare_builtin_error():
    """The errors module defines the family; everywhere else raises its members."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        found += [f"{path.relative_to(PACKAGE.parent)}:{line} raises a bare {name}"
                  for line, name in bare_raises(path.read_text(encoding="utf-8"))]
    assert not found, ("raise an AutogradError subclass (errors.py: ArgumentError, ArgumentTypeError, "
                       "UsageError, ...) instead:\n" + "\n".join(found))


# --------------------------------------------------------------------------- the calls a user tried


def test_load_state_dict_of_a_list_names_what_it_takes():
    with pytest.raises(ag.ArgumentTypeError, match=r"Sequential\.load_state_dict: expected a state dict.*got list"):
        nn.Sequential(nn.Linear(3, 2)).load_state_dict([1, 2])
    with pytest.raises(ag.ArgumentTypeError, match="keys that are not text"):
        nn.Sequential(nn.Linear(3, 2)).load_state_dict({0: np.zeros(2)})


def test_fetch_with_one_mirror_as_a_string_asks_for_a_list():
    with pytest.raises(ag.ArgumentTypeError, match=r"fetch: mirrors must be a list of base URLs, e\.g\. mirrors=\["):
        data.fetch("mnist", mirrors="http://127.0.0.1:9/", download_missing=False)


@pytest.mark.parametrize("test_size", [0, -5, 5000, 2.5, True])
def test_load_sample_with_no_test_images_says_the_range(test_size):
    with pytest.raises(ag.ArgumentError, match="load_sample: test_size must be a whole number .* from 1 to 4999"):
        data.load_sample(split=True, test_size=test_size)


def test_onnx_export_to_a_folder_or_with_a_float64_example_says_what_to_do(tmp_path):
    pytest.importorskip("onnx")
    from autograd_cnn import onnx as exporter

    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(exporter.ExportError, match=r"is a folder; give the file to write, e\.g\..*model\.onnx"):
        exporter.export(model, np.zeros((1, 3), np.float32), tmp_path)
    with pytest.raises(exporter.ExportError, match=r"example input is float64 but Sequential's weights are float32"):
        exporter.export(model, np.zeros((1, 3)), tmp_path / "m.onnx")
    with pytest.raises(exporter.ExportError, match="does not exist; create it first"):
        exporter.export(model, np.zeros((1, 3), np.float32), tmp_path / "nowhere" / "m.onnx")
    assert not list(tmp_path.iterdir()), "a refused export left a file behind"


@pytest.mark.parametrize("what", [1.5, None])
def test_visual_save_of_a_number_or_none_asks_for_the_tensor(what, tmp_path):
    with pytest.raises(ag.ArgumentTypeError, match=r"visual: expected a Tensor to draw, got .*not its value"):
        visual.save(what, tmp_path / "a.svg")


def test_visual_save_to_an_unknown_suffix_is_a_library_error(tmp_path):
    loss = (ag.tensor([1.0, 2.0], requires_grad=True) * 2).sum()
    with pytest.raises(ag.ArgumentError, match=r"suffix \.jpgx is none of .*\.svg"):
        visual.save(loss, tmp_path / "a.jpgx")
    with pytest.raises(ag.ArgumentTypeError, match="path must be a file or folder name"):
        visual.save(loss, None)


def test_evaluate_before_compile_says_to_compile():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ag.UsageError, match=r"Sequential\.evaluate: call compile\(optimizer, loss, metrics\) first"):
        model.evaluate(np.zeros((2, 3), np.float32), np.zeros(2, int))
    assert issubclass(ag.UsageError, RuntimeError)


def test_callback_settings_out_of_range_are_library_errors():
    with pytest.raises(ag.ArgumentError, match="GradientStats: every must be a positive number of steps, got 0"):
        callbacks.GradientStats(every=0)
    with pytest.raises(ag.ArgumentError, match="EarlyStopping: mode must be 'auto', 'min' or 'max', got 'bad'"):
        callbacks.EarlyStopping(mode="bad")


def test_item_of_a_tensor_of_many_elements_says_how_to_get_one():
    with pytest.raises(ag.ShapeError, match=r"item\(\): .* shape \(3, 4\) \(12 elements\); index one element"):
        ag.zeros(3, 4).item()
