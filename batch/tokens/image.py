"""How many input tokens an image costs, from its size alone (azure-vision-api.md §3).

Two billing rules exist, chosen per model in the catalogue (``batch/models.py``):

* tile rule (gpt-4o, gpt-4.1, o1, gpt-5, ...): ``low`` costs ``base``; ``high`` scales the image
  down to fit 2048x2048, then its shortest side down to 768, and adds ``per_tile`` per 512 px tile.
  Images are only ever scaled *down* (the Azure doc and the later OpenAI doc), so 512x512 costs 255.
  ``auto`` lets the service pick; it is estimated as ``high``, the upper bound.
* patch rule (gpt-4.1-mini, gpt-4.1-nano, o4-mini, gpt-5-mini/nano): count 32 px patches, shrink
  the image when they exceed the budget, multiply by the model's factor and round up.
  ``detail`` does not change the count: the published rule has no low-detail shortcut for these
  models and the later revision gives low, high and auto the same limits, so ``low`` is billed
  like ``high``.

Scaled sizes are rounded to whole pixels at each step, as an image resizer would.
"""

from __future__ import annotations

import math
from fractions import Fraction

from ..core import ModelInfo, PatchRule, TileRule

__all__ = ["DETAILS", "image_tokens", "patch_count", "patch_dims", "tile_count", "tile_dims"]

DETAILS = ("low", "high", "auto")


def image_tokens(model: ModelInfo, width: int, height: int, detail: str) -> int:
    """Input tokens one image of ``width`` x ``height`` px costs on ``model`` at ``detail``."""
    if detail not in DETAILS:
        raise ValueError(f"detail must be one of {', '.join(DETAILS)}, got {detail!r}")
    _check_size(width, height)
    rule = model.image_rule
    if isinstance(rule, TileRule):
        if detail == "low":
            return rule.base
        return rule.base + rule.per_tile * tile_count(rule, width, height)
    # Fraction(str(...)) multiplies by the decimal as written: 50 * 1.62 is 81, not 81.00000000000001.
    return math.ceil(patch_count(rule, width, height) * Fraction(str(rule.multiplier)))


def tile_dims(rule: TileRule, width: int, height: int) -> tuple[int, int]:
    """The size the image is billed at under a tile rule (``high`` detail)."""
    _check_size(width, height)
    w, h = float(width), float(height)
    if max(w, h) > rule.max_side:
        w, h = _scale(w, h, rule.max_side / max(w, h))
    if min(w, h) > rule.short_side:
        w, h = _scale(w, h, rule.short_side / min(w, h))
    return int(w), int(h)


def tile_count(rule: TileRule, width: int, height: int) -> int:
    """Tiles covering the billed size; partial tiles count as whole ones."""
    w, h = tile_dims(rule, width, height)
    return math.ceil(w / rule.tile) * math.ceil(h / rule.tile)


def patch_dims(rule: PatchRule, width: int, height: int) -> tuple[int, int]:
    """The size the image is billed at under a patch rule: shrunk only if over the patch budget."""
    _check_size(width, height)
    w, h = float(width), float(height)
    if rule.max_side is not None and max(w, h) > rule.max_side:
        w, h = _scale(w, h, rule.max_side / max(w, h))
    p = rule.patch
    if math.ceil(w / p) * math.ceil(h / p) <= rule.patch_budget:
        return int(w), int(h)
    r = math.sqrt(p * p * rule.patch_budget / (w * h))
    # Shrink again so that a whole number of patches fits along the tighter side (at least one:
    # for extreme aspect ratios the published formula would otherwise collapse a side to zero).
    r *= min(max(1, math.floor(w * r / p)) / (w * r / p), max(1, math.floor(h * r / p)) / (h * r / p))
    r = min(r, 1.0)  # never upscale
    # The epsilon keeps 1056.0 from flooring to 1055 through float error.
    return max(1, math.floor(w * r + 1e-9)), max(1, math.floor(h * r + 1e-9))


def patch_count(rule: PatchRule, width: int, height: int) -> int:
    """Patches billed for the image, at most the model's budget."""
    w, h = patch_dims(rule, width, height)
    return min(math.ceil(w / rule.patch) * math.ceil(h / rule.patch), rule.patch_budget)


def _scale(w: float, h: float, factor: float) -> tuple[float, float]:
    return max(1.0, round(w * factor)), max(1.0, round(h * factor))


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
