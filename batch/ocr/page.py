"""A page image made ready for Tesseract: greyscale, skew measured and undone, small print enlarged.

Steps 1-4 of :meth:`~.engine.LocalOcr.read` (see :mod:`.engine` for what each was measured to gain):
greyscale, the text angle by a projection profile of the Otsu-dark pixels, bicubic upscaling of
small print (never past ``MAX_LINE_PX`` lines or ``max_width`` pixels), deskew of the enlarged
page and a light box blur. Pure Pillow and numpy: no OCR engine is needed here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

__all__ = ["DEFAULT_UPSCALE", "estimate_skew", "prepare_page", "text_line_height", "to_gray"]


DEFAULT_UPSCALE = 2.5
MAX_LINE_PX = 32.0  # text lines taller than this after upscaling gain nothing and cost time


_SKEW_RANGE = 5.0  # degrees either way; scans are rarely further off, and OSD handles 90° turns
_MIN_SKEW = 0.1
_SMOOTH = 0.4  # box-blur radius per unit of upscale: 1 px at 2.5x (beat none, 0.6-2 px Gaussian, median)


def estimate_skew(gray: Image.Image, max_degrees: float = _SKEW_RANGE) -> float:
    """Degrees to rotate ``gray`` (counter-clockwise, as ``Image.rotate``) to level its text lines.

    Projection profile: for each candidate angle, the dark pixels are projected onto the axis
    perpendicular to the lines; level lines give the sharpest profile (largest sum of squares).
    Works on a copy at most 1000 px wide; 0.0 when the page has too little ink to tell.
    """
    small = gray if gray.width <= 1000 else gray.resize((1000, max(1, round(gray.height * 1000 / gray.width))))
    a = np.asarray(small, dtype=np.uint8)
    ys, xs = np.nonzero(a < _otsu_threshold(a))
    if xs.size < 100 or xs.size > 0.5 * a.size:
        return 0.0
    yf, xf = ys.astype(np.float64), xs.astype(np.float64)

    def sharpness(deg: float) -> float:
        rows = np.round(yf - xf * np.tan(np.radians(deg))).astype(np.int64)
        hist = np.bincount(rows - rows.min()).astype(np.float64)
        return float(np.dot(hist, hist))

    coarse = max(np.arange(-max_degrees, max_degrees + 1e-9, 0.5), key=sharpness)
    fine = max(np.arange(coarse - 0.4, coarse + 0.4 + 1e-9, 0.1), key=sharpness)
    return round(float(fine), 2)


def text_line_height(gray: Image.Image) -> float | None:
    """Median height in pixels of the level page's text lines (rows of ink), or None if none."""
    a = np.asarray(gray, dtype=np.uint8)
    ink_rows = (a < _otsu_threshold(a)).sum(axis=1) > max(2, a.shape[1] // 200)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ink_rows.astype(np.int8), [0]))))
    heights = edges[1::2] - edges[0::2]
    heights = heights[heights >= 4]  # table rules and specks are not lines of text
    return float(np.median(heights)) if heights.size else None


def prepare_page(
    image: Image.Image, upscale: float = DEFAULT_UPSCALE, *, deskew: bool = True, max_width: int = 5000
) -> tuple[Image.Image, float, float]:
    """The greyscale, upscaled, levelled page Tesseract reads best; with the skew and scale used.

    The scale is ``upscale`` for small print, less for print that is already large (lines of
    text are not enlarged past ``MAX_LINE_PX``: a 300 dpi render needs no upscaling), never
    below 1, and never past ``max_width`` pixels. The page is enlarged *before* it is levelled
    (rotating 10 px print at its own size blurs it twice over), then smoothed a little.
    """
    gray = to_gray(image)
    skew = estimate_skew(gray) if deskew else 0.0
    if abs(skew) < _MIN_SKEW:
        skew = 0.0
    paper = int(np.median(np.asarray(gray))) if skew else 255
    level = gray.rotate(skew, resample=Image.Resampling.NEAREST, expand=True, fillcolor=paper) if skew else gray
    line = text_line_height(level)
    scale = upscale if line is None else min(upscale, MAX_LINE_PX / line)
    scale = max(1.0, min(scale, max_width / level.width))
    if scale > 1.0:
        gray = gray.resize((round(gray.width * scale), round(gray.height * scale)), Image.Resampling.BICUBIC)
    if skew:
        gray = gray.rotate(skew, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=paper)
    if scale > 1.0:
        # Scanner noise and JPEG blocks, enlarged, are edges the LSTM reads as strokes.
        gray = gray.filter(ImageFilter.BoxBlur(_SMOOTH * scale))
    return gray, skew, round(scale, 3)


def to_gray(image: Image.Image) -> Image.Image:
    """8-bit greyscale of any Pillow mode: transparency onto white, 16/32-bit and float stretched."""
    if image.mode == "L":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(image, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        return Image.fromarray(scaled.round().astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        page = Image.new("RGB", rgba.size, (255, 255, 255))
        page.paste(rgba, mask=rgba.getchannel("A"))
        return page.convert("L")
    return image.convert("L")


def _otsu_threshold(a: npt.NDArray[np.uint8]) -> int:
    """Otsu's global threshold: pixels below it are ink. A uniform image has no ink."""
    if a.size == 0 or int(a.min()) == int(a.max()):
        return int(a.min()) if a.size else 0
    hist = np.bincount(a.ravel(), minlength=256).astype(np.float64)
    p = hist / hist.sum()
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1.0 - omega))
    return int(np.nanargmax(between))
