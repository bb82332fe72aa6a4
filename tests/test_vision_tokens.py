from __future__ import annotations

import pytest

from batch.core.catalogue import ModelInfo, PatchRule, TileRule, lookup_model
from batch.tokens.image import image_tokens, patch_count, patch_dims, tile_count, tile_dims


def _model(rule: TileRule | PatchRule) -> ModelInfo:
    return ModelInfo("test", rule, 50, False, 4096, "o200k_base", False)


@pytest.mark.parametrize(
    ("model", "width", "height", "detail", "tokens"),
    [
        # Published worked examples (azure-vision-api.md §3).
        ("gpt-4o", 1024, 1024, "high", 765),
        ("gpt-4o", 2048, 4096, "high", 1105),
        ("gpt-4o-mini", 2048, 4096, "high", 36_835),
        ("gpt-4o", 512, 512, "high", 255),  # never upscaled
        ("gpt-4o", 1024, 1024, "low", 85),
        ("gpt-4o", 8000, 8000, "low", 85),
        ("gpt-4o-mini", 1024, 1024, "low", 2833),
        ("gpt-4.1-mini", 1800, 2400, "high", 2353),
        ("gpt-4.1-nano", 1800, 2400, "high", 3572),
        ("gpt-4.1-mini", 1024, 1024, "high", 1659),
        # auto is estimated as high.
        ("gpt-4o", 1024, 1024, "auto", 765),
        ("gpt-4o", 2048, 4096, "auto", 1105),
        # Other constants from the catalogue.
        ("o1", 1024, 1024, "high", 75 + 150 * 4),
        ("gpt-5", 1024, 1024, "high", 70 + 140 * 4),
        ("gpt-5", 10, 10, "low", 70),
        ("o4-mini", 1800, 2400, "high", 2498),  # ceil(1452 * 1.72 = 2497.44)
        ("gpt-5-mini", 1024, 1024, "high", 1229),  # ceil(1024 * 1.2 = 1228.8)
        ("gpt-5-nano", 1024, 1024, "high", 1536),
    ],
)
def test_image_tokens(model: str, width: int, height: int, detail: str, tokens: int) -> None:
    assert image_tokens(lookup_model(model), width, height, detail) == tokens


@pytest.mark.parametrize(
    ("width", "height", "dims", "tiles"),
    [
        (1024, 1024, (768, 768), 4),
        (2048, 4096, (768, 1536), 6),
        (4096, 2048, (1536, 768), 6),
        (512, 512, (512, 512), 1),
        (513, 512, (513, 512), 2),
        (100, 100, (100, 100), 1),
        (4096, 8192, (768, 1536), 6),
        (100, 5000, (41, 2048), 4),  # fit in 2048 only: shortest side already under 768
        (768, 768, (768, 768), 4),
        (769, 10000, (157, 2048), 4),
    ],
)
def test_tile_dims_and_count(width: int, height: int, dims: tuple[int, int], tiles: int) -> None:
    rule = TileRule(85, 170)
    assert tile_dims(rule, width, height) == dims
    assert tile_count(rule, width, height) == tiles


@pytest.mark.parametrize(
    ("width", "height", "dims", "patches"),
    [
        (1800, 2400, (1056, 1408), 1452),  # the published example
        (2400, 1800, (1408, 1056), 1452),
        (1024, 1024, (1024, 1024), 1024),  # under budget: unchanged
        (1, 1, (1, 1), 1),
        (33, 33, (33, 33), 4),
        (1248, 1248, (1248, 1248), 1521),
        (1568, 1568, (1248, 1248), 1521),
        (100_000, 10, (100_000, 10), 1536),  # extreme aspect: capped at the budget, never upscaled
    ],
)
def test_patch_dims_and_count(width: int, height: int, dims: tuple[int, int], patches: int) -> None:
    rule = PatchRule(1.62, 1536)
    assert patch_dims(rule, width, height) == dims
    assert patch_count(rule, width, height) == patches


@pytest.mark.parametrize("size", [(1, 1), (31, 4000), (4000, 31), (3000, 3000), (12345, 6789), (65000, 65000)])
def test_patch_count_never_exceeds_budget(size: tuple[int, int]) -> None:
    rule = PatchRule(1.0, 1536)
    assert 1 <= patch_count(rule, *size) <= 1536


def test_patch_multiplier_is_exact_decimal() -> None:
    # 160x320 is 5x10 = 50 patches; 50 * 1.62 is 81 exactly, though 81.00000000000001 in floats.
    assert image_tokens(lookup_model("gpt-4.1-mini"), 160, 320, "high") == 81


def test_patch_rule_max_side_downscales_first() -> None:
    model = _model(PatchRule(1.0, 6144, max_side=2048))
    assert patch_dims(model.image_rule, 4096, 1024) == (2048, 512)  # type: ignore[arg-type]
    assert image_tokens(model, 4096, 1024, "high") == 64 * 16


@pytest.mark.parametrize("model", ["gpt-4.1-mini", "gpt-4.1-nano", "o4-mini", "gpt-5-mini", "gpt-5-nano"])
def test_patch_models_bill_low_detail_like_high(model: str) -> None:
    info = lookup_model(model)
    for width, height in [(1800, 2400), (64, 64), (1024, 1024)]:
        assert image_tokens(info, width, height, "low") == image_tokens(info, width, height, "high")
        assert image_tokens(info, width, height, "auto") == image_tokens(info, width, height, "high")


def test_custom_tile_rule_settings() -> None:
    model = _model(TileRule(base=10, per_tile=1, max_side=1000, short_side=500, tile=100))
    # 4000x2000 -> fit in 1000: 1000x500 -> short side 500 already -> 10 x 5 tiles
    assert image_tokens(model, 4000, 2000, "high") == 10 + 50


@pytest.mark.parametrize("detail", ["HIGH", "", "medium", "Low", " auto"])
def test_bad_detail_is_rejected(detail: str) -> None:
    with pytest.raises(ValueError, match="detail must be one of low, high, auto"):
        image_tokens(lookup_model("gpt-4o"), 100, 100, detail)


@pytest.mark.parametrize(("width", "height"), [(0, 100), (100, 0), (-1, 5), (5, -1)])
@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4.1-mini"])
def test_non_positive_size_is_rejected(model: str, width: int, height: int) -> None:
    with pytest.raises(ValueError, match="image size must be positive"):
        image_tokens(lookup_model(model), width, height, "low")
