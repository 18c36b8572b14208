"""Convolution forward values against plain loops, PyTorch cross-checks, errors and dtypes."""
from __future__ import annotations

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn.errors import ShapeError

# ---------------------------------------------------------------- loop references


def loop_conv2d(x, w, b=None, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    """Cross-correlation by its definition: six nested loops over plain NumPy."""
    (pt, pb), (pl, pr) = padding
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    og = o // groups
    y = np.zeros((n, o, oh, ow))
    for b_ in range(n):
        for oc in range(o):
            g = oc // og
            for i in range(oh):
                for j in range(ow):
                    total = 0.0
                    for ci in range(cg):
                        for u in range(kh):
                            for v in range(kw):
                                total += (w[oc, ci, u, v]
                                          * x[b_, g * cg + ci, i * stride[0] + u * dilation[0],
                                              j * stride[1] + v * dilation[1]])
                    y[b_, oc, i, j] = total + (b[oc] if b is not None else 0.0)
    return y


def loop_conv_transpose2d(x, w, stride, padding, output_padding, groups=1):
    """Each input pixel adds its value times the kernel into the output (the scatter definition)."""
    n, cin, h, wd = x.shape
    _, cog, kh, kw = w.shape
    oh = (h - 1) * stride - 2 * padding + kh + output_padding
    ow = (wd - 1) * stride - 2 * padding + kw + output_padding
    full = np.zeros((n, cog * groups, oh + 2 * padding, ow + 2 * padding))
    cig = cin // groups
    for b_ in range(n):
        for ci in range(cin):
            g = ci // cig
            for i in range(h):
                for j in range(wd):
                    for co in range(cog):
                        full[b_, g * cog + co, i * stride:i * stride + kh, j * stride:j * stride + kw] += (
                            x[b_, ci, i, j] * w[ci, co])
    return full[:, :, padding:padding + oh, padding:padding + ow]


def loop_locally_connected(x, w, b, stride):
    oh, ow, o, c, kh, kw = w.shape
    y = np.zeros((x.shape[0], o, oh, ow))
    for n in range(x.shape[0]):
        for oc in range(o):
            for i in range(oh):
                for j in range(ow):
                    patch = x[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    y[n, oc, i, j] = (patch * w[i, j, oc]).sum() + b[oc, i, j]
    return y


def _t(a, requires_grad=False):
    """A float64 tensor on the backend under test (the default one)."""
    return ag.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad, backend=ag.get_backend())


CONV_OPTIONS = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1)),
    dict(groups=2, padding=1),
    dict(groups=4),  # depthwise
    dict(groups=4, out_channels=8, stride=(2, 1), padding=1, dilation=(1, 2)),  # depthwise, multiplier 2
    dict(in_channels=1),  # one channel: the shifted-planes path
    dict(in_channels=1, stride=2, padding=(1, 2), dilation=(1, 2)),
]


@pytest.mark.parametrize("options", CONV_OPTIONS, ids=[str(o) for o in CONV_OPTIONS])
def test_conv2d_matches_loops(backend, options, parts):
    rng = np.random.default_rng(0)
    options = dict(options)
    groups, c, o = options.get("groups", 1), options.pop("in_channels", 4), options.pop("out_channels", 4)
    x = rng.standard_normal((2, c, 6, 5))
    w = rng.standard_normal((o, c // groups, 3, 2))
    b = rng.standard_normal(o)
    y = F.conv2d(_t(x), _t(w), _t(b), **options).numpy()
    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    ph, pw = pair(options.get("padding", 0))
    ref = loop_conv2d(x, w, b, pair(options.get("stride", 1)), ((ph, ph), (pw, pw)),
                      pair(options.get("dilation", 1)), groups)
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kernel", [(2, 2), (3, 3), (2, 3)])
def test_conv2d_same_keeps_size_and_pads_bottom_right(backend, kernel):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5, 6))
    w = rng.standard_normal((3, 2) + kernel)
    y = F.conv2d(_t(x), _t(w), padding="same").numpy()
    assert y.shape == (1, 3, 5, 6)
    # An even kernel puts the extra zero row/column after the image.
    pads = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)
    np.testing.assert_allclose(y, loop_conv2d(x, w, padding=pads), atol=1e-10)


def test_conv1d_matches_conv2d_with_height_one(backend):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 9)), rng.standard_normal((4, 3, 3))
    y = F.conv1d(_t(x), _t(w), stride=2, padding=1, dilation=2).numpy()
    ref = loop_conv2d(x[:, :, None], w[:, :, None], stride=(1, 2), padding=((0, 0), (1, 1)), dilation=(1, 2))
    np.testing.assert_allclose(y, ref[:, :, 0], atol=1e-10)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_cpu_and_gpu_kernel_choices_agree(backend, monkeypatch, in_channels):
    """conv2d's value and gradients do not depend on which kernels the backend prefers."""
    rng = np.random.default_rng(8)
    x0, w0, b0 = rng.standard_normal((2, in_channels, 6, 5)), rng.standard_normal((4, in_channels, 3, 2)), \
        rng.standard_normal(4)
    results = []
    for launch_bound in (False, True):
        monkeypatch.setattr(type(ag.get_backend()), "launch_bound", launch_bound)
        x, w, b = _t(x0, True), _t(w0, True), _t(b0, True)
        y = F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2))
        (y * _t(np.arange(y.size).reshape(y.shape))).sum().backward()
        results.append([t.numpy() for t in (y, x.grad, w.grad, b.grad)])
    for cpu, gpu in zip(*results):
        np.testing.assert_allclose(cpu, gpu, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("launch_bound", [False, True])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_a_weight_gradient_asked_for_the_bias_returns_both_and_keeps_nothing(backend, monkeypatch, in_channels,
                                                                              launch_bound):
    """conv2d_grad_weight(bias_from="gy") returns the weight's gradient and gy's channel sums
    together ("x": the image's sums, a transposed convolution's bias), each as a pass of its own
    would give them, and leaves nothing on the backend for a later call to find."""
    monkeypatch.setattr(type(ag.get_backend()), "launch_bound", launch_bound)
    be, rng = ag.get_backend(), np.random.default_rng(12)
    x = _t(rng.standard_normal((3, in_channels, 6, 5))).data
    gy = _t(rng.standard_normal((3, 4, 4, 3))).data
    geometry = ((3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
    alone = be.to_host(be.conv2d_grad_weight(x, gy, *geometry))
    for source, array in (("gy", gy), ("x", x)):
        gw, gb = be.conv2d_grad_weight(x, gy, *geometry, bias_from=source)
        np.testing.assert_allclose(be.to_host(gw), alone, rtol=1e-12)
        np.testing.assert_allclose(be.to_host(gb), be.to_host(array).sum(axis=(0, 2, 3)), rtol=1e-12)
    before = dict(vars(be))
    be.conv2d_grad_weight(x, gy, *geometry, bias_from="gy")
    assert {k: v for k, v in vars(be).items() if k not in before} == {}, "a kernel kept a value on the backend"


def test_a_conv_with_a_bias_gets_both_gradients_from_one_node():
    """Conv2d's backward makes the weight's and the bias's gradients with one Conv2dGradWeight node
    (two outputs); with the weight frozen, the bias's comes from a ChannelSum alone."""
    rng = np.random.default_rng(3)
    x = _t(rng.standard_normal((2, 3, 5, 5)), True)
    w, b = _t(rng.standard_normal((4, 3, 3, 3)), True), _t(rng.standard_normal(4), True)
    gw, gb = ag.grad(F.conv2d(x, w, b).sum(), [w, b], create_graph=True)
    assert gw.grad_fn is gb.grad_fn and gw.grad_fn.name == "Conv2dGradWeight" and gw.grad_fn.n_outputs == 2
    assert (gw.output_nr, gb.output_nr) == (0, 1)
    np.testing.assert_allclose(gb.numpy(), np.full(4, 2 * 3 * 3.0))
    w.requires_grad = False
    y = F.conv2d(x, w, b)
    (gb2,) = ag.grad((y * y).sum(), [b], create_graph=True)  # its gradient 2y depends on b: recorded
    assert gb2.grad_fn.name == "ChannelSum"
    np.testing.assert_allclose(gb2.numpy(), 2 * y.numpy().sum(axis=(0, 2, 3)))


@pytest.mark.parametrize("part_bytes", [1, 3600])
def test_conv2d_over_parts_of_the_batch_equals_one_product(backend, monkeypatch, part_bytes):
    """A batch is done in parts of images of about part_bytes (on the worker threads): same values."""
    rng = np.random.default_rng(9)
    x0, w0, b0 = rng.standard_normal((5, 3, 6, 5)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    results = []
    monkeypatch.setattr(type(ag.get_backend()), "min_parallel_bytes", 0)
    for limit in (1 << 40, part_bytes):  # one part, then one image (1 byte) or two (3600 bytes) a part
        monkeypatch.setattr(type(ag.get_backend()), "part_bytes", limit)
        x, w, b = _t(x0, True), _t(w0, True), _t(b0, True)
        y = F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2))
        (y * _t(np.arange(y.size).reshape(y.shape))).sum().backward()
        results.append([t.numpy() for t in (y, x.grad, w.grad, b.grad)])
    parts = ag.get_backend()._image_parts(_t(x0).data, (3, 2), (3, 4), 4)
    if not ag.get_backend().launch_bound:
        # 3*4 windows of 3*2*3 float64 and 3*4 outputs of 4: 2112 bytes an image
        assert len(parts) == (5 if part_bytes == 1 else 3), parts
    for whole, parted in zip(*results):
        np.testing.assert_allclose(parted, whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("launch_bound", [False, True], ids=["cpu_kernels", "gpu_kernels"])
@pytest.mark.parametrize("options", [dict(), dict(stride=2, padding=1, dilation=(1, 2))])
def test_both_input_gradient_strategies_match_loops(backend, monkeypatch, launch_bound, options):
    """Each backend picks one way to form conv2d's input gradient; both must give the transposed conv."""
    monkeypatch.setattr(type(ag.get_backend()), "launch_bound", launch_bound)
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((3, 2, 3, 2))
    stride, padding, dilation = options.get("stride", 1), options.get("padding", 0), options.get("dilation", (1, 1))
    y = F.conv_transpose2d(_t(x), _t(w), stride=stride, padding=padding, dilation=dilation).numpy()
    # The loop reference knows no dilation: spread the kernel out with zeros instead.
    wide = np.zeros(w.shape[:2] + ((w.shape[2] - 1) * dilation[0] + 1, (w.shape[3] - 1) * dilation[1] + 1))
    wide[:, :, ::dilation[0], ::dilation[1]] = w
    np.testing.assert_allclose(y, loop_conv_transpose2d(x, wide, stride, padding, 0), atol=1e-10)


@pytest.mark.parametrize("stride,padding,output_padding,groups", [(1, 0, 0, 1), (2, 1, 1, 1), (3, 0, 2, 2)])
def test_conv_transpose2d_matches_loops(backend, stride, padding, output_padding, groups, parts):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 4, 3, 4)), rng.standard_normal((4, 2, 3, 3))
    y = F.conv_transpose2d(_t(x), _t(w), stride=stride, padding=padding, output_padding=output_padding,
                           groups=groups).numpy()
    np.testing.assert_allclose(y, loop_conv_transpose2d(x, w, stride, padding, output_padding, groups), atol=1e-10)


def test_conv_transpose2d_is_the_input_gradient_of_conv2d(backend):
    rng = np.random.default_rng(4)
    x = _t(rng.standard_normal((2, 3, 7, 7)), requires_grad=True)
    w = _t(rng.standard_normal((5, 3, 3, 3)))
    y = F.conv2d(x, w, stride=2, padding=1)
    g = rng.standard_normal(y.shape)
    y.backward(_t(g))
    gx = F.conv_transpose2d(_t(g), w, stride=2, padding=1).numpy()
    np.testing.assert_allclose(x.grad.numpy(), gx, atol=1e-10)


@pytest.mark.parametrize("stride", [1, 2])
def test_locally_connected2d_matches_loops(backend, stride):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6, 6))
    oh = (6 - 3) // stride + 1
    w, b = rng.standard_normal((oh, oh, 4, 3, 3, 3)), rng.standard_normal((4, oh, oh))
    y = F.locally_connected2d(_t(x), _t(w), _t(b), stride=stride).numpy()
    np.testing.assert_allclose(y, loop_locally_connected(x, w, b, stride), atol=1e-10)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_transpose2d_of_float16_through_float32_weight_gives_float32(backend, groups, parts):
    """The input gradient's kernel writes into a buffer of the two dtypes' result type, not the
    gradient's own: a float16 input with a float32 weight gives the float32 of the promoted input."""
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((2, 4, 3, 4)).astype(np.float16), rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    on = {"backend": ag.get_backend()}
    y = F.conv_transpose2d(ag.tensor(x, **on), ag.tensor(w, **on), groups=groups)
    expected = F.conv_transpose2d(ag.tensor(x.astype(np.float32), **on), ag.tensor(w, **on), groups=groups)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


def test_float32_stays_float32_and_output_is_channels_last_view(backend):
    x = ag.randn(2, 3, 8, 8, requires_grad=True)
    w = ag.randn(4, 3, 3, 3, requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    assert y.dtype == np.float32 and y.shape == (2, 4, 8, 8)
    y.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32
    if backend == "numpy":  # channels-last storage: the channel axis has the smallest stride
        assert y.data.strides[1] == y.data.itemsize


def test_backward_graph_is_made_of_convolutions(backend):
    x = ag.randn(1, 2, 5, 5, dtype="float64", requires_grad=True)
    w = ag.randn(3, 2, 3, 3, dtype="float64", requires_grad=True)
    gx, gw = ag.grad(F.conv2d(x, w).sum(), [x, w], create_graph=True)
    assert gx.grad_fn.name == "ConvTranspose2d"
    assert gw.grad_fn.name == "Conv2dGradWeight"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("call,words", [
    (lambda: F.conv2d(ag.randn(1, 3, 5, 5), ag.randn(4, 2, 3, 3)), ["conv2d", "3 channels", "(4, 2, 3, 3)", "2"]),
    (lambda: F.conv2d(ag.randn(1, 1, 2, 2), ag.randn(1, 1, 3, 3)), ["conv2d", "kernel (3, 3)", "(1, 1, 2, 2)"]),
    (lambda: F.conv2d(ag.randn(1, 1, 5, 5), ag.randn(1, 1, 3, 3), stride=2, padding="same"),
     ["conv2d", "same", "stride"]),
    (lambda: F.conv2d(ag.randn(1, 1, 5, 5), ag.randn(1, 1, 3, 3), stride=0), ["conv2d", "stride", ">= 1"]),
    (lambda: F.conv2d(ag.randn(1, 3, 5, 5), ag.randn(3, 1, 3, 3), groups=2), ["conv2d", "groups=2", "divide"]),
    (lambda: F.conv2d(ag.randn(3, 5, 5), ag.randn(1, 3, 3, 3)), ["conv2d", "4-D", "(3, 5, 5)"]),
    (lambda: F.conv1d(ag.randn(1, 3, 5, 5), ag.randn(1, 3, 3)), ["conv1d", "3-D", "(1, 3, 5, 5)"]),
    (lambda: F.conv2d(ag.randn(1, 1, 5, 5), ag.randn(2, 1, 3, 3), ag.randn(3)), ["conv2d", "bias", "(2,)"]),
    (lambda: F.conv_transpose2d(ag.randn(1, 2, 3, 3), ag.randn(2, 1, 3, 3), stride=2, output_padding=2),
     ["conv_transpose2d", "output_padding", "stride"]),
    (lambda: F.locally_connected2d(ag.randn(1, 2, 5, 5), ag.randn(2, 2, 1, 2, 3, 3)),
     ["locally_connected2d", "(3, 3, out_channels, 2, 3, 3)"]),
])
def test_bad_inputs_raise_clear_shape_errors(call, words):
    with pytest.raises((ShapeError, ag.ArgumentError)) as err:  # a bad setting (stride=0) is an ArgumentError
        call()
    for word in words:
        assert word in str(err.value)


# ---------------------------------------------------------------- PyTorch cross-check


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # PyTorch's note on even kernels
def test_conv_ops_and_gradients_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x0, w0, b0 = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 2, 3, 2)), rng.standard_normal(6)
    for options in [dict(groups=2, stride=(2, 1), padding=1, dilation=(1, 2)), dict(groups=2, padding="same")]:
        x, w, b = _t(x0, True), _t(w0, True), _t(b0, True)
        y = F.conv2d(x, w, b, **options)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x0, w0, b0))
        ty = torch.nn.functional.conv2d(tx, tw, tb, **options)
        g = rng.standard_normal(y.shape)
        y.backward(_t(g))
        ty.backward(torch.tensor(g))
        for ours, theirs in [(y, ty), (x.grad, tx.grad), (w.grad, tw.grad), (b.grad, tb.grad)]:
            np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), atol=1e-9)
    wt = rng.standard_normal((4, 3, 3, 3))
    y = F.conv_transpose2d(_t(x0), _t(wt), stride=2, padding=1, output_padding=1, groups=2, dilation=2)
    ty = torch.nn.functional.conv_transpose2d(torch.tensor(x0), torch.tensor(wt), stride=2, padding=1,
                                              output_padding=1, groups=2, dilation=2)
    np.testing.assert_allclose(y.numpy(), ty.numpy(), atol=1e-9)
