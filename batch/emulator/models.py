"""The emulator's own per-model rules: image-token formula, image-count limit, output defaults.

This table is written independently of the client's estimator on purpose: the emulator stands
in for the real service, so if both sides shared the maths a wrong formula would go unnoticed.

Two image-token families exist:

* tile models (gpt-4o, gpt-4.1, gpt-4-turbo/vision, gpt-4o-mini, o1/o3, gpt-5): ``low`` costs
  the base; ``high`` (and ``auto``, billed like ``high``) fits the image in 2048x2048, then
  brings the shortest side down to 768 (downscale only, never upscale), then charges
  ``base + per_tile * tiles`` over 512 px tiles;
* patch models (gpt-4.1-mini/nano, o4-mini, gpt-5-mini/nano): 32 px patches, at most 1536
  (the image is shrunk to fit that budget), times a per-model multiplier, rounded up. The
  detail level does not change the count.

Text is counted with the model's encoding (``tokenizer``): ``o200k_base`` for gpt-4o and every
later family, ``cl100k_base`` for gpt-4 (vision-preview) and gpt-4-turbo.

Deployment model names are matched by the longest known prefix, so ``gpt-4o-2024-08-06`` gets
the gpt-4o rules while ``gpt-4o-mini-2024-07-18`` gets gpt-4o-mini's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ModelRules", "TileFormula", "PatchFormula", "rules_for", "KNOWN_PREFIXES"]

TILE_FIT = 2048
TILE_SHORT_SIDE = 768
TILE_SIZE = 512
PATCH_SIZE = 32
PATCH_BUDGET = 1536


@dataclass(frozen=True, slots=True)
class TileFormula:
    base: int
    per_tile: int

    def tokens(self, width: int, height: int, detail: str) -> int:
        if detail == "low":
            return self.base
        w, h = width, height
        longest = max(w, h)
        if longest > TILE_FIT:
            # Integer maths keeps worked examples exact (no 767.999 -> 767).
            w, h = w * TILE_FIT // longest, h * TILE_FIT // longest
        shortest = min(w, h)
        if shortest > TILE_SHORT_SIDE:
            w, h = w * TILE_SHORT_SIDE // shortest, h * TILE_SHORT_SIDE // shortest
        w, h = max(w, 1), max(h, 1)
        tiles = math.ceil(w / TILE_SIZE) * math.ceil(h / TILE_SIZE)
        return self.base + self.per_tile * tiles


@dataclass(frozen=True, slots=True)
class PatchFormula:
    multiplier: float
    budget: int = PATCH_BUDGET

    def patches(self, width: int, height: int) -> int:
        count = math.ceil(width / PATCH_SIZE) * math.ceil(height / PATCH_SIZE)
        if count <= self.budget:
            return count
        ratio = math.sqrt(PATCH_SIZE * PATCH_SIZE * self.budget / (width * height))
        cols, rows = width * ratio / PATCH_SIZE, height * ratio / PATCH_SIZE
        ratio *= min(math.floor(cols) / cols, math.floor(rows) / rows)
        w, h = math.floor(width * ratio), math.floor(height * ratio)
        return min(math.ceil(w / PATCH_SIZE) * math.ceil(h / PATCH_SIZE), self.budget)

    def tokens(self, width: int, height: int, detail: str) -> int:
        del detail  # the patch rule ignores detail
        # round() first so 1452*1.62 style products don't pick up float dust before ceil.
        return math.ceil(round(self.patches(width, height) * self.multiplier, 6))


@dataclass(frozen=True, slots=True)
class ModelRules:
    """What the emulator enforces for one model family."""

    family: str
    image_formula: TileFormula | PatchFormula
    max_images: int = 50
    default_max_output: int = 4096
    #: o-series and gpt-5 reject ``max_tokens``; they want ``max_completion_tokens``.
    rejects_max_tokens: bool = False
    #: The text encoding: o200k_base from gpt-4o on, cl100k_base for gpt-4 and gpt-4-turbo.
    tokenizer: str = "o200k_base"

    def image_tokens(self, width: int, height: int, detail: str) -> int:
        """Image tokens for one image of the given decoded size; ``auto`` counts as ``high``."""
        return self.image_formula.tokens(width, height, "high" if detail == "auto" else detail)


_GPT4O = TileFormula(85, 170)
_TURBO = ModelRules("gpt-4-turbo", _GPT4O, max_images=10, default_max_output=16, tokenizer="cl100k_base")

_TABLE: dict[str, ModelRules] = {
    "gpt-4o": ModelRules("gpt-4o", _GPT4O),
    "gpt-4o-mini": ModelRules("gpt-4o-mini", TileFormula(2833, 5667)),
    "gpt-4.1": ModelRules("gpt-4.1", _GPT4O),
    "gpt-4.5": ModelRules("gpt-4.5", _GPT4O),
    "gpt-4.1-mini": ModelRules("gpt-4.1-mini", PatchFormula(1.62)),
    "gpt-4.1-nano": ModelRules("gpt-4.1-nano", PatchFormula(2.46)),
    "gpt-4-turbo": _TURBO,
    "gpt-4-vision": ModelRules(
        "gpt-4-vision-preview", _GPT4O, max_images=10, default_max_output=16, tokenizer="cl100k_base"
    ),
    # A bare "gpt-4" deployment name is how Azure lists gpt-4 version vision-preview.
    "gpt-4": ModelRules("gpt-4-vision-preview", _GPT4O, max_images=10, default_max_output=16, tokenizer="cl100k_base"),
    "o1": ModelRules("o1", TileFormula(75, 150), rejects_max_tokens=True),
    "o3": ModelRules("o3", TileFormula(75, 150), rejects_max_tokens=True),
    "o4-mini": ModelRules("o4-mini", PatchFormula(1.72), rejects_max_tokens=True),
    "gpt-5": ModelRules("gpt-5", TileFormula(70, 140), rejects_max_tokens=True),
    "gpt-5-mini": ModelRules("gpt-5-mini", PatchFormula(1.2), rejects_max_tokens=True),
    "gpt-5-nano": ModelRules("gpt-5-nano", PatchFormula(1.5), rejects_max_tokens=True),
    "computer-use-preview": ModelRules("computer-use-preview", TileFormula(65, 129)),
}

#: Prefixes longest first, so the first match is the most specific one.
KNOWN_PREFIXES: tuple[str, ...] = tuple(sorted(_TABLE, key=len, reverse=True))

#: Rules for a model the table does not know: gpt-4o's, the most common vision model.
DEFAULT_RULES = ModelRules("unknown", _GPT4O)


def _matches(model: str, prefix: str) -> bool:
    if not model.startswith(prefix):
        return False
    rest = model[len(prefix) :]
    # "gpt-5.1" is gpt-5 and "gpt-4o-2024-08-06" is gpt-4o, but "gpt-4" must not swallow
    # "gpt-4o" nor "o1" swallow "o10": the next character must end the family name.
    return rest == "" or rest[0] in "-._: "


def rules_for(model: str) -> ModelRules:
    """Rules for a deployment's model name (longest known prefix; unknown -> gpt-4o rules)."""
    name = model.strip().lower()
    for prefix in KNOWN_PREFIXES:
        if _matches(name, prefix):
            return _TABLE[prefix]
    return DEFAULT_RULES


def is_known_model(model: str) -> bool:
    return rules_for(model) is not DEFAULT_RULES
