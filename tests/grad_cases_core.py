"""Gradcheck rows for the core ops: arithmetic, reductions, shapes, matmul, activations, losses."""
from __future__ import annotations

import numpy as np
from gradcase import Case, away_from, distinct

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn.autograd import Function
from autograd_cnn.ops.reduce import ChannelSum
from autograd_cnn.ops.shape import to_backend


def _labels(n, classes):
    return lambda rng, b: [ag.tensor(rng.integers(0, classes, size=n), backend=b)]


def _probs(shape):
    def make(rng, b):
        p = rng.uniform(0.1, 1.0, size=shape)
        return [ag.tensor(p / p.sum(axis=-1, keepdims=True), dtype="float64", backend=b)]
    return make


def _binary(shape):
    return lambda rng, b: [ag.tensor(rng.integers(0, 2, size=shape).astype("float64"), backend=b)]


class ProductAndDifference(Function):
    """y0 = a * b, y1 = a - b: a user's op with two outputs, written in differentiable ops"""
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b, a - b

    @staticmethod
    def backward(ctx, g_product, g_difference):
        a, b = ctx.saved_tensors
        return g_product * b + g_difference, g_product * a - g_difference


class ProductAndDifferenceOrNone(ProductAndDifference):
    """The same, taking None for an output no path used"""
    materialize_grads = False

    @staticmethod
    def backward(ctx, g_product, g_difference):
        a, b = ctx.saved_tensors
        ga = gb = None
        if g_product is not None:
            ga, gb = g_product * b, g_product * a
        if g_difference is not None:
            ga = g_difference if ga is None else ga + g_difference
            gb = -g_difference if gb is None else gb - g_difference
        return ga, gb


CASES = [
    # arithmetic with broadcasting
    Case("add_broadcast", lambda a, b: a + b, [(3, 4), (4,)]),
    Case("add_scalar_reflected", lambda a: 2.5 + a, [(3,)]),
    Case("sub_broadcast", lambda a, b: a - b, [(2, 1, 3), (4, 1)]),
    Case("rsub", lambda a: 1.0 - a, [(3,)]),
    Case("mul_broadcast", lambda a, b: a * b, [(2, 3), (1, 3)]),
    Case("div", lambda a, b: a / b, [(2, 3), (2, 3)], dodge=away_from(0, 0.3)),
    Case("rdiv", lambda a: 2.0 / a, [(4,)], dodge=away_from(0, 0.3)),
    Case("pow_scalar", lambda a: a ** 3, [(2, 3)]),
    Case("pow_tensor", lambda a, b: a ** b, [(2, 3), (2, 3)], domain=(0.5, 2.0)),
    Case("rpow", lambda a: 2.0 ** a, [(3,)]),
    Case("neg", lambda a: -a, [(2, 2)]),
    Case("exp", lambda a: a.exp(), [(2, 3)]),
    Case("log", lambda a: a.log(), [(2, 3)], domain=(0.5, 3.0)),
    Case("sqrt", lambda a: a.sqrt(), [(2, 3)], domain=(0.5, 3.0)),
    Case("abs", lambda a: a.abs(), [(2, 3)], dodge=away_from(0)),
    Case("where", lambda a, b: ag.where(a > 0, a, b), [(3, 4), (3, 4)], dodge=away_from(0)),
    Case("maximum", lambda a, b: ag.maximum(a, b), [(3, 4), (4,)], dodge=distinct),
    Case("minimum", lambda a, b: ag.minimum(a, b), [(3, 4), (3, 4)], dodge=distinct),
    Case("astype", lambda a: a.astype("float64") * a, [(3,)]),
    Case("to_backend", lambda a: to_backend(a, a.backend_object) * a, [(3,)]),
    Case("compare_no_grad", lambda a: a * (a > 0).astype("float64"), [(5,)], dodge=away_from(0)),
    # reductions
    Case("sum_all", lambda a: a.sum(), [(3, 4)]),
    Case("sum_axis_keepdims", lambda a: a.sum(axis=1, keepdims=True), [(3, 4, 2)]),
    Case("sum_axes_tuple", lambda a: a.sum(axis=(0, 2)), [(3, 4, 2)]),
    Case("mean_axis", lambda a: a.mean(axis=-1), [(3, 4)]),
    Case("max_axis", lambda a: a.max(axis=0), [(3, 4)], dodge=distinct),
    Case("max_all", lambda a: a.max(), [(3, 4)], dodge=distinct),
    Case("min_axis_keepdims", lambda a: a.min(axis=1, keepdims=True), [(3, 4)], dodge=distinct),
    Case("var_axis", lambda a: a.var(axis=1), [(3, 5)]),
    Case("var_ddof1", lambda a: a.var(ddof=1), [(6,)]),
    Case("argmax_no_grad", lambda a: a * a.argmax(axis=0).astype("float64").sum(), [(3, 4)],
         dodge=distinct),
    Case("argmin_no_grad", lambda a: a * a.argmin().astype("float64"), [(3, 4)], dodge=distinct),
    # shapes
    Case("reshape", lambda a: a.reshape(4, 3) * 1.0, [(3, 4)]),
    Case("transpose", lambda a: a.transpose(2, 0, 1), [(2, 3, 4)]),
    Case("T", lambda a: a.T, [(2, 3)]),
    Case("flatten", lambda a: a.flatten(1), [(2, 3, 4)]),
    Case("getitem_slice", lambda a: a[1:, ::2], [(3, 5)]),
    Case("getitem_int_none", lambda a: a[1, None], [(3, 5)]),
    Case("getitem_int_array", lambda a: a[np.array([0, 2, 0])], [(3, 2)]),
    Case("concat", lambda a, b: ag.concat([a, b], axis=1), [(2, 3), (2, 1)]),
    Case("stack", lambda a, b: ag.stack([a, b], axis=0), [(2, 3), (2, 3)]),
    # several outputs of one node: every output used, or some
    Case("split_equal", lambda a: ag.split(a, 2, axis=1), [(3, 4)]),
    Case("split_indices_one_piece_used", lambda a: ag.split(a, [1, 3])[2] * 2.0, [(5, 2)]),
    Case("chunk_uneven", lambda a: ag.chunk(a, 3, axis=0), [(5, 2)]),
    Case("unbind", lambda a: ag.unbind(a, axis=1), [(2, 3)]),
    Case("unbind_two_of_three_used", lambda a: (lambda p: p[0] * p[2])(ag.unbind(a)), [(3, 2)]),
    Case("two_outputs_both_used", lambda a, b: ProductAndDifference.apply(a, b), [(2, 3), (2, 3)]),
    Case("two_outputs_one_used", lambda a, b: ProductAndDifference.apply(a, b)[1] * a, [(2, 3), (2, 3)]),
    Case("two_outputs_none_for_unused", lambda a, b: ProductAndDifferenceOrNone.apply(a, b)[0].exp(),
         [(3,), (3,)]),
    Case("pad", lambda a: ag.pad(a, ((1, 0), (2, 1))), [(2, 3)]),
    Case("broadcast_sum_to", lambda a, b: (a + b).sum(axis=0), [(1, 3), (4, 1)]),
    Case("channel_sum_rows", lambda a: ChannelSum.apply(a), [(4, 3)]),
    Case("channel_sum_3d", lambda a: ChannelSum.apply(a), [(2, 3, 4)]),
    Case("channel_sum_4d", lambda a: ChannelSum.apply(a), [(2, 3, 2, 2)]),
    # matmul and linear
    Case("matmul_2d", lambda a, b: a @ b, [(3, 4), (4, 2)]),
    Case("matmul_batched_broadcast", lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    Case("matmul_1d_left", lambda a, b: a @ b, [(4,), (2, 4, 3)]),
    Case("matmul_1d_right", lambda a, b: a @ b, [(3, 4), (4,)]),
    Case("matmul_1d_both", lambda a, b: a @ b, [(4,), (4,)]),
    Case("linear_bias", lambda x, w, b: F.linear(x, w, b), [(5, 4), (3, 4), (3,)]),
    Case("linear_nobias_3d", lambda x, w: F.linear(x, w), [(2, 5, 4), (3, 4)]),
    # activations
    Case("relu", lambda a: F.relu(a), [(3, 4)], dodge=away_from(0)),
    Case("leaky_relu", lambda a: F.leaky_relu(a, 0.1), [(3, 4)], dodge=away_from(0)),
    Case("sigmoid", lambda a: F.sigmoid(a), [(3, 4)], domain=(-6, 6)),
    Case("tanh", lambda a: F.tanh(a), [(3, 4)]),
    Case("softplus_both_sides_of_threshold", lambda a: F.softplus(a, beta=1.5, threshold=2.0), [(3, 4)],
         domain=(-3, 3), dodge=away_from(2.0 / 1.5)),
    Case("gelu_erf", lambda a: F.gelu(a), [(3, 4)]),
    Case("gelu_tanh", lambda a: F.gelu(a, approximate="tanh"), [(3, 4)]),
    Case("softmax", lambda a: F.softmax(a, axis=-1), [(3, 4)]),
    Case("softmax_axis0", lambda a: F.softmax(a, axis=0), [(3, 4)]),
    Case("log_softmax", lambda a: F.log_softmax(a, axis=1), [(3, 4)]),
    # losses
    Case("cross_entropy_indices", lambda z, t: F.cross_entropy(z, t), [(5, 4)], extra=_labels(5, 4)),
    Case("cross_entropy_smoothing_sum", lambda z, t: F.cross_entropy(z, t, label_smoothing=0.1,
                                                                     reduction="sum"),
         [(5, 4)], extra=_labels(5, 4)),
    Case("cross_entropy_probs", lambda z, q: F.cross_entropy(z, q), [(3, 4), (3, 4)], domain=(0.1, 1.0)),
    Case("cross_entropy_probs_fixed", lambda z, q: F.cross_entropy(z, q, reduction="none"),
         [(3, 4)], extra=_probs((3, 4))),
    Case("cross_entropy_spatial", lambda z, t: F.cross_entropy(z, t),
         [(2, 3, 4)], extra=lambda rng, b: [ag.tensor(rng.integers(0, 3, size=(2, 4)), backend=b)]),
    Case("nll_loss", lambda z, t: F.nll_loss(F.log_softmax(z), t), [(5, 3)], extra=_labels(5, 3)),
    Case("mse_loss", lambda p, t: F.mse_loss(p, t), [(4, 3), (4, 3)]),
    Case("bce_with_logits", lambda z, t: F.binary_cross_entropy_with_logits(z, t), [(4, 3)],
         extra=_binary((4, 3))),
    Case("bce_with_logits_soft_target", lambda z, t: F.binary_cross_entropy_with_logits(
        z, t, reduction="sum"), [(4, 3), (4, 3)], domain=(0.1, 0.9)),
]
