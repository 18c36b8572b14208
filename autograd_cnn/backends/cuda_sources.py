"""The CUDA C bodies of the CuPy backend's fused kernels, as plain strings.

Each is the loop body of a CuPy ``ElementwiseKernel``: it runs once per element ``i`` of
its first non-raw output. A GPU step of the lecture CNN is bound by kernel launches, so
these do in one launch what the generic ``xp`` kernels do in five to fifteen. They live
apart from ``cupy_backend`` (and import nothing) so that the test suite can compile the
same bodies as C++ on a machine without a GPU and check them against the NumPy kernels.

Images are channels-last (N, H, W, C) and C-contiguous; ``PT`` and ``PL`` are the top and
left padding; a window's element (a, b) sits at row ``oh * SH - PT + a * DH``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KernelSource:
    """One ElementwiseKernel. ``arrays`` names the non-raw inputs that are arrays (the
    other non-raw inputs are scalars, passed as Python numbers)."""

    name: str
    in_params: str
    out_params: str
    operation: str
    arrays: tuple = ()


_GEOMETRY = ("int32 H, int32 W, int32 C, int32 OH, int32 OW, int32 KH, int32 KW, "
             "int32 SH, int32 SW, int32 PT, int32 PL, int32 DH, int32 DW")


def geometry(shape_nhwc: tuple, out_hw: tuple, kernel_size: tuple, stride: tuple, padding: tuple,
             dilation: tuple) -> tuple:
    """The values of the window parameters above, in their order, for an (N, H, W, C) image."""
    _, h, w, c = shape_nhwc
    return (h, w, c, out_hw[0], out_hw[1], kernel_size[0], kernel_size[1], stride[0], stride[1],
            padding[0][0], padding[1][0], dilation[0], dilation[1])



def _element(row: str, col: str, rows: str, cols: str) -> str:
    """CUDA lines that split the flat index i of an (N, rows, cols, C) array into n, row, col, c."""
    return f"""
    ptrdiff_t r = i;
    const int c = r % C; r /= C;
    const int {col} = r % {cols}; r /= {cols};
    const int {row} = r % {rows};
    const ptrdiff_t n = r / {rows};"""


# One output element (n, oh, ow, c); padded positions are skipped, as if they held -inf.
MAX_POOL2D = KernelSource(
    "autograd_cnn_max_pool2d",
    "raw T x, " + _GEOMETRY + ", int32 want_mask",
    "T y, raw bool mask",
    _element("oh", "ow", "OH", "OW") + """
    T best = 0;
    int arg = -1;
    for (int a = 0; a < KH; ++a) {
        const int h = oh * SH - PT + a * DH;
        if (h < 0 || h >= H) continue;
        for (int b = 0; b < KW; ++b) {
            const int w = ow * SW - PL + b * DW;
            if (w < 0 || w >= W) continue;
            const T v = x[((n * H + h) * W + w) * C + c];
            // The first maximum wins a tie (as PyTorch); a NaN wins and stays.
            if (arg < 0 || v > best || (v != v && best == best)) {
                best = v;
                arg = a * KW + b;
            }
        }
    }
    y = best;
    if (want_mask) {
        const ptrdiff_t plane = _ind.size();
        for (int k = 0; k < KH * KW; ++k) mask[k * plane + i] = (k == arg);
    }
    """)

# im2col: the GEMM rows of a convolution, (N * OH * OW, KH * KW * C), zeros in the padding.
# x is the (N, H, W, C) view of the image in any memory layout (CuPy maps the flat index).
IM2COL = KernelSource(
    "autograd_cnn_im2col",
    "raw T x, " + _GEOMETRY,
    "T cols",
    """
    ptrdiff_t r = i;
    const int c = r % C; r /= C;
    const int b = r % KW; r /= KW;
    const int a = r % KH; r /= KH;
    const int ow = r % OW; r /= OW;
    const int oh = r % OH;
    const ptrdiff_t n = r / OH;
    const int h = oh * SH - PT + a * DH;
    const int w = ow * SW - PL + b * DW;
    cols = (h >= 0 && h < H && w >= 0 && w < W) ? x[((n * H + h) * W + w) * C + c] : (T)0;
    """)

# The loops of an adjoint: input element (n, h, w, c) gathers from every window that holds
# it, so no two threads write one element (no atomics) and the sum keeps the order of the
# generic kernels: offsets (a, b) in row-major order.
_WINDOWS_HOLDING_ELEMENT = _element("h", "w", "H", "W") + """
    T acc = 0;
    for (int a = 0; a < KH; ++a) {
        const int t = h + PT - a * DH;
        if (t < 0 || t % SH != 0 || t / SH >= OH) continue;
        const int oh = t / SH;
        for (int b = 0; b < KW; ++b) {
            const int u = w + PL - b * DW;
            if (u < 0 || u % SW != 0 || u / SW >= OW) continue;
            const int ow = u / SW;
            ADD_TERM
        }
    }
"""

# im2col's adjoint: cols (N, OH, OW, KH, KW, C) added back into an (N, H, W, C) image.
COL2IM = KernelSource(
    "autograd_cnn_col2im",
    "raw T cols, " + _GEOMETRY,
    "T x",
    _WINDOWS_HOLDING_ELEMENT.replace(
        "ADD_TERM", "acc += cols[(((n * OH + oh) * OW + ow) * KH * KW + a * KW + b) * C + c];")
    + "    x = acc;\n")

# Max-pool's backward: gy (N, OH, OW, C) sent where mask (KH * KW, N, OH, OW, C) says.
MAX_POOL2D_SCATTER = KernelSource(
    "autograd_cnn_max_pool2d_scatter",
    "raw T gy, raw bool mask, " + _GEOMETRY + ", int64 plane",
    "T gx",
    _WINDOWS_HOLDING_ELEMENT.replace("ADD_TERM", """const ptrdiff_t o = ((n * OH + oh) * OW + ow) * C + c;
            if (mask[(a * KW + b) * plane + o]) acc += gy[o];""")
    + "    gx = acc;\n")

# One-hot rows of `classes` columns. An index out of range sets bad[0]; the backend reads
# that flag at the next host read, so the training step never waits for the GPU.
ONE_HOT = KernelSource(
    "autograd_cnn_one_hot",
    "raw I target, int32 classes, T on, T off",
    "T q, raw int32 bad",
    """
    const ptrdiff_t row = i / classes;
    const int k = i % classes;
    const long long t = (long long)target[row];
    q = (t == k) ? on : off;
    if (k == 0 && (t < 0 || t >= classes)) bad[0] = 1;
    """)

# Softmax cross-entropy over the last axis, one row (C classes) a thread: the loss, then
# its gradient in z. A NaN in a row makes the row's maximum NaN, as the generic max does.
_ROW_MAX_AND_SUM = """
    T m = z[base];
    for (int c = 1; c < C; ++c) {
        const T v = z[base + c];
        if (v > m || v != v) m = v;
    }
    T s = 0;
    for (int c = 0; c < C; ++c) s += exp(z[base + c] - m);
"""

SOFTMAX_CROSS_ENTROPY = KernelSource(
    "autograd_cnn_softmax_cross_entropy",
    "raw T z, raw T q, int32 C",
    "T loss",
    "    const ptrdiff_t base = i * C;" + _ROW_MAX_AND_SUM + """
    const T log_s = log(s);
    T acc = 0;
    for (int c = 0; c < C; ++c) acc += q[base + c] * (z[base + c] - m - log_s);
    loss = -acc;
    """)

# gz = (softmax(z) * mass - q) * g, mass = the row's sum of q (1 when q is known to sum to 1).
SOFTMAX_CROSS_ENTROPY_GRAD = KernelSource(
    "autograd_cnn_softmax_cross_entropy_grad",
    "raw T z, raw T q, raw T g, int32 C, int32 q_sums_to_one",
    "T gz",
    "    const ptrdiff_t row = i / C, base = row * C;" + _ROW_MAX_AND_SUM + """
    T mass = 1;
    if (!q_sums_to_one) {
        mass = 0;
        for (int c = 0; c < C; ++c) mass += q[base + c];
    }
    gz = (exp(z[i] - m) / s * mass - q[i]) * g[row];
    """)

# ReLU and the mask its backward needs, in one pass, written in x's own memory layout.
RELU_WITH_MASK = KernelSource(
    "autograd_cnn_relu_with_mask",
    "T x",
    "T y, bool positive",
    """
    positive = x > 0;
    y = (positive || x != x) ? x : (T)0;  // a NaN stays NaN, as maximum(x, 0) keeps it
    """, arrays=("x",))

# ReLU's backward, written in the mask's layout (a CuPy product would be C-ordered, and the
# conv below would copy it back to channels-last).
RELU_GRAD = KernelSource(
    "autograd_cnn_relu_grad",
    "T gy, bool positive",
    "T gx",
    "gx = gy * (T)(positive ? 1 : 0);",  # a product, as the generic kernel: NaN * 0 stays NaN
    arrays=("gy", "positive"))

# Optimizer updates, one pass over each parameter. The (1 - beta) factors come from the
# host, rounded once, as the generic kernels round them.
RMSPROP = KernelSource(
    "autograd_cnn_rmsprop",
    "T g, T lr, T alpha, T one_minus_alpha, T eps",
    "T p, T square_avg",
    """
    square_avg = alpha * square_avg + one_minus_alpha * g * g;
    p -= lr * (g / (sqrt(square_avg) + eps));
    """, arrays=("g",))

ADAM = KernelSource(
    "autograd_cnn_adam",
    "T g, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2, T step_size, T bias2_sqrt, T eps",
    "T p, T exp_avg, T exp_avg_sq",
    """
    exp_avg = beta1 * exp_avg + one_minus_beta1 * g;
    exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * g * g;
    p -= step_size * (exp_avg / (sqrt(exp_avg_sq) / bias2_sqrt + eps));
    """, arrays=("g",))

SGD_MOMENTUM = KernelSource(
    "autograd_cnn_sgd_momentum",
    "T g, T lr, T momentum, T one_minus_dampening, int32 nesterov",
    "T p, T buf",
    """
    buf = momentum * buf + one_minus_dampening * g;
    p -= lr * (nesterov ? g + momentum * buf : buf);
    """, arrays=("g",))

ALL = (MAX_POOL2D, IM2COL, COL2IM, MAX_POOL2D_SCATTER, ONE_HOT, SOFTMAX_CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY_GRAD,
       RELU_WITH_MASK, RELU_GRAD, RMSPROP, ADAM, SGD_MOMENTUM)
