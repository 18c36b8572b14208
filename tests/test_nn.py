"""nn.Module and the layers: registration, names and scopes, modes, state, summary, errors, init."""
from __future__ import annotations

import math

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import nn
from autograd_cnn.serialization import CheckpointError


def lecture_cnn(pool=True):
    if pool:
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Flatten(), nn.Linear(1152, 10))
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 128, 3),
                         nn.ReLU(), nn.Flatten(), nn.Linear(128 * 22 * 22, 10))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
        self.head = nn.Linear(2 * 3 * 3, 4)
        self.scale = nn.Parameter(ag.ones(1))

    def forward(self, x):
        return self.head(self.features(x).flatten(1)) * self.scale


# --------------------------------------------------------------------------- summary


@pytest.mark.parametrize("build, shape, total", [
    (lambda: lecture_cnn(True), (1, 28, 28), 104_202),
    (lambda: lecture_cnn(False), (1, 28, 28), 712_202),
    (lambda: nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10), nn.Softmax()), (784,), 407_050),
    (lambda: nn.Sequential(nn.Linear(784, 800), nn.ReLU(), nn.Linear(800, 400), nn.ReLU(), nn.Linear(400, 10)),
     (784,), 952_410),
])
def test_summary_lecture_totals(build, shape, total):
    lines = []
    assert build().summary(shape, print_fn=lines.append) == total
    text = lines[0]
    assert f"Total params: {total:,} (" in text
    assert f"Trainable params: {total:,} (" in text
    assert "Non-trainable params: 0 (0.00 B)" in text


def test_summary_table_layout():
    lines = []
    lecture_cnn().summary((1, 28, 28), print_fn=lines.append)
    rows = lines[0].splitlines()
    assert rows[0] == 'Model: "Sequential"'
    assert rows[2].startswith(" Layer (type)") and rows[2].index("Output Shape") == 29
    assert rows[2].index("Param #") == 55
    conv = next(r for r in rows if r.startswith(" 3 (Conv2d)"))
    assert conv.split() == ["3", "(Conv2d)", "(None,", "64,", "11,", "11)", "18,496"]
    assert " 9 (Linear)                  (None, 10)                11,530" in rows
    assert "Total params: 104,202 (407.04 KB)" in rows


def test_summary_counts_batchnorm_statistics_as_non_trainable_and_restores_mode():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    lines = []
    assert model.summary((3,), print_fn=lines.append) == 16 + 8 + 8
    assert "Non-trainable params: 8" in lines[0]
    assert model.training and model[1].training  # summary runs in eval mode, then puts it back
    assert np.all(model[1].running_mean.numpy() == 0)  # and leaves the statistics alone


def test_summary_on_a_custom_module():
    lines = []
    total = Net().summary((1, 5, 5), print_fn=lines.append)
    assert total == 2 * 9 + 2 + 18 * 4 + 4 + 1
    assert "features.0 (Conv2d)" in lines[0] and "head (Linear)" in lines[0] and "net (Net)" in lines[0]


# --------------------------------------------------------------------------- registration, names, scopes


def test_parameters_names_and_paths():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "features.0.weight", "features.0.bias", "head.weight", "head.bias"]
    assert [p.name for p in net.parameters()] == names
    assert net.features[0]._path == "features.0" and net.head._path == "head" and net._path == ""
    assert [n for n, _ in net.named_modules()] == ["", "features", "features.0", "features.1", "head"]
    assert len(list(net.children())) == 2


def test_user_parameter_names_are_kept():
    net = Net()
    net.head.weight.name = "W_out"
    net(ag.zeros(1, 1, 5, 5))
    assert net.head.weight.name == "W_out" and net.head.bias.name == "head.bias"


def test_graph_nodes_record_the_module_path():
    net = Net()
    y = net(ag.randn(2, 1, 5, 5))
    scopes = set()
    stack = [y.grad_fn]
    while stack:
        node = stack.pop()
        scopes.add((node.name, node.scope))
        stack.extend(t.grad_fn for t in node.inputs if t.grad_fn is not None)
    assert ("ReLU", "features.1") in scopes
    assert ("Linear", "head") in scopes
    assert ("Mul", "") in scopes


def test_repr():
    assert repr(nn.Conv2d(1, 32, kernel_size=3)) == "Conv2d(1, 32, kernel_size=3)"
    assert repr(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)) == \
        "Conv2d(3, 8, kernel_size=3, stride=2, padding=1, bias=False)"
    assert repr(nn.Conv2d(3, 8, 3, padding="same")) == "Conv2d(3, 8, kernel_size=3, padding='same')"
    assert repr(nn.Linear(784, 512)) == "Linear(784, 512)"
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2)"
    assert repr(nn.Dropout(0.25)) == "Dropout(p=0.25)"
    text = repr(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
    assert text == "Sequential(\n  (0): Linear(2, 3)\n  (1): ReLU()\n)"


def test_sequential_container():
    a, b = nn.Linear(2, 3), nn.ReLU()
    seq = nn.Sequential(a, b)
    assert len(seq) == 2 and seq[0] is a and seq[-1] is b and list(seq) == [a, b]
    seq.append(nn.Linear(3, 1))
    assert len(seq) == 3 and seq(ag.ones(4, 2)).shape == (4, 1)
    part = seq[:2]
    assert isinstance(part, nn.Sequential) and part[0] is a and len(part) == 2
    with pytest.raises(IndexError):
        seq[3]
    with pytest.raises(TypeError, match="Module"):
        seq.append(lambda x: x)


def test_module_without_super_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=r"super\(\)\.__init__\(\)"):
        Bad()


# --------------------------------------------------------------------------- layer input errors


@pytest.mark.parametrize("layer, x_shape, message", [
    (nn.Conv2d(1, 32, 3), (128, 28, 28), r"Conv2d\(1, 32, kernel_size=3\) expects input \(N, 1, H, W\), "
                                         r"got \(128, 28, 28\)"),
    (nn.Conv2d(3, 4, 3), (2, 1, 8, 8), r"expects input \(N, 3, H, W\), got \(2, 1, 8, 8\)"),
    (nn.Linear(784, 10), (5, 28, 28), r"Linear\(784, 10\) expects input \(N, 784\), got \(5, 28, 28\)"),
    (nn.Conv1d(2, 2, 3), (2, 2, 5, 5), r"expects input \(N, 2, W\)"),
    (nn.BatchNorm2d(3), (4, 3), r"BatchNorm2d\(3\) expects input \(N, 3, H, W\)"),
    (nn.BatchNorm1d(3), (4, 5), r"expects input \(N, 3\) or \(N, 3, L\)"),
    (nn.MaxPool2d(2), (4, 8), r"MaxPool2d\(kernel_size=2\) expects input \(N, C, H, W\)"),
    (nn.LocallyConnected2d(1, 2, 3, input_size=6), (1, 1, 7, 7), r"expects input \(N, 1, 6, 6\)"),
])
def test_layers_name_themselves_on_bad_input(layer, x_shape, message):
    with pytest.raises(ag.ShapeError, match=message):
        layer(ag.zeros(*x_shape))


def test_error_names_the_path_in_the_model():
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 3))
    with pytest.raises(ag.ShapeError, match=r"Linear\(10, 3\) at \[1\] expects input \(N, 10\), got \(2, 12\)"):
        model(ag.zeros(2, 3, 4))


# --------------------------------------------------------------------------- layers forward


def test_layer_output_shapes(backend):
    x = ag.randn(2, 3, 8, 8)
    assert nn.Conv2d(3, 4, 3, padding="same")(x).shape == (2, 4, 8, 8)
    assert nn.ConvTranspose2d(3, 2, 2, stride=2)(x).shape == (2, 2, 16, 16)
    assert nn.AvgPool2d(2)(x).shape == (2, 3, 4, 4)
    assert nn.GlobalAvgPool2d()(x).shape == (2, 3)
    assert nn.GlobalMaxPool2d()(x).shape == (2, 3)
    assert nn.AdaptiveAvgPool2d(2)(x).shape == (2, 3, 2, 2)
    assert nn.LocallyConnected2d(3, 5, 3, input_size=8, stride=1)(x).shape == (2, 5, 6, 6)
    s = ag.randn(2, 3, 10)
    assert nn.Conv1d(3, 4, 3)(s).shape == (2, 4, 8)
    assert nn.MaxPool1d(2)(s).shape == (2, 3, 5)
    assert nn.AvgPool1d(2)(s).shape == (2, 3, 5)
    assert nn.BatchNorm1d(3)(s).shape == (2, 3, 10)
    for act in (nn.ReLU(), nn.LeakyReLU(0.1), nn.Sigmoid(), nn.Tanh(), nn.GELU(), nn.Identity(), nn.Softmax()):
        assert act(s).shape == s.shape


def test_linear_matches_a_loop(backend):
    layer = nn.Linear(3, 2)
    x = ag.randn(4, 3)
    w, b, xv = layer.weight.numpy(), layer.bias.numpy(), x.numpy()
    expected = [[sum(xv[n, i] * w[o, i] for i in range(3)) + b[o] for o in range(2)] for n in range(4)]
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_dropout_and_batchnorm_obey_train_and_eval(backend):
    model = nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(4))
    x = ag.tensor(np.arange(32, dtype="float32").reshape(8, 4), backend=backend)
    model.train()
    y = model[0](x).numpy()
    assert set(np.unique(y / np.where(x.numpy() == 0, 1, x.numpy()))) <= {0.0, 2.0}
    assert 0 < (y == 0).sum() < y.size
    model(x)
    assert not np.allclose(model[1].running_mean.numpy(), 0)
    model.eval()
    assert not model[0].training and not model[1].training
    np.testing.assert_array_equal(model[0](x).numpy(), x.numpy())
    before = model[1].running_mean.numpy().copy()
    model(x)
    np.testing.assert_array_equal(model[1].running_mean.numpy(), before)


def test_batchnorm_matches_a_loop_reference_and_updates_running_stats(backend):
    x = ag.randn(4, 2, 3, 3, dtype="float64")
    bn = nn.BatchNorm2d(2, momentum=0.2).double()
    bn.weight.data[...] = bn.weight.backend_object.asarray([1.5, -0.5])
    bn.bias.data[...] = bn.bias.backend_object.asarray([0.1, 0.2])
    y = bn(x).numpy()
    xv = x.numpy()
    for c in range(2):
        values = xv[:, c].ravel()
        mean, var = values.mean(), values.var()
        expected = (xv[:, c] - mean) / math.sqrt(var + 1e-5) * [1.5, -0.5][c] + [0.1, 0.2][c]
        np.testing.assert_allclose(y[:, c], expected, rtol=1e-10)
        assert bn.running_mean.numpy()[c] == pytest.approx(0.2 * mean)
        assert bn.running_var.numpy()[c] == pytest.approx(0.8 + 0.2 * values.var(ddof=1))


def test_batchnorm_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((6, 3, 4, 4))
    ours, theirs = nn.BatchNorm2d(3).double(), torch.nn.BatchNorm2d(3).double()
    for _ in range(2):
        y = ours(ag.tensor(x)).numpy()
        t = theirs(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(y, t, atol=1e-10)
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), atol=1e-10)
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(ours(ag.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), atol=1e-10)


def test_functional_errors():
    with pytest.raises(ValueError, match=r"dropout: p .* \[0, 1\], got 1.5"):
        F.dropout(ag.ones(3), 1.5)
    with pytest.raises(ag.ShapeError, match=r"batch_norm: running_mean must have shape \(3,\)"):
        F.batch_norm(ag.ones(4, 3), ag.zeros(2), ag.ones(3))
    with pytest.raises(ag.ShapeError, match="more than one value per channel"):
        F.batch_norm(ag.ones(1, 3), ag.zeros(3), ag.ones(3))
    assert (F.dropout(ag.ones(10), 1.0).numpy() == 0).all()


# --------------------------------------------------------------------------- initialisation


def test_default_init_is_pytorch_bounds_and_seeded():
    ag.manual_seed(5)
    conv = nn.Conv2d(4, 8, 3)
    bound = 1 / math.sqrt(4 * 9)
    w = conv.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(conv.bias.numpy()).max() <= bound
    assert w.dtype == np.float32
    ag.manual_seed(5)
    np.testing.assert_array_equal(nn.Conv2d(4, 8, 3).weight.numpy(), w)
    assert np.abs(nn.Linear(100, 3).weight.numpy()).max() <= 0.1


# --------------------------------------------------------------------------- modes, dtype, state


def test_train_eval_zero_grad_and_double():
    net = Net()
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net(ag.randn(2, 1, 5, 5)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    params = list(net.parameters())
    net.double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert list(net.parameters()) == params  # the same objects: optimizers keep working
    with pytest.raises(TypeError, match="neither a backend"):
        net.to("int32")


def test_state_dict_round_trip_and_errors():
    a, b = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    state = a.state_dict()
    assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"]
    b.load_state_dict(state)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k].numpy())
    missing = {k: v for k, v in state.items() if k != "0.bias"}
    with pytest.raises(CheckpointError, match=r"missing 0\.bias"):
        b.load_state_dict(missing)
    with pytest.raises(CheckpointError, match=r"unexpected extra\.w"):
        b.load_state_dict({**state, "extra.w": ag.ones(1)})
    with pytest.raises(CheckpointError, match=r"'0.weight' has shape \(4, 2\), the model's \(4, 3\)"):
        b.load_state_dict({**state, "0.weight": np.zeros((4, 2))})
    result = b.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == []


def test_models_deepcopy_and_pickle():
    import copy
    import pickle

    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert clone[0]._parent() is clone and clone[0].weight is not model[0].weight
        np.testing.assert_array_equal(clone.eval()(ag.ones(4, 2)).numpy(), model.eval()(ag.ones(4, 2)).numpy())


def test_op_errors_inside_a_layer_name_the_layer_and_path():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(4))
    with pytest.raises(ag.ShapeError, match=r"^MaxPool2d\(kernel_size=4\) at \[1\]: .*max_pool2d"):
        model(ag.zeros(1, 1, 5, 5))
