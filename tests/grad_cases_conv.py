"""Gradcheck rows for convolution and pooling: every option, on tiny shapes."""
from __future__ import annotations

from gradcase import Case, distinct

import autograd_cnn as ag
import autograd_cnn.functional as F


def _max_pool_input_grad(x):
    """The gradient of a max-pool loss as a function of x: its own gradient runs MaxPool2dGather."""
    with ag.enable_grad():  # gradcheck's numerical pass runs without a graph
        y = F.max_pool2d(x, 2, stride=1)
        return ag.grad((y * y).sum(), x, create_graph=True)[0]


CASES = [
    # conv2d
    Case("conv2d_bias", lambda x, w, b: F.conv2d(x, w, b), [(2, 2, 5, 5), (3, 2, 3, 3), (3,)]),
    Case("conv2d_stride2_pad1", lambda x, w: F.conv2d(x, w, stride=2, padding=1), [(1, 2, 5, 5), (2, 2, 3, 3)]),
    Case("conv2d_stride_pair_pad_pair", lambda x, w: F.conv2d(x, w, stride=(1, 2), padding=(2, 1)),
         [(1, 2, 4, 5), (2, 2, 2, 3)]),
    Case("conv2d_same_even_kernel", lambda x, w: F.conv2d(x, w, padding="same"), [(1, 2, 4, 5), (2, 2, 2, 2)]),
    Case("conv2d_valid_dilation2", lambda x, w: F.conv2d(x, w, padding="valid", dilation=2),
         [(1, 2, 5, 5), (2, 2, 2, 2)]),
    Case("conv2d_groups2", lambda x, w, b: F.conv2d(x, w, b, groups=2, padding=1), [(1, 4, 4, 4), (4, 2, 2, 2), (4,)]),
    Case("conv2d_depthwise", lambda x, w: F.conv2d(x, w, groups=3, dilation=(1, 2)), [(2, 3, 4, 5), (3, 1, 2, 2)]),
    Case("conv2d_depthwise_multiplier_bias_stride", lambda x, w, b: F.conv2d(x, w, b, groups=2, stride=2, padding=1),
         [(2, 2, 5, 5), (4, 1, 3, 3), (4,)]),
    Case("conv2d_groups3_stride_dilation", lambda x, w: F.conv2d(x, w, groups=3, stride=(2, 1), dilation=(1, 2)),
         [(1, 6, 5, 6), (6, 2, 2, 2)]),
    Case("conv2d_one_channel_bias_stride_pad_dilation",
         lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
         [(2, 1, 6, 5), (3, 1, 3, 2), (3,)]),
    Case("conv2d_one_channel", lambda x, w: F.conv2d(x, w), [(3, 1, 4, 4), (2, 1, 2, 3)]),
    Case("conv1d", lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1), [(2, 2, 6), (3, 2, 3), (3,)]),
    Case("conv1d_same_dilation_groups", lambda x, w: F.conv1d(x, w, padding="same", dilation=2, groups=2),
         [(1, 4, 6), (2, 2, 2)]),
    Case("conv1d_depthwise_bias", lambda x, w, b: F.conv1d(x, w, b, padding=1, groups=3), [(2, 3, 7), (3, 1, 3), (3,)]),
    # conv_transpose2d
    Case("conv_transpose2d_bias", lambda x, w, b: F.conv_transpose2d(x, w, b), [(2, 2, 3, 3), (2, 3, 2, 2), (3,)]),
    Case("conv_transpose2d_stride_pad_outpad", lambda x, w: F.conv_transpose2d(
        x, w, stride=2, padding=1, output_padding=1), [(1, 2, 3, 3), (2, 2, 3, 3)]),
    Case("conv_transpose2d_groups_dilation", lambda x, w: F.conv_transpose2d(
        x, w, stride=(2, 1), groups=2, dilation=2, output_padding=(1, 0)), [(1, 4, 2, 3), (4, 1, 2, 2)]),
    Case("conv_transpose2d_depthwise_bias", lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, groups=3),
         [(2, 3, 3, 3), (3, 1, 3, 3), (3,)]),
    # locally connected: 5x5 input, 2x2 kernel, stride 1 -> 4x4 positions; stride 2 -> 2x2
    Case("locally_connected2d_bias", lambda x, w, b: F.locally_connected2d(x, w, b),
         [(2, 2, 4, 4), (3, 3, 2, 2, 2, 2), (2, 3, 3)]),
    Case("locally_connected2d_stride2", lambda x, w: F.locally_connected2d(x, w, stride=2),
         [(1, 2, 5, 5), (2, 2, 2, 2, 2, 2)]),
    # max pooling (distinct values keep every window's maximum unique)
    Case("max_pool2d_2x2", lambda x: F.max_pool2d(x, 2), [(2, 2, 4, 4)], dodge=distinct),
    Case("max_pool2d_2x2_odd_size", lambda x: F.max_pool2d(x, 2), [(1, 2, 5, 7)], dodge=distinct),
    Case("max_pool2d_2x2_pad", lambda x: F.max_pool2d(x, 2, padding=1), [(1, 1, 5, 4)], dodge=distinct),
    Case("max_pool2d_overlap_pad_ceil", lambda x: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
         [(1, 2, 6, 5)], dodge=distinct),
    Case("max_pool2d_dilation_stride_pair", lambda x: F.max_pool2d(x, (2, 2), stride=(1, 2), dilation=2),
         [(1, 2, 5, 5)], dodge=distinct),
    Case("max_pool1d", lambda x: F.max_pool1d(x, 3, stride=2, padding=1, ceil_mode=True), [(2, 2, 6)],
         dodge=distinct),
    Case("max_pool2d_grad_of_grad", _max_pool_input_grad, [(1, 2, 3, 3)], dodge=distinct),
    Case("global_max_pool2d", lambda x: F.global_max_pool2d(x), [(2, 3, 3, 3)], dodge=distinct),
    # average pooling
    Case("avg_pool2d_2x2", lambda x: F.avg_pool2d(x, 2), [(2, 2, 4, 5)]),
    Case("avg_pool2d_pad_ceil_include", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
         [(1, 2, 6, 5)]),
    Case("avg_pool2d_pad_ceil_exclude", lambda x: F.avg_pool2d(
        x, (2, 3), stride=(2, 1), padding=(1, 1), ceil_mode=True, count_include_pad=False), [(1, 2, 5, 4)]),
    Case("avg_pool1d_exclude_pad", lambda x: F.avg_pool1d(x, 3, stride=2, padding=1, count_include_pad=False),
         [(2, 2, 7)]),
    Case("global_avg_pool2d", lambda x: F.global_avg_pool2d(x), [(2, 3, 3, 3)]),
    Case("adaptive_avg_pool2d_uneven", lambda x: F.adaptive_avg_pool2d(x, (2, 3)), [(2, 2, 5, 4)]),
    Case("adaptive_avg_pool2d_even", lambda x: F.adaptive_avg_pool2d(x, 2), [(1, 2, 4, 4)]),
]
