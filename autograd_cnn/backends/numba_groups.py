"""Grouped convolutions (groups > 1) on the numba backend: compiled kernels and their drivers.

Two ways, chosen by the channels per group:

- **Depthwise** (one input channel per group, ``groups == C``, with any channel multiplier):
  a product per group would be a (rows, KH*KW) by (KH*KW, 1) one, too thin for BLAS, so the
  conv and both its gradients are direct compiled loops, channels innermost (contiguous in
  the channels-last images, so LLVM vectorizes them).
- **More channels per group**: as for one group, the windows gathered by a compiled kernel
  (each row the (KH*KW*C/G)-column rows of every group side by side, so that a group's matrix
  is a strided view: ``ConvolutionKernels._gemm_cols``'s columns), one product per group on
  BLAS, and a compiled col2im for the input's gradient.

Both run a part of the batch at a time on the backend's worker threads (``run_parts``). The
kernels take the geometry tuple of ``numba_kernels`` and padded channels-last images.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .numba_kernels import kernel

# ---------------------------------------------------------------- depthwise: direct loops


@kernel
def depthwise_windows(xp, w, bias, first, last, geometry, multiplier, y):
    """y (N, OH, OW, O) for images first..last of xp (N, H, W, C): output channel o the sum over
    its window of input channel o // multiplier times w[k, o] (w: (KH*KW, O)), plus bias[o]
    (bias: (O,), zeros for none), offset by offset over the whole image (it stays in cache)."""
    kh, kw, sh, sw, dh, dw, oh, ow = geometry
    o = y.shape[3]
    for b in range(first, last):
        out = y[b]
        for i in range(oh):
            for j in range(ow):
                dst = out[i, j]
                for ch in range(o):
                    dst[ch] = bias[ch]
        for k in range(kh * kw):
            p, q, wk = k // kw, k % kw, w[k]
            for i in range(oh):
                for j in range(ow):
                    dst, src = out[i, j], xp[b, i * sh + p * dh, j * sw + q * dw]
                    if multiplier == 1:
                        for ch in range(o):
                            dst[ch] += src[ch] * wk[ch]
                    else:
                        for ch in range(o):
                            dst[ch] += src[ch // multiplier] * wk[ch]


@kernel
def depthwise_spread(gyh, w, first, last, geometry, multiplier, out):
    """The depthwise conv's input gradient: padded images first..last of out (N, H, W, C) set to
    the sum, over the windows covering each pixel, of gyh (N, OH, OW, O) times w (KH*KW, O),
    each input channel gathering its ``multiplier`` output channels."""
    kh, kw, sh, sw, dh, dw, oh, ow = geometry
    c = out.shape[3]
    for b in range(first, last):
        image = out[b]
        image[:] = 0
        for k in range(kh * kw):
            p, q, wk = k // kw, k % kw, w[k]
            for i in range(oh):
                for j in range(ow):
                    dst, src = image[i * sh + p * dh, j * sw + q * dw], gyh[b, i, j]
                    if multiplier == 1:
                        for ch in range(c):
                            dst[ch] += src[ch] * wk[ch]
                    else:
                        for ch in range(c):
                            for m in range(ch * multiplier, (ch + 1) * multiplier):
                                dst[ch] += src[m] * wk[m]


@kernel
def depthwise_weight_grad(xp, gyh, first, last, geometry, multiplier, gw, gb):
    """The depthwise conv's weight gradient over images first..last, added into gw (KH*KW, O):
    gw[k, o] += the sum over the windows of gyh[..., o] times input channel o // multiplier at
    offset k; and gy's channel sums into gb (O,) (the bias's gradient), both zeroed by the caller."""
    kh, kw, sh, sw, dh, dw, oh, ow = geometry
    o = gw.shape[1]
    for b in range(first, last):
        for k in range(kh * kw):
            p, q, gk = k // kw, k % kw, gw[k]
            for i in range(oh):
                for j in range(ow):
                    src, g = xp[b, i * sh + p * dh, j * sw + q * dw], gyh[b, i, j]
                    if multiplier == 1:
                        for ch in range(o):
                            gk[ch] += g[ch] * src[ch]
                    else:
                        for ch in range(o):
                            gk[ch] += g[ch] * src[ch // multiplier]
        for i in range(oh):
            for j in range(ow):
                g = gyh[b, i, j]
                for ch in range(o):
                    gb[ch] += g[ch]


# ---------------------------------------------------------------- more channels per group: BLAS


@kernel
def gather_group_windows(xp, first, last, geometry, ones_column, out):
    """im2col by group: for images first..last of xp (N, H, W, C), out[row, g] (rows, G,
    KH*KW*C/G [+ 1]) holds the window of output pixel ``row`` (from row 0) over group g's
    channels, with a last column of ones if asked (the bias folded into the product). Each
    group's matrix out[:, g] is a strided view that BLAS reads as it is."""
    kh, kw, sh, sw, dh, dw, oh, ow = geometry
    x = xp[first:last]
    groups = out.shape[1]
    cg = x.shape[3] // groups
    for b in range(last - first):
        for i in range(oh):
            for j in range(ow):
                row = out[(b * oh + i) * ow + j]
                for k in range(kh * kw):
                    src, col = x[b, i * sh + (k // kw) * dh, j * sw + (k % kw) * dw], k * cg
                    for g in range(groups):
                        dst, start = row[g], g * cg
                        for ch in range(cg):
                            dst[col + ch] = src[start + ch]
                if ones_column:
                    for g in range(groups):
                        row[g, kh * kw * cg] = 1


@kernel
def add_group_windows(shares, first, last, geometry, out):
    """col2im by group: padded images first..last of out (N, H, W, C) set to the sum of the
    window elements in shares (rows, G, KH*KW*C/G), the part's rows, that fall on each pixel,
    offset by offset."""
    kh, kw, sh, sw, dh, dw, oh, ow = geometry
    image = out[first:last]
    groups = shares.shape[1]
    cg = image.shape[3] // groups
    for b in range(last - first):
        image[b] = 0
        for k in range(kh * kw):
            p, q, col = k // kw, k % kw, k * cg
            for i in range(oh):
                for j in range(ow):
                    dst, row = image[b, i * sh + p * dh, j * sw + q * dw], shares[(b * oh + i) * ow + j]
                    for g in range(groups):
                        src, start = row[g], g * cg
                        for ch in range(cg):
                            dst[start + ch] += src[col + ch]


# ---------------------------------------------------------------- the drivers


def _offsets_by_channel(weight: np.ndarray) -> np.ndarray:
    """A depthwise weight (O, 1, KH, KW) as a contiguous (KH*KW, O): each offset's weights by channel."""
    return np.ascontiguousarray(weight.reshape(weight.shape[0], -1).T)


def conv2d(backend: Any, xh: np.ndarray, weight: np.ndarray, bias: Any, geometry: tuple, groups: int) -> np.ndarray:
    """The grouped conv of padded channels-last images xh: (N, OH, OW, O), channels-last."""
    n, c, o, (oh, ow) = xh.shape[0], xh.shape[3], weight.shape[0], geometry[6:]
    y = np.empty((n, oh, ow, o), dtype=xh.dtype)
    if c == groups:  # depthwise
        w, b = _offsets_by_channel(weight), (np.zeros(o, xh.dtype) if bias is None else bias)
        backend.run_parts(lambda part: depthwise_windows(xh, w, b, part.start, part.stop, geometry, o // c, y),
                          backend.batch_parts(n, (xh[0].size + y[0].size) * xh.itemsize))
        return y
    og, kk = o // groups, weight.shape[2] * weight.shape[3] * weight.shape[1]
    rows = backend._weight_rows(weight, groups)  # (G, O/G, KH*KW*C/G)
    if bias is not None:
        rows = np.concatenate([rows, bias.reshape(groups, og, 1)], axis=2)
    w_t = np.ascontiguousarray(rows.transpose(0, 2, 1))  # (G, KH*KW*C/G [+ 1], O/G)

    def conv_part(part: slice) -> None:
        count = (part.stop - part.start) * oh * ow
        cols = np.empty((count, groups, w_t.shape[1]), dtype=xh.dtype)
        gather_group_windows(xh, part.start, part.stop, geometry, bias is not None, cols)
        out = y[part].reshape(count, o)
        for g in range(groups):  # strided operands and output, each read and written by BLAS in place
            np.matmul(cols[:, g], w_t[g], out=out[:, g * og:(g + 1) * og])

    backend.run_parts(conv_part, backend.batch_parts(n, oh * ow * (kk * groups + o) * xh.itemsize))
    return y


def conv2d_grad_input(backend: Any, gyh: np.ndarray, weight: np.ndarray, out: np.ndarray, geometry: tuple,
                      groups: int) -> None:
    """The grouped conv's input gradient from channels-last gyh (N, OH, OW, O), written into the
    padded channels-last image ``out`` (N, H, W, C)."""
    n, c, o, (oh, ow) = out.shape[0], out.shape[3], gyh.shape[3], geometry[6:]
    if c == groups:  # depthwise
        w = _offsets_by_channel(weight)
        backend.run_parts(lambda part: depthwise_spread(gyh, w, part.start, part.stop, geometry, o // c, out),
                          backend.batch_parts(n, (out[0].size + gyh[0].size) * gyh.itemsize))
        return
    og = o // groups
    w_rows = np.ascontiguousarray(backend._weight_rows(weight, groups))  # (G, O/G, KH*KW*C/G)
    g_rows = gyh.reshape(-1, o)

    def grad_part(part: slice) -> None:
        rows = g_rows[part.start * oh * ow:part.stop * oh * ow]
        shares = np.empty((len(rows), groups, w_rows.shape[2]), dtype=gyh.dtype)
        for g in range(groups):
            np.matmul(rows[:, g * og:(g + 1) * og], w_rows[g], out=shares[:, g])
        add_group_windows(shares, part.start, part.stop, geometry, out)

    per_image = (out[0].size + oh * ow * (o + groups * w_rows.shape[2])) * gyh.itemsize
    backend.run_parts(grad_part, backend.batch_parts(n, per_image))


def conv2d_grad_weight(backend: Any, xh: np.ndarray, gyh: np.ndarray, kernel_size: tuple, geometry: tuple,
                       groups: int, with_bias: bool) -> tuple:
    """The grouped conv's weight gradient (O, C/G, KH, KW) from padded channels-last xh and gyh,
    with gy's channel sums (the bias's gradient) where asked, else None."""
    n, c, o, (oh, ow), (kh, kw) = xh.shape[0], xh.shape[3], gyh.shape[3], geometry[6:], kernel_size
    cg, og = c // groups, o // groups
    if c == groups:  # depthwise
        def depthwise_share(part: slice) -> tuple:
            gw, gb = np.zeros((kh * kw, o), dtype=xh.dtype), np.zeros(o, dtype=xh.dtype)
            depthwise_weight_grad(xh, gyh, part.start, part.stop, geometry, o // c, gw, gb)
            return gw, gb

        shares = backend.run_parts(depthwise_share, backend.batch_parts(n, (xh[0].size + gyh[0].size) * xh.itemsize))
        gw = backend._summed([share[0] for share in shares])
        gb = backend._summed([share[1] for share in shares]) if with_bias else None
        return np.ascontiguousarray(gw.T).reshape(o, 1, kh, kw), gb
    g_rows, ones = gyh.reshape(-1, o), int(with_bias)

    def share(part: slice) -> np.ndarray:  # (G, O/G, KH*KW*C/G [+ 1])
        rows = g_rows[part.start * oh * ow:part.stop * oh * ow]
        # Here each group's matrix contiguous (the gather writes through a transposed view): a
        # product with a long sum over the rows reads them faster so.
        cols = np.empty((groups, len(rows), kh * kw * cg + ones), dtype=xh.dtype)
        gather_group_windows(xh, part.start, part.stop, geometry, with_bias, cols.transpose(1, 0, 2))
        total = np.empty((groups, og, cols.shape[2]), dtype=xh.dtype)
        for g in range(groups):
            np.dot(rows[:, g * og:(g + 1) * og].T, cols[g], out=total[g])
        return total

    parts = backend.batch_parts(n, oh * ow * (kh * kw * c + o) * xh.itemsize)
    total = backend._summed(backend.run_parts(share, parts)).reshape(o, -1)
    gw = np.ascontiguousarray(total[:, :kh * kw * cg].reshape(o, kh, kw, cg).transpose(0, 3, 1, 2))
    return gw, (np.ascontiguousarray(total[:, -1]) if with_bias else None)
