"""The engine: the backward walk, accumulation, un-broadcasting, graph lifetime, grad modes,
higher-order gradients, and the Tensor API (creation, factories, seeding, conversion)."""
from __future__ import annotations

import gc
import math
import sys
import weakref

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import autograd
from autograd_cnn.autograd import Function
from autograd_cnn.errors import GraphError, ShapeError

# --------------------------------------------------------------------------- deep and large graphs


def test_chain_of_10000_ops_needs_no_recursion(backend):
    """The walk is iterative: a 10,000-op chain runs backward under a tiny recursion limit."""
    x = ag.tensor([0.3, -0.2], dtype="float64", requires_grad=True)
    h = x
    for _ in range(10_000):
        h = h * 1.0001
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        h.sum().backward()
    finally:
        sys.setrecursionlimit(limit)
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 10_000] * 2, rtol=1e-9)


def test_graph_of_100000_nodes(backend):
    """h <- (h + x) / 2 keeps h = x, so dh/dx = 1 after 50,000 steps (100,000 nodes)."""
    x = ag.tensor([1.5], dtype="float64", requires_grad=True)
    h = x
    for _ in range(50_000):
        h = (h + x) * 0.5
    h.backward(ag.tensor([1.0], dtype="float64"))
    np.testing.assert_allclose(h.numpy(), [1.5])
    np.testing.assert_allclose(x.grad.numpy(), [1.0], rtol=1e-9)


def test_deep_graph_is_released_without_crashing():
    x = ag.tensor([1.0], requires_grad=True)
    h = x
    for _ in range(100_000):
        h = h + 1.0
    ref = weakref.ref(h.grad_fn)
    del h
    assert ref() is None


# --------------------------------------------------------------------------- accumulation, broadcasting


def test_gradient_accumulates_where_a_tensor_feeds_several_ops(backend):
    values = np.array([0.5, -1.0, 2.0])
    x = ag.tensor(values, dtype="float64", requires_grad=True)
    y = x * x + 3 * x + x.exp() - x / 2
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * values + 3 + np.exp(values) - 0.5)


def test_diamond_graph_sums_both_paths(backend):
    x = ag.tensor([2.0], dtype="float64", requires_grad=True)
    a = x * 3
    b = a.tanh() + a * a  # a feeds two ops; both gradients reach x through a
    b.backward(ag.tensor([1.0], dtype="float64"))
    expected = 3 * ((1 - math.tanh(6.0) ** 2) + 2 * 6.0)
    np.testing.assert_allclose(x.grad.numpy(), [expected])


def test_grad_accumulates_across_backward_calls_as_in_pytorch(backend):
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    x.zero_grad()
    assert x.grad is None


def test_unbroadcasting_sums_over_broadcast_axes(backend):
    a = ag.tensor(np.arange(3.0).reshape(3, 1), requires_grad=True)
    b = ag.tensor(np.arange(4.0), requires_grad=True)
    c = ag.tensor(np.ones((2, 1, 1)), requires_grad=True)
    w = np.arange(24.0).reshape(2, 3, 4)
    ((a + b) * c * ag.tensor(w)).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,) and c.grad.shape == (2, 1, 1)
    np.testing.assert_allclose(a.grad.numpy(), w.sum(axis=(0, 2))[:, None])
    np.testing.assert_allclose(b.grad.numpy(), w.sum(axis=(0, 1)))
    sums = (np.arange(3.0)[:, None] + np.arange(4.0)) * w
    np.testing.assert_allclose(c.grad.numpy(), sums.sum(axis=(1, 2)).reshape(2, 1, 1))


def test_leaf_grads_are_writable_and_not_shared(backend):
    """A sum's gradient is a broadcast view; .grad must still be safe to update in place."""
    w = ag.tensor(np.ones((2, 3)), requires_grad=True)
    w.sum().backward()
    w.grad.data *= 2  # what an in-place optimizer does
    np.testing.assert_allclose(w.grad.numpy(), np.full((2, 3), 2.0))


def test_strided_leaf_grads_are_kept_without_a_copy(backend):
    """A transposed gradient (as a channels-last conv hands back) is safe in place as it is."""
    x = ag.tensor(np.ones((3, 2)), requires_grad=True)
    (x.T * ag.tensor(np.arange(6.0).reshape(2, 3))).sum().backward()
    assert not x.grad.data.flags.c_contiguous  # no copy was made
    x.grad.data *= 2
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.arange(6.0).reshape(2, 3).T)


# --------------------------------------------------------------------------- .grad and graph lifetime


def test_grad_only_on_leaves_and_retained(backend):
    x = ag.tensor([1.0, -2.0], requires_grad=True)
    h = x * 3
    kept = h.tanh()
    kept.retain_grad()
    kept.sum().backward()
    assert x.is_leaf and not h.is_leaf
    assert h.grad is None
    np.testing.assert_allclose(kept.grad.numpy(), [1.0, 1.0])
    np.testing.assert_allclose(x.grad.numpy(), 3 * (1 - np.tanh([3.0, -6.0]) ** 2), rtol=1e-5, atol=1e-6)


def test_retain_grad_needs_a_tensor_that_requires_grad():
    with pytest.raises(GraphError, match="does not require grad"):
        ag.tensor([1.0]).retain_grad()


def test_saved_values_are_freed_after_backward():
    x = ag.tensor([1.0, -1.0], requires_grad=True)
    y = x.relu()  # saves a boolean mask, an array no tensor holds
    mask = weakref.ref(y.grad_fn.saved[0])
    y.sum().backward()
    assert mask() is None
    with pytest.raises(GraphError, match="retain_graph=True"):
        y.sum().backward()


@pytest.mark.parametrize("run_backward", [False, True])
def test_a_graph_is_freed_by_reference_counting_alone(backend, run_backward):
    """No node refers back to its output, so no cycle keeps a dropped graph alive."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        x = ag.tensor([0.5, -1.0], requires_grad=True)
        h = x.exp()  # Exp saves its own output
        y = (h.tanh() * x).relu()
        node, tensor = weakref.ref(h.grad_fn), weakref.ref(h)
        loss = y.sum()
        if run_backward:
            loss.backward()
        del h, y, loss
        assert tensor() is None and node() is None
    finally:
        if collecting:
            gc.enable()


def test_backward_gives_the_cycle_collector_back_as_it_was(backend):
    class FailingGrad(Function):
        @staticmethod
        def forward(ctx, a):
            return a.copy()

        @staticmethod
        def backward(ctx, gy):
            raise RuntimeError("fails on purpose")

    x = ag.tensor([1.0, 2.0], requires_grad=True)
    assert gc.isenabled()
    (x * x).sum().backward()
    assert gc.isenabled()
    gc.disable()
    try:
        (x * x).sum().backward()
        assert not gc.isenabled(), "backward turned on a collector its caller had turned off"
    finally:
        gc.enable()
    with pytest.raises(RuntimeError, match="fails on purpose"):  # a backward that fails on the way
        FailingGrad.apply(x).sum().backward()
    assert gc.isenabled()


def test_backward_frees_each_activation_once_the_last_node_that_read_it_has_run():
    x = ag.tensor([0.5, -1.0, 2.0], dtype="float64", requires_grad=True)
    h = x.exp()
    t = h.tanh()
    loss = t.relu().sum()
    made_by_exp, made_by_tanh = weakref.ref(h), weakref.ref(t)
    del h, t
    alive_at_exp = []
    with autograd.register_step_hook(
            lambda node, g, grads: node.name == "Exp" and alive_at_exp.append(made_by_tanh() is not None)):
        loss.backward()
    assert alive_at_exp == [False], "Tanh's output outlived ReLU, the one node that read it"
    assert made_by_exp() is None, "an activation stayed alive while the loss is still held"
    np.testing.assert_allclose(x.grad.numpy(), (np.tanh(np.exp([0.5, -1.0, 2.0])) > 0)
                               * (1 - np.tanh(np.exp([0.5, -1.0, 2.0])) ** 2) * np.exp([0.5, -1.0, 2.0]),
                               rtol=1e-5)


def test_retain_graph_named_and_retain_grad_tensors_keep_their_values():
    x = ag.tensor([0.5, -1.0], requires_grad=True)
    h, named, kept = x.exp(), x.tanh(), x.sigmoid()
    named.name = "named"
    kept.retain_grad()
    loss = (h * named * kept).sum()
    made_by_exp = weakref.ref(h)
    del h, named, kept
    loss.backward(retain_graph=True)
    assert made_by_exp() is not None, "retain_graph=True must keep the values for a second backward"
    loss.backward()
    assert made_by_exp() is None
    inputs = loss.grad_fn.inputs[0].grad_fn.inputs  # (h * named), kept
    assert isinstance(inputs[1], ag.Tensor) and inputs[1].grad is not None  # retain_grad(): kept, with .grad
    assert isinstance(inputs[0].grad_fn.inputs[1], ag.Tensor)  # named: kept
    assert isinstance(inputs[0].grad_fn.inputs[0], autograd.ReleasedTensor)
    assert inputs[0].grad_fn.inputs[0].numpy() is None and inputs[0].grad_fn.inputs[0].shape == (2,)


def test_a_graph_of_ops_that_save_nothing_runs_backward_twice_as_in_pytorch():
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    loss = ((x + 1) - 3).sum()
    loss.backward()
    loss.backward()  # nothing was saved, so nothing was freed that it needs
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_second_backward_names_retain_graph():
    x = ag.tensor([2.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(GraphError) as err:
        loss.backward()
    assert "retain_graph=True" in str(err.value) and "Mul" in str(err.value)


def test_retain_graph_allows_a_second_backward(backend):
    x = ag.tensor([2.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [8.0])


def test_backward_on_non_scalar_needs_grad(backend):
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(GraphError, match=r"not a scalar.*loss\.sum\(\)"):
        y.backward()
    y.backward(ag.tensor([1.0, 0.5]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 1.0])


def test_backward_grad_of_wrong_shape_names_both():
    y = ag.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(ShapeError, match=r"\(3\).*\(2\)"):
        y.backward(ag.tensor([1.0, 1.0, 1.0]))


def test_backward_without_requires_grad_says_what_to_do():
    with pytest.raises(GraphError, match="requires_grad=True"):
        (ag.tensor([1.0]) * 2).sum().backward()


def test_backward_grad_from_a_list_or_array(backend):
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward([1.0, 2.0])
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 6.0])
    assert x.grad.dtype == np.float32


# --------------------------------------------------------------------------- grad modes, requires_grad


def test_requires_grad_propagates_as_in_pytorch(backend):
    a = ag.tensor([1.0], requires_grad=True)
    b = ag.tensor([2.0])
    assert (a + b).requires_grad and (b * a).requires_grad
    assert not (b * 2).requires_grad and (b * 2).grad_fn is None
    assert (a * 2).grad_fn is not None and (a * 2).grad_fn.name == "Mul"
    assert not (a > 0).requires_grad, "comparisons carry no gradient"
    assert not a.argmax().requires_grad


def test_no_grad_builds_no_graph(backend):
    a = ag.tensor([1.0], requires_grad=True)
    assert ag.is_grad_enabled()
    with ag.no_grad():
        assert not ag.is_grad_enabled()
        y = a * 2
    assert ag.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf


def test_enable_grad_inside_no_grad_and_restoring_on_error(backend):
    a = ag.tensor([1.0], requires_grad=True)
    with ag.no_grad():
        with ag.enable_grad():
            y = a * 2
        z = a * 2
    assert y.requires_grad and not z.requires_grad
    with pytest.raises(RuntimeError), ag.no_grad():
        raise RuntimeError("inside")
    assert ag.is_grad_enabled()


def test_no_grad_as_decorator_and_set_grad_enabled():
    a = ag.tensor([1.0], requires_grad=True)

    @ag.no_grad()
    def double(t):
        """Doubles."""
        return t * 2

    assert not double(a).requires_grad and double.__doc__ == "Doubles."
    with ag.set_grad_enabled(False):
        assert not (a * 2).requires_grad
    assert ag.is_grad_enabled()
    ag.set_grad_enabled(False)
    try:
        assert not ag.is_grad_enabled()
    finally:
        ag.set_grad_enabled(True)


def test_detach_shares_values_and_cuts_the_graph(backend):
    a = ag.tensor([1.0, 2.0], requires_grad=True)
    y = a * 3
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert d.data is y.data
    (d * a).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [3.0, 6.0])  # nothing flows through d


def test_requires_grad_only_for_floats():
    with pytest.raises(TypeError, match="floating-point"):
        ag.tensor([1, 2], requires_grad=True)


# --------------------------------------------------------------------------- ag.grad, higher order


def test_third_derivative_of_cube(backend):
    x = ag.tensor(2.0, dtype="float64", requires_grad=True)
    (g1,) = ag.grad(x ** 3, x, create_graph=True)
    (g2,) = ag.grad(g1, x, create_graph=True)
    (g3,) = ag.grad(g2, x)
    assert (g1.item(), g2.item(), g3.item()) == pytest.approx((12.0, 12.0, 6.0))
    assert x.grad is None, "ag.grad returns gradients, it does not store them"


def test_second_derivative_of_tanh(backend):
    values = np.array([-1.0, 0.2, 0.7])
    x = ag.tensor(values, dtype="float64", requires_grad=True)
    (g,) = ag.grad(x.tanh().sum(), x, create_graph=True)
    (gg,) = ag.grad(g.sum(), x)
    t = np.tanh(values)
    np.testing.assert_allclose(g.numpy(), 1 - t ** 2)
    np.testing.assert_allclose(gg.numpy(), -2 * t * (1 - t ** 2))


def test_create_graph_backward_fills_grad_with_a_graph(backend):
    x = ag.tensor([3.0], dtype="float64", requires_grad=True)
    (x ** 2).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (gg,) = ag.grad(x.grad.sum(), x)
    np.testing.assert_allclose(gg.numpy(), [2.0])


def test_a_create_graph_backward_keeps_the_graph_its_gradients_run_through(backend):
    """backward(create_graph=True) retains the graph by default, as in PyTorch: the gradient is
    a graph through Exp's saved output, and differentiating it again needs that output."""
    x = ag.tensor([0.5, 1.0], dtype="float64", requires_grad=True)
    (x * x).exp().sum().backward(create_graph=True)
    g, x.grad = x.grad, None
    g.sum().backward()  # d/dx of 2x e^{x^2} = (2 + 4x^2) e^{x^2}
    values = np.array([0.5, 1.0])
    np.testing.assert_allclose(x.grad.numpy(), (2 + 4 * values ** 2) * np.exp(values ** 2))


def test_grad_of_an_intermediate_and_unused_inputs(backend):
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    unused = ag.tensor([5.0], requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    gh, gx = ag.grad(y, [h, x], retain_graph=True)
    np.testing.assert_allclose(gh.numpy(), [4.0, 8.0])
    np.testing.assert_allclose(gx.numpy(), [8.0, 16.0])
    with pytest.raises(GraphError, match="allow_unused=True"):
        ag.grad(y, [x, unused], retain_graph=True)
    assert ag.grad(y, [x, unused], allow_unused=True)[1] is None


# --------------------------------------------------------------------------- creation and factories


def test_tensor_from_lists_scalars_and_arrays(backend):
    assert ag.tensor([1.0, 2.0]).dtype == np.float32
    assert ag.tensor(3.5).shape == () and ag.tensor(3.5).dtype == np.float32
    assert ag.tensor([[1, 2], [3, 4]]).dtype.kind == "i"
    assert ag.tensor(np.ones(3)).dtype == np.float64, "an array keeps its dtype"
    assert ag.tensor(np.ones(3, dtype=np.float16)).dtype == np.float16
    assert ag.tensor([1, 2], dtype="float64").dtype == np.float64
    assert ag.tensor([True, False]).dtype == np.bool_
    assert ag.tensor(np.float64(2.0)).dtype == np.float64
    t = ag.tensor([1.0, 2.0])
    assert ag.tensor(t).data is not t.data, "tensor() copies, as torch.tensor does"
    assert t.backend == backend and ag.tensor([1.0]).ndim == 1 and ag.tensor([[1.0]]).size == 1


def test_tensor_copies_its_input():
    a = np.zeros(3, dtype=np.float32)
    t = ag.tensor(a)
    a[0] = 7
    assert t.numpy()[0] == 0


@pytest.mark.parametrize("bad", ["text", [[1, 2], [3]], {"a": 1}, None])
def test_tensor_rejects_non_numeric_data(bad):
    with pytest.raises(TypeError, match=r"tensor\(\): cannot make a tensor"):
        ag.tensor(bad)


def test_factories(backend):
    assert ag.zeros(2, 3).shape == (2, 3) and ag.zeros((2, 3)).dtype == np.float32
    assert ag.ones(4, dtype="float64").dtype == np.float64
    np.testing.assert_array_equal(ag.ones(2, 2).numpy(), np.ones((2, 2)))
    np.testing.assert_array_equal(ag.zeros(3).numpy(), np.zeros(3))
    assert ag.ones(2, requires_grad=True).requires_grad
    like = ag.tensor(np.full((2, 2), 5.0))
    assert ag.zeros_like(like).dtype == np.float64 and not ag.zeros_like(like).numpy().any()
    np.testing.assert_array_equal(ag.ones_like(like).numpy(), np.ones((2, 2)))
    np.testing.assert_array_equal(ag.arange(4).numpy(), [0, 1, 2, 3])
    assert ag.arange(4).dtype == np.int64
    np.testing.assert_allclose(ag.arange(1, 2, 0.25).numpy(), [1.0, 1.25, 1.5, 1.75])
    assert ag.arange(1, 2, 0.25).dtype == np.float32
    r, n = ag.rand(1000), ag.randn(3, 4)
    assert r.dtype == np.float32 and n.shape == (3, 4) and n.dtype == np.float32
    assert 0 <= r.numpy().min() and r.numpy().max() < 1
    assert ag.randn(2, dtype="float64").dtype == np.float64
    a = np.arange(3.0)
    assert ag.from_numpy(a).dtype == np.float64
    np.testing.assert_array_equal(ag.from_numpy(a).numpy(), a)


def test_like_factories_keep_the_memory_layout(backend):
    """As PyTorch's preserve_format: a channels-last image's ones are channels-last too."""
    image = ag.tensor(np.zeros((2, 4, 4, 3))).transpose(0, 3, 1, 2)  # NCHW shape, NHWC memory
    for made in (ag.ones_like(image), ag.zeros_like(image)):
        assert made.shape == (2, 3, 4, 4)
        assert made.data.strides == image.data.strides


def test_manual_seed_repeats(backend):
    ag.manual_seed(42)
    a, b = ag.randn(5).numpy(), ag.rand(3).numpy()
    ag.manual_seed(42)
    np.testing.assert_array_equal(ag.randn(5).numpy(), a)
    np.testing.assert_array_equal(ag.rand(3).numpy(), b)
    ag.manual_seed(43)
    assert not np.array_equal(ag.randn(5).numpy(), a)


# --------------------------------------------------------------------------- conversion, repr


def test_numpy_item_and_conversions(backend):
    t = ag.tensor([[1.5, 2.0]])
    assert isinstance(t.numpy(), np.ndarray)
    assert ag.tensor([2.5]).item() == 2.5 and isinstance(ag.tensor([2.5]).item(), float)
    assert ag.tensor(7).item() == 7 and isinstance(ag.tensor(7).item(), int)
    assert float(ag.tensor(1.5)) == 1.5 and int(ag.tensor(3)) == 3
    with pytest.raises(ValueError, match=r"item\(\).*\(1, 2\)"):
        t.item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(ag.tensor([1.0, 2.0]))
    assert t.tolist() == [[1.5, 2.0]]
    if backend == "cupy":  # a GPU tensor's values come to the host by .numpy() only, as CuPy's own arrays
        with pytest.raises(ag.BackendError, match=r"\.numpy\(\)"):
            np.asarray(t)
    else:
        np.testing.assert_array_equal(np.asarray(t), t.numpy())


def test_to_cpu_and_astype(backend):
    t = ag.tensor([1.0, 2.0], requires_grad=True)
    assert t.to(backend) is t
    host = t.cpu()
    assert host.backend == "numpy"
    d = t.astype("float64")
    assert d.dtype == np.float64 and d.requires_grad
    d.sum().backward()
    assert t.grad.dtype == np.float32, "the gradient comes back in the input's dtype"
    assert t.double().dtype == np.float64 and t.double().float().dtype == np.float32


@pytest.fixture
def on_numpy():
    with ag.use_backend("numpy"):
        yield


def test_repr(on_numpy):
    assert repr(ag.tensor([1.0, 2.0])) == "tensor([1. 2.], dtype=float32)"
    assert repr(ag.tensor([1.0], requires_grad=True)) == "tensor([1.], dtype=float32, requires_grad=True)"
    r = repr(ag.tensor([1.0], requires_grad=True) * 2)
    assert r == "tensor([2.], dtype=float32, grad_fn=<MulBackward>)"
    assert repr(ag.tensor([[1, 2], [3, 4]])) == "tensor([[1 2]\n        [3 4]], dtype=int64)"


def test_tensors_are_hashable_and_named():
    t = ag.tensor([1.0], name="weights")
    assert {t: 1}[t] == 1 and t.name == "weights"


def test_forward_knows_whether_the_node_is_recorded(backend):
    """ctx.records is set before forward, so a forward can skip work only backward needs."""
    seen = []

    class Probe(Function):
        @staticmethod
        def forward(ctx, x):
            seen.append(ctx.records)
            return x * 2

        @staticmethod
        def backward(ctx, gy):
            return gy * 2

    leaf = ag.tensor([1.0, 2.0], requires_grad=True)
    Probe.apply(leaf)
    Probe.apply(ag.tensor([1.0, 2.0]))
    with ag.no_grad():
        Probe.apply(leaf)
    assert seen == [True, False, False]
