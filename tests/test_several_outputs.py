"""Ops with several outputs (one node, a tuple of tensors) everywhere a one-output op goes: the
walk, hooks, retain_grad, version checks, freeing, graph_of, anomaly mode, the pictures, the
backprop frames and gradcheck; and the engine's modes held per thread."""
from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import autograd, visual
from autograd_cnn.autograd import Function
from autograd_cnn.errors import AnomalyError, GraphError

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")


class HalfAndDouble(Function):
    """y0 = a / 2, y1 = 2a, y2 = a²: three outputs, the square saved for backward"""
    rules = ("∂L/∂a = ∂L/∂y0 / 2 + 2 ∂L/∂y1 + 2a ∂L/∂y2",)

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return a / 2, a * 2, a * a

    @staticmethod
    def backward(ctx, g0, g1, g2):
        (a,) = ctx.saved_tensors
        return g0 * 0.5 + g1 * 2.0 + g2 * a * 2.0


def leaf(values=(1.0, -2.0, 3.0)):
    return ag.tensor(np.array(values), requires_grad=True)


def test_one_node_makes_a_tuple_of_tensors_each_knowing_its_place():
    x = leaf()
    outs = HalfAndDouble.apply(x)
    assert isinstance(outs, tuple) and len(outs) == 3
    assert all(o.grad_fn is outs[0].grad_fn for o in outs) and outs[0].grad_fn.n_outputs == 3
    assert [o.output_nr for o in outs] == [0, 1, 2]
    np.testing.assert_allclose(outs[2].numpy(), [1.0, 4.0, 9.0])
    with ag.no_grad():
        plain = HalfAndDouble.apply(x)
    assert all(o.grad_fn is None and not o.requires_grad for o in plain)


def test_an_unused_output_sends_zeros_and_used_ones_sum_over_their_uses():
    x = leaf()
    half, double, square = HalfAndDouble.apply(x)
    (half * 3 + half + double).sum().backward()  # half used twice, square never
    np.testing.assert_allclose(x.grad.numpy(), [4 * 0.5 + 2.0] * 3)


def test_the_gradients_of_one_node_arrive_together_in_one_backward_call():
    calls = []

    class Spy(HalfAndDouble):
        @staticmethod
        def backward(ctx, g0, g1, g2):
            calls.append(tuple(None if g is None else g.numpy().tolist() for g in (g0, g1, g2)))
            return HalfAndDouble.backward(ctx, g0, g1, g2)

    x = leaf()
    a, b, c = Spy.apply(x)
    (a.sum() + (c * 2).sum()).backward()
    assert calls == [([1.0] * 3, [0.0] * 3, [2.0] * 3)]  # once, zeros for b


def test_hooks_and_retain_grad_see_each_output_alone():
    x = leaf()
    a, b, c = HalfAndDouble.apply(x)
    b.retain_grad()
    seen = []
    c.register_hook(lambda g: seen.append(g.numpy().tolist()) or g * 10)
    (b * 3 + c).sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), [3.0] * 3)
    assert seen == [[1.0] * 3]
    np.testing.assert_allclose(x.grad.numpy(), 3 * 2.0 + 10 * 2 * x.numpy())


def test_ag_grad_of_an_output_and_create_graph_through_it():
    x = leaf()
    a, b, c = HalfAndDouble.apply(x)
    (gc,) = ag.grad(c.sum() + a.sum(), [c])
    np.testing.assert_allclose(gc.numpy(), [1.0] * 3)
    a, b, c = HalfAndDouble.apply(x)
    (gx,) = ag.grad(c.sum(), [x], create_graph=True)  # 2x, a graph of its own
    (ggx,) = ag.grad(gx.sum(), [x])
    np.testing.assert_allclose(ggx.numpy(), [2.0] * 3)


def test_freeing_releases_each_output_once_and_a_second_backward_says_so():
    x = leaf()
    a, b, c = HalfAndDouble.apply(x)
    loss = (a * b).sum() + (c * a).sum()
    loss.backward()
    node = a.grad_fn
    mul_inputs = [t for n in autograd.graph_of(loss) if n.name == "Mul" for t in n.inputs]
    released = [t for t in mul_inputs if isinstance(t, autograd.ReleasedTensor)]
    assert released and all(t.grad_fn is node for t in released)
    assert sorted({t.output_nr for t in released}) == [0, 1, 2]
    with pytest.raises(GraphError, match="freed"):
        loss.backward()


def test_a_changed_input_is_refused_for_every_output():
    x = leaf()
    a, b, c = HalfAndDouble.apply(x)
    x.data[...] += 1  # an in-place change of a saved input, counted
    x.bump_version()
    with pytest.raises(GraphError, match="changed in place"):
        b.sum().backward()


def test_graph_of_names_every_output_of_the_node():
    x = leaf()
    a, b, c = HalfAndDouble.apply(x)
    loss = (a + c).sum()
    graph = autograd.graph_of(loss)
    node = a.grad_fn
    assert node in graph.nodes
    outs = graph.outputs_of(node)
    assert outs[0] is a and outs[1] is None and outs[2] is c  # b: nothing here used it
    assert graph.output_of(node, 2) is c and graph.leaves == [x]


def test_anomaly_mode_names_the_output_that_holds_an_inf():
    y = ag.tensor(np.array([1.0, np.inf]), requires_grad=True)
    with ag.detect_anomaly(), pytest.raises(AnomalyError, match="Split: its output 1 of shape"):
        ag.split(y, 2)


def test_split_chunk_and_unbind_match_numpy():
    a = np.arange(24.0).reshape(4, 6)
    x = ag.tensor(a, requires_grad=True)
    for ours, theirs in [(ag.split(x, 3, axis=1), np.split(a, 3, axis=1)),
                         (ag.split(x, [1, 3], axis=0), np.split(a, [1, 3], axis=0)),
                         (ag.split(x, [-2], axis=1), np.split(a, [-2], axis=1)),
                         (ag.chunk(x, 4, axis=1), np.split(a, [2, 4], axis=1)),
                         (ag.unbind(x, axis=-1), [a[:, i] for i in range(6)])]:
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            np.testing.assert_array_equal(o.numpy(), t)


def test_split_refusals_name_the_op_and_what_to_do():
    x = ag.tensor(np.zeros((4, 6)))
    with pytest.raises(ag.ShapeError, match="split: 4 equal pieces.*chunk"):
        ag.split(x, 4, axis=1)
    with pytest.raises(ag.ArgumentError, match="must not decrease"):
        ag.split(x, [3, 1], axis=1)
    with pytest.raises(ag.ArgumentTypeError, match="sections_or_indices"):
        ag.split(x, 1.5)
    with pytest.raises(ag.ShapeError, match="axis 2 is out of range"):
        ag.unbind(x, axis=2)
    with pytest.raises(ag.ArgumentError, match="n must be"):
        ag.chunk(x, 0)
    assert ag.functional.split is ag.split and ag.functional.unbind is ag.unbind


def test_gradcheck_takes_a_function_with_several_outputs():
    x = ag.tensor(np.array([0.3, -0.7, 1.1]), requires_grad=True)
    assert ag.gradcheck(lambda t: HalfAndDouble.apply(t), [x])
    assert ag.gradgradcheck(lambda t: HalfAndDouble.apply(t), [x])

    class Wrong(HalfAndDouble):
        @staticmethod
        def backward(ctx, g0, g1, g2):
            (a,) = ctx.saved_tensors
            return g0 * 0.5 + g1 * 2.0 + g2 * a  # the square's derivative without its 2

    with pytest.raises(ag.GradcheckError):
        ag.gradcheck(lambda t: Wrong.apply(t), [x])


def test_step_hooks_get_a_tuple_of_output_gradients():
    x = leaf()
    a, b, c = HalfAndDouble.apply(x)
    seen = {}
    with autograd.register_step_hook(lambda node, gy, grads: seen.setdefault(node.name, gy)):
        (a + c).sum().backward()
    gy = seen["HalfAndDouble"]
    assert isinstance(gy, tuple) and len(gy) == 3
    np.testing.assert_array_equal(gy[1].numpy(), np.zeros(3))


def test_the_pictures_draw_one_node_with_its_outputs():
    x = ag.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="x")
    top, bottom = ag.split(x, 2, axis=0)
    loss = (top * bottom).sum()
    g = visual.forward_graph(loss)
    split_nodes = [line for line in g.body if "Split" in line and "->" not in line and "ellipse" in line]
    assert len(split_nodes) == 1
    edges = [line for line in g.body if "->" in line and "label=y" in line]
    assert len(edges) == 2 and any("label=y0" in e for e in edges) and any("label=y1" in e for e in edges)
    text = visual.backward_graph(loss).source
    assert "SplitBackward" in text or "Split" in text
    picture = visual.gradcheck_graph(lambda t: (lambda p: p[0] * p[1])(ag.split(t, 2, axis=0)), [x])
    assert picture.checks and all(c.ok for c in picture.checks.values())


@needs_dot
def test_backprop_frames_through_a_node_with_several_outputs(tmp_path):
    x = ag.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="x")
    a, b, c = HalfAndDouble.apply(x)
    paths = visual.backprop_frames((a * c).sum(), tmp_path)
    assert len(paths) >= 2 and all(p.endswith(".svg") for p in paths)
    captions = "".join(open(p, encoding="utf-8").read() for p in paths)
    assert "∂L/∂y1" in captions and "∂L/∂y2" in captions  # the step names each output's gradient


def test_the_conv_bias_gradient_comes_from_the_weight_gradient_node_in_the_picture():
    x = ag.tensor(np.random.default_rng(0).standard_normal((1, 2, 5, 5)), requires_grad=True)
    w = ag.tensor(np.random.default_rng(1).standard_normal((3, 2, 3, 3)), requires_grad=True)
    b = ag.tensor(np.zeros(3), requires_grad=True)
    gw, gb = ag.grad((ag.functional.conv2d(x, w, b) ** 2).sum(), [w, b], create_graph=True)
    g = visual.forward_graph(gw.sum() + gb.sum())
    grad_weight_nodes = [line for line in g.body if "Conv2dGradWeight" in line and "ellipse" in line]
    assert len(grad_weight_nodes) == 1  # one node, two outputs: the weight's and the bias's
    assert sum("label=y" in line for line in g.body if "->" in line) == 2


# --------------------------------------------------------------------------- modes per thread


def test_no_grad_in_one_thread_leaves_another_recording():
    inside, go_on, results = threading.Event(), threading.Event(), {}

    def quiet():
        with ag.no_grad():
            inside.set()
            go_on.wait(10)
            results["quiet"] = (leaf() * 2).requires_grad

    def recording():
        inside.wait(10)
        results["mode"] = ag.is_grad_enabled()
        results["recording"] = (leaf() * 2).grad_fn is not None
        go_on.set()

    threads = [threading.Thread(target=quiet), threading.Thread(target=recording)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == {"quiet": False, "mode": True, "recording": True}
    assert ag.is_grad_enabled()


def test_anomaly_mode_and_scope_are_per_thread_too():
    seen = {}

    def other():
        seen["anomaly"] = ag.is_anomaly_enabled()
        seen["scope"] = (leaf() * 2).grad_fn.scope

    with ag.detect_anomaly(), autograd.scope("features.0"):
        assert (leaf() * 2).grad_fn.scope == "features.0"
        t = threading.Thread(target=other)
        t.start()
        t.join(20)
    assert seen == {"anomaly": False, "scope": ""}


def test_a_thread_starts_recording_whatever_the_thread_that_made_it_does():
    results = []
    with ag.no_grad():
        t = threading.Thread(target=lambda: results.append(ag.is_grad_enabled()))
        t.start()
        t.join(20)
    assert results == [True]


def test_queue_callback_belongs_to_the_thread_whose_backward_runs():
    """A hook's thread queues into its own backward; another thread, running none, is refused."""
    x = leaf()
    outcome = {}

    def other_thread():
        try:
            autograd.queue_callback(lambda: None)
            outcome["other"] = "queued"
        except GraphError:
            outcome["other"] = "refused"

    def hook(t):
        outcome["own"] = autograd.queue_callback(lambda: outcome.setdefault("ran", True))
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join(20)

    x.register_post_accumulate_grad_hook(hook)
    (x * 2).sum().backward()
    assert outcome == {"own": True, "other": "refused", "ran": True}
