"""Forward values of every core op in float32 against plain reference code, the dtype
rules, and the shape errors (each names the op and the shapes)."""
from __future__ import annotations

import importlib
import inspect
import itertools
import math
import threading

import numpy as np
import pytest
from conftest import NUMBA_OK, BlasStandIn

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn.autograd import Function
from autograd_cnn.errors import ShapeError
from autograd_cnn.ops import activation, conv, elementwise, loss, norm, pool, reduce, shape
from autograd_cnn.ops.reduce import ChannelSum, broadcast_to, sum_to
from autograd_cnn.ops.shape import to_backend

matmul = importlib.import_module("autograd_cnn.ops.matmul")  # the package's own ``matmul`` is the function
CORE_MODULES = (elementwise, reduce, shape, matmul, activation, loss)
RNG = np.random.default_rng(5)


def _data(*shape_, lo=-2.0, hi=2.0):
    return RNG.uniform(lo, hi, size=shape_).astype(np.float32)


# Plain reference code: element by element, in float64, no broadcasting tricks beyond np.vectorize.

def ref_elementwise(fn, *arrays):
    out_shape = np.broadcast_shapes(*(a.shape for a in arrays))
    args = [np.broadcast_to(a.astype(np.float64), out_shape) for a in arrays]
    out = np.empty(out_shape)
    for idx in itertools.product(*(range(n) for n in out_shape)):
        out[idx] = fn(*(float(a[idx]) for a in args))
    return out


def ref_matmul(a, b):
    n, k = a.shape
    m = b.shape[1]
    out = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            out[i, j] = sum(float(a[i, p]) * float(b[p, j]) for p in range(k))
    return out


def ref_softmax_rows(z):
    out = np.empty(z.shape)
    for i, row in enumerate(z.astype(np.float64)):
        top = max(row)
        e = [math.exp(v - top) for v in row]
        out[i] = [v / sum(e) for v in e]
    return out


def ref_reduce(a, fn, axis):
    """Apply ``fn`` to every 1-D fibre along ``axis``."""
    moved = np.moveaxis(a.astype(np.float64), axis, -1)
    out = np.empty(moved.shape[:-1])
    for idx in itertools.product(*(range(n) for n in out.shape)):
        out[idx] = fn(list(moved[idx]))
    return out


A, B, P = _data(3, 4), _data(4), _data(3, 4, lo=0.5, hi=2.0)
M1, M2 = _data(3, 5), _data(5, 2)
X, W, BIAS = _data(4, 5), _data(3, 5), _data(3)
LABELS = np.array([0, 2, 1, 2])
TARGETS = (A > 0).astype(np.float32)
erf = math.erf


def _gelu(v):
    return 0.5 * v * (1 + erf(v / math.sqrt(2)))


def _gelu_tanh(v):
    return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))


def _ce_rows(z, t, smoothing=0.0):
    p = ref_softmax_rows(z)
    c = z.shape[1]
    return np.array([-sum(((1 - smoothing) * (j == t[i]) + smoothing / c) * math.log(p[i, j])
                          for j in range(c)) for i in range(len(t))])


def _ce_grad_rows(z, q, g, q_sums_to_one):
    """(softmax(z) * sum(q) - q) * g row by row; the sum is 1 when q is known to sum to 1."""
    p = ref_softmax_rows(z)
    q64 = q.astype(np.float64)
    return np.array([[(p[i, j] * (1.0 if q_sums_to_one else sum(q64[i])) - q64[i, j]) * float(g[i])
                      for j in range(z.shape[1])] for i in range(z.shape[0])])


def _var(values):
    mean_ = sum(values) / len(values)
    return sum((v - mean_) ** 2 for v in values) / len(values)


# (name, function of float32 tensors, reference value) — every row's output must be float32.
FORWARD = [
    ("add", lambda: ag.tensor(A) + ag.tensor(B), ref_elementwise(lambda a, b: a + b, A, B)),
    ("sub", lambda: ag.tensor(A) - ag.tensor(B), ref_elementwise(lambda a, b: a - b, A, B)),
    ("mul", lambda: ag.tensor(A) * ag.tensor(B), ref_elementwise(lambda a, b: a * b, A, B)),
    ("div", lambda: ag.tensor(A) / ag.tensor(P), ref_elementwise(lambda a, b: a / b, A, P)),
    ("pow", lambda: ag.tensor(P) ** ag.tensor(A), ref_elementwise(lambda a, b: a ** b, P, A)),
    ("pow_scalar", lambda: ag.tensor(A) ** 2, ref_elementwise(lambda a: a * a, A)),
    ("neg", lambda: -ag.tensor(A), ref_elementwise(lambda a: -a, A)),
    ("exp", lambda: ag.tensor(A).exp(), ref_elementwise(math.exp, A)),
    ("log", lambda: ag.tensor(P).log(), ref_elementwise(math.log, P)),
    ("sqrt", lambda: ag.tensor(P).sqrt(), ref_elementwise(math.sqrt, P)),
    ("abs", lambda: ag.tensor(A).abs(), ref_elementwise(abs, A)),
    ("sign", lambda: elementwise.sign(ag.tensor(A)), ref_elementwise(lambda a: (a > 0) - (a < 0), A)),
    ("where", lambda: ag.where(ag.tensor(A) > 0, ag.tensor(A), ag.tensor(B)),
     ref_elementwise(lambda a, b: a if a > 0 else b, A, B)),
    ("maximum", lambda: ag.maximum(ag.tensor(A), ag.tensor(B)), ref_elementwise(max, A, B)),
    ("minimum", lambda: ag.minimum(ag.tensor(A), ag.tensor(B)), ref_elementwise(min, A, B)),
    ("astype", lambda: ag.tensor(A.astype(np.float64)).astype("float32"), A.astype(np.float64)),
    ("sum", lambda: ag.tensor(A).sum(axis=1), ref_reduce(A, sum, 1)),
    ("sum_all", lambda: ag.tensor(A).sum(), np.array(sum(float(v) for v in A.ravel()))),
    ("mean", lambda: ag.tensor(A).mean(axis=0), ref_reduce(A, lambda v: sum(v) / len(v), 0)),
    ("max", lambda: ag.tensor(A).max(axis=1), ref_reduce(A, max, 1)),
    ("min", lambda: ag.tensor(A).min(axis=0, keepdims=True), ref_reduce(A, min, 0)[None]),
    ("var", lambda: ag.tensor(A).var(axis=1), ref_reduce(A, _var, 1)),
    ("broadcast_to", lambda: broadcast_to(ag.tensor(B), (3, 4)), np.stack([B] * 3)),
    ("sum_to", lambda: sum_to(ag.tensor(A), (1, 4)), ref_reduce(A, sum, 0)[None]),
    ("channel_sum_rows", lambda: ChannelSum.apply(ag.tensor(A)), ref_reduce(A, sum, 0)),
    ("channel_sum_3d", lambda: ChannelSum.apply(ag.tensor(A.reshape(3, 2, 2))),
     np.array([sum(A.reshape(3, 2, 2)[n, c, k] for n in range(3) for k in range(2)) for c in range(2)])),
    ("channel_sum_nchw", lambda: ChannelSum.apply(ag.tensor(A.reshape(1, 3, 2, 2))), ref_reduce(A, sum, 1)),
    ("channel_sum_channels_last", lambda: ChannelSum.apply(ag.tensor(A.reshape(1, 2, 2, 3)).transpose(0, 3, 1, 2)),
     ref_reduce(A.reshape(4, 3), sum, 0)),
    ("reshape", lambda: ag.tensor(A).reshape(2, 6), np.array(list(A.ravel())).reshape(2, 6)),
    ("split_second_piece", lambda: ag.split(ag.tensor(A), [1], axis=0)[1], np.array([list(r) for r in A[1:]])),
    ("unbind_third_column", lambda: ag.unbind(ag.tensor(A), axis=1)[2], np.array([r[2] for r in A])),
    ("transpose", lambda: ag.tensor(A).T, np.array([[A[i, j] for i in range(3)] for j in range(4)])),
    ("getitem", lambda: ag.tensor(A)[1:, ::2], np.array([[A[i, j] for j in (0, 2)] for i in (1, 2)])),
    ("getitem_array", lambda: ag.tensor(A)[np.array([2, 0])], np.array([A[2], A[0]])),
    ("concat", lambda: ag.concat([ag.tensor(A), ag.tensor(A[:1])], axis=0), np.array(list(A) + [A[0]])),
    ("stack", lambda: ag.stack([ag.tensor(B), ag.tensor(B * 2)], axis=1),
     np.array([[b, 2 * b] for b in B])),
    ("pad", lambda: ag.pad(ag.tensor(B), 1), np.array([0.0] + list(B) + [0.0])),
    ("to_backend", lambda: to_backend(ag.tensor(A), ag.get_backend()), A.astype(np.float64)),
    ("matmul", lambda: ag.tensor(M1) @ ag.tensor(M2), ref_matmul(M1, M2)),
    ("linear", lambda: F.linear(ag.tensor(X), ag.tensor(W), ag.tensor(BIAS)),
     ref_matmul(X, W.T) + BIAS.astype(np.float64)),
    ("relu", lambda: F.relu(ag.tensor(A)), ref_elementwise(lambda a: max(a, 0.0), A)),
    ("relu_grad", lambda: activation.ReLUGrad.apply(ag.tensor(P), ag.tensor(A > 0)),
     ref_elementwise(lambda g, a: g if a > 0 else 0.0, P, A)),
    ("leaky_relu", lambda: F.leaky_relu(ag.tensor(A), 0.2), ref_elementwise(lambda a: a if a > 0 else 0.2 * a, A)),
    ("sigmoid", lambda: F.sigmoid(ag.tensor(A * 20)), ref_elementwise(lambda a: 1 / (1 + math.exp(-a)), A * 20)),
    ("sigmoid_grad", lambda: activation.SigmoidGrad.apply(ag.tensor(A), ag.tensor(P / 4)),
     ref_elementwise(lambda g, y: g * y * (1 - y), A, P / 4)),
    ("tanh_grad", lambda: activation.TanhGrad.apply(ag.tensor(A), ag.tensor(B / 3)),
     ref_elementwise(lambda g, y: g * (1 - y * y), A, B / 3)),
    ("tanh", lambda: F.tanh(ag.tensor(A)), ref_elementwise(math.tanh, A)),
    ("softplus", lambda: F.softplus(ag.tensor(A * 30)),  # both sides of the threshold, 20
     ref_elementwise(lambda a: a if a > 20 else math.log1p(math.exp(a)), A * 30)),
    ("gelu", lambda: F.gelu(ag.tensor(A)), ref_elementwise(_gelu, A)),
    ("gelu_tanh", lambda: F.gelu(ag.tensor(A), approximate="tanh"), ref_elementwise(_gelu_tanh, A)),
    ("erf", lambda: activation.erf(ag.tensor(A)), ref_elementwise(erf, A)),
    ("softmax", lambda: F.softmax(ag.tensor(A)), ref_softmax_rows(A)),
    ("log_softmax", lambda: F.log_softmax(ag.tensor(A), axis=0), np.log(ref_softmax_rows(A.T)).T),
    ("cross_entropy", lambda: F.cross_entropy(ag.tensor(A[:, :3]), ag.tensor(LABELS[:3]), reduction="none"),
     _ce_rows(A[:, :3], LABELS[:3])),
    ("cross_entropy_smooth", lambda: F.cross_entropy(ag.tensor(X), ag.tensor(LABELS), label_smoothing=0.1),
     np.array(_ce_rows(X, LABELS, 0.1).mean())),
    ("cross_entropy_grad_labels", lambda: loss.SoftmaxCrossEntropyGrad.apply(
        ag.tensor(A), ag.tensor(TARGETS), ag.tensor(B[:3]), q_sums_to_one=True),
     _ce_grad_rows(A, TARGETS, B[:3], True)),
    ("cross_entropy_grad_probs", lambda: loss.SoftmaxCrossEntropyGrad.apply(
        ag.tensor(A), ag.tensor(P), ag.tensor(B[:3]), q_sums_to_one=False),
     _ce_grad_rows(A, P, B[:3], False)),
    ("nll_loss", lambda: F.nll_loss(ag.tensor(X), ag.tensor(LABELS), reduction="sum"),
     np.array(-sum(float(X[i, t]) for i, t in enumerate(LABELS)))),
    ("mse_loss", lambda: F.mse_loss(ag.tensor(A), ag.tensor(P)),
     np.array(sum((float(a) - float(p)) ** 2 for a, p in zip(A.ravel(), P.ravel())) / A.size)),
    ("bce_with_logits", lambda: F.binary_cross_entropy_with_logits(ag.tensor(A * 30), ag.tensor(TARGETS),
                                                                   reduction="none"),
     ref_elementwise(lambda z, t: -(t * math.log(1 / (1 + math.exp(-z))) + (1 - t) * math.log(1 / (1 + math.exp(z))))
                     if abs(z) < 30 else max(z, 0) - z * t, A * 30, (A > 0) * 1.0)),
]


@pytest.mark.parametrize("name,fn,expected", FORWARD, ids=[row[0] for row in FORWARD])
def test_forward_float32_matches_reference(name, fn, expected, backend, parts):
    out = fn()
    assert out.dtype == np.float32, f"{name} returned {out.dtype}"
    assert out.backend == backend
    np.testing.assert_allclose(out.numpy(), expected, rtol=2e-5, atol=2e-6)


MATMUL_SHAPES = [((7, 5), (5, 3)), ((3, 5), (5, 9)), ((4, 2, 3), (4, 3, 5)), ((2, 1, 3, 4), (2, 5, 4, 6)),
                 ((2, 3, 4), (4, 5)), ((3,), (3, 4)), ((4, 3), (3,)), ((0, 3), (3, 2))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul_kernel_in_rows_columns_or_stacks_equals_numpy(backend, parts, shapes):
    """The backend's matmul (rows of a, columns of b or the stack in parts) gives NumPy's product."""
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal(shape) for shape in shapes)
    np.testing.assert_allclose((ag.tensor(a) @ ag.tensor(b)).numpy(), np.matmul(a, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gy_order", ["mask's layout", "C order"])
def test_relu_grad_kernel_takes_a_gradient_in_any_layout(backend, parts, gy_order):
    """ReLU's backward kernel gives gy times the mask, in the mask's layout (channels-last after a
    conv), whether gy comes in that layout or in C order (from Flatten)."""
    cpu = ag.get_backend()
    rng = np.random.default_rng(6)
    positive_nhwc = rng.standard_normal((4, 3, 3, 5)) > 0
    positive = cpu.from_host(positive_nhwc).transpose(0, 3, 1, 2)  # (N, C, H, W), channels-last in memory
    gy_host = rng.standard_normal((4, 5, 3, 3))
    gy = cpu.from_host(gy_host if gy_order == "C order" else np.ascontiguousarray(gy_host.transpose(0, 2, 3, 1)))
    if gy_order != "C order":
        gy = gy.transpose(0, 3, 1, 2)
    gx = cpu.relu_grad(gy, positive)
    np.testing.assert_array_equal(cpu.to_host(gx), gy_host * positive_nhwc.transpose(0, 3, 1, 2))
    assert gx.strides[1] == gx.itemsize, "channels-last, as the mask"


def test_no_grad_ops_forward():
    a = ag.tensor(A)
    np.testing.assert_array_equal((a > 0).numpy(), A > 0)
    np.testing.assert_array_equal((a <= ag.tensor(B)).numpy(), A <= B)
    assert (a == a).numpy().all() and not (a != a).numpy().any()
    np.testing.assert_array_equal(a.argmax(axis=1).numpy(), [int(np.argmax(row)) for row in A])
    np.testing.assert_array_equal(a.argmin().numpy(), int(np.argmin(A.ravel())))
    q = loss.OneHot.apply(ag.tensor(LABELS), classes=3)
    assert q.dtype == np.float32
    np.testing.assert_array_equal(q.numpy(), [[float(j == t) for j in range(3)] for t in LABELS])


def test_every_core_op_has_a_forward_row(applied_functions):
    """Each Function in the core op modules runs in some row above (forward only)."""
    used = applied_functions
    for _, fn, _ in FORWARD:
        fn()
    test_no_grad_ops_forward()
    core = {obj for m in CORE_MODULES for obj in vars(m).values()
            if isinstance(obj, type) and issubclass(obj, Function) and obj.__module__ == m.__name__
            and not obj.__name__.startswith("_")}  # a private base only holds what two ops share
    backward_only = {shape.ScatterAdd}  # runs in GetItem's backward; checked below
    missing = sorted(f.__name__ for f in core - used - backward_only)
    assert not missing, f"core ops without a forward check: {missing}"


def test_scatter_add_forward_adds_repeated_indices():
    g = ag.tensor(np.array([1.0, 2.0, 4.0], dtype=np.float32))
    out = shape.ScatterAdd.apply(g, shape=(3,), index=np.array([0, 2, 0]))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), [5.0, 0.0, 2.0])


# --------------------------------------------------------------------------- the F.* names

# API.md's functional ops: each must be an F.* name.
API_FUNCTIONAL = [
    "linear", "conv1d", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d",
    "global_avg_pool2d", "global_max_pool2d", "adaptive_avg_pool2d", "relu", "leaky_relu", "sigmoid", "tanh",
    "gelu", "softmax", "log_softmax", "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits",
    "dropout", "batch_norm", "flatten",
]


def test_functional_reexports_the_wrappers_each_ops_module_lists():
    modules = (activation, conv, elementwise, loss, matmul, norm, pool, reduce, shape)
    listed = [name for m in modules for name in m.__all__]
    assert len(set(listed)) == len(listed), "two ops modules list the same name"
    assert sorted(F.__all__) == sorted(listed)
    for m in modules:
        for name in m.__all__:
            assert getattr(F, name) is getattr(m, name), f"F.{name} is not {m.__name__}.{name}"
    assert set(API_FUNCTIONAL) <= set(F.__all__)
    assert inspect.signature(F.flatten).parameters["start_axis"].default == 1  # the batch axis stays


# --------------------------------------------------------------------------- dtype rules


def test_python_scalars_keep_a_float32_graph_float32(backend):
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    for y in (x * 2.5, 2.5 * x, x + 1, x - 0.5, 1.0 - x, x / 3, 3 / x, x ** 2, 2.0 ** x, x ** 0.5,
              ag.maximum(x, 0.0), ag.where(x > 1, x, 0.0), x * np.float64(2.0)):
        assert y.dtype == np.float32
    loss = (x * 2.5 + 1).sum()
    assert loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32


def test_float64_stays_float64_end_to_end(backend):
    x = ag.tensor(np.array([0.5, 1.5]), requires_grad=True)
    w = ag.tensor(np.ones((2, 2)), requires_grad=True)
    y = F.softmax(F.linear(x * 2.0, w).tanh() ** 2, axis=-1).log().mean()
    assert y.dtype == np.float64
    y.backward()
    assert x.grad.dtype == np.float64 and w.grad.dtype == np.float64


def test_float32_and_float64_inputs_give_float64(backend):
    """No silent downcast: mixing float32 and float64 promotes as NumPy and PyTorch do."""
    a = ag.tensor([1.0], requires_grad=True)
    b = ag.tensor(np.array([2.0]), requires_grad=True)
    y = a * b
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64, "each grad in its input's dtype"


def test_integer_labels_keep_integer_dtype(backend):
    labels = ag.tensor([0, 2, 1])
    assert labels.dtype.kind == "i"
    assert labels[1:].dtype.kind == "i" and labels.reshape(3, 1).dtype.kind == "i"
    assert ag.tensor(np.array([1, 2], dtype=np.int32)).dtype == np.int32
    logits = ag.tensor(_data(3, 3), requires_grad=True)
    out = F.cross_entropy(logits, labels)
    assert out.dtype == np.float32 and labels.dtype.kind == "i"


@pytest.mark.parametrize("expr,dtype", [
    (lambda i, u, f: i * 2.5, "float32"), (lambda i, u, f: 2.5 - i, "float32"),
    (lambda i, u, f: i / 2, "float32"), (lambda i, u, f: i / i, "float32"),
    (lambda i, u, f: u / 255, "float32"), (lambda i, u, f: i + f, "float32"),
    (lambda i, u, f: f / i, "float32"), (lambda i, u, f: i ** 0.5, "float32"),
    (lambda i, u, f: i * 2, "int64"), (lambda i, u, f: i + u, "int64"), (lambda i, u, f: i ** 2, "int64"),
    (lambda i, u, f: i + f.astype("float64"), "float64"),
    (lambda i, u, f: ag.maximum(i, f) if isinstance(i, ag.Tensor) else np.maximum(i, f), "float32"),
])
def test_integer_and_float_arithmetic_promotes_as_in_pytorch(backend, expr, dtype):
    """An integer tensor with a float (tensor or number) takes the float's type, and integer
    true division gives float32: PyTorch's rules, where NumPy would give float64. The
    reference values come from NumPy, on the same expression."""
    i = ag.tensor(np.array([1, 2, 4]), backend=backend)
    u = ag.tensor(np.array([0, 128, 255], dtype=np.uint8), backend=backend)
    f = ag.tensor(np.array([0.5, 1.0, 2.0], dtype=np.float32), backend=backend)
    out = expr(i, u, f)
    assert str(out.dtype) == dtype
    reference = expr(np.array([1, 2, 4]), np.array([0, 128, 255], dtype=np.uint8),
                     np.array([0.5, 1.0, 2.0], dtype=np.float32))
    np.testing.assert_allclose(out.numpy(), reference, rtol=1e-6)


def test_an_integer_input_leaves_the_float_input_a_float32_gradient(backend):
    w = ag.tensor(np.array([0.5, -1.0], dtype=np.float32), requires_grad=True, backend=backend)
    (w * ag.tensor(np.array([3, 4]), backend=backend)).sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_allclose(w.grad.numpy(), [3.0, 4.0])


def test_cross_entropy_float64_with_integer_labels(backend):
    out = F.cross_entropy(ag.tensor(X.astype(np.float64)), ag.tensor(LABELS))
    assert out.dtype == np.float64


def test_large_inputs_stay_finite(backend):
    z = ag.tensor([[1000.0, -1000.0, 0.0]])
    assert np.isfinite(F.softmax(z).numpy()).all() and np.isfinite(F.log_softmax(z).numpy()[0, 0])
    assert np.isfinite(F.sigmoid(z).numpy()).all()
    assert np.isfinite(F.softplus(z, threshold=1e4).numpy()).all()  # the log(1 + e^z) branch at |z| = 1000
    assert np.isfinite(F.cross_entropy(z, ag.tensor([1])).item())
    assert np.isfinite(F.binary_cross_entropy_with_logits(z, ag.tensor([[0.0, 1.0, 1.0]])).item())


# --------------------------------------------------------------------------- shape errors


def _t(*shape_):
    return ag.tensor(np.ones(shape_, dtype=np.float32))


SHAPE_ERRORS = [
    ("add", lambda: _t(2, 3) + _t(4), ["Add", "(2, 3)", "(4)"]),
    ("sub", lambda: _t(2, 3) - _t(3, 2), ["Sub", "(2, 3)", "(3, 2)"]),
    ("mul", lambda: _t(5) * _t(2, 3), ["Mul", "(5)", "(2, 3)"]),
    ("div", lambda: _t(2, 3) / _t(2, 2), ["Div", "(2, 3)", "(2, 2)"]),
    ("pow", lambda: _t(2, 3) ** _t(3, 3), ["Pow", "(2, 3)", "(3, 3)"]),
    ("maximum", lambda: ag.maximum(_t(2), _t(3)), ["Maximum", "(2)", "(3)"]),
    ("minimum", lambda: ag.minimum(_t(2), _t(3)), ["Minimum", "(2)", "(3)"]),
    ("compare", lambda: _t(2) < _t(3), ["Compare", "(2)", "(3)"]),
    ("where", lambda: ag.where(_t(2, 3) > 0, _t(2, 3), _t(4)), ["Where", "(2, 3)", "(4)"]),
    ("sum_axis", lambda: _t(2, 3).sum(axis=2), ["Sum", "axis 2"]),
    ("max_axis", lambda: _t(2, 3).max(axis=(0, -3)), ["Max", "axis -3"]),
    ("var_ddof", lambda: _t(2, 3).var(axis=0, ddof=2), ["Var", "ddof=2"]),
    ("argmax_axis", lambda: _t(2, 3).argmax(axis=4), ["ArgMax", "axis 4"]),
    ("reshape", lambda: _t(2, 3).reshape(4, 2), ["Reshape", "(2, 3)", "(4, 2)"]),
    ("transpose", lambda: _t(2, 3).transpose(1, 1), ["Transpose", "(2, 3)"]),
    ("getitem", lambda: _t(2, 3)[:, 7], ["GetItem", "(2, 3)"]),
    ("concat", lambda: ag.concat([_t(2, 3), _t(3, 2)]), ["Concat", "(2, 3)", "(3, 2)"]),
    ("stack", lambda: ag.stack([_t(2, 3), _t(3)]), ["Stack", "(2, 3)", "(3)"]),
    ("pad", lambda: ag.pad(_t(2, 3), ((1, 1),)), ["pad", "(2, 3)"]),
    ("matmul", lambda: _t(2, 3) @ _t(2, 3), ["MatMul", "(2, 3)", "inner dimensions 3 and 2"]),
    ("matmul_scalar", lambda: _t(2, 3) @ ag.tensor(2.0), ["MatMul", "()"]),
    ("linear", lambda: F.linear(_t(4, 5), _t(3, 4)), ["Linear", "(4, 5)", "(3, 4)"]),
    ("softmax_axis", lambda: F.softmax(_t(2, 3), axis=2), ["Softmax", "axis 2", "(2, 3)"]),
    ("log_softmax_axis", lambda: F.log_softmax(_t(2, 3), axis=-3), ["LogSoftmax", "(2, 3)"]),
    ("cross_entropy_targets", lambda: F.cross_entropy(_t(4, 3), ag.tensor([0, 1])),
     ["cross_entropy", "(4, 3)", "(2)"]),
    ("cross_entropy_probs", lambda: F.cross_entropy(_t(4, 3), _t(4, 2)), ["cross_entropy", "(4, 3)", "(4, 2)"]),
    ("cross_entropy_class", lambda: F.cross_entropy(_t(2, 3), ag.tensor([0, 3])), ["cross_entropy", "[0, 2]"]),
    ("cross_entropy_1d", lambda: F.cross_entropy(_t(3), ag.tensor([0])), ["cross_entropy", "(3)"]),
    ("nll_loss", lambda: F.nll_loss(_t(2, 3), ag.tensor([0, 1, 1])), ["nll_loss", "(2, 3)", "(3)"]),
    ("mse_loss", lambda: F.mse_loss(_t(2, 3), _t(3, 2)), ["mse_loss", "(2, 3)", "(3, 2)"]),
    ("bce", lambda: F.binary_cross_entropy_with_logits(_t(2, 3), _t(2)), ["binary_cross_entropy", "(2, 3)", "(2)"]),
]


@pytest.mark.parametrize("name,fn,needles", SHAPE_ERRORS, ids=[row[0] for row in SHAPE_ERRORS])
def test_shape_errors_name_the_op_and_the_shapes(name, fn, needles):
    with pytest.raises(ShapeError) as err:
        out = fn()
        out.numpy()  # a GPU reports a bad value (a class index) at the next read
    message = str(err.value)
    for needle in needles:
        assert needle in message, f"{needle!r} missing from: {message}"
    assert "Traceback" not in message and "operands could not be broadcast" not in message


def test_backward_rule_with_a_wrong_shape_is_named():
    class Bad(Function):
        """y = x, with a backward that returns the wrong shape"""
        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, gy):
            return gy.reshape((-1,))[:1]

    x = ag.tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    with pytest.raises(ShapeError, match=r"Bad\.backward: gradient for input 0 has shape \(1\), expected \(2, 3\)"):
        Bad.apply(x).sum().backward()


def test_nll_loss_takes_class_indices_as_an_array_or_a_list():
    log_probs = F.log_softmax(ag.tensor(X))
    expected = F.nll_loss(log_probs, ag.tensor(LABELS)).item()
    for target in (LABELS, LABELS.tolist()):
        assert F.nll_loss(log_probs, target).item() == expected


def test_reduction_names_are_checked():
    with pytest.raises(ValueError, match="cross_entropy: reduction must be one of"):
        F.cross_entropy(_t(2, 3), ag.tensor([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="gelu: approximate must be"):
        F.gelu(_t(2), approximate="fast")


@pytest.mark.parametrize("shapes", [((8, 5), (5, 3)), ((3, 5), (5, 8))], ids=["rows", "columns"])
def test_a_product_long_in_arithmetic_runs_on_blas_threads(backend, monkeypatch, shapes):
    """A product of two matrices over min_parallel_macs multiply-adds goes to blas_product."""
    cpu = ag.get_backend()
    monkeypatch.setattr(type(cpu), "min_parallel_macs", 1)
    seen = []
    blas_product = cpu.blas_product
    monkeypatch.setattr(cpu, "blas_product", lambda a, b: seen.append((a.shape, b.shape)) or blas_product(a, b))
    rng = np.random.default_rng(4)
    a, b = (rng.standard_normal(shape) for shape in shapes)
    np.testing.assert_allclose((ag.tensor(a) @ ag.tensor(b)).numpy(), a @ b, rtol=1e-12, atol=1e-12)
    assert seen == ([] if cpu.launch_bound else [shapes])


@pytest.mark.skipif(not NUMBA_OK, reason="the worker threads are the numba backend's; Numba is not installed")
def test_blas_threads_are_ended_before_the_worker_threads_run_again(monkeypatch):
    """After a product on BLAS's own threads, the next kernel in several parts ends those threads
    first (they would spin on the cores its parts run on), and only that once; BLAS then stays on
    one thread (setting its count would start new threads, which spin too) until the next such
    product gives it its count back."""
    from autograd_cnn.backends.threads import Workers

    cpu = ag.get_backend("numba")  # the backend with worker threads
    blas = BlasStandIn()
    monkeypatch.setattr(cpu, "blas", blas)
    for name, value in (("_blas_parked", None), ("_blas_spinning", False)):  # put back as they were after the test
        monkeypatch.setattr(cpu, name, value)
    monkeypatch.setattr(cpu, "threads", 2)
    monkeypatch.setattr(cpu, "workers", Workers(2))
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((64, 64)), rng.standard_normal((64, 64))
    np.testing.assert_allclose(cpu.blas_product(a, b), a @ b, rtol=1e-12, atol=1e-12)
    cpu.run_parts(lambda part: part, [0])  # one part runs on the caller: BLAS's threads may go on
    assert blas.stops == 0 and blas.count == 2
    assert cpu.run_parts(lambda part: blas.get(), [0, 1]) == [1, 1]
    assert blas.stops == 1 and blas.count == 1
    meet = threading.Barrier(2, timeout=20)  # passed only when two threads run the two parts
    assert cpu.run_parts(lambda part: meet.wait() >= 0, [0, 1]) == [True, True], \
        "BLAS kept on one thread is not the user's cap: the parts still share the worker threads"
    assert blas.stops == 1 and blas.count == 1, "nothing ran on BLAS's threads since they were ended"
    np.testing.assert_allclose(cpu.blas_product(a, b), a @ b, rtol=1e-12, atol=1e-12)
    assert blas.count == 2, "the product gave BLAS its own count back"
    cpu.run_parts(lambda part: part, [0, 1])
    assert blas.stops == 2 and blas.count == 1


def test_cross_entropy_in_half_precision_sums_in_float32():
    """float16 logits: the softmax and the sums run in float32, so a large row loss does not overflow
    before the mean, and float32 targets get a float32 loss computed at float32's precision."""
    z = ag.tensor(np.zeros((3, 4), np.float16))
    q = np.zeros((3, 4), np.float16)
    q[0, 0] = 65504.0  # the row's loss, 65504 * log 4, overflows float16; the mean of three rows does not
    out = F.cross_entropy(z, q)
    assert out.dtype == np.float16 and np.isfinite(out.item())
    assert abs(out.item() - 65504.0 * np.log(4) / 3) < 40
    z32 = np.array([[0.0, 0.5], [0.5, 0.5]], np.float16)
    t = np.ones((2, 2), np.float32)
    got = F.cross_entropy(ag.tensor(z32), t)
    want = -(t * (z32.astype(np.float64) - np.log(np.exp(z32.astype(np.float64)).sum(1, keepdims=True)))).sum(1).mean()
    assert got.dtype == np.float32 and abs(got.item() - want) < 1e-5
