"""What the numba backend's kernels take: which arrays they compile for, window geometry, and
channels-last images and flat views in an array's own memory order (shared by its kernel files)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .convolution import nhwc_padded


def compiled_for(*arrays: Any) -> bool:
    """Whether the compiled kernels take these arrays: float32 or float64, one dtype."""
    dtype = arrays[0].dtype
    return dtype in (np.float32, np.float64) and all(a.dtype == dtype for a in arrays)


def window_geometry(kernel_size: tuple, stride: tuple, dilation: tuple, out_hw: tuple) -> tuple:
    """The window geometry the kernels take: (kh, kw, sh, sw, dh, dw, oh, ow)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    return tuple(int(v) for v in (kh, kw, sh, sw, dh, dw, out_hw[0], out_hw[1]))


def channels_last(x: Any, padding: tuple = ((0, 0), (0, 0)), value: float = 0.0) -> np.ndarray:
    """x (N, C, H, W) as a C-contiguous, padded (N, H, W, C) array: a view for a conv's own output."""
    return np.ascontiguousarray(nhwc_padded(np, x, padding, value))


def padded_image(shape: tuple, padding: tuple, dtype: Any) -> np.ndarray:
    """An uninitialised channels-last image (N, H + pads, W + pads, C) for an (N, C, H, W) shape."""
    (top, bottom), (left, right) = padding
    return np.empty((shape[0], shape[2] + top + bottom, shape[3] + left + right, shape[1]), dtype=dtype)


def cropped(image: np.ndarray, in_shape: tuple, padding: tuple) -> np.ndarray:
    """A padded channels-last image as the (N, C, H, W) view of its unpadded part."""
    (top, _), (left, _) = padding
    return image[:, top:top + in_shape[2], left:left + in_shape[3], :].transpose(0, 3, 1, 2)


def flat_in_layout(a: np.ndarray, order: tuple) -> np.ndarray | None:
    """a's elements as a flat view, in memory order ``order`` (axes from the largest stride
    down), or None when a is not dense in that order."""
    t = a.transpose(order)
    return t.reshape(-1) if t.flags.c_contiguous else None


def empty_in_layout(shape: tuple, order: tuple, dtype: Any) -> np.ndarray:
    """An uninitialised array of ``shape`` whose memory runs through its axes in ``order``
    (a conv's channels-last activation stays channels-last)."""
    return np.empty(tuple(shape[axis] for axis in order), dtype=dtype).transpose(tuple(np.argsort(order)))


def layout_of(a: np.ndarray) -> tuple:
    """The order of an array's axes in memory, from the largest stride down."""
    return tuple(sorted(range(a.ndim), key=lambda axis: -a.strides[axis]))
