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


# numpy.pad's names for the fill modes: padding the images once replaces folding every index
_PAD_MODES = {"reflect": "symmetric", "mirror": "reflect", "wrap": "wrap", "nearest": "edge", "constant": "constant"}


def resample(xp: Any, images: Any, rows: Any, cols: Any, interpolation: str = "bilinear",
             fill_mode: str = "reflect", fill_value: float = 0.0, margin: int | None = None) -> Any:
    """``images`` (N, H, W, C) read at source coordinates ``rows``, ``cols`` (N, Ho, Wo; floats, or
    ints for an exact crop): (N, Ho, Wo, C) in the images' dtype.

    The images are padded once by ``margin`` pixels as ``fill_mode`` says (``margin``: how far any
    coordinate reaches outside the image, which the callers work out on the host from their
    matrices or offsets; None reads it from the coordinates), so every read is a plain gather:
    four per output pixel for "bilinear", one for "nearest"."""
    n, h, w, c = images.shape
    if margin is None:
        margin = int(math.ceil(max(0.0, -float(rows.min()), float(rows.max()) - (h - 1),
                                   -float(cols.min()), float(cols.max()) - (w - 1))))
    m = int(margin) + 1  # bilinear reads one pixel past the furthest coordinate (and float32 may round out)
    extra = {"constant_values": fill_value} if fill_mode == "constant" else {}
    padded = xp.pad(images, ((0, 0), (m, m), (m, m), (0, 0)), mode=_PAD_MODES[fill_mode], **extra)
    hp, wp = h + 2 * m, w + 2 * m
    # one channel (the lectures' images) gathers from a flat vector: faster than rows of one value
    flat = padded.reshape(-1) if c == 1 else padded.reshape(-1, c)
    base = xp.arange(n, dtype=xp.int64).reshape(n, 1, 1) * (hp * wp)
    if interpolation == "nearest" or rows.dtype.kind in "iu":
        # ties to even, as Keras rounds (a turn of an image of even size puts pixels on ties)
        r = (xp.rint(rows) if rows.dtype.kind == "f" else rows).astype(xp.int64)
        q = (xp.rint(cols) if cols.dtype.kind == "f" else cols).astype(xp.int64)
        out = xp.take(flat, base + (r + m) * wp + (q + m), axis=0)
        return out[..., None] if c == 1 else out
    r0, q0 = xp.floor(rows), xp.floor(cols)
    dr, dq = (rows - r0).astype(images.dtype, copy=False), (cols - q0).astype(images.dtype, copy=False)
    if c > 1:
        dr, dq = dr[..., None], dq[..., None]
    # the flat offset in floats (exact: far below 2**24 pixels a batch), converted once
    at = base + ((r0 + m) * wp + (q0 + m)).astype(xp.int64)
    top = xp.take(flat, at, axis=0)  # take: quicker than indexing with an array, on NumPy
    top += (xp.take(flat, at + 1, axis=0) - top) * dq
    bottom = xp.take(flat, at + wp, axis=0)
    bottom += (xp.take(flat, at + (wp + 1), axis=0) - bottom) * dq
    out = top + (bottom - top) * dr
    return out[..., None] if c == 1 else out


def affine_margin(matrices: Any, hw: tuple, out_hw: tuple) -> int:
    """How far (pixels) the source coordinates of ``affine_grid`` reach outside an (H, W) image:
    an affine map's extremes over the output grid lie at its corners (host arrays only)."""
    h, w = hw
    ho, wo = out_hw
    corners = [(0, 0), (0, wo - 1), (ho - 1, 0), (ho - 1, wo - 1)]
    reach = 0.0
    for r, c in corners:
        rows = matrices[:, 0, 0] * r + matrices[:, 0, 1] * c + matrices[:, 0, 2]
        cols = matrices[:, 1, 0] * r + matrices[:, 1, 1] * c + matrices[:, 1, 2]
        reach = max(reach, float(-rows.min()), float(rows.max()) - (h - 1), float(-cols.min()),
                    float(cols.max()) - (w - 1))
    return int(math.ceil(reach))


def affine_grid(xp: Any, matrices: Any, out_hw: tuple) -> tuple[Any, Any]:
    """Source (rows, cols), each (N, Ho, Wo), of an output pixel grid under ``matrices`` (N, 2, 3):
    source = matrix @ (row, col, 1)."""
    ho, wo = out_hw
    m = xp.asarray(matrices, dtype=xp.float32)  # float32: exact enough for pixels, and quicker
    r = xp.arange(ho, dtype=xp.float32).reshape(1, ho, 1)
    c = xp.arange(wo, dtype=xp.float32).reshape(1, 1, wo)
    # the small (N, Ho, 1) and (N, 1, Wo) parts first: one full-size add per coordinate
    rows = (m[:, 0, 0, None, None] * r + m[:, 0, 2, None, None]) + m[:, 0, 1, None, None] * c
    cols = (m[:, 1, 0, None, None] * r + m[:, 1, 2, None, None]) + m[:, 1, 1, None, None] * c
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
