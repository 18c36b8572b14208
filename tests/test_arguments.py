"""Every argument is checked where it is given: a layer's constructor, an optimizer's, a tensor
factory. A bad one raises an error of ours (an AutogradError that is also the matching ValueError
or TypeError) naming the function, the argument and the value, before any work is done."""
from __future__ import annotations

import math

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import nn, optim


def _refused(make, builtin, *words):
    """make() raises an AutogradError that is also ``builtin`` and whose message holds ``words``."""
    with pytest.raises(ag.AutogradError) as info:
        make()
    assert isinstance(info.value, builtin), f"{type(info.value).__name__} is not a {builtin.__name__}"
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


# --------------------------------------------------------------------------- the bugs seen in use


def test_a_zero_kernel_is_refused_at_construction_not_a_zero_division():
    _refused(lambda: nn.Conv2d(1, 1, 0), ValueError, "Conv2d", "kernel_size", "0")


def test_a_negative_kernel_names_the_argument_not_numpys_negative_dimensions():
    message = _refused(lambda: nn.Conv2d(1, 1, -3), ValueError, "Conv2d", "kernel_size", "-3")
    assert "negative dimensions" not in message


def test_zero_groups_is_refused_not_a_zero_division():
    _refused(lambda: nn.Conv2d(2, 2, 3, groups=0), ValueError, "Conv2d", "groups", "0")


def test_a_zero_stride_is_refused_at_construction_not_at_the_first_call():
    _refused(lambda: nn.Conv2d(1, 1, 3, stride=0), ValueError, "Conv2d", "stride", "0")


def test_an_integer_tensor_cannot_require_grad():
    _refused(lambda: ag.arange(5).requires_grad_(), TypeError, "requires_grad", "int64")
    _refused(lambda: ag.zeros(3, dtype="int32", requires_grad=True), TypeError, "requires_grad", "int32")
    assert ag.arange(5.0).requires_grad_().requires_grad  # floats may
    assert ag.arange(5).requires_grad_(False).requires_grad is False  # and turning it off is always fine


def test_iterating_a_tensor_gives_its_rows_and_stops():
    # Python's old iteration protocol stops at an IndexError; indexing past the end is a ShapeError.
    rows = list(ag.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0]]
    _refused(lambda: list(ag.tensor(1.0)), TypeError, "0-d")


# --------------------------------------------------------------------------- every layer's arguments

# (the call, the argument it must name, the value it must show); each a ValueError unless it
# is a wrong type (then a TypeError too).
BAD_LAYERS = [
    (lambda: nn.Linear(0, 3), "in_features", "0"),
    (lambda: nn.Linear(3, -1), "out_features", "-1"),
    (lambda: nn.Linear(2.0, 3), "in_features", "2.0"),
    (lambda: nn.Linear(True, 3), "in_features", "True"),
    (lambda: nn.Linear(2, 3, bias="yes"), "bias", "'yes'"),
    (lambda: nn.Conv2d(0, 1, 3), "in_channels", "0"),
    (lambda: nn.Conv2d(1, 1.5, 3), "out_channels", "1.5"),
    (lambda: nn.Conv2d(1, 1, (3, 0)), "kernel_size", "(3, 0)"),
    (lambda: nn.Conv2d(1, 1, (3, 3, 3)), "kernel_size", "(3, 3, 3)"),
    (lambda: nn.Conv2d(1, 1, 2.5), "kernel_size", "2.5"),
    (lambda: nn.Conv2d(3, 6, 3, groups=2), "groups", "2"),
    (lambda: nn.Conv2d(1, 1, 3, dilation=0), "dilation", "0"),
    (lambda: nn.Conv2d(1, 1, 3, padding=-1), "padding", "-1"),
    (lambda: nn.Conv2d(1, 1, 3, padding="full"), "padding", "'full'"),
    (lambda: nn.Conv2d(1, 1, 3, stride=2, padding="same"), "padding='same'", "stride"),
    (lambda: nn.Conv1d(1, 1, 0), "kernel_size", "0"),
    (lambda: nn.Conv1d(1, 1, (3, 3)), "kernel_size", "(3, 3)"),
    (lambda: nn.Conv1d(1, 1, 3, stride=0), "stride", "0"),
    (lambda: nn.ConvTranspose2d(1, 1, 0), "kernel_size", "0"),
    (lambda: nn.ConvTranspose2d(1, 1, 3, groups=0), "groups", "0"),
    (lambda: nn.ConvTranspose2d(1, 1, 3, stride=2, output_padding=2), "output_padding", "2"),
    (lambda: nn.ConvTranspose2d(1, 1, 3, padding="same"), "padding", "'same'"),
    (lambda: nn.LocallyConnected2d(1, 1, 5, 4), "kernel_size", "does not fit"),
    (lambda: nn.LocallyConnected2d(1, 1, 3, (4, 0)), "input_size", "(4, 0)"),
    (lambda: nn.MaxPool2d(0), "kernel_size", "0"),
    (lambda: nn.MaxPool2d(2, stride=0), "stride", "0"),
    (lambda: nn.MaxPool2d(2, padding=-1), "padding", "-1"),
    (lambda: nn.MaxPool2d(2, padding=2), "padding", "half the window"),
    (lambda: nn.MaxPool2d(2, ceil_mode="yes"), "ceil_mode", "'yes'"),
    (lambda: nn.AvgPool2d(2.5), "kernel_size", "2.5"),
    (lambda: nn.AvgPool2d(2, count_include_pad=None), "count_include_pad", "None"),
    (lambda: nn.MaxPool1d((2, 2)), "kernel_size", "(2, 2)"),
    (lambda: nn.AvgPool1d(0), "kernel_size", "0"),
    (lambda: nn.AdaptiveAvgPool2d(0), "output_size", "0"),
    (lambda: nn.Flatten(1.5), "start_axis", "1.5"),
    (lambda: nn.LeakyReLU("0.1"), "negative_slope", "'0.1'"),
    (lambda: nn.LeakyReLU(math.nan), "negative_slope", "nan"),
    (lambda: nn.GELU("fast"), "approximate", "'fast'"),
    (lambda: nn.Softmax(1.5), "axis", "1.5"),
    (lambda: nn.Dropout(1.0), "p", "1.0"),
    (lambda: nn.Dropout(-0.1), "p", "-0.1"),
    (lambda: nn.Dropout(math.nan), "p", "nan"),
    (lambda: nn.Dropout("0.5"), "p", "'0.5'"),
    (lambda: nn.BatchNorm2d(0), "num_features", "0"),
    (lambda: nn.BatchNorm1d(2.5), "num_features", "2.5"),
    (lambda: nn.BatchNorm2d(3, eps=0), "eps", "0"),
    (lambda: nn.BatchNorm2d(3, momentum=1.5), "momentum", "1.5"),
    (lambda: nn.BatchNorm2d(3, momentum=None), "momentum", "None"),
    (lambda: nn.Sequential(nn.ReLU(), "relu"), "Module", "str"),
]


@pytest.mark.parametrize("make, name, value", BAD_LAYERS, ids=[f"{i}-{n}" for i, (_, n, _) in enumerate(BAD_LAYERS)])
def test_each_bad_layer_argument_is_refused_at_construction(make, name, value):
    with pytest.raises(ag.ArgumentError) as info:
        make()
    message = str(info.value)
    layer = message.split(":")[0]
    assert layer and layer[0].isupper() and " " not in layer, f"the message should start with the layer: {message}"
    assert name in message and value in message, message


def test_wrong_types_are_type_errors_and_bad_values_value_errors():
    with pytest.raises(TypeError):
        nn.Conv2d(1, 1, 2.5)
    with pytest.raises(ValueError):
        nn.Conv2d(1, 1, 0)
    assert not isinstance(_caught(lambda: nn.Conv2d(1, 1, 0)), TypeError)


def _caught(make):
    try:
        make()
    except Exception as err:  # noqa: BLE001 (the test looks at what it was)
        return err
    return None


def test_good_layer_arguments_still_work():
    ag.manual_seed(0)
    x = ag.randn(2, 2, 8, 8)
    assert nn.Conv2d(2, 4, (3, 5), stride=(1, 2), padding=(1, 2), dilation=1, groups=2)(x).shape == (2, 4, 8, 4)
    assert nn.Conv2d(2, 4, np.int64(3), padding="same")(x).shape == (2, 4, 8, 8)
    assert nn.MaxPool2d(3, stride=2, padding=1, dilation=1, ceil_mode=True)(x).shape == (2, 2, 5, 5)
    assert nn.AvgPool2d(2, count_include_pad=False)(x).shape == (2, 2, 4, 4)
    assert nn.ConvTranspose2d(2, 3, 3, stride=2, output_padding=1)(x).shape == (2, 3, 18, 18)
    assert nn.Dropout(0.0)(x).shape == x.shape and nn.LeakyReLU(0)(x).shape == x.shape
    assert nn.BatchNorm2d(2, momentum=0.0)(x).shape == x.shape


# --------------------------------------------------------------------------- the optimizers' arguments


def _params():
    return nn.Linear(2, 3).parameters()


BAD_OPTIMIZERS = [
    (lambda: optim.SGD(_params(), lr=-0.1), "lr", "-0.1"),
    (lambda: optim.SGD(_params(), lr=math.nan), "lr", "nan"),
    (lambda: optim.SGD(_params(), lr=math.inf), "lr", "inf"),
    (lambda: optim.SGD(_params(), lr="0.1"), "lr", "'0.1'"),
    (lambda: optim.SGD(_params(), lr=0.1, momentum=-0.5), "momentum", "-0.5"),
    (lambda: optim.SGD(_params(), lr=0.1, momentum=1.0), "momentum", "1.0"),
    (lambda: optim.SGD(_params(), lr=0.1, weight_decay=-1), "weight_decay", "-1"),
    (lambda: optim.SGD(_params(), lr=0.1, dampening=2), "dampening", "2"),
    (lambda: optim.SGD(_params(), lr=0.1, nesterov=True), "nesterov", "momentum"),
    (lambda: optim.SGD(_params(), lr=0.1, nesterov="no"), "nesterov", "'no'"),
    (lambda: optim.RMSprop(_params(), alpha=1.0), "alpha", "1.0"),
    (lambda: optim.RMSprop(_params(), eps=0), "eps", "0"),
    (lambda: optim.RMSprop(_params(), momentum=-1), "momentum", "-1"),
    (lambda: optim.Adam(_params(), betas=(1.0, 0.999)), "betas", "1.0"),
    (lambda: optim.Adam(_params(), betas=(0.9, -0.1)), "betas", "-0.1"),
    (lambda: optim.Adam(_params(), betas=(0.9,)), "betas", "(0.9,)"),
    (lambda: optim.Adam(_params(), betas=0.9), "betas", "0.9"),
    (lambda: optim.Adam(_params(), eps=-1e-8), "eps", "-1e-08"),
    (lambda: optim.AdamW(_params(), weight_decay=math.nan), "weight_decay", "nan"),
    (lambda: optim.Adadelta(_params(), rho=1.5), "rho", "1.5"),
    (lambda: optim.SGD([], lr=0.1), "params", "empty"),
    (lambda: optim.SGD([np.ones(3)], lr=0.1), "params", "ndarray"),
    (lambda: optim.SGD(nn.Linear(2, 3), lr=0.1), "params", "model.parameters()"),
    (lambda: optim.SGD(5, lr=0.1), "params", "int"),
    (lambda: optim.SGD([ag.arange(3)], lr=0.1), "params", "int64"),
    (lambda: optim.SGD([ag.ones(2, requires_grad=True) * 2], lr=0.1), "params", "leaf"),
    (lambda: optim.SGD([*nn.Linear(2, 3).parameters()] * 2, lr=0.1), "params", "twice"),
    (lambda: optim.SGD([{"params": _params(), "learning_rate": 0.1}], lr=0.1), "learning_rate", "lr"),
    (lambda: optim.SGD([{"params": _params(), "lr": -1}], lr=0.1), "lr", "-1"),
    (lambda: optim.SGD([{"lr": 1}], lr=0.1), "params", "'params'"),
    (lambda: optim.StepLR(optim.SGD(_params(), lr=0.1), step_size=0), "step_size", "0"),
    (lambda: optim.StepLR(optim.SGD(_params(), lr=0.1), step_size=1.5), "step_size", "1.5"),
    (lambda: optim.StepLR(optim.SGD(_params(), lr=0.1), step_size=2, gamma=math.nan), "gamma", "nan"),
    (lambda: optim.CosineAnnealingLR(optim.SGD(_params(), lr=0.1), T_max=0), "T_max", "0"),
    (lambda: optim.StepLR("sgd", step_size=2), "optimizer", "'sgd'"),
]


@pytest.mark.parametrize("make, name, value", BAD_OPTIMIZERS,
                         ids=[f"{i}-{n}" for i, (_, n, _) in enumerate(BAD_OPTIMIZERS)])
def test_each_bad_optimizer_argument_is_refused_at_construction(make, name, value):
    with pytest.raises(ag.ArgumentError) as info:
        make()
    message = str(info.value)
    assert name in message and value in message, message


def test_setting_a_bad_learning_rate_later_is_refused_too():
    opt = optim.Adam(_params())
    with pytest.raises(ag.ArgumentError, match="Adam: lr must be a finite number >= 0, got -1"):
        opt.lr = -1
    assert opt.lr == 1e-3


def test_good_optimizer_arguments_still_work():
    w = ag.ones(3, requires_grad=True)
    opt = optim.SGD([{"params": [w], "lr": np.float32(0.5)}], lr=0.1, momentum=0.9, nesterov=True)
    (w * w).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.numpy(), 1 - 0.5 * (2 + 0.9 * 2))
    optim.Adam([w], lr=0, betas=[0.0, 0.5], eps=1e-12)  # a list of betas and a zero lr are fine
    optim.Adadelta([w], rho=1.0)


# --------------------------------------------------------------------------- what fuzzing found (test_fuzz.py)

FUZZ_REFUSALS = [
    (lambda: ag.tensor(np.array(["1", "2"])), TypeError, "tensor()", "<U1"),  # was a tensor of text
    (lambda: ag.tensor([1.0], dtype="foo"), TypeError, "tensor()", "'foo'"),
    (lambda: ag.tensor(np.array(-1.0, dtype="float16"), dtype="uint8"), ValueError, "-1.0", "uint8"),  # was 255
    (lambda: ag.tensor([math.nan], dtype="int64"), ValueError, "nan", "int64"),  # was -9223372036854775808
    (lambda: ag.tensor([1e300]), ValueError, "1e+300", "float32"),  # was inf
    (lambda: ag.ones(2, 3).sum(axis=True), TypeError, "sum", "axis", "True"),  # was axis 1
    (lambda: ag.ones(2, 3).sum(axis=0, keepdims="yes"), TypeError, "sum", "keepdims", "'yes'"),
    (lambda: ag.ones(2, 3).sum(axis=(0, 0)), ValueError, "Sum", "twice"),  # was summed once
    (lambda: F.reshape(ag.ones(6), (2.0, 3)), TypeError, "reshape", "(2.0, 3)"),  # was (2, 3)
    (lambda: F.flatten(ag.ones(2, 3, 4), 5), ValueError, "flatten", "start_axis 5"),  # was no change
    (lambda: F.concat(ag.ones(2, 3)), TypeError, "concat", "list or tuple"),
    (lambda: F.pad(ag.ones(2), None), TypeError, "pad", "pad_width"),
    (lambda: F.max_pool2d(ag.ones(1, 1, 4, 4), 2, padding=True), TypeError, "max_pool2d", "padding", "True"),
    (lambda: F.max_pool2d(ag.ones(1, 1, 5, 5), 2, ceil_mode="yes"), TypeError, "max_pool2d", "ceil_mode"),
    (lambda: F.conv1d(ag.ones(1, 1, 4), ag.ones(1, 1, 2), stride=True), TypeError, "conv1d", "stride"),
    (lambda: F.conv_transpose2d(ag.ones(1, 1, 2, 2), ag.ones(1, 1, 2, 2), groups=True), TypeError, "groups"),
    (lambda: F.adaptive_avg_pool2d(ag.ones(1, 1, 0, 3), 2), ValueError, "adaptive_avg_pool2d", "empty"),
    (lambda: F.dropout(ag.ones(3), "0.1"), TypeError, "dropout", "p", "'0.1'"),
    (lambda: F.dropout(ag.ones(3), True), TypeError, "dropout", "p", "True"),  # was p = 1
    (lambda: F.batch_norm(ag.ones(4, 2), None, None, eps=math.nan), ValueError, "batch_norm", "eps", "nan"),
    (lambda: F.batch_norm(ag.ones(4, 2), None, None, training="yes"), TypeError, "batch_norm", "training"),
    (lambda: F.cross_entropy(ag.ones(2, 3), [0, 1], reduction="avg"), ValueError, "cross_entropy", "'avg'"),
    (lambda: F.cross_entropy(ag.ones(2, 3), [0, 1], label_smoothing=-1.0), ValueError, "label_smoothing"),
    (lambda: F.nll_loss(ag.tensor([[0.0, -5.0]]), [-1]), ValueError, "nll_loss", "-1"),  # was the last class
    (lambda: F.nll_loss(ag.tensor([[0.0, -5.0]]), [0.7]), TypeError, "nll_loss", "float"),  # was class 0
    (lambda: F.nll_loss(ag.tensor([[0.0, -5.0]]), np.array([True])), TypeError, "nll_loss", "bool"),
    (lambda: F.nll_loss(ag.tensor([[0.0, -5.0]]), [6]), ValueError, "nll_loss", "6"),  # was named GetItem
    (lambda: F.mse_loss(ag.ones(2), None), TypeError, "mse_loss", "NoneType"),  # was named Sub
    (lambda: F.softplus(ag.ones(2), beta="none"), TypeError, "softplus", "beta"),
    (lambda: F.softplus(ag.ones(2), beta=math.nan), ValueError, "softplus", "beta", "nan"),
    (lambda: F.leaky_relu(ag.tensor([-1.0]), math.nan), ValueError, "leaky_relu", "negative_slope"),
    (lambda: F.gelu(ag.ones(2), approximate=0), ValueError, "gelu", "approximate"),
    (lambda: ag.load("a\0b"), ValueError, "ag.load", "path"),
]


@pytest.mark.parametrize("case", FUZZ_REFUSALS, ids=[f"{i}" for i in range(len(FUZZ_REFUSALS))])
def test_what_fuzzing_found_is_refused_by_name(case):
    make, builtin, *words = case
    _refused(make, builtin, *words)


def test_what_fuzzing_found_gives_the_right_values_and_dtypes():
    np.testing.assert_allclose(F.erf(ag.tensor([1, 2])).numpy(), [math.erf(1), math.erf(2)], rtol=1e-6)  # was [0, 0]
    assert F.erf(2.0).item() == pytest.approx(math.erf(2.0))  # was an AttributeError
    assert F.leaky_relu(ag.tensor([-300]), 0.01).tolist() == [-3.0]  # was [0]
    assert F.exp(ag.tensor(np.array([1], dtype="int8"))).dtype == np.float32  # was float16
    assert (ag.tensor(np.array([1], dtype="int8")) + 1).dtype == np.int8  # was int64
    assert (ag.ones(2) * [0.5, 2.0]).dtype == np.float32  # was float64
    running = ag.zeros(2, dtype="float64"), ag.ones(2, dtype="float64")
    assert F.batch_norm(ag.ones(4, 2), *running, training=False).dtype == np.float32  # was float64
    assert F.mse_loss(ag.ones(()), np.int8(0)).item() == 1.0  # was a BackendError
    assert F.global_avg_pool2d(np.ones((1, 1, 2, 2))).shape == (1, 1)
    with pytest.raises(ag.ArgumentError, match="does not fit the other input's int8"):
        ag.tensor(np.array([1], dtype="int8")) + 300


def test_an_eps_that_is_zero_in_the_parameters_dtype_is_refused_at_the_step():
    # Adam's default eps of 1e-8 is 0 in float16: a zero gradient gave 0 / 0, a NaN weight.
    w = ag.ones(2, dtype="float16", requires_grad=True)
    w.grad = ag.zeros(2, dtype="float16")
    with pytest.raises(ag.ArgumentError, match="eps=1e-08 is 0 in the parameters' float16"):
        optim.Adam([w]).step()
    optim.Adam([w], eps=1e-4).step()
    assert np.isfinite(w.numpy()).all()


def test_adaptive_pooling_keeps_a_nan_in_its_own_windows():
    # Uneven windows were two averaging matrix products, where 0 * NaN spread a NaN (or an Inf)
    # into every window of its row.
    x = ag.tensor([[[[np.nan, 0.0, 1.0]]]])
    y = F.adaptive_avg_pool2d(x, (1, 2)).numpy()  # windows [0, 2) and [1, 3)
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 0, 1] == 0.5
    y = F.adaptive_avg_pool2d(ag.tensor([[[[np.inf], [0.0], [2.0]]]]), (2, 1)).numpy()
    assert y[0, 0, 0, 0] == np.inf and y[0, 0, 1, 0] == 1.0


def test_pad_refuses_a_value_the_tensor_cannot_hold():
    _refused(lambda: F.pad(ag.tensor([1, 2]), 1, value=math.inf), ValueError, "pad", "inf", "int64")
    _refused(lambda: F.pad(ag.tensor([1, 2]), 1, value=1.5), ValueError, "pad", "1.5", "int64")  # was 1
    assert F.pad(ag.tensor([1.0]), 1, value=math.inf).tolist() == [math.inf, 1.0, math.inf]


def test_a_state_dict_with_bad_hyper_parameters_is_refused():
    w = ag.ones(2, requires_grad=True)
    state = optim.SGD([w], lr=0.1).state_dict()
    state["param_groups"][0]["lr"] = -1.0  # an edited or damaged checkpoint
    opt = optim.SGD([w], lr=0.1)
    with pytest.raises(ag.ArgumentError, match="SGD: lr must be a finite number >= 0, got -1.0"):
        opt.load_state_dict(state)
    assert opt.lr == 0.1  # and nothing of it was taken
