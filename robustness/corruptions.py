"""The 15 common corruptions of CIFAR-10-C / ImageNet-C (Hendrycks & Dietterich, ICLR 2019), on the fly.

Every corruption maps a ``uint8`` HWC image (``C`` = 3, or 1 / a 2-D array for grayscale) to a ``uint8``
image of the same shape, at severity 1..5, using only numpy, scipy and Pillow, for any image size; no
external files are read. Randomness comes from a ``numpy.random.Generator`` (or an int seed), so a call
repeats exactly for the same seed.

Parameters
----------
Two parameter tables are reproduced from the reference generators: ``"cifar"`` (``make_cifar_c.py``, used
for CIFAR-10-C/CIFAR-100-C at 32x32) and ``"imagenet"`` (``make_imagenet_c.py``, 224x224). ``preset="auto"``
(default) takes ``"cifar"`` when the shorter image side is below 128 px and ``"imagenet"`` otherwise.
Pixel-sized parameters (blur radii, glass-blur displacements, motion-blur lengths) are used as written, so
at sizes far from 32/224 their relative strength differs from the published sets; the elastic transform's
parameters are relative to the image size in the originals and stay so here.

Approximations (everything else follows the reference code)
-----------------------------------------------------------
- ``motion_blur`` and the streaks of ``snow``: the originals call ImageMagick (Wand ``motion_blur``); here
  the same kernel ImageMagick builds is applied with numpy: ``2*radius+1`` taps along the angle, one-sided,
  Gaussian weights ``exp(-i^2 / (2 sigma^2))`` normalised, offsets ``round(i*cos a), round(i*sin a)``,
  edge pixels replicated.
- ``frost``: the originals blend crops of six frost photographs (``frost1.png`` ... ``frost6.jpg``) that are
  not part of this package. Here the frost layer is procedural: a multi-octave value-noise field (frost
  haze) plus a few hundred thin bright line segments (ice needles) drawn with Pillow, slightly blurred,
  tinted blue-white (R:G:B = 0.85:0.93:1.0) with mean intensity ~0.4-0.5. The blend
  ``c0 * image + c1 * frost`` and the severity table ``(c0, c1)`` are the original's.
- ``glass_blur``: the reference "swap" ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` on numpy rows copies the
  neighbour into ``(h, w)`` and leaves the neighbour unchanged (numpy views); the published datasets were
  made that way, so that is what is done here (``x[h, w] = x[h', w']``, same scan order and offsets).
- ``defocus_blur``: cv2's ``GaussianBlur`` of the disk kernel and ``filter2D`` are reproduced with scipy
  (separable Gaussian of size 3 or 5, ``mirror`` = cv2's ``BORDER_REFLECT_101``).
- ``elastic_transform``: cv2's ``getAffineTransform``/``warpAffine`` are solved/applied with scipy
  (bilinear, mirror border); the ImageNet table's ``244 * k`` values are taken relative to 224 px.
- ``brightness``: the HSV round trip (add to V, clip) is computed exactly as a per-pixel rescaling of RGB.
- Results are rounded to the nearest integer (the reference truncates with ``np.uint8``).
- Grayscale input is replicated to RGB, corrupted, and converted back with ITU-R 601 luma weights.

Monotonicity
------------
The published tables are not all monotone in "distance to the clean image" at every step: the CIFAR
``glass_blur`` goes from (sigma 0.4, 1 iteration) at severity 3 to (0.25, 2 iterations) at 4, and the
ImageNet ``elastic_transform`` severities 1-2 are large smooth warps while 3-5 are small local ones. The
tests document where a tolerance is needed.

Datasets on disk
----------------
:func:`load_cifar_c` reads CIFAR-10-C / CIFAR-100-C ``.npy`` files (``ROOT/<corruption>.npy`` with
``5*N`` uint8 images, severity 1..5 in consecutive blocks of N, and ``ROOT/labels.npy``).

Metrics
-------
:func:`corruption_accuracy` evaluates a model on every (type, severity); :func:`mean_corruption_error`
gives Hendrycks' CE/mCE (and relative mCE) against a baseline architecture's errors.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from robustness.names import CORRUPTIONS, SEVERITIES
from supernets.errors import InputError

Preset = Literal["auto", "cifar", "imagenet"]
RngLike = np.random.Generator | int | None

# Severity tables: (cifar, imagenet), each a list of 5 entries, from make_cifar_c.py / make_imagenet_c.py.
_PARAMS: dict[str, tuple[list[Any], list[Any]]] = {
    "gaussian_noise": ([0.04, 0.06, 0.08, 0.09, 0.10], [0.08, 0.12, 0.18, 0.26, 0.38]),
    "shot_noise": ([500, 250, 100, 75, 50], [60, 25, 12, 5, 3]),
    "impulse_noise": ([0.01, 0.02, 0.03, 0.05, 0.07], [0.03, 0.06, 0.09, 0.17, 0.27]),
    "defocus_blur": (
        [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
        [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
    ),
    "glass_blur": (
        [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
        [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
    ),
    "motion_blur": (
        [(10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)],
        [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
    ),
    "zoom_blur": (
        [
            np.arange(1, 1.06, 0.01),
            np.arange(1, 1.11, 0.01),
            np.arange(1, 1.16, 0.01),
            np.arange(1, 1.21, 0.01),
            np.arange(1, 1.26, 0.01),
        ],
        [
            np.arange(1, 1.11, 0.01),
            np.arange(1, 1.16, 0.01),
            np.arange(1, 1.21, 0.02),
            np.arange(1, 1.26, 0.02),
            np.arange(1, 1.31, 0.03),
        ],
    ),
    "snow": (
        [
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        ],
        [
            (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
            (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
            (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
        ],
    ),
    "frost": (
        [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
        [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
    ),
    "fog": (
        [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
        [(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)],
    ),
    "brightness": ([0.05, 0.1, 0.15, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4, 0.5]),
    "contrast": ([0.75, 0.5, 0.4, 0.3, 0.15], [0.4, 0.3, 0.2, 0.1, 0.05]),
    # fractions of the image side (cifar: of 32; imagenet: of 244 at 224 px, as the reference writes it)
    "elastic_transform": (
        [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)],
        [
            (244 / 224 * 2, 244 / 224 * 0.7, 244 / 224 * 0.1),
            (244 / 224 * 2, 244 / 224 * 0.08, 244 / 224 * 0.2),
            (244 / 224 * 0.05, 244 / 224 * 0.01, 244 / 224 * 0.02),
            (244 / 224 * 0.07, 244 / 224 * 0.01, 244 / 224 * 0.02),
            (244 / 224 * 0.12, 244 / 224 * 0.01, 244 / 224 * 0.02),
        ],
    ),
    "pixelate": ([0.95, 0.9, 0.85, 0.75, 0.65], [0.6, 0.5, 0.4, 0.3, 0.25]),
    "jpeg_compression": ([80, 65, 58, 50, 40], [25, 18, 15, 10, 7]),
}

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def resolve_preset(shape: Sequence[int], preset: Preset = "auto") -> Literal["cifar", "imagenet"]:
    """The parameter table used for an image of ``shape`` (``auto``: cifar below 128 px, else imagenet)."""
    if preset == "auto":
        return "cifar" if min(shape[0], shape[1]) < 128 else "imagenet"
    if preset not in ("cifar", "imagenet"):
        raise InputError("preset", f"must be 'auto', 'cifar' or 'imagenet', got {preset!r}")
    return preset


def _param(name: str, severity: int, preset: Literal["cifar", "imagenet"]) -> Any:
    return _PARAMS[name][0 if preset == "cifar" else 1][severity - 1]


def _as_rng(rng: RngLike) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


# ----------------------------------------------------------------------------------------------- helpers
def _gaussian_kernel1d(ksize: int, sigma: float) -> np.ndarray:
    i = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2
    k = np.exp(-(i**2) / (2 * sigma**2))
    return k / k.sum()


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    """Hendrycks' anti-aliased disk kernel (cv2.GaussianBlur of an aliased disk)."""
    if radius <= 8:
        L = np.arange(-8, 8 + 1)
        ksize = 3
    else:
        L = np.arange(-math.ceil(radius), math.ceil(radius) + 1)
        ksize = 5
    X, Y = np.meshgrid(L, L)
    d = ((X**2 + Y**2) <= radius**2).astype(np.float64)
    d /= d.sum()
    g = _gaussian_kernel1d(ksize, alias_blur)
    d = ndimage.correlate1d(d, g, axis=0, mode="mirror")
    return ndimage.correlate1d(d, g, axis=1, mode="mirror")


def _per_channel(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([fn(x[..., c]) for c in range(x.shape[2])], axis=2)


def _motion_kernel_apply(x: np.ndarray, radius: int, sigma: float, angle_deg: float) -> np.ndarray:
    """ImageMagick's MotionBlurImage on a float HW or HWC array (one-sided Gaussian line kernel)."""
    width = 2 * int(radius) + 1
    i = np.arange(width, dtype=np.float64)
    k = np.exp(-(i**2) / (2.0 * sigma**2))
    k /= k.sum()
    a = math.radians(angle_deg)
    offs = [(int(math.ceil(j * math.sin(a) - 0.5)), int(math.ceil(j * math.cos(a) - 0.5))) for j in range(width)]
    pad = max(max(abs(dy), abs(dx)) for dy, dx in offs)
    pad_width = [(pad, pad), (pad, pad)] + [(0, 0)] * (x.ndim - 2)
    xp = np.pad(x, pad_width, mode="edge")
    h, w = x.shape[:2]
    out = np.zeros_like(x, dtype=np.float64)
    for kk, (dy, dx) in zip(k, offs, strict=True):
        if kk < 1e-12:
            continue
        out += kk * xp[pad + dy : pad + dy + h, pad + dx : pad + dx + w]
    return out


def _clipped_zoom(img: np.ndarray, zoom_factor: float) -> np.ndarray:
    """Zoom the centre of ``img`` (HW or HWC) by ``zoom_factor`` and crop back to the original size."""
    h, w = img.shape[:2]
    ch, cw = int(np.ceil(h / zoom_factor)), int(np.ceil(w / zoom_factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = img[top : top + ch, left : left + cw]
    zooms = (zoom_factor, zoom_factor) + (1,) * (img.ndim - 2)
    z = ndimage.zoom(crop, zooms, order=1)
    tt, tl = max(0, (z.shape[0] - h) // 2), max(0, (z.shape[1] - w) // 2)
    z = z[tt : tt + h, tl : tl + w]
    if z.shape[0] < h or z.shape[1] < w:  # rounding left it a pixel short: replicate the edge
        pad = [(0, h - z.shape[0]), (0, w - z.shape[1])] + [(0, 0)] * (img.ndim - 2)
        z = np.pad(z, pad, mode="edge")
    return z


def _plasma_fractal(mapsize: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map in [0, 1] of size ``mapsize`` (a power of two), as in the reference."""
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100.0

    def wibbledmean(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        # squares
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[stepsize // 2 : mapsize : stepsize, stepsize // 2 : mapsize : stepsize] = wibbledmean(squareaccum)
        # diamonds
        drgrid = maparray[stepsize // 2 : mapsize : stepsize, stepsize // 2 : mapsize : stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = drgrid + np.roll(drgrid, 1, axis=0) + ulgrid + np.roll(ulgrid, -1, axis=1)
        maparray[0:mapsize:stepsize, stepsize // 2 : mapsize : stepsize] = wibbledmean(ltsum)
        ttsum = drgrid + np.roll(drgrid, 1, axis=1) + ulgrid + np.roll(ulgrid, -1, axis=0)
        maparray[stepsize // 2 : mapsize : stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def _gray(x: np.ndarray) -> np.ndarray:
    return x @ _LUMA


def frost_layer(h: int, w: int, rng: RngLike = None) -> np.ndarray:
    """Procedural frost texture, float RGB ``(h, w, 3)`` in [0, 255] (stands in for the frost photographs)."""
    g = _as_rng(rng)
    # haze: multi-octave value noise
    haze = np.zeros((h, w), dtype=np.float64)
    total = 0.0
    for octave in range(1, 6):
        cells = 2**octave
        coarse = g.random((cells + 1, cells + 1))
        up = ndimage.zoom(coarse, (h / (cells + 1), w / (cells + 1)), order=1)[:h, :w]
        if up.shape != (h, w):
            up = np.pad(up, [(0, h - up.shape[0]), (0, w - up.shape[1])], mode="edge")
        weight = 0.6**octave
        haze += weight * up
        total += weight
    haze /= total
    haze = np.clip((haze - haze.min()) / max(haze.max() - haze.min(), 1e-9), 0, 1) ** 1.5
    # ice needles: short thin bright segments, denser in bright haze
    scale = 4
    canvas = Image.new("L", (w * scale, h * scale), 0)
    draw = ImageDraw.Draw(canvas)
    n_needles = int(300 * (h * w) / (64 * 64)) + 20
    side = max(h, w) * scale
    for _ in range(n_needles):
        x0, y0 = g.random() * w * scale, g.random() * h * scale
        length = side * (0.02 + 0.10 * g.random())
        ang = g.random() * math.pi
        x1, y1 = x0 + length * math.cos(ang), y0 + length * math.sin(ang)
        draw.line([(x0, y0), (x1, y1)], fill=int(120 + 135 * g.random()), width=max(1, scale // 2))
    needles = np.asarray(canvas.resize((w, h), Image.Resampling.BOX), dtype=np.float64) / 255.0
    needles = ndimage.gaussian_filter(needles, 0.5)
    frost = np.clip(0.55 * haze + 0.9 * needles * (0.4 + 0.6 * haze), 0, 1)
    tint = np.array([0.85, 0.93, 1.0])
    return frost[..., None] * tint * 255.0


# ----------------------------------------------------------------------------------------------- corruptions
# Each takes a float64 RGB image in [0, 255] (HWC, C=3) and returns float in ~[0, 255].
def _gaussian_noise(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    return np.clip(x / 255.0 + g.normal(size=x.shape, scale=c), 0, 1) * 255


def _shot_noise(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    return np.clip(g.poisson(x / 255.0 * c) / c, 0, 1) * 255


def _impulse_noise(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    out = x / 255.0
    flipped = g.random(x.shape) <= c
    salted = g.random(x.shape) <= 0.5
    out = np.where(flipped & salted, 1.0, out)
    out = np.where(flipped & ~salted, 0.0, out)
    return out * 255


def _defocus_blur(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    kernel = _disk(c[0], c[1])
    return np.clip(_per_channel(x / 255.0, lambda ch: ndimage.correlate(ch, kernel, mode="mirror")), 0, 1) * 255


def _sk_gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(x, sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0)


def _glass_blur(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    sigma, delta, iters = c
    img = (np.clip(_sk_gaussian(x / 255.0, sigma), 0, 1) * 255).astype(np.uint8)
    h, w = img.shape[:2]
    hs = list(range(h - delta, delta, -1))
    ws = list(range(w - delta, delta, -1))
    if hs and ws:
        offs = g.integers(-delta, delta, size=(iters, len(hs), len(ws), 2))
        for it in range(iters):
            o = offs[it]
            for a, hh in enumerate(hs):
                for b, ww in enumerate(ws):
                    dx, dy = o[a, b]
                    img[hh, ww] = img[hh + dy, ww + dx]
    return np.clip(_sk_gaussian(img.astype(np.float64) / 255.0, sigma), 0, 1) * 255


def _motion_blur(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    out = _motion_kernel_apply(x, c[0], c[1], g.uniform(-45, 45))
    return np.clip(np.rint(out), 0, 255)  # the reference round-trips through an 8-bit PNG


def _zoom_blur(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    xf = x / 255.0
    out = np.zeros_like(xf)
    for z in c:
        out += _clipped_zoom(xf, float(z))
    return np.clip((xf + out) / (len(c) + 1), 0, 1) * 255


def _snow(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    xf = x / 255.0
    h, w = xf.shape[:2]
    layer = g.normal(size=(h, w), loc=c[0], scale=c[1])
    layer = _clipped_zoom(layer[..., None], c[2])[..., 0]
    layer[layer < c[3]] = 0
    layer = np.round(np.clip(layer, 0, 1) * 255)
    layer = _motion_kernel_apply(layer, c[4], c[5], g.uniform(-135, -45))
    layer = np.clip(np.rint(layer), 0, 255)[..., None] / 255.0
    gray = _gray(xf)[..., None]
    xf = c[6] * xf + (1 - c[6]) * np.maximum(xf, gray * 1.5 + 0.5)
    return np.clip(xf + layer + np.rot90(layer, k=2), 0, 1) * 255


def _frost(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    return np.clip(c[0] * x + c[1] * frost_layer(h, w, g), 0, 255)


def _fog(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    xf = x / 255.0
    h, w = xf.shape[:2]
    mapsize = 1 << max(1, math.ceil(math.log2(max(h, w))))
    max_val = xf.max()
    xf = xf + c[0] * _plasma_fractal(mapsize, c[1], g)[:h, :w][..., None]
    return np.clip(xf * max_val / (max_val + c[0]), 0, 1) * 255


def _brightness(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    xf = x / 255.0
    v = xf.max(axis=2, keepdims=True)
    v_new = np.clip(v + c, 0, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(v > 0, xf * (v_new / np.where(v > 0, v, 1.0)), v_new)
    return np.clip(out, 0, 1) * 255


def _contrast(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    xf = x / 255.0
    means = xf.mean(axis=(0, 1), keepdims=True)
    return np.clip((xf - means) * c + means, 0, 1) * 255


def _affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix M with ``M @ [p, 1] = q`` for three (x, y) point pairs (cv2.getAffineTransform)."""
    a = np.hstack([src, np.ones((3, 1))])
    return np.linalg.solve(a, dst).T


def _elastic_transform(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    img = x / 255.0
    h, w = img.shape[:2]
    side = min(h, w)
    alpha, sigma, affine = c[0] * side, c[1] * side, c[2] * side
    # random affine (points in cv2's (x, y) order; the reference uses shape_size // 2 as both coordinates)
    center = np.array([h // 2, w // 2], dtype=np.float64)[::-1]
    sq = side // 3
    pts1 = np.array([center + sq, [center[0] + sq, center[1] - sq], center - sq], dtype=np.float64)
    pts2 = pts1 + g.uniform(-affine, affine, size=pts1.shape)
    m = _affine_from_points(pts1, pts2)  # forward map src(x, y) -> dst(x, y)
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]  # dst -> src
    # scipy works in (row, col) = (y, x): swap axes of the linear part and the translation
    lin = inv[:, :2][::-1, ::-1]
    off = inv[:, 2][::-1]
    img = _per_channel(img, lambda ch: ndimage.affine_transform(ch, lin, offset=off, order=1, mode="mirror"))
    # elastic displacement field
    if alpha > 0:
        dx = ndimage.gaussian_filter(g.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
        dy = ndimage.gaussian_filter(g.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    else:
        dx = dy = np.zeros((h, w))
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = np.array([yy + dy, xx + dx])
    img = _per_channel(img, lambda ch: ndimage.map_coordinates(ch, coords, order=1, mode="reflect"))
    return np.clip(img, 0, 1) * 255


def _pixelate(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    im = Image.fromarray(np.uint8(np.clip(np.rint(x), 0, 255)))
    small = im.resize((max(1, int(w * c)), max(1, int(h * c))), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.BOX), dtype=np.float64)


def _jpeg_compression(x: np.ndarray, c: Any, g: np.random.Generator) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(np.uint8(np.clip(np.rint(x), 0, 255))).save(buf, "JPEG", quality=int(c))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=np.float64)


_FUNCS: dict[str, Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur,
    "glass_blur": _glass_blur,
    "motion_blur": _motion_blur,
    "zoom_blur": _zoom_blur,
    "snow": _snow,
    "frost": _frost,
    "fog": _fog,
    "brightness": _brightness,
    "contrast": _contrast,
    "elastic_transform": _elastic_transform,
    "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression,
}


def check_corruption(name: str) -> str:
    """``name`` if it is one of :data:`CORRUPTIONS`; ``ValueError`` naming the field otherwise."""
    if name not in _FUNCS:
        raise InputError("corruption", f"{name!r} is not one of {list(CORRUPTIONS)}")
    return name


def check_severity(severity: int) -> int:
    """``severity`` if it is an int in 1..5; ``ValueError`` naming the field otherwise."""
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer) or not 1 <= int(severity) <= 5:
        raise InputError("severity", f"must be an int in 1..5, got {severity!r}")
    return int(severity)


def corrupt(image: np.ndarray, name: str, severity: int, *, rng: RngLike = None, preset: Preset = "auto") -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1..5) to one uint8 image (HWC with C in {1, 3}, or HW).

    Returns a new uint8 array of the same shape; ``rng`` (a Generator or an int seed) makes it repeatable.
    """
    check_corruption(name)
    severity = check_severity(severity)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise InputError("image", f"must be uint8, got {arr.dtype}")
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3) or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError("image", f"must be HxW, HxWx1 or HxWx3 with H, W >= 2, got shape {np.asarray(image).shape}")
    gray = arr.shape[2] == 1
    x = arr.astype(np.float64)
    if gray:
        x = np.repeat(x, 3, axis=2)
    p = resolve_preset(arr.shape, preset)
    out = _FUNCS[name](x, _param(name, severity, p), _as_rng(rng))
    if gray:
        out = _gray(out)[..., None]
    res = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return res[..., 0] if squeeze else res


def corrupt_batch(
    images: np.ndarray, name: str, severity: int, *, seed: int = 0, preset: Preset = "auto"
) -> np.ndarray:
    """Corrupt a uint8 batch ``(N, H, W[, C])``; image ``i`` uses the generator seeded ``(seed, type, severity, i)``.

    Per-image seeds make the result independent of batching and of which subset is corrupted.
    """
    check_corruption(name)
    severity = check_severity(severity)
    arr = np.asarray(images)
    if arr.ndim not in (3, 4):
        raise InputError("images", f"must be a batch (N, H, W[, C]), got shape {arr.shape}")
    t = CORRUPTIONS.index(name)
    return (
        np.stack(
            [
                corrupt(arr[i], name, severity, rng=np.random.default_rng([seed, t, severity, i]), preset=preset)
                for i in range(arr.shape[0])
            ]
        )
        if arr.shape[0]
        else arr.copy()
    )


# ----------------------------------------------------------------------------------------------- CIFAR-C files
def load_cifar_c(root: str | Path, corruption: str, severity: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read one corruption of CIFAR-10-C / CIFAR-100-C from ``root`` (as published by Hendrycks).

    Layout: ``root/<corruption>.npy`` (uint8, ``(5*N, 32, 32, 3)``, severities 1..5 in consecutive blocks of
    ``N`` = 10000) and ``root/labels.npy`` (``(5*N,)``). Returns ``(images, labels)`` for one severity, or all
    ``5*N`` when ``severity`` is None. Arrays are memory-mapped (read lazily). ``FileNotFoundError`` naming the
    missing path and the expected layout when absent; ``ValueError`` for a malformed file.
    """
    root = Path(root)
    layout = (
        "expected CIFAR-10-C/CIFAR-100-C layout: ROOT/<corruption>.npy (uint8, 5*N x H x W x 3, severity 1..5 "
        "in consecutive blocks of N) and ROOT/labels.npy"
    )
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory ({layout})")
    if not corruption or "/" in corruption or corruption.startswith("."):
        raise InputError("corruption", f"bad name {corruption!r}")
    if severity is not None:
        severity = check_severity(severity)
    img_path, lab_path = root / f"{corruption}.npy", root / "labels.npy"
    for path in (img_path, lab_path):
        if not path.is_file():
            available = sorted(p.stem for p in root.glob("*.npy") if p.stem != "labels")
            raise FileNotFoundError(f"{path}: no such file ({layout}; found: {available or 'no .npy files'})")
    images = np.load(img_path, mmap_mode="r")
    labels = np.load(lab_path, mmap_mode="r")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        raise InputError(f"{img_path}", f"expected uint8 (5*N, H, W, 3) images, got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or images.shape[0] % 5:
        raise InputError(
            f"{lab_path}",
            f"expected {images.shape[0]} labels (5 severities x N) for {img_path.name}, got {labels.shape}"
        )
    if severity is None:
        return images, np.asarray(labels, dtype=np.int64)
    n = images.shape[0] // 5
    sl = slice((severity - 1) * n, severity * n)
    return images[sl], np.asarray(labels[sl], dtype=np.int64)


# ----------------------------------------------------------------------------------------------- metrics
def corruption_accuracy(
    predict: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    corruptions: Sequence[str] = CORRUPTIONS,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    preset: Preset = "auto",
) -> dict[str, dict[int, float]]:
    """Top-1 accuracy (%) per corruption type and severity: ``{type: {severity: acc}}``.

    ``predict`` maps a uint8 image batch ``(N, H, W, C)`` to predicted labels ``(N,)`` (see
    :func:`torch_predictor`); ``images``/``labels`` are the clean validation data. Corruptions are generated
    on the fly with :func:`corrupt_batch` (seeded, so two models see the same corrupted images).
    """
    labels = np.asarray(labels)
    if labels.shape[0] != np.asarray(images).shape[0]:
        raise InputError("labels", f"{labels.shape[0]} labels for {np.asarray(images).shape[0]} images")
    out: dict[str, dict[int, float]] = {}
    for name in corruptions:
        check_corruption(name)
        out[name] = {}
        for s in severities:
            xc = corrupt_batch(images, name, s, seed=seed, preset=preset)
            pred = np.asarray(predict(xc))
            out[name][int(s)] = float(100.0 * np.mean(pred == labels))
    return out


def torch_predictor(
    model: Any,
    *,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.5, 0.5, 0.5),
    batch_size: int = 256,
    device: str = "cpu",
) -> Callable[[np.ndarray], np.ndarray]:
    """A ``predict`` for :func:`corruption_accuracy`: uint8 NHWC -> normalised NCHW -> argmax of ``model`` (eval)."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    @torch.no_grad()
    def predict(batch: np.ndarray) -> np.ndarray:
        was = model.training
        model.eval()
        try:
            preds = []
            for i in range(0, batch.shape[0], batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(batch[i : i + batch_size]))
                if xb.ndim == 3:
                    xb = xb[..., None]
                xb = xb.permute(0, 3, 1, 2).float().div_(255.0)
                if xb.shape[1] == 1 and m.shape[1] == 3:
                    xb = xb.expand(-1, 3, -1, -1)
                xb = ((xb - m) / s).to(device)
                preds.append(model(xb).argmax(dim=1).cpu().numpy())
            return np.concatenate(preds) if preds else np.zeros((0,), dtype=np.int64)
        finally:
            model.train(was)

    return predict


def summarize_accuracy(acc: Mapping[str, Mapping[int, float]]) -> dict[str, Any]:
    """Mean corruption accuracy overall and per type (unweighted means over severities)."""
    per_type = {k: float(np.mean(list(v.values()))) for k, v in acc.items()}
    mean = float(np.mean(list(per_type.values()))) if per_type else math.nan
    return {"mean_corruption_acc": mean, "per_type": per_type}


def mean_corruption_error(
    acc: Mapping[str, Mapping[int, float]],
    baseline_acc: Mapping[str, Mapping[int, float]],
    *,
    clean_acc: float | None = None,
    baseline_clean_acc: float | None = None,
) -> dict[str, Any]:
    """Hendrycks' corruption errors of a model relative to a baseline architecture (accuracies in %).

    ``CE_c = sum_s E_{s,c} / sum_s E^base_{s,c}`` and ``mCE = mean_c CE_c`` (both x100, in %, as published;
    the baseline scores 100). With both clean accuracies given, also the relative mCE
    ``mean_c sum_s (E_{s,c} - E_clean) / sum_s (E^base_{s,c} - E^base_clean)``.
    """
    ce: dict[str, float] = {}
    rel: dict[str, float] = {}
    for name, per_sev in acc.items():
        if name not in baseline_acc:
            raise InputError("baseline_acc", f"no results for corruption {name!r}")
        sevs = sorted(per_sev)
        missing = [s for s in sevs if s not in baseline_acc[name]]
        if missing:
            raise InputError(f"baseline_acc.{name}", f"no results for severities {missing}")
        err = sum(100.0 - per_sev[s] for s in sevs)
        base = sum(100.0 - baseline_acc[name][s] for s in sevs)
        ce[name] = 100.0 * err / base if base > 0 else math.nan
        if clean_acc is not None and baseline_clean_acc is not None:
            num = sum((100.0 - per_sev[s]) - (100.0 - clean_acc) for s in sevs)
            den = sum((100.0 - baseline_acc[name][s]) - (100.0 - baseline_clean_acc) for s in sevs)
            rel[name] = 100.0 * num / den if den != 0 else math.nan
    out: dict[str, Any] = {"mCE": float(np.mean(list(ce.values()))) if ce else math.nan, "CE": ce}
    if rel:
        out["relative_mCE"] = float(np.mean(list(rel.values())))
        out["relative_CE"] = rel
    return out
