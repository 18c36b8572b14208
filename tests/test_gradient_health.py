"""GradientStats over training, plot_training, gradcheck_graph, and their two examples."""
from __future__ import annotations

import math
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import autograd, nn, optim, visual

EXAMPLES = pathlib.Path(__file__).parents[1] / "examples"


def small_fit(every: int = 3, steps: int = 10):
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    model.compile(optimizer=optim.SGD(model.parameters(), lr=0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps * 4, 6)).astype(np.float32)
    y = rng.integers(0, 3, steps * 4)
    stats = nn.callbacks.GradientStats(every=every)
    return model, model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0, callbacks=[stats]), stats


def test_gradient_stats_records_every_k_steps_per_layer_into_the_history():
    model, history, stats = small_fit(every=3, steps=10)
    steps = history.steps
    assert steps is stats.steps and model.history is history
    assert steps["step"] == [0.0, 3.0, 6.0, 9.0]
    assert {k for k in steps if k != "step"} == {f"{f}/{layer}" for f in ("grad_norm", "weight_norm", "update_ratio")
                                                  for layer in ("0", "2")} | {"dead_relu/1"}
    assert all(len(v) == 4 for v in steps.values())
    # the last recorded step's figures, recomputed from the model as it is now
    w = [model[2].weight.numpy(), model[2].bias.numpy()]
    g = [model[2].weight.grad.numpy(), model[2].bias.grad.numpy()]
    norm = lambda arrays: math.sqrt(sum((a.astype(float) ** 2).sum() for a in arrays))
    assert math.isclose(steps["weight_norm/2"][-1], norm(w), rel_tol=1e-5)
    assert math.isclose(steps["grad_norm/2"][-1], norm(g), rel_tol=1e-5)
    # plain SGD: the step is lr · gradient, so update / weight = 0.1 · ‖g‖ / ‖w‖ (w after the step)
    assert math.isclose(steps["update_ratio/2"][-1], 0.1 * steps["grad_norm/2"][-1] / steps["weight_norm/2"][-1],
                        rel_tol=1e-3)
    assert all(0.0 <= d <= 1.0 for d in steps["dead_relu/1"])
    assert model[1]._forward_hooks == {}  # its hooks are gone after fit


def test_dead_relus_are_units_zero_for_the_whole_batch():
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    with ag.no_grad():
        model[0].bias.data[:] = np.array([-100.0, -100.0, 100.0, 100.0], np.float32)  # two units never fire
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(np.ones((8, 2), np.float32), np.zeros(8, np.int64), epochs=1, batch_size=4, verbose=0,
                        callbacks=[nn.callbacks.GradientStats(every=1)])
    assert history.steps["dead_relu/1"] == [0.5, 0.5]


def test_gradient_stats_checks_its_argument():
    with pytest.raises(ValueError, match="every must be a positive number of steps"):
        nn.callbacks.GradientStats(every=0)


def test_plot_training_draws_loss_accuracy_and_gradient_health(tmp_path):
    pytest.importorskip("matplotlib")
    _, history, _ = small_fit()
    fig = visual.plot_training(history, tmp_path / "training.png")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles[:2] == ["loss", "accuracy"] and any("gradient norm" in t for t in titles)
    assert any("dead ReLU" in t for t in titles) and any("update / weight" in t for t in titles)
    assert (tmp_path / "training.png").read_bytes().startswith(b"\x89PNG")
    only_epochs = visual.plot_training({"loss": [1.0, 0.5]})
    assert [ax.get_title() for ax in only_epochs.axes] == ["loss"]
    with pytest.raises(TypeError, match="expected the History"):
        visual.plot_training([1, 2])


def test_matplotlib_is_not_imported_by_the_package():
    code = "import autograd_cnn, autograd_cnn.visual, autograd_cnn.nn, sys; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


class Twice(autograd.Function):
    """y = 2a, with a wrong backward (3 instead of 2)"""
    rules = ("∂L/∂a = ∂L/∂y · 2",)

    @staticmethod
    def forward(ctx, a):
        return 2 * a

    @staticmethod
    def backward(ctx, gy):
        return gy * 3


def test_gradcheck_graph_marks_the_wrong_step_red_and_the_rest_green():
    x = ag.tensor(np.array([[1.0, -2.0], [0.5, 3.0]]), name="x")
    g = visual.gradcheck_graph(lambda x: (Twice.apply(x.tanh()) * x).sum(), [x])
    bad = {k: c for k, c in g.checks.items() if not c.ok}
    assert [c.op for c in bad.values()] == ["Twice"]
    (key, check), = bad.items()
    analytic, numerical = (float(v) for v in re.findall(r"(?:analytic|numerical) (-?[\d.e+-]+)", check.worst))
    assert "∂L/∂a at" in check.worst and math.isclose(analytic / numerical, 1.5, rel_tol=1e-4)  # 3 where 2 is right
    body = "\n".join(g.body)
    assert f'{key} [label=<' in body and visual.gradcheck.BAD_FILL in next(line for line in g.body if line.strip()
                                                                          .startswith(key + " "))
    assert body.count(visual.gradcheck.OK_FILL) == len(g.checks) - 1
    assert "1 of 4 backward steps disagree" in g.source


def test_gradcheck_graph_of_correct_ops_is_all_green():
    rng = np.random.default_rng(0)
    x, w = ag.tensor(rng.standard_normal((3, 4))), ag.tensor(rng.standard_normal((2, 4)))
    g = visual.gradcheck_graph(lambda x, w: ag.functional.linear(x, w).relu(), [x, w])
    assert g.checks and all(c.ok for c in g.checks.values())
    assert re.search(r"all \d+ backward steps agree", g.source)


@pytest.mark.parametrize("script, args, expect", [
    ("write_your_own_op.py", [], ["Softplus: every step agrees", "WrongSwish is wrong: ∂L/∂x at"]),
    ("vanishing_gradients.py", ["--epochs", "1", "--limit", "640"], ["sigmoid: first layer's gradient"]),
])
def test_the_examples_run(tmp_path, script, args, expect):
    if script == "vanishing_gradients.py":
        pytest.importorskip("matplotlib")
    done = subprocess.run([sys.executable, str(EXAMPLES / script), "--out", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    for text in expect:
        assert text in done.stdout
    if script == "vanishing_gradients.py":
        assert (tmp_path / "vanishing_gradients.png").stat().st_size > 10_000
        first = {line.split(":")[0].strip(): float(line.split("gradient ")[1].split(",")[0])
                 for line in done.stdout.splitlines() if "first layer's gradient" in line}
        assert first["sigmoid"] < 1e-3 * first["ReLU + BatchNorm"]  # the vanishing gradient, measured
