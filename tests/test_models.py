from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from batch.core.catalogue import ModelInfo, PatchRule, TileRule, known_models, load_catalogue, lookup_model
from batch.core.errors import SpecError, UnknownModelError

ALL = [
    "gpt-4",
    "gpt-4-turbo",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4.5-preview",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-5.1",
    "o1",
    "o3",
    "o4-mini",
]


def test_known_models_lists_the_whole_catalogue_sorted() -> None:
    assert known_models() == ALL


@pytest.mark.parametrize(
    ("name", "rule", "max_images", "completion_tokens", "tokenizer"),
    [
        ("gpt-4", TileRule(85, 170), 10, False, "cl100k_base"),
        ("gpt-4-turbo", TileRule(85, 170), 10, False, "cl100k_base"),
        ("gpt-4o", TileRule(85, 170), 50, False, "o200k_base"),
        ("gpt-4o-mini", TileRule(2833, 5667), 50, False, "o200k_base"),
        ("gpt-4.1", TileRule(85, 170), 50, False, "o200k_base"),
        ("gpt-4.5-preview", TileRule(85, 170), 50, False, "o200k_base"),
        ("o1", TileRule(75, 150), 50, True, "o200k_base"),
        ("o3", TileRule(75, 150), 50, True, "o200k_base"),
        ("gpt-5", TileRule(70, 140), 50, True, "o200k_base"),
        ("gpt-5.1", TileRule(70, 140), 50, True, "o200k_base"),
        ("gpt-4.1-mini", PatchRule(1.62, 1536), 50, False, "o200k_base"),
        ("gpt-4.1-nano", PatchRule(2.46, 1536), 50, False, "o200k_base"),
        ("o4-mini", PatchRule(1.72, 1536), 50, True, "o200k_base"),
        ("gpt-5-mini", PatchRule(1.2, 1536), 50, True, "o200k_base"),
        ("gpt-5-nano", PatchRule(1.5, 1536), 50, True, "o200k_base"),
    ],
)
def test_catalogue_entries(
    name: str, rule: TileRule | PatchRule, max_images: int, completion_tokens: bool, tokenizer: str
) -> None:
    info = lookup_model(name)
    assert info.name == name
    assert info.image_rule == rule
    assert info.max_images == max_images
    assert info.uses_max_completion_tokens is completion_tokens
    assert info.tokenizer == tokenizer
    assert info.supports_enhancements is (name == "gpt-4")


def test_rule_defaults_are_the_published_sizes() -> None:
    tile = lookup_model("gpt-4o").image_rule
    assert isinstance(tile, TileRule)
    assert (tile.max_side, tile.short_side, tile.tile) == (2048, 768, 512)
    patch = lookup_model("gpt-4.1-mini").image_rule
    assert isinstance(patch, PatchRule)
    assert (patch.patch, patch.max_side) == (32, None)


def test_default_max_output_for_documented_models() -> None:
    assert lookup_model("gpt-4").default_max_output == 16
    assert lookup_model("gpt-4-turbo").default_max_output == 16
    assert lookup_model("gpt-4o").default_max_output == 4096


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4-vision-preview", "gpt-4"),
        ("gpt-4-1106-vision-preview", "gpt-4"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o4-mini-2025-04-16", "o4-mini"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("gpt-5.1-chat", "gpt-5.1"),
        ("GPT-4O-2024-08-06", "gpt-4o"),
        ("  gpt-4o  ", "gpt-4o"),
    ],
)
def test_lookup_resolves_versions_to_the_longest_prefix(name: str, expected: str) -> None:
    assert lookup_model(name).name == expected


@pytest.mark.parametrize("name", ["llava", "gpt-4oo", "gpt-4.10", "o1x", "gpt", "gpt-35-turbo", ""])
def test_unknown_model_names_the_model_and_how_to_add_one(name: str) -> None:
    with pytest.raises(UnknownModelError) as info:
        lookup_model(name)
    message = str(info.value)
    assert repr(name) in message
    assert "gpt-4o-mini" in message and "o4-mini" in message
    assert "TOML" in message


def test_entries_are_frozen() -> None:
    info = lookup_model("gpt-4o")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.max_images = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("names", "entry"),
    [
        (["gpt-4o", "GPT-4o", "  gpt-4o ", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20"], "gpt-4o"),
        (["gpt-4o-mini", "gpt-4o-mini-2024-07-18", "GPT-4O-MINI"], "gpt-4o-mini"),
        (["gpt-4", "gpt-4-vision-preview", "gpt-4-0613"], "gpt-4"),
    ],
)
def test_every_name_of_a_model_looks_up_the_same_entry(names: list[str], entry: str) -> None:
    """Aliases, dated snapshots and any spelling give equal entries, every time they are asked for."""
    expected = load_catalogue()[entry]
    for name in names:
        assert lookup_model(name) == expected
        assert lookup_model(name) == lookup_model(name)
    assert load_catalogue() == load_catalogue()


def test_unknown_model_says_how_to_describe_it() -> None:
    with pytest.raises(UnknownModelError, match=r"unknown model 'llava'.*image-token rules for") as info:
        lookup_model("llava")
    message = str(info.value)
    assert '[models."llava"]' in message and "--catalogue FILE" in message
    assert all(name in message for name in ALL)


def test_an_extra_catalogue_leaves_the_builtin_one_as_it_was(tmp_path: Path) -> None:
    before = dict(load_catalogue())
    extra = tmp_path / "models.toml"
    extra.write_text(EXTRA, encoding="utf-8")
    assert lookup_model("gpt-4o", extra) != before["gpt-4o"]
    assert load_catalogue() == before
    assert lookup_model("gpt-4o") == before["gpt-4o"]
    with pytest.raises(UnknownModelError):
        lookup_model("my-vlm")


EXTRA = """
[models."my-vlm"]
tokenizer = "cl100k_base"
max_images = 4
default_max_output = 512
image = { rule = "patch", multiplier = 2.0, patch_budget = 6144, max_side = 2048 }

[models."GPT-4o"]
tokenizer = "o200k_base"
max_images = 20
default_max_output = 1000
uses_max_completion_tokens = true
image = { rule = "tile", base = 100, per_tile = 200, short_side = 512 }
"""


def test_extra_catalogue_adds_and_replaces_entries(tmp_path: Path) -> None:
    extra = tmp_path / "models.toml"
    extra.write_text(EXTRA, encoding="utf-8")

    mine = lookup_model("my-vlm-v2", extra)
    assert mine == ModelInfo(
        name="my-vlm",
        image_rule=PatchRule(multiplier=2.0, patch_budget=6144, patch=32, max_side=2048),
        max_images=4,
        uses_max_completion_tokens=False,
        default_max_output=512,
        tokenizer="cl100k_base",
        supports_enhancements=False,
    )
    replaced = lookup_model("gpt-4o-2024-08-06", extra)
    assert replaced.image_rule == TileRule(base=100, per_tile=200, short_side=512)
    assert replaced.max_images == 20
    assert replaced.uses_max_completion_tokens is True
    # The built-in entry is untouched for callers without the extra file.
    assert lookup_model("gpt-4o").image_rule == TileRule(85, 170)
    assert known_models(extra) == sorted([*ALL, "my-vlm"])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not toml = = 1", "not valid TOML"),
        ('[other]\nx = 1\n[models."a"]\n', "unknown key other"),
        ('[models."a"]\ntokenizer = "o200k_base"\nmax_images = 1\ndefault_max_output = 1\n', "missing image"),
        (
            '[models."a"]\ntokenizer = "p50k"\nmax_images = 1\ndefault_max_output = 1\n'
            'image = { rule = "tile", base = 1, per_tile = 1 }\n',
            "tokenizer must be one of",
        ),
        (
            '[models."a"]\ntokenizer = "o200k_base"\nmax_images = 0\ndefault_max_output = 1\n'
            'image = { rule = "tile", base = 1, per_tile = 1 }\n',
            "max_images must be a positive integer",
        ),
        (
            '[models."a"]\ntokenizer = "o200k_base"\nmax_images = true\ndefault_max_output = 1\n'
            'image = { rule = "tile", base = 1, per_tile = 1 }\n',
            "max_images must be a positive integer",
        ),
        (
            '[models."a"]\ntokenizer = "o200k_base"\nmax_images = 1\ndefault_max_output = 1\n'
            'image = { rule = "hex", base = 1 }\n',
            'rule must be "tile" or "patch"',
        ),
        (
            '[models."a"]\ntokenizer = "o200k_base"\nmax_images = 1\ndefault_max_output = 1\n'
            'image = { rule = "patch", multiplier = -1, patch_budget = 5 }\n',
            "multiplier must be a positive number",
        ),
        (
            '[models."a"]\ntokenizer = "o200k_base"\nmax_images = 1\ndefault_max_output = 1\ncolour = 1\n'
            'image = { rule = "tile", base = 1, per_tile = 1 }\n',
            "unknown key colour",
        ),
        (
            '[models."a"]\ntokenizer = "o200k_base"\nmax_images = 1\ndefault_max_output = 1\n'
            'supports_enhancements = "yes"\nimage = { rule = "tile", base = 1, per_tile = 1 }\n',
            "supports_enhancements must be true or false",
        ),
        (
            '[models."a"]\ntokenizer = "o200k_base"\nmax_images = 1\ndefault_max_output = 1\n'
            'image = { rule = "tile", base = 1, per_tile = 1 }\n'
            '[models."A"]\ntokenizer = "o200k_base"\nmax_images = 1\ndefault_max_output = 1\n'
            'image = { rule = "tile", base = 1, per_tile = 1 }\n',
            "defined twice",
        ),
    ],
)
def test_bad_extra_catalogue_is_a_spec_error_naming_the_file(tmp_path: Path, text: str, fragment: str) -> None:
    extra = tmp_path / "bad-models.toml"
    extra.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        lookup_model("gpt-4o", extra)
    assert fragment in str(info.value)
    assert "bad-models.toml" in str(info.value)


def test_missing_extra_catalogue_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read model catalogue .*nope.toml"):
        lookup_model("gpt-4o", tmp_path / "nope.toml")
