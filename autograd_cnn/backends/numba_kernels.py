"""The Numba backend's compiled kernels: plain loops over a range of images or elements.

Each kernel fills the range ``[first, last)`` of the batch (or of a flattened array), so the
backend can hand ranges to its worker threads (``run_parts``); the kernels let go of the GIL
(``nogil``), so those threads really run at once. Images are channels-last (N, H, W, C) and
C-contiguous. A window geometry is one tuple ``(kh, kw, sh, sw, dh, dw, oh, ow)``: kernel size,
stride, dilation, output size.

Compiled on first use for each dtype (float32, float64) and kept on disk (``cache=True``):
Numba writes its cache beside this file, or where that is read-only in the user's cache
folder (``NUMBA_CACHE_DIR`` overrides both). No ``fastmath``: the kernels add in the same
order as the NumPy reference, and give its results to the last bit or to rounding.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

# error_model="numpy": a division by zero gives inf or NaN, as in NumPy, instead of a check
# that raises; without that branch LLVM vectorizes the loops (the RMSprop update: 8x faster).
kernel = njit(cache=True, nogil=True, error_model="numpy")


# ---------------------------------------------------------------- windows and pooling
# Images arrive padded (the backend pads them), so no loop tests a window against the image's
# edges, and every innermost loop runs over the channels, contiguous in memory: LLVM turns it
# into vector instructions. A loop over a range from 0 indexes without NumPy's negative-index
# check (an index computed from first/last would carry it), hence the views of a part's range.


@kernel
def gather_windows(xp, first, last, geometry, ones_column, out):
    """im2col: the windows of padded images first..last of xp (N, H, W, C) as rows of out, from
    row 0 (one row per output pixel, KH*KW*C columns), with a last column of ones if asked (a
    bias folded into the product)."""
    kh, kw, sh, sw, dh, dw, oh, ow = geometry
    x = xp[first:last]
    c = x.shape[3]
    for b in range(last - first):
        for i in range(oh):
            for j in range(ow):
                row = (b * oh + i) * ow + j
                for p in range(kh):
                    for q in range(kw):
                        src, col = x[b, i * sh + p * dh, j * sw + q * dw], (p * kw + q) * c
                        for ch in range(c):
                            out[row, col + ch] = src[ch]
                if ones_column:
                    out[row, kh * kw * c] = 1


@kernel
def gather_planes(xp, first, last, geometry, ones_row, out):
    """im2col transposed, for one-channel images first..last of xp (N, H, W, 1): row k of out
    (KH*KW [+ 1], rows) holds element k of every window, a shifted copy of the images, plus a
    row of ones if asked. With one channel, im2col's rows are gathered a float at a time, and a
    product with them runs at a third of the speed of one with these planes."""
    kh, kw, sh, sw, dh, dw, oh, ow = geometry
    x = xp[first:last]
    for p in range(kh):
        for q in range(kw):
            plane = out[p * kw + q]
            for b in range(last - first):
                for i in range(oh):
                    src, start = x[b, i * sh + p * dh, q * dw:, 0], (b * oh + i) * ow
                    for j in range(ow):
                        plane[start + j] = src[j * sw]
    if ones_row:
        out[kh * kw] = 1


@kernel
def add_windows(cols, first, last, geometry, out):
    """col2im: padded images first..last of out (N, H, W, C) set to the sum of the window
    elements in cols (the part's rows, as (n, OH, OW, KH, KW, C)) that fall on each pixel, added
    offset by offset (the NumPy backend's order)."""
    kh, kw, sh, sw, dh, dw, oh, ow = geometry
    image = out[first:last]
    c = image.shape[3]
    for b in range(last - first):
        image[b] = 0
        for p in range(kh):
            for q in range(kw):
                for i in range(oh):
                    for j in range(ow):
                        dst, src = image[b, i * sh + p * dh, j * sw + q * dw], cols[b, i, j, p, q]
                        for ch in range(c):
                            dst[ch] += src[ch]


@kernel
def max_windows(xp, first, last, geometry, with_mask, y, mask):
    """Max pooling of padded images first..last of xp: y (N, OH, OW, C) the running np.maximum
    over the kernel offsets (a NaN wins), and mask (KH*KW, N, OH, OW, C) true at the first
    offset equal to the maximum: the NumPy backend's rules, element for element."""
    kh, kw, sh, sw, dh, dw, oh, ow = geometry
    c = xp.shape[3]
    free = np.empty(c, dtype=np.bool_)
    for b in range(first, last):
        x, out = xp[b], y[b]
        for i in range(oh):
            for j in range(ow):
                top = out[i, j]
                top[:] = x[i * sh, j * sw]
                for k in range(1, kh * kw):
                    src = x[i * sh + (k // kw) * dh, j * sw + (k % kw) * dw]
                    for ch in range(c):
                        top[ch] = np.maximum(top[ch], src[ch])
                if not with_mask:
                    continue
                free[:] = True
                for k in range(kh * kw):
                    src, chosen = x[i * sh + (k // kw) * dh, j * sw + (k % kw) * dw], mask[k, b, i, j]
                    for ch in range(c):
                        chosen[ch] = free[ch] and src[ch] == top[ch]
                        free[ch] = free[ch] and not chosen[ch]


@kernel
def max_tiles_of_two(x, first, last, with_mask, y, mask):
    """Max pooling over 2x2 tiles at stride 2 of images first..last: the NumPy backend's fast path
    (the top and bottom pairs' maxima give the output and the mask), in one pass."""
    oh, ow, c = y.shape[1], y.shape[2], y.shape[3]
    for b in range(first, last):
        for i in range(oh):
            for j in range(ow):
                a, bb = x[b, 2 * i, 2 * j], x[b, 2 * i, 2 * j + 1]
                cc, d = x[b, 2 * i + 1, 2 * j], x[b, 2 * i + 1, 2 * j + 1]
                out = y[b, i, j]
                if with_mask:
                    m0, m1, m2, m3 = mask[0, b, i, j], mask[1, b, i, j], mask[2, b, i, j], mask[3, b, i, j]
                for ch in range(c):
                    top, bottom = np.maximum(a[ch], bb[ch]), np.maximum(cc[ch], d[ch])
                    out[ch] = np.maximum(top, bottom)
                    if with_mask:
                        in_top, left_top, left_bottom = top >= bottom, a[ch] >= bb[ch], cc[ch] >= d[ch]
                        m0[ch] = in_top and left_top
                        m1[ch] = in_top and not left_top
                        m2[ch] = left_bottom and not in_top
                        m3[ch] = not (in_top or left_bottom)


@kernel
def spread_windows(gyh, mask, with_mask, first, last, geometry, out):
    """The adjoint of a pooling: padded images first..last of out (N, H, W, C) set to the sum of
    gyh (N, OH, OW, C) over the windows that cover each pixel (with a mask, only where it is
    true), offset by offset."""
    kh, kw, sh, sw, dh, dw, oh, ow = geometry
    c = out.shape[3]
    for b in range(first, last):
        image = out[b]
        image[:] = 0
        for k in range(kh * kw):
            p, q = k // kw, k % kw
            for i in range(oh):
                for j in range(ow):
                    dst, src = image[i * sh + p * dh, j * sw + q * dw], gyh[b, i, j]
                    if with_mask:
                        chosen = mask[k, b, i, j]
                        for ch in range(c):
                            dst[ch] += src[ch] * chosen[ch]
                    else:
                        for ch in range(c):
                            dst[ch] += src[ch]


@kernel
def gather_chosen(xp, mask, first, last, geometry, y):
    """The adjoint of spread_windows with a mask (max pooling's double backward): y (N, OH, OW, C)
    for images first..last, each window's sum of the elements of xp its mask chose, offset by
    offset (the NumPy backend's sum of products: an inf not chosen gives NaN there too)."""
    kh, kw, sh, sw, dh, dw, oh, ow = geometry
    c = y.shape[3]
    for b in range(first, last):
        out = y[b]
        out[:] = 0
        for k in range(kh * kw):
            p, q = k // kw, k % kw
            for i in range(oh):
                for j in range(ow):
                    dst, src, chosen = out[i, j], xp[b, i * sh + p * dh, j * sw + q * dw], mask[k, b, i, j]
                    for ch in range(c):
                        dst[ch] += src[ch] * chosen[ch]


@kernel
def sum_windows(xp, first, last, geometry, y):
    """Sum pooling of padded images first..last of xp: y (N, OH, OW, C) the sum of each window,
    offset by offset."""
    kh, kw, sh, sw, dh, dw, oh, ow = geometry
    c = xp.shape[3]
    for b in range(first, last):
        out = y[b]
        out[:] = 0
        for k in range(kh * kw):
            p, q = k // kw, k % kw
            for i in range(oh):
                for j in range(ow):
                    dst, src = out[i, j], xp[b, i * sh + p * dh, j * sw + q * dw]
                    for ch in range(c):
                        dst[ch] += src[ch]


# ---------------------------------------------------------------- elementwise, on flat arrays


@kernel
def relu_with_mask(x, first, last, y, positive):
    """y = max(x, 0) (NaN stays NaN) and positive = x > 0, over elements first..last."""
    xs, ys, ps = x[first:last], y[first:last], positive[first:last]
    for k in range(xs.size):
        v = xs[k]
        ps[k] = v > 0
        ys[k] = v if (v > 0 or v != v) else 0


@kernel
def relu_grad(gy, positive, first, last, gx):
    """gx = gy * positive over elements first..last."""
    gs, ps, xs = gy[first:last], positive[first:last], gx[first:last]
    for k in range(gs.size):
        xs[k] = gs[k] * ps[k]


# ---------------------------------------------------------------- softmax cross-entropy


@kernel
def softmax_cross_entropy(z, q, loss):
    """loss[r] = -sum_c q[r, c] log softmax(z[r])_c, row by row, the row maximum taken out first."""
    rows, classes = z.shape
    for r in range(rows):
        top = z[r, 0]
        for c in range(1, classes):
            top = max(top, z[r, c])
        total = 0.0
        for c in range(classes):
            total += math.exp(z[r, c] - top)
        log_total = math.log(total)
        acc = 0.0
        for c in range(classes):
            acc += q[r, c] * (z[r, c] - top - log_total)
        loss[r] = -acc


@kernel
def softmax_cross_entropy_grad(z, q, g, q_sums_to_one, gz):
    """gz[r] = (softmax(z[r]) * sum_c q[r, c] - q[r]) * g[r], row by row."""
    rows, classes = z.shape
    for r in range(rows):
        top = z[r, 0]
        for c in range(1, classes):
            top = max(top, z[r, c])
        total = 0.0
        for c in range(classes):
            gz[r, c] = math.exp(z[r, c] - top)
            total += gz[r, c]
        scale = 1.0 / total
        if not q_sums_to_one:
            q_sum = 0.0
            for c in range(classes):
                q_sum += q[r, c]
            scale *= q_sum
        for c in range(classes):
            gz[r, c] = (gz[r, c] * scale - q[r, c]) * g[r]


# ---------------------------------------------------------------- optimizer updates, in place


@kernel
def sgd_momentum_update(p, g, buf, lr, momentum, keep, nesterov):
    """buf = momentum buf + keep g (keep = 1 - dampening); p -= lr (g + momentum buf if nesterov else buf)."""
    for k in range(p.size):
        b = momentum * buf[k] + keep * g[k]
        buf[k] = b
        p[k] -= lr * (g[k] + momentum * b if nesterov else b)


@kernel
def rmsprop_update(p, g, square_avg, lr, alpha, keep, eps):
    """square_avg = alpha square_avg + keep g^2 (keep = 1 - alpha); p -= lr g / (sqrt(square_avg) + eps)."""
    for k in range(p.size):
        s = alpha * square_avg[k] + keep * g[k] * g[k]
        square_avg[k] = s
        p[k] -= lr * (g[k] / (np.sqrt(s) + eps))


@kernel
def adam_update(p, g, exp_avg, exp_avg_sq, b1, keep1, b2, keep2, step_size, bias2_sqrt, eps):
    """Adam's moving averages of g and g^2, then p -= step_size m / (sqrt(v) / bias2_sqrt + eps)."""
    for k in range(p.size):
        m = b1 * exp_avg[k] + keep1 * g[k]
        v = b2 * exp_avg_sq[k] + keep2 * g[k] * g[k]
        exp_avg[k], exp_avg_sq[k] = m, v
        p[k] -= step_size * (m / (np.sqrt(v) / bias2_sqrt + eps))


# Keras 3's formulas (keras.optimizers), in the NumPy backend's order of operations.


@kernel
def keras_sgd_momentum_update(p, g, m, lr, momentum, nesterov):
    """m = momentum m - lr g; p += momentum m - lr g if nesterov else m."""
    for k in range(p.size):
        v = m[k] * momentum - lr * g[k]
        m[k] = v
        p[k] += momentum * v - lr * g[k] if nesterov else v


@kernel
def keras_rmsprop_update(p, g, velocity, average_grad, centered, buf, with_momentum, lr, rho, keep, epsilon,
                         momentum):
    """velocity = rho velocity + (1 - rho) g^2 (keep = 1 - rho); the increment lr g / sqrt(velocity
    [- average_grad^2] + epsilon), through buf = momentum buf + increment when with_momentum."""
    for k in range(p.size):
        v = velocity[k] * rho + keep * g[k] * g[k]
        velocity[k] = v
        if centered:
            a = average_grad[k] * rho + keep * g[k]
            average_grad[k] = a
            v = v - a * a
        step = g[k] / np.sqrt(v + epsilon) * lr
        if with_momentum:
            step = buf[k] * momentum + step
            buf[k] = step
        p[k] -= step


@kernel
def adadelta_update(p, g, square_avg, acc_delta, lr, rho, keep, eps):
    """v = rho v + (1 - rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) g; u = rho u + (1 - rho) d^2; p -= lr d."""
    for k in range(p.size):
        v = square_avg[k] * rho + keep * g[k] * g[k]
        square_avg[k] = v
        d = np.sqrt(acc_delta[k] + eps) / np.sqrt(v + eps) * g[k]
        acc_delta[k] = acc_delta[k] * rho + keep * d * d
        p[k] -= lr * d


@kernel
def adagrad_update(p, g, accumulator, lr, epsilon):
    """accumulator += g^2; p -= lr g / sqrt(accumulator + epsilon)."""
    for k in range(p.size):
        a = accumulator[k] + g[k] * g[k]
        accumulator[k] = a
        p[k] -= g[k] / np.sqrt(a + epsilon) * lr


# ---------------------------------------------------------------- batch norm and dropout
# Batch norm's arrays come in one of two forms: rows (M, C), a channels-last activation (a conv's
# output) or an (N, C) batch, where the innermost loop runs over the channels; or planes (N, C, L),
# a C-contiguous (N, C, H, W) or (N, C, L), where it runs along a channel's plane. Sums are taken
# in float64 whatever the input's dtype, one part of the batch per call; the backend adds the
# parts' results in their order, so a run repeats its sums to the last bit.


@kernel
def moments_rows(x, first, last, mean, m2):
    """Each column's mean and centred sum of squares over rows first..last of x (M, C): the mean
    first, then the squares about it (two passes over a part, the second from the cache)."""
    rows = x[first:last]
    n, c = rows.shape
    mean[:] = 0.0
    for r in range(n):
        for ch in range(c):
            mean[ch] += rows[r, ch]
    for ch in range(c):
        mean[ch] /= n
    m2[:] = 0.0
    for r in range(n):
        for ch in range(c):
            d = rows[r, ch] - mean[ch]
            m2[ch] += d * d


@kernel
def moments_planes(x, first, last, mean, m2):
    """Each channel's mean and centred sum of squares over images first..last of x (N, C, L).
    Four running sums along a plane, added at its end, so the additions do not wait on each other."""
    part = x[first:last]
    n, c, length = part.shape
    head = length - length % 4
    for ch in range(c):
        s0 = s1 = s2 = s3 = 0.0
        for b in range(n):
            plane = part[b, ch]
            for k in range(0, head, 4):
                s0 += plane[k]
                s1 += plane[k + 1]
                s2 += plane[k + 2]
                s3 += plane[k + 3]
            for k in range(head, length):
                s0 += plane[k]
        m = ((s0 + s1) + (s2 + s3)) / (n * length)
        s0 = s1 = s2 = s3 = 0.0
        for b in range(n):
            plane = part[b, ch]
            for k in range(0, head, 4):
                d0, d1, d2, d3 = plane[k] - m, plane[k + 1] - m, plane[k + 2] - m, plane[k + 3] - m
                s0 += d0 * d0
                s1 += d1 * d1
                s2 += d2 * d2
                s3 += d3 * d3
            for k in range(head, length):
                d0 = plane[k] - m
                s0 += d0 * d0
        mean[ch], m2[ch] = m, (s0 + s1) + (s2 + s3)


@kernel
def normalize_rows(x, first, last, shift, scale, weight, bias, y, xhat):
    """xhat = (x - shift) * scale and y = xhat * weight + bias over rows first..last of x (M, C),
    computed in float64 (the per-channel vectors are float64) and stored in y's dtype."""
    xs, ys, hs = x[first:last], y[first:last], xhat[first:last]
    for r in range(xs.shape[0]):
        for ch in range(xs.shape[1]):
            h = (xs[r, ch] - shift[ch]) * scale[ch]
            hs[r, ch] = h
            ys[r, ch] = h * weight[ch] + bias[ch]


@kernel
def normalize_planes(x, first, last, shift, scale, weight, bias, y, xhat):
    """normalize_rows for images first..last of x (N, C, L)."""
    xs, ys, hs = x[first:last], y[first:last], xhat[first:last]
    for b in range(xs.shape[0]):
        for ch in range(xs.shape[1]):
            src, out, norm = xs[b, ch], ys[b, ch], hs[b, ch]
            m, s, w, t = shift[ch], scale[ch], weight[ch], bias[ch]
            for k in range(src.size):
                h = (src[k] - m) * s
                norm[k] = h
                out[k] = h * w + t


@kernel
def grad_sums_rows(gy, xhat, first, last, sum_gy, sum_gy_xhat):
    """Each column's sum of gy and of gy * xhat over rows first..last (M, C), in float64."""
    gs, hs = gy[first:last], xhat[first:last]
    sum_gy[:] = 0.0
    sum_gy_xhat[:] = 0.0
    for r in range(gs.shape[0]):
        for ch in range(gs.shape[1]):
            g = np.float64(gs[r, ch])
            sum_gy[ch] += g
            sum_gy_xhat[ch] += g * hs[r, ch]


@kernel
def grad_sums_planes(gy, xhat, first, last, sum_gy, sum_gy_xhat):
    """grad_sums_rows for images first..last of (N, C, L), two running sums of each along a plane."""
    gs, hs = gy[first:last], xhat[first:last]
    n, c, length = gs.shape
    head = length - length % 2
    for ch in range(c):
        a0 = a1 = p0 = p1 = 0.0
        for b in range(n):
            g, h = gs[b, ch], hs[b, ch]
            for k in range(0, head, 2):
                g0, g1 = np.float64(g[k]), np.float64(g[k + 1])
                a0 += g0
                a1 += g1
                p0 += g0 * h[k]
                p1 += g1 * h[k + 1]
            for k in range(head, length):
                g0 = np.float64(g[k])
                a0 += g0
                p0 += g0 * h[k]
        sum_gy[ch], sum_gy_xhat[ch] = a0 + a1, p0 + p1


@kernel
def batch_norm_grad_rows(gy, xhat, first, last, training, scale, mean_gy, mean_gy_xhat, gx):
    """gx = scale * (gy - mean_gy - xhat * mean_gy_xhat) in training, scale * gy in evaluation,
    over rows first..last (M, C), in float64."""
    gs, hs, out = gy[first:last], xhat[first:last], gx[first:last]
    for r in range(gs.shape[0]):
        for ch in range(gs.shape[1]):
            if training:
                out[r, ch] = scale[ch] * (gs[r, ch] - mean_gy[ch] - hs[r, ch] * mean_gy_xhat[ch])
            else:
                out[r, ch] = scale[ch] * gs[r, ch]


@kernel
def batch_norm_grad_planes(gy, xhat, first, last, training, scale, mean_gy, mean_gy_xhat, gx):
    """batch_norm_grad_rows for images first..last of (N, C, L)."""
    gs, hs, out = gy[first:last], xhat[first:last], gx[first:last]
    for b in range(gs.shape[0]):
        for ch in range(gs.shape[1]):
            g, h, o = gs[b, ch], hs[b, ch], out[b, ch]
            s, m, mh = scale[ch], mean_gy[ch], mean_gy_xhat[ch]
            for k in range(g.size):
                o[k] = s * (g[k] - m - h[k] * mh) if training else s * g[k]


@kernel
def dropout_flat(x, uniform, first, last, threshold, scale, y, mask):
    """mask = scale where uniform >= threshold, else 0, and y = x * mask, over elements first..last
    (the NumPy backend's compare, scale and multiply, in one pass)."""
    xs, us, ys, ms = x[first:last], uniform[first:last], y[first:last], mask[first:last]
    for k in range(xs.size):
        ms[k] = scale if us[k] >= threshold else 0.0
        ys[k] = xs[k] * ms[k]


@kernel
def dropout_strided(x, uniform, first, last, threshold, scale, y, mask):
    """dropout_flat over 4-axis views in x's memory order (x, y and mask dense in it; the draws,
    made in the logical order, read through their strides), along axis 0 from first to last."""
    for a in range(first, last):
        for b in range(x.shape[1]):
            for c in range(x.shape[2]):
                xs, us, ys, ms = x[a, b, c], uniform[a, b, c], y[a, b, c], mask[a, b, c]
                for k in range(xs.size):
                    ms[k] = scale if us[k] >= threshold else 0.0
                    ys[k] = xs[k] * ms[k]
