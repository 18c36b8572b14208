"""The numba backend's batch norm and dropout: statistics, forward and backward, and dropout's mask.

Methods of ``NumbaBackend`` (``numba_backend.py``), one file per kernel family as the NumPy
backend's are: each overrides the NumPy kernel of its name and calls ``super()`` for inputs it
does not compile, which reaches the NumPy backend's. ``run_parts`` and ``batch_parts`` are the
backend's worker threads.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import numba_kernels as kernels
from .numba_layouts import compiled_for, empty_in_layout, flat_in_layout, layout_of


class NumbaNormalization:
    """Batch norm over rows of channels or C-contiguous planes, and dropout, compiled."""

    def batch_norm_statistics(self, x: Any) -> tuple:
        """Each part's channel means and centred sums of squares in float64 (two passes over the
        part, the second from the cache), merged part by part in their order (Chan's formula)."""
        kind, form = _channel_form(x) if compiled_for(x) and x.size else (None, None)
        if kind is None:
            return super().batch_norm_statistics(x)
        c, per_item = x.shape[1], form[0].size  # elements of one row (image) of the form
        moments = kernels.moments_rows if kind == "rows" else kernels.moments_planes

        def part_moments(part: slice) -> tuple:
            mean, m2 = np.empty(c), np.empty(c)
            moments(form, part.start, part.stop, mean, m2)
            return (part.stop - part.start) * per_item // c, mean, m2

        count, mean, m2 = _merged_moments(self.run_parts(part_moments,
                                                         self.batch_parts(len(form), per_item * x.itemsize)))
        return mean.astype(x.dtype), (m2 / count).astype(x.dtype)

    def batch_norm(self, x: Any, mean: Any, var: Any, weight: Any, bias: Any, eps: float) -> tuple:
        """One pass writes y and x̂, in x's layout (a conv's channels-last output stays so)."""
        kind, form = _channel_form(x) if compiled_for(x, mean, var, weight, bias) and x.size else (None, None)
        if kind is None:
            return super().batch_norm(x, mean, var, weight, bias, eps)
        invstd = 1.0 / np.sqrt(var.astype(np.float64) + eps)
        vectors = [v.astype(np.float64) for v in (mean, weight, bias)]
        (y, y_form), (xhat, xhat_form) = _empty_in_form(kind, x), _empty_in_form(kind, x)
        normalize = kernels.normalize_rows if kind == "rows" else kernels.normalize_planes
        shift, w, b = vectors
        self.run_parts(lambda part: normalize(form, part.start, part.stop, shift, invstd, w, b, y_form, xhat_form),
                       self.batch_parts(len(form), form[0].size * 3 * x.itemsize))
        return y, xhat, invstd.astype(x.dtype)

    def batch_norm_grad(self, gy: Any, xhat: Any, weight: Any, invstd: Any, training: bool,
                        needs: tuple) -> tuple:
        """One pass sums gy and gy·x̂ by channel (float64, per part, added in the parts' order);
        a second writes gx in x̂'s layout."""
        kind, h_form = (_channel_form(xhat) if compiled_for(gy, xhat, weight, invstd) and gy.size
                        and gy.shape == xhat.shape else (None, None))
        if kind is None:
            return super().batch_norm_grad(gy, xhat, weight, invstd, training, needs)
        g_kind, g_form = _channel_form(gy)
        if g_kind != kind:  # gy in another layout (Flatten's C order): copied into x̂'s first
            gy_copy = np.empty_like(xhat)
            gy_copy[...] = gy
            g_kind, g_form = _channel_form(gy_copy)
            if g_kind != kind:
                return super().batch_norm_grad(gy, xhat, weight, invstd, training, needs)
        c, per_item, count = gy.shape[1], h_form[0].size, gy.size // gy.shape[1]
        sum_gy = sum_gy_xhat = None
        if needs[1] or needs[2] or (training and needs[0]):
            sums = kernels.grad_sums_rows if kind == "rows" else kernels.grad_sums_planes

            def part_sums(part: slice) -> tuple:
                a, b = np.empty(c), np.empty(c)
                sums(g_form, h_form, part.start, part.stop, a, b)
                return a, b

            shares = self.run_parts(part_sums, self.batch_parts(len(h_form), per_item * 2 * gy.itemsize))
            sum_gy, sum_gy_xhat = self._summed([s[0] for s in shares]), self._summed([s[1] for s in shares])
        gx = None
        if needs[0]:
            scale = weight.astype(np.float64) * invstd.astype(np.float64)
            mean_gy, mean_gy_xhat = (sum_gy / count, sum_gy_xhat / count) if training else (np.zeros(c), np.zeros(c))
            gx, gx_form = _empty_in_form(kind, xhat)
            grad = kernels.batch_norm_grad_rows if kind == "rows" else kernels.batch_norm_grad_planes
            self.run_parts(lambda part: grad(g_form, h_form, part.start, part.stop, training, scale, mean_gy,
                                             mean_gy_xhat, gx_form),
                           self.batch_parts(len(h_form), per_item * 3 * gy.itemsize))
        gw = sum_gy_xhat.astype(gy.dtype) if needs[1] else None
        gb = sum_gy.astype(gy.dtype) if needs[2] else None
        return gx, gw, gb

    def dropout_with_mask(self, x: Any, uniform: Any, p: float, dtype: Any) -> tuple:
        """The compare, scale and multiply in one pass; y and the mask in x's layout. The draws
        are the NumPy backend's, so one seed gives one mask on both."""
        if not (compiled_for(x, uniform) and x.dtype == dtype and x.size and x.shape == uniform.shape
                and x.ndim <= 4):
            return super().dropout_with_mask(x, uniform, p, dtype)
        t = uniform.dtype.type  # p in the draws' dtype, as NumPy compares a float32 array with it
        threshold, scale = t(p), t(0.0 if p >= 1 else 1.0 / (1.0 - p))
        if x.flags.c_contiguous and uniform.flags.c_contiguous:
            y, mask = np.empty_like(x), np.empty_like(uniform)
            flat = [a.reshape(-1) for a in (x, uniform, y, mask)]
            self.run_parts(lambda part: kernels.dropout_flat(flat[0], flat[1], part.start, part.stop, threshold,
                                                             scale, flat[2], flat[3]),
                           self.batch_parts(x.size, 4 * x.itemsize))
            return y, mask
        order = layout_of(x)  # a conv's channels-last output: walk x's memory, read the draws strided
        if flat_in_layout(x, order) is None:
            return super().dropout_with_mask(x, uniform, p, dtype)
        y, mask = empty_in_layout(x.shape, order, x.dtype), empty_in_layout(x.shape, order, x.dtype)
        lead = (1,) * (4 - x.ndim)
        views = [a.transpose(order).reshape(lead + tuple(x.shape[axis] for axis in order))
                 for a in (x, uniform, y, mask)]
        self.run_parts(lambda part: kernels.dropout_strided(views[0], views[1], part.start, part.stop, threshold,
                                                            scale, views[2], views[3]),
                       self.batch_parts(views[0].shape[0], views[0][0].size * 4 * x.itemsize))
        return y, mask


def _channel_form(x: np.ndarray) -> tuple:
    """x as batch norm's kernels take it: ("rows", (M, C)) when its channels are innermost in
    memory (a conv's channels-last output, an (N, C) batch), ("planes", (N, C, L)) when it is
    C-contiguous, else (None, None)."""
    last = np.moveaxis(x, 1, -1)
    if last.flags.c_contiguous:
        return "rows", last.reshape(-1, x.shape[1])
    if x.flags.c_contiguous:
        return "planes", x.reshape(x.shape[0], x.shape[1], -1)
    return None, None


def _empty_in_form(kind: str, x: np.ndarray) -> tuple:
    """An uninitialised array like x in the ``kind`` of layout, and its view in that form."""
    if kind == "rows":
        out = np.empty(x.shape[:1] + x.shape[2:] + x.shape[1:2], dtype=x.dtype)
        return np.moveaxis(out, -1, 1), out.reshape(-1, x.shape[1])
    out = np.empty(x.shape, dtype=x.dtype)
    return out, out.reshape(x.shape[0], x.shape[1], -1)


def _merged_moments(parts: list) -> tuple:
    """(count, mean, centred sum of squares) of the parts together, from each part's, merged in the
    parts' order: the merge adds the spread between the parts' means (Chan, Golub and LeVeque)."""
    count, mean, m2 = parts[0]
    for n, part_mean, part_m2 in parts[1:]:
        total = count + n
        delta = part_mean - mean
        mean = mean + delta * (n / total)
        m2 = m2 + part_m2 + delta * delta * (count * n / total)
        count = total
    return count, mean, m2
