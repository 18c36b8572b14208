"""Forward hooks on modules, as PyTorch's: order, removal, replacement, nesting, errors; and the
two users inside nn (summary, and the loss that reads a final Softmax's input) leave none behind."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import nn


def _model():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _hooks_left(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# --------------------------------------------------------------------------- forward hooks


def test_hooks_run_in_registration_order_and_see_inputs_and_output():
    layer = nn.Linear(3, 2)
    x = ag.randn(5, 3)
    calls = []
    for name in ("first", "second", "third"):
        layer.register_forward_hook(lambda m, inputs, out, name=name: calls.append((name, m, inputs, out)))
    out = layer(x)
    assert [c[0] for c in calls] == ["first", "second", "third"]
    assert all(m is layer and inputs == (x,) and o is out for _, m, inputs, o in calls)


def test_remove_takes_the_hook_off_and_twice_is_harmless():
    layer = nn.ReLU()
    seen = []
    keep = layer.register_forward_hook(lambda m, i, o: seen.append("keep"))
    drop = layer.register_forward_hook(lambda m, i, o: seen.append("drop"))
    drop.remove()
    drop.remove()
    layer(ag.ones(2))
    assert seen == ["keep"]
    keep.remove()
    layer(ag.ones(2))
    assert seen == ["keep"]
    with layer.register_forward_hook(lambda m, i, o: seen.append("with")):
        layer(ag.ones(2))
    layer(ag.ones(2))
    assert seen == ["keep", "with"]


def test_a_hook_may_remove_itself_while_running():
    layer = nn.Identity()
    seen = []

    def once(module, inputs, output):
        seen.append("once")
        handle.remove()

    handle = layer.register_forward_hook(once)
    layer.register_forward_hook(lambda m, i, o: seen.append("always"))
    layer(ag.ones(1))
    layer(ag.ones(1))
    assert seen == ["once", "always", "always"]


def test_a_returned_value_replaces_the_output_for_later_hooks_and_the_next_layer():
    model = nn.Sequential(nn.Linear(2, 2), nn.Identity())
    x = ag.randn(3, 2)
    plain = model(x).numpy()
    seen = []
    model[0].register_forward_hook(lambda m, i, out: out * 2)
    model[0].register_forward_hook(lambda m, i, out: seen.append(out.numpy()))  # None: no change
    model[1].register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0].numpy()))
    np.testing.assert_allclose(model(x).numpy(), 2 * plain, rtol=1e-6)
    np.testing.assert_allclose(seen[0], 2 * plain, rtol=1e-6)
    np.testing.assert_allclose(seen[1], 2 * plain, rtol=1e-6)


def test_replaced_output_keeps_the_graph():
    layer = nn.Linear(2, 1)
    layer.register_forward_hook(lambda m, i, out: out * 3)
    layer(ag.ones(1, 2)).sum().backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), [[3.0, 3.0]])


def test_pre_hooks_replace_inputs_in_order():
    layer = nn.Identity()
    layer.register_forward_pre_hook(lambda m, inputs: inputs[0] + 1)  # one value: a one-tuple
    layer.register_forward_pre_hook(lambda m, inputs: (inputs[0] * 10,))
    layer.register_forward_pre_hook(lambda m, inputs: None)
    assert layer(ag.tensor([1.0])).numpy().tolist() == [20.0]


def test_hooks_on_nested_children_fire_inner_first_with_their_paths():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.features(x))

    net = Net()
    order = []
    for path, module in net.named_modules():
        module.register_forward_pre_hook(lambda m, i, path=path: order.append(("pre", path)))
        module.register_forward_hook(lambda m, i, o: order.append(("post", m._path, tuple(o.shape))))
    net(ag.randn(5, 3))
    assert order == [("pre", ""), ("pre", "features"), ("pre", "features.0"), ("post", "features.0", (5, 4)),
                     ("pre", "features.1"), ("post", "features.1", (5, 4)), ("post", "features", (5, 4)),
                     ("pre", "head"), ("post", "head", (5, 2)), ("post", "", (5, 2))]


def test_a_hook_that_raises_leaves_the_model_usable():
    model = _model()
    x = ag.randn(2, 3)
    expected = model(x).numpy()

    def broken(module, inputs, output):
        raise RuntimeError("hook failed")

    handle = model[1].register_forward_hook(broken)
    with pytest.raises(RuntimeError, match="hook failed"):
        model(x)
    handle.remove()
    np.testing.assert_allclose(model(x).numpy(), expected)
    # The failed call still unwound the call depth: the next call is a root call that names a new layer.
    model.append(nn.Linear(2, 2))
    model(x)
    assert model[3].weight.name == "3.weight"
    with pytest.raises(ValueError, match="pre-hook failed"):
        with model.register_forward_pre_hook(lambda m, i: (_ for _ in ()).throw(ValueError("pre-hook failed"))):
            model(x)
    assert model(x).shape == (2, 2) and _hooks_left(model) == 0


def test_hooks_need_no_cost_when_there_are_none():
    layer = nn.ReLU()
    assert layer._forward_hooks == {} and layer._forward_pre_hooks == {}  # what __call__ tests, and all


# --------------------------------------------------------------------------- summary uses hooks


def test_summary_takes_its_hooks_off_also_when_the_forward_fails():
    model = _model()
    user = model[0].register_forward_hook(lambda m, i, o: None)
    lines = []
    assert model.summary((3,), print_fn=lines.append) == 3 * 4 + 4 + 4 * 2 + 2
    assert _hooks_left(model) == 1  # the user's own hook stays
    with pytest.raises(ag.ShapeError, match=r"Linear\(3, 4\) at \[0\] expects input \(N, 3\)"):
        model.summary((5,), print_fn=lines.append)
    assert _hooks_left(model) == 1 and len(lines) == 1
    user.remove()


def test_summary_rows_show_outputs_replaced_by_a_user_hook():
    model = _model()
    model[2].register_forward_hook(lambda m, i, out: F.concat([out, out], axis=1))
    lines = []
    model.summary((3,), print_fn=lines.append)
    assert " 2 (Linear)                  (None, 4)" in lines[0]


# --------------------------------------------------------------------------- the loss and a final Softmax


def _blobs(n=48):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, n)
    x = (np.array([[2.0, 0.0], [-2.0, 2.0], [0.0, -2.5]])[y] + 0.5 * rng.standard_normal((n, 2))).astype("float32")
    return x, y


def test_fit_leaves_the_softmax_layer_as_it_was_and_emitting_probabilities():
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax())
    softmax = model[3]
    sums = []
    softmax.register_forward_hook(lambda m, i, out: sums.append(out.numpy().sum(axis=1)))
    x, y = _blobs()
    model(ag.tensor(x))
    state = lambda: {k: dict(v) if isinstance(v, dict) else v for k, v in vars(softmax).items()}  # noqa: E731
    before = state()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_data=(x, y))
    loss, _ = model.evaluate(x, y, batch_size=48, verbose=0)
    assert state() == before  # no flag, and only the user's hook left on it
    # one call, 2 epochs of 3 training and 3 validation batches, one evaluate batch: all probabilities
    assert len(sums) == 1 + 2 * (3 + 3) + 1 and all(np.allclose(s, 1, rtol=1e-5) for s in sums)
    logits = model[:-1](ag.tensor(x))
    assert loss == pytest.approx(F.cross_entropy(logits, ag.tensor(y)).item(), rel=1e-5)


def test_from_logits_true_on_a_softmax_layer_is_an_error_naming_it():
    model = nn.Sequential(nn.Linear(2, 3), nn.Softmax())
    x, y = _blobs()
    model.compile("sgd", "sparse_categorical_crossentropy", from_logits=True)  # says: outputs are logits
    with pytest.raises(ag.ArgumentError, match=r"softmax over the classes, axis -1 \(in 1\), so it holds "
                                               r"probabilities, not logits"):
        model.evaluate(x, y, verbose=0)
    with pytest.raises(ag.ArgumentError, match="from_logits=True"):
        model.fit(x, y, epochs=1, verbose=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    on_input = model.evaluate(x, y, verbose=0)
    assert on_input == pytest.approx(F.cross_entropy(model[0](ag.tensor(x)), ag.tensor(y)).item(), rel=1e-5)
    np.testing.assert_allclose(model.predict(x).sum(axis=1), 1, rtol=1e-5)  # no second softmax on top


def test_a_nested_final_softmax_is_found_and_read():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(2, 3)
            self.head = nn.Sequential(nn.Identity(), nn.Softmax())

        def forward(self, x):
            return self.head(self.body(x))

    net = Net()
    x, y = _blobs()
    net.compile("sgd", "sparse_categorical_crossentropy")
    expected = F.cross_entropy(net.body(ag.tensor(x)), ag.tensor(y)).item()
    assert net.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-5)


def test_a_final_softmax_layer_that_forward_skips_is_read_as_logits():
    """The graph, not the last registered layer, says what the output is."""
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 3)
            self.softmax = nn.Softmax()

        def forward(self, x):
            return self.fc(x)

    model = Skips()
    x, y = _blobs()
    model.compile("sgd", "sparse_categorical_crossentropy")
    expected = F.cross_entropy(model(ag.tensor(x)), ag.tensor(y)).item()
    assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(model.predict(x).sum(axis=1), 1, rtol=1e-5)  # logits: predict's softmax


def test_workflow_errors_and_a_failed_compile_keeps_the_last_one():
    model = nn.Sequential(nn.Linear(2, 3))
    x, y = _blobs()
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.evaluate(x, y, verbose=0)):
        with pytest.raises(RuntimeError, match=r"^Sequential\.(fit|evaluate): call compile\(optimizer, loss, "):
            call()
    raw = model.predict(x[:4])  # uncompiled: the raw outputs
    np.testing.assert_allclose(raw, model(ag.tensor(x[:4])).numpy(), rtol=1e-6)
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile("sgd", "hinge")
    np.testing.assert_allclose(model.predict(x[:4]).sum(axis=1), 1, rtol=1e-5)  # still the first compile
    assert model.evaluate(x, y, verbose=0) > 0


def test_layers_inherit_no_training_loop():
    assert not [name for name in ("_fit_epoch", "_evaluate_data", "_loss_value") if hasattr(nn.ReLU(), name)]
    assert nn.Module.__bases__ == (object,)


# --------------------------------------------------------------------------- layering


NN = Path(nn.__file__).parent
# each imports only earlier ones
ORDER = ["init", "callbacks", "summary", "guard", "progress", "feeding", "compiling", "training", "module", "layers",
         "dropconnect", "__init__"]


def test_nn_files_import_only_the_files_below_them():
    assert sorted(p.stem for p in NN.glob("*.py")) == sorted(ORDER)
    for name in ORDER:
        tree = ast.parse((NN / f"{name}.py").read_text())
        for node in ast.walk(tree):  # function-level imports count too
            if not isinstance(node, ast.ImportFrom) or node.level != 1:
                continue
            targets = [node.module] if node.module else [a.name for a in node.names]
            for target in targets:
                assert ORDER.index(target.split(".")[0]) < ORDER.index(name), f"nn/{name}.py imports .{target}"


def test_a_step_hook_hears_only_the_backward_of_its_own_thread():
    """A picture listening in one thread is not told of a training step running in another."""
    import threading

    from autograd_cnn import autograd
    from autograd_cnn.engine import walk

    x = ag.tensor(np.ones(3), requires_grad=True)
    heard, ready, done = [], threading.Event(), threading.Event()

    def listen() -> None:
        with autograd.register_step_hook(lambda node, gy, grads: heard.append(node.name)):
            ready.set()
            done.wait(timeout=30)
            (x * 3.0).sum().backward()  # its own backward: heard

    thread = threading.Thread(target=listen)
    thread.start()
    assert ready.wait(timeout=30)
    (x.exp() + 1.0).sum().backward()  # this thread's: not heard there
    done.set()
    thread.join(timeout=30)
    assert sorted(set(heard)) == ["Mul", "Sum"], heard
    assert not walk.step_hooks()  # the handle was removed in its thread
