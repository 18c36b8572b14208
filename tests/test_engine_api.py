"""The engine's public surface: grad modes, gradient hooks, and reading a recorded graph."""
from __future__ import annotations

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import autograd
from autograd_cnn.errors import GraphError

# --------------------------------------------------------------------------- grad modes

MODES = [(ag.no_grad, False), (ag.enable_grad, True),
         (lambda: ag.set_grad_enabled(False), False), (lambda: ag.set_grad_enabled(True), True)]


@pytest.mark.parametrize("make, inside", MODES)
@pytest.mark.parametrize("outside", [True, False])
def test_each_grad_mode_as_a_decorator(make, inside, outside):
    with ag.set_grad_enabled(outside):
        @make()
        def f(x):
            return ag.is_grad_enabled(), x * 2

        assert ag.is_grad_enabled() is outside, "decorating changed the mode at definition time"
        seen, y = f(ag.tensor([1.0], requires_grad=True))
        assert seen is inside and y.requires_grad is inside
        assert ag.is_grad_enabled() is outside
    assert f.__name__ == "f"


@pytest.mark.parametrize("make, inside", MODES)
@pytest.mark.parametrize("outside", [True, False])
def test_each_grad_mode_as_a_with_block(make, inside, outside):
    with ag.set_grad_enabled(outside):
        with make():
            assert ag.is_grad_enabled() is inside
        assert ag.is_grad_enabled() is outside
    assert ag.is_grad_enabled()


def test_grad_modes_nest_in_any_order_and_restore_on_errors():
    with ag.no_grad():
        with ag.enable_grad():
            assert ag.is_grad_enabled()
            with ag.set_grad_enabled(False):
                assert not ag.is_grad_enabled()
                with pytest.raises(KeyError):
                    with ag.enable_grad():
                        raise KeyError("inside")
                assert not ag.is_grad_enabled()
            assert ag.is_grad_enabled()
        assert not ag.is_grad_enabled()
    assert ag.is_grad_enabled()


def test_one_grad_mode_object_can_be_reentered():
    off = ag.no_grad()
    with off:
        with ag.enable_grad():
            with off:
                assert not ag.is_grad_enabled()
            assert ag.is_grad_enabled()
        assert not ag.is_grad_enabled()
    assert ag.is_grad_enabled()


def test_set_grad_enabled_as_a_call_sets_the_mode_at_once():
    try:
        ag.set_grad_enabled(False)
        assert not ag.is_grad_enabled()
        assert not (ag.tensor([1.0], requires_grad=True) * 2).requires_grad
    finally:
        ag.set_grad_enabled(True)
    assert ag.is_grad_enabled()


def test_a_decorated_function_runs_its_mode_on_every_call_even_recursive():
    @ag.enable_grad()
    def inner(x):
        return x * 3

    @ag.no_grad()
    def outer(x):
        return inner(x), x * 3

    a, b = outer(ag.tensor([1.0], requires_grad=True))
    assert a.requires_grad and not b.requires_grad


# --------------------------------------------------------------------------- tensor hooks


def test_register_hook_on_a_leaf_sees_and_can_replace_the_gradient():
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    handle = x.register_hook(lambda g: g * 10)
    (x * x).sum().backward()
    np.testing.assert_allclose(seen[0], [2.0, 4.0])
    np.testing.assert_allclose(x.grad.numpy(), [20.0, 40.0])
    handle.remove()
    handle.remove()  # twice is fine
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    assert len(seen) == 2


def test_register_hook_on_an_intermediate_changes_what_flows_below_it():
    x = ag.tensor([1.0, -2.0], requires_grad=True)
    h = x * 3
    grads = []
    h.register_hook(lambda g: grads.append(g.numpy().copy()) or g * 0.5)
    (h * h).sum().backward()
    np.testing.assert_allclose(grads[0], 2 * 3 * np.array([1.0, -2.0]))
    np.testing.assert_allclose(x.grad.numpy(), 3 * 0.5 * 2 * 3 * np.array([1.0, -2.0]))
    assert h.grad is None  # a hook is not retain_grad()


def test_a_hook_that_returns_the_wrong_shape_is_named():
    x = ag.tensor([1.0, 2.0], requires_grad=True)

    def widen(g):
        return ag.zeros(3)

    x.register_hook(widen)
    with pytest.raises(GraphError, match=r"widen.*returned \(3\).*\(2\)"):
        x.sum().backward()


def test_hooks_need_a_tensor_that_requires_grad():
    with pytest.raises(GraphError, match="does not require grad"):
        ag.tensor([1.0]).register_hook(lambda g: g)
    x = ag.tensor([1.0], requires_grad=True)
    with pytest.raises(GraphError, match="only a leaf"):
        (x * 2).register_post_accumulate_grad_hook(lambda t: None)


def test_post_accumulate_hook_runs_after_grad_is_summed_from_every_use():
    w = ag.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    (w * 2 + w * w).sum().backward()
    np.testing.assert_allclose(seen, [[4.0, 6.0]])  # 2 + 2w, once: the engine sums the uses first
    (w * 2).sum().backward()
    np.testing.assert_allclose(seen[-1], [6.0, 8.0])  # after accumulating into the existing .grad
    handle.remove()
    (w * 2).sum().backward()
    assert len(seen) == 2


def test_post_accumulate_hooks_fire_in_backward_order_for_each_parameter():
    layer1, layer2 = ag.randn(4, 3, requires_grad=True), ag.randn(2, 4, requires_grad=True)
    order = []
    layer1.register_post_accumulate_grad_hook(lambda t: order.append("layer1"))
    layer2.register_post_accumulate_grad_hook(lambda t: order.append("layer2"))
    x = ag.randn(5, 3)
    F.linear(F.relu(F.linear(x, layer1)), layer2).sum().backward()
    assert order == ["layer2", "layer1"]  # the last layer's gradient is ready first


def test_queue_callback_runs_once_after_every_gradient_and_before_backward_returns():
    w1, w2 = ag.randn(4, 3, requires_grad=True), ag.randn(2, 4, requires_grad=True)
    events = []

    def finish():
        events.append(("end", w1.grad is not None and w2.grad is not None))

    def ready(t):
        events.append(("ready", autograd.queue_callback(finish)))

    w1.register_post_accumulate_grad_hook(ready)
    w2.register_post_accumulate_grad_hook(ready)
    F.linear(F.relu(F.linear(ag.randn(5, 3), w1)), w2).sum().backward()
    # queued by the first hook only (the second finds it queued), run once, after both gradients
    assert events == [("ready", True), ("ready", False), ("end", True)]
    events.clear()
    (w1.sum() + w2.sum()).backward()  # a new backward queues it anew
    assert events == [("ready", True), ("ready", False), ("end", True)]


def test_queue_callback_order_nesting_and_errors():
    w = ag.tensor([1.0, 2.0], requires_grad=True)
    v = ag.tensor([3.0], requires_grad=True)
    order = []

    def hook(t):
        autograd.queue_callback(lambda: order.append("first"))
        autograd.queue_callback(lambda: (order.append("second"),
                                         autograd.queue_callback(lambda: order.append("third"))))
        with ag.enable_grad():  # a backward inside a hook: its callbacks are its own
            (v * 2).sum().backward()

    v.register_post_accumulate_grad_hook(lambda t: autograd.queue_callback(lambda: order.append("inner")))
    handle = w.register_post_accumulate_grad_hook(hook)
    (w * w).sum().backward()
    assert order == ["inner", "first", "second", "third"]
    assert ag.is_grad_enabled()  # the callbacks ran without a graph; the caller's mode is back
    handle.remove()

    with pytest.raises(GraphError, match="queue_callback: no backward is running"):
        autograd.queue_callback(lambda: None)

    ran = []

    def queue_then_fail(t):
        autograd.queue_callback(lambda: ran.append(True))
        raise RuntimeError("hook failed")

    u = ag.tensor([1.0], requires_grad=True)
    u.register_post_accumulate_grad_hook(queue_then_fail)
    with pytest.raises(RuntimeError, match="hook failed"):
        (u * 3).sum().backward()
    assert ran == []  # a backward that raises runs none of its callbacks
    with pytest.raises(GraphError, match="no backward is running"):  # and leaves no walk open
        autograd.queue_callback(lambda: None)


def test_queue_callback_runs_without_recording_a_graph():
    w = ag.tensor([1.0, 2.0], requires_grad=True)
    made = []
    w.register_post_accumulate_grad_hook(
        lambda t: autograd.queue_callback(lambda: made.append(t.grad * 2)))
    (w * w).sum().backward()
    assert made[0].grad_fn is None and not made[0].requires_grad
    np.testing.assert_allclose(made[0].numpy(), [4.0, 8.0])


def test_step_hook_sees_every_node_and_goes_away_with_its_handle():
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    names = []
    with autograd.register_step_hook(lambda node, gy, grads: names.append(node.name)):
        (x.exp() * 2).sum().backward()
    assert names == ["Sum", "Mul", "Exp"]
    (x.exp() * 2).sum().backward()
    assert names == ["Sum", "Mul", "Exp"]


# --------------------------------------------------------------------------- inspection


def test_graph_of_lists_nodes_in_backward_order_with_their_inputs_and_outputs():
    x = ag.tensor([[1.0, 2.0, 3.0]], requires_grad=True, name="x")
    b = ag.tensor([0.5, 0.5, 0.5], requires_grad=True, name="b")
    h = (x + b).relu()
    loss = h.sum()
    g = ag.graph_of(loss)
    assert [n.name for n in g.nodes] == ["Sum", "ReLU", "Add"]
    assert [n.name for n in reversed(g.nodes)] == ["Add", "ReLU", "Sum"]  # forward's order
    assert g.output_of(g.nodes[0]) is loss and g.output_of(g.nodes[1]) is h
    assert [id(t) for t in g.leaves] == [id(x), id(b)] and len(g) == 3 and list(g) == g.nodes
    add = g.nodes[2]
    assert add.inputs[0] is x and add.inputs[1] is b and add.needs_input_grad == (True, True)
    assert add.fn.input_names(2) == ["a", "b"]
    assert add.rule_lines() == ["∂L/∂a = ∂L/∂y", "∂L/∂b = ∂L/∂y"]


def test_the_engine_records_the_unbroadcast_steps_it_performs():
    x = ag.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    b = ag.tensor([1.0, 1.0, 1.0], requires_grad=True)
    loss = (x * b).sum()
    mul = loss.grad_fn.inputs[0].grad_fn
    assert mul.unbroadcast == {}  # nothing known before backward runs
    loss.backward()
    assert mul.unbroadcast == {1: (2, 3)}  # b's gradient was (2, 3), summed to (3,)
    np.testing.assert_allclose(b.grad.numpy(), [5.0, 7.0, 9.0])


def test_saved_values_params_and_scope_are_readable_until_freed():
    from autograd_cnn import nn

    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, stride=2))
    x = ag.randn(1, 1, 4, 4, requires_grad=True)
    loss = F.max_pool2d(model(x), 2).sum()
    nodes = {n.name: n for n in ag.graph_of(loss)}
    assert nodes["Conv2d"].scope == "0" and nodes["MaxPool2d"].scope == ""
    assert nodes["Conv2d"].params["stride"] == (2, 2)
    pool = nodes["MaxPool2d"]
    assert pool.saved is not None and len(pool.saved) >= 1
    loss.backward()
    assert pool.saved is None and pool.freed
    assert [n.name for n in ag.graph_of(loss)] == list(nodes)  # the shape stays after freeing


def test_graph_of_refuses_what_is_not_a_tensor():
    with pytest.raises(TypeError, match="graph_of: expected a Tensor"):
        ag.graph_of(np.ones(3))


# --------------------------------------------------------------------------- in-place changes


def test_optimizer_step_between_forward_and_backward_is_refused():
    from autograd_cnn import nn, optim

    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    loss = model(ag.randn(4, 3)).sum()
    opt.step()  # no gradient yet: nothing changes, nothing is counted
    loss.backward()  # fine
    loss = model(ag.randn(4, 3)).sum()
    opt.step()  # changes weight in place
    with pytest.raises(GraphError, match=r"weight.*changed in place.*version 1 then, 2 now"):
        loss.backward()


def test_assigning_data_counts_as_a_change_and_bump_version_is_public():
    x = ag.tensor([1.0, 2.0, 3.0], requires_grad=True, name="x")
    w = ag.tensor([2.0, 2.0, 2.0], name="w")
    v = w._version
    y = (x * w).sum()
    w.bump_version()  # as after writing into w.data's array by hand
    assert w._version == v + 1
    with pytest.raises(GraphError, match=r"Mul: 'w' of shape \(3\).*changed in place"):
        y.backward()
    w.data = w.data * 10
    assert w._version == v + 2


def test_a_change_to_a_tensor_the_op_did_not_save_is_fine():
    a = ag.tensor([1.0, 2.0], requires_grad=True)
    b = ag.tensor([3.0, 4.0])
    y = (a + b).sum()  # Add saves nothing
    b.bump_version()
    y.backward()
    np.testing.assert_allclose(a.grad.numpy(), [1.0, 1.0])


def test_load_state_dict_counts_as_an_in_place_change():
    from autograd_cnn import nn

    model = nn.Linear(2, 1)
    loss = model(ag.randn(3, 2)).sum()
    model.load_state_dict(model.state_dict())
    with pytest.raises(GraphError, match="changed in place"):
        loss.backward()


# --------------------------------------------------------------------------- anomaly mode


def test_anomaly_mode_names_the_first_op_that_made_a_nan_and_the_users_line():
    x = ag.tensor([1.0, -1.0], requires_grad=True)
    with ag.detect_anomaly(), np.errstate(invalid="ignore"):
        assert ag.is_anomaly_enabled()
        with pytest.raises(ag.AnomalyError, match=r"Sqrt: its output of shape \(2\) holds NaN.*test_engine_api.py"):
            (x * 2).sqrt().sum()
    assert not ag.is_anomaly_enabled()
    with np.errstate(invalid="ignore"):
        y = x.sqrt()  # off: no check, NumPy's NaN goes through
    assert np.isnan(y.numpy()[1])


def test_anomaly_mode_catches_a_gradient_that_becomes_inf():
    x = ag.tensor([0.0, 1.0], requires_grad=True)
    with ag.detect_anomaly(), np.errstate(divide="ignore"):
        y = x.sqrt().sum()  # sqrt(0) = 0 is fine; its gradient 1/(2·0) is not
        with pytest.raises(ag.AnomalyError, match=r"SqrtBackward: the gradient for its input a .* holds Inf.*"
                                                   r"created at .*test_engine_api.py"):
            y.backward()


def test_anomaly_mode_names_the_module_path():
    from autograd_cnn import nn

    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with ag.detect_anomaly(), np.errstate(invalid="ignore"), \
            pytest.raises(ag.AnomalyError, match=r"^Linear in 0: its output"):
        model(ag.tensor([[np.inf, 1.0]]))


def test_anomaly_mode_catches_a_saved_array_changed_behind_the_librarys_back():
    x = ag.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = ag.tensor([1.0, 2.0, 3.0])
    with ag.detect_anomaly():
        y = (x * w).sum()
        w.data[...] = 10  # cannot be counted: only anomaly mode's copy sees it
        with pytest.raises(ag.AnomalyError, match="changed after the forward pass, behind the library's back"):
            y.backward()
    y = (x * w).sum()
    w.data[...] = 1
    y.backward()  # off: the changed values are used, as the docs warn
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0, 1.0])


def test_set_detect_anomaly_as_a_call_and_as_a_decorator():
    try:
        ag.set_detect_anomaly(True)
        assert ag.is_anomaly_enabled()
    finally:
        ag.set_detect_anomaly(False)

    @ag.detect_anomaly()
    def f():
        return ag.is_anomaly_enabled()

    assert f() and not ag.is_anomaly_enabled()


def test_backend_object_and_move_in_place():
    t = ag.tensor([1.0, 2.0], requires_grad=True, backend="numpy")
    assert t.backend_object is ag.get_backend("numpy") and t.backend == "numpy"
    t.grad = ag.tensor([0.5, 0.5])
    version = t._version
    assert t.move_("numpy") is t and t._version == version  # already there: nothing changes
