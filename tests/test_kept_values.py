"""What a recorded graph keeps: a large intermediate that no op saved for backward is not held by
the nodes that read it (``KEEP_VALUES_BELOW``), so its memory goes when the program drops it,
while everything a backward, a hook, ``retain_grad()``, ``ag.grad`` or a picture needs still works."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import autograd, visual

BIG = autograd.KEEP_VALUES_BELOW // 4  # float32 elements in a tensor of exactly the limit


def big(seed: int = 0, dtype: type = np.float32) -> ag.Tensor:
    rng = np.random.default_rng(seed)
    return ag.tensor(rng.standard_normal(BIG).astype(dtype), requires_grad=True)


def test_an_unsaved_large_intermediate_is_freed_when_the_program_drops_it() -> None:
    x = big()
    a = x * 2.0  # Mul saves x and the scalar, not its output
    data = weakref.ref(a.data)
    b = a + 1.0  # Add saves nothing: its node does not keep a
    assert isinstance(b.grad_fn.inputs[0], autograd.UnkeptTensor)
    assert b.grad_fn.inputs[0].live() is a
    del a
    gc.collect()
    assert data() is None
    b.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(BIG, 2.0, dtype=np.float32))


def test_small_intermediates_and_saved_ones_are_kept() -> None:
    x = ag.tensor(np.arange(6.0), requires_grad=True)
    a = x * 2.0
    b = a + 1.0
    assert b.grad_fn.inputs[0] is a  # under the limit: the picture shows its values
    w = big(1)
    c = w * 3.0
    d = c * w  # Mul saves both inputs: c stays whole
    assert d.grad_fn.inputs[0] is c
    e = w.sigmoid()  # Sigmoid saves its output ...
    f = e + 1.0  # ... so the node after it holds it at no cost, for a create_graph backward
    assert f.grad_fn.inputs[0] is e


def test_keep_values_keeps_every_input() -> None:
    x = big()
    with ag.keep_values():
        a = x * 2.0
        b = a + 1.0
    assert b.grad_fn.inputs[0] is a
    c = a + 1.0
    assert isinstance(c.grad_fn.inputs[0], autograd.UnkeptTensor)


def test_named_hooked_and_retained_tensors_are_kept() -> None:
    x = big()
    a = x * 2.0
    a.name = "a"
    assert (a + 1.0).grad_fn.inputs[0] is a
    r = x * 3.0
    r.retain_grad()
    assert (r + 1.0).grad_fn.inputs[0] is r
    h = x * 4.0
    h.register_hook(lambda g: g)
    assert (h + 1.0).grad_fn.inputs[0] is h


def test_retain_grad_hooks_and_grad_set_after_the_forward_still_reach_the_tensor() -> None:
    x = big()
    a = x * 2.0
    loss = ((a + 1.0) * 3.0).sum()
    a.retain_grad()  # after the node that reads a was recorded
    seen = []
    a.register_hook(lambda g: seen.append(g.numpy().copy()))
    loss.backward(retain_graph=True)
    np.testing.assert_array_equal(a.grad.numpy(), np.full(BIG, 3.0, dtype=np.float32))
    assert len(seen) == 1 and np.all(seen[0] == 3.0)
    (ga,) = ag.grad(loss, [a])
    np.testing.assert_array_equal(ga.numpy(), np.full(BIG, 3.0, dtype=np.float32))


def test_second_derivatives_through_large_tensors() -> None:
    x = big(2, np.float64)
    s = x.sigmoid()
    (g,) = ag.grad((s + 1.0).sum(), [x], create_graph=True)  # sigma'(x)
    (gg,) = ag.grad(g.sum(), [x])  # sigma''(x) = sigma' (1 - 2 sigma)
    sig = 1 / (1 + np.exp(-x.numpy()))
    np.testing.assert_allclose(gg.numpy(), sig * (1 - sig) * (1 - 2 * sig), rtol=1e-10, atol=1e-12)


def test_softmax_keeps_its_logits_for_the_loss() -> None:
    x = ag.tensor(np.random.default_rng(3).standard_normal((BIG // 64, 64)).astype(np.float32), requires_grad=True)
    z = x * 2.0
    p = F.softmax(z, axis=-1)
    assert p.grad_fn.inputs[0] is z


def test_a_conv_output_under_relu_is_freed_during_the_forward() -> None:
    """The training step's largest arrays: a conv's output, read by its ReLU alone, goes once the
    ReLU has run (the node keeps only the ReLU's own saved values)."""
    rng = np.random.default_rng(4)
    x = ag.tensor(rng.standard_normal((64, 1, 28, 28)).astype(np.float32))
    w = ag.tensor(rng.standard_normal((16, 1, 3, 3)).astype(np.float32), requires_grad=True)
    conv = F.conv2d(x, w)
    data = weakref.ref(conv.data.base if conv.data.base is not None else conv.data)
    out = F.max_pool2d(F.relu(conv), 2)
    del conv
    gc.collect()
    assert data() is None
    out.sum().backward()
    assert w.grad is not None and np.isfinite(w.grad.numpy()).all()


def test_the_picture_says_a_value_was_not_kept() -> None:
    x = big()
    b = (x * 2.0) + 1.0
    source = visual.forward_graph(b).source
    assert "not kept" in source
    with ag.keep_values():
        b = (x * 2.0) + 1.0
    assert "not kept" not in visual.forward_graph(b).source


@pytest.mark.parametrize("nbytes", [autograd.KEEP_VALUES_BELOW - 4, autograd.KEEP_VALUES_BELOW])
def test_the_limit(nbytes: int) -> None:
    x = ag.tensor(np.ones(nbytes // 4, dtype=np.float32), requires_grad=True)
    a = x * 2.0
    b = a + 1.0
    assert (b.grad_fn.inputs[0] is a) == (nbytes < autograd.KEEP_VALUES_BELOW)
