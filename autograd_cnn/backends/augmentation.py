"""Image augmentation kernels, written once against ``xp`` (NumPy or CuPy): one resampler that every
geometric augmentation goes through, plus flips and contrast.

Images are channels-last here, ``(N, H, W, C)``: a gathered pixel is one row of C values. A
geometric augmentation is a grid of source coordinates per image (``affine_grid``: output pixel
(row, col) reads the source at ``matrix @ (row, col, 1)``); ``resample`` reads the images there,
by nearest pixel or bilinearly, and what lies outside is filled as Keras's ``fill_mode`` says:

    reflect   d c b a | a b c d | d c b a      (about the edge, the edge pixel repeated)
    wrap      a b c d | a b c d | a b c d
    nearest   a a a a | a b c d | d d d d
    constant  k k k k | a b c d | k k k k      (k = fill_value)

The random parameters are drawn on the host by the caller (a few numbers per image, from a seeded
NumPy generator) and arrive here as small arrays: the same draws on every backend.
"""
from __future__ import annotations

import math
from typing import Any

FILL_MODES = ("reflect", "wrap", "nearest", "constant")  # and "mirror": d c b | a b c d | c b a
INTERPOLATIONS = ("bilinear", "nearest")


def _fold(xp: Any, index: Any, size: int, fill_mode: str) -> tuple[Any, Any]:
    """(index moved inside [0, size) as ``fill_mode`` says, mask of the indices that were inside
    already or None when every index reads a pixel)."""
    if fill_mode == "wrap":
        return index % size, None
    if fill_mode == "reflect":
        index = index % (2 * size)
        return xp.where(index >= size, 2 * size - 1 - index, index), None
    if fill_mode == "mirror" and size > 1:
        index = index % (2 * size - 2)
        return xp.where(index >= size, 2 * size - 2 - index, index), None
    inside = (index >= 0) & (index < size) if fill_mode == "constant" else None
    return xp.clip(index, 0, size - 1), inside


def _axis(xp: Any, index: Any, size: int, fill_mode: str, stride: int) -> tuple[Any, Any]:
    """(offsets ``index * stride`` of the pixels read along one axis, mask of those inside or None)."""
    folded, inside = _fold(xp, index, size, fill_mode)
    return folded * stride, inside


def _read(xp: Any, flat: Any, base: Any, rows: tuple, cols: tuple, fill_value: float) -> Any:
    """The pixels at the folded offsets ``rows`` and ``cols`` (each (offsets, inside)), (N, Ho, Wo, C)."""
    pixels = flat[base + rows[0] + cols[0]]
    inside = rows[1] if cols[1] is None else cols[1] if rows[1] is None else rows[1] & cols[1]
    if inside is not None:
        pixels = xp.where(inside[..., None], pixels, xp.asarray(fill_value, dtype=pixels.dtype))
    return pixels


def resample(xp: Any, images: Any, rows: Any, cols: Any, interpolation: str = "bilinear",
             fill_mode: str = "reflect", fill_value: float = 0.0) -> Any:
    """``images`` (N, H, W, C) read at source coordinates ``rows``, ``cols`` (N, Ho, Wo; floats, or
    ints for an exact crop): (N, Ho, Wo, C) in the images' dtype."""
    n, h, w, c = images.shape
    flat = images.reshape(-1, c)
    base = xp.arange(n, dtype=xp.int64).reshape(n, 1, 1) * (h * w)
    if interpolation == "nearest" or rows.dtype.kind in "iu":
        # ties to even, as Keras rounds (a turn of an image of even size puts pixels on ties)
        r = xp.rint(rows).astype(xp.int64) if rows.dtype.kind == "f" else rows.astype(xp.int64)
        q = xp.rint(cols).astype(xp.int64) if cols.dtype.kind == "f" else cols.astype(xp.int64)
        return _read(xp, flat, base, _axis(xp, r, h, fill_mode, w), _axis(xp, q, w, fill_mode, 1), fill_value)
    r0, q0 = xp.floor(rows), xp.floor(cols)
    dr = (rows - r0).astype(images.dtype)[..., None]
    dq = (cols - q0).astype(images.dtype)[..., None]
    r0, q0 = r0.astype(xp.int64), q0.astype(xp.int64)
    up, down = _axis(xp, r0, h, fill_mode, w), _axis(xp, r0 + 1, h, fill_mode, w)
    left, right = _axis(xp, q0, w, fill_mode, 1), _axis(xp, q0 + 1, w, fill_mode, 1)
    top = _read(xp, flat, base, up, left, fill_value)
    top += (_read(xp, flat, base, up, right, fill_value) - top) * dq
    bottom = _read(xp, flat, base, down, left, fill_value)
    bottom += (_read(xp, flat, base, down, right, fill_value) - bottom) * dq
    return top + (bottom - top) * dr


def affine_grid(xp: Any, matrices: Any, out_hw: tuple) -> tuple[Any, Any]:
    """Source (rows, cols), each (N, Ho, Wo), of an output pixel grid under ``matrices`` (N, 2, 3):
    source = matrix @ (row, col, 1)."""
    ho, wo = out_hw
    m = xp.asarray(matrices, dtype=xp.float64)
    r = xp.arange(ho, dtype=xp.float64).reshape(1, ho, 1)
    c = xp.arange(wo, dtype=xp.float64).reshape(1, 1, wo)
    rows = m[:, 0, 0, None, None] * r + m[:, 0, 1, None, None] * c + m[:, 0, 2, None, None]
    cols = m[:, 1, 0, None, None] * r + m[:, 1, 1, None, None] * c + m[:, 1, 2, None, None]
    return rows, cols


def rotation_matrices(np_: Any, angles: Any, hw: tuple) -> Any:
    """(N, 2, 3) host matrices that turn each image by ``angles`` (radians, counter-clockwise as
    seen on the screen) about its centre."""
    h, w = hw
    cy, cx = (h - 1) / 2, (w - 1) / 2
    cos, sin = np_.cos(angles), np_.sin(angles)
    # source = R(-angle) (out - centre) + centre, with rows pointing down
    m = np_.zeros((len(angles), 2, 3))
    m[:, 0, 0], m[:, 0, 1] = cos, sin
    m[:, 1, 0], m[:, 1, 1] = -sin, cos
    m[:, 0, 2] = cy - cos * cy - sin * cx
    m[:, 1, 2] = cx + sin * cy - cos * cx
    return m


def zoom_shift_matrices(np_: Any, zoom_hw: Any, shift_hw: Any, hw: tuple) -> Any:
    """(N, 2, 3) host matrices that scale each image about its centre by ``zoom_hw`` (N, 2; above 1
    shows more of the image, smaller) and then move it by ``shift_hw`` (N, 2) pixels (down, right)."""
    h, w = hw
    centre = np_.array([(h - 1) / 2, (w - 1) / 2])
    m = np_.zeros((len(zoom_hw), 2, 3))
    m[:, 0, 0], m[:, 1, 1] = zoom_hw[:, 0], zoom_hw[:, 1]
    m[:, :, 2] = centre - zoom_hw * centre - shift_hw * zoom_hw
    return m


def crop_grid(xp: Any, tops: Any, lefts: Any, out_hw: tuple) -> tuple[Any, Any]:
    """Integer source (rows, cols), each (N, Ho, Wo), of windows of ``out_hw`` at (tops, lefts) (N,)."""
    ho, wo = out_hw
    tops = xp.asarray(tops, dtype=xp.int64).reshape(-1, 1, 1)
    lefts = xp.asarray(lefts, dtype=xp.int64).reshape(-1, 1, 1)
    rows = tops + xp.arange(ho, dtype=xp.int64).reshape(1, ho, 1) + 0 * lefts
    cols = lefts + xp.arange(wo, dtype=xp.int64).reshape(1, 1, wo) + 0 * tops
    return rows, cols


def flip(xp: Any, images: Any, horizontal: Any = None, vertical: Any = None) -> Any:
    """Each image (N, H, W, C) mirrored left-right where ``horizontal`` (N,) is true, upside down
    where ``vertical`` is true."""
    out = images
    if horizontal is not None:
        out = xp.where(xp.asarray(horizontal).reshape(-1, 1, 1, 1), out[:, :, ::-1], out)
    if vertical is not None:
        out = xp.where(xp.asarray(vertical).reshape(-1, 1, 1, 1), out[:, ::-1], out)
    return out


def contrast(xp: Any, images: Any, factors: Any, value_range: tuple | None) -> Any:
    """(x - mean) * factor + mean per image and channel (N, H, W, C), clipped to ``value_range``."""
    mean = images.mean(axis=(1, 2), keepdims=True)
    f = xp.asarray(factors, dtype=images.dtype).reshape(-1, 1, 1, 1)
    out = (images - mean) * f + mean
    return out if value_range is None else xp.clip(out, value_range[0], value_range[1])


def radians(turns: Any) -> Any:
    """Keras's rotation factors are fractions of a full turn."""
    return turns * 2 * math.pi
