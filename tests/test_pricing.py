"""The price table: figures from azure-vision-api.md §8, dated names, user overrides, no silent zero."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch.core.catalogue import known_models
from batch.core.errors import SpecError, UnknownModelError
from batch.core.prices import cost, load_prices, price_for


@pytest.mark.parametrize(
    ("name", "entry", "inp", "out", "batch_in", "batch_out"),
    [
        ("gpt-4o", "gpt-4o", 2.50, 10.00, 1.25, 5.00),
        ("gpt-4o-2024-08-06", "gpt-4o", 2.50, 10.00, 1.25, 5.00),
        ("gpt-4o-2024-11-20", "gpt-4o", 2.50, 10.00, 1.25, 5.00),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13", 5.00, 15.00, 2.50, 7.50),  # the first gpt-4o: dearer
        ("GPT-4o-2024-05-13", "gpt-4o-2024-05-13", 5.00, 15.00, 2.50, 7.50),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", 0.15, 0.60, 0.075, 0.30),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo", 10.00, 30.00, 5.00, 15.00),
        ("gpt-4-vision-preview", "gpt-4", 10.00, 30.00, 5.00, 15.00),
        ("gpt-4.1", "gpt-4.1", 2.00, 8.00, 1.00, 4.00),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", 0.40, 1.60, 0.20, 0.80),
        ("gpt-4.1-nano", "gpt-4.1-nano", 0.10, 0.40, 0.05, 0.20),
        ("gpt-5-2025-08-07", "gpt-5", 1.25, 10.00, 0.625, 5.00),
        ("gpt-5-mini", "gpt-5-mini", 0.25, 2.00, 0.125, 1.00),
        ("gpt-5-nano", "gpt-5-nano", 0.05, 0.40, 0.025, 0.20),
    ],
)
def test_prices_from_the_api_brief(
    name: str, entry: str, inp: float, out: float, batch_in: float, batch_out: float
) -> None:
    p = price_for(name)
    assert (p.name, p.input, p.output, p.batch_input, p.batch_output) == (entry, inp, out, batch_in, batch_out)
    assert p.source and p.date


def test_derived_batch_prices_are_marked() -> None:
    assert price_for("gpt-4o-mini").batch_derived  # the brief's '*': 50% of standard
    assert price_for("gpt-5").batch_derived
    assert not price_for("gpt-4o").batch_derived  # quoted
    assert not price_for("gpt-4.1").batch_derived
    assert price_for("gpt-4o").cached_input == 1.25
    assert price_for("gpt-4.1-mini").cached_input is None


def test_catalogue_models_without_a_quoted_price_are_absent_on_purpose() -> None:
    table = load_prices()
    unpriced = set()
    for name in known_models():
        try:
            table.price_for(name)
        except UnknownModelError:
            unpriced.add(name)
    assert unpriced == {"gpt-4.5-preview", "o1", "o3", "o4-mini", "gpt-5.1"}


def test_unknown_model_says_how_to_add_a_price() -> None:
    with pytest.raises(UnknownModelError) as err:
        price_for("my-vlm-7b")
    msg = str(err.value)
    assert "'my-vlm-7b'" in msg and '[prices."my-vlm-7b"]' in msg and "--prices" in msg and "gpt-4o" in msg


def test_cost_per_million_tokens() -> None:
    p = price_for("gpt-4o")
    assert cost(1_000_000, 1_000_000, p) == pytest.approx(12.50)
    assert cost(1_000_000, 1_000_000, p, batch=True) == pytest.approx(6.25)
    # one 1024x1024 high-detail image (765 tokens) + 100 text tokens in, 300 out
    assert cost(865, 300, p) == pytest.approx((865 * 2.50 + 300 * 10.00) / 1e6)
    assert cost(0, 0, p) == 0.0
    with pytest.raises(ValueError):
        cost(-1, 0, p)


def test_azure_worked_example_with_enhancements() -> None:
    # Azure's example (§8): one image with OCR and grounding, 100 input and 100 output tokens = $0.00955
    # on GPT-4 Turbo with Vision. The input also holds the image: 512x512 high = 255 tokens.
    table = load_prices()
    p = table.price_for("gpt-4-vision-preview")
    addons = table.addons["ocr"].cost(1) + table.addons["grounding"].cost(1)
    assert cost(100 + 255, 100, p) + addons == pytest.approx(0.00955)


def test_user_file_adds_and_replaces_entries(tmp_path: Path) -> None:
    f = tmp_path / "prices.toml"
    f.write_text(
        """
[prices."my-vlm"]
input = 0.30
output = 1.20
source = "our contract"
date = 2026-01-15

[prices."GPT-4o"]
input = 2.75
output = 11.00
batch_input = 1.50
batch_output = 5.50
source = "data zone EU"
date = "2026-02-01"

[addons.ocr]
usd = 2.0
per = 1000
source = "test"
date = "2026-02-01"
"""
    )
    table = load_prices(f)
    vlm = table.price_for("my-vlm-2026-01")
    assert (vlm.input, vlm.output, vlm.batch_input, vlm.batch_output) == (0.30, 1.20, 0.15, 0.60)
    assert vlm.batch_derived and vlm.date == "2026-01-15"
    gpt4o = table.price_for("gpt-4o-2024-08-06")
    assert (gpt4o.input, gpt4o.batch_input, gpt4o.batch_derived, gpt4o.source) == (2.75, 1.50, False, "data zone EU")
    assert gpt4o.cached_input is None  # replaced whole, not merged
    assert table.price_for("gpt-4o-2024-05-13").input == 5.00  # the dated built-in entry still wins for its date
    assert table.addons["ocr"].usd == 2.0 and table.addons["grounding"].usd == 1.50
    assert price_for("my-vlm", f).name == "my-vlm"
    with pytest.raises(UnknownModelError, match=str(f).replace("\\", "\\\\")):
        table.price_for("other")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('[prices."m"]\ninput = 1\noutput = 2\nsource = "s"\ndate = "d"\nbatch = 1\n', "unknown key batch"),
        ('[prices."m"]\ninput = 1\nsource = "s"\ndate = "d"\n', "missing output"),
        ('[prices."m"]\ninput = -1\noutput = 2\nsource = "s"\ndate = "d"\n', r"input must be a non-negative"),
        ('[prices."m"]\ninput = "1"\noutput = 2\nsource = "s"\ndate = "d"\n', r"input must be a non-negative"),
        ('[prices."m"]\ninput = 1\noutput = 2\nbatch_input = 1\nsource = "s"\ndate = "d"\n', "both batch_input"),
        ('[prices."m"]\ninput = 1\noutput = 2\nsource = ""\ndate = "d"\n', "source must be a non-empty"),
        ("[addons.ocr]\nusd = 1\nper = 0\nsource = 's'\ndate = 'd'\n", "per must be a positive integer"),
        ("[price]\n", "unknown key price"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_user_files_name_the_problem(tmp_path: Path, body: str, match: str) -> None:
    f = tmp_path / "p.toml"
    f.write_text(body)
    with pytest.raises(SpecError, match=match):
        load_prices(f)


def test_missing_user_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read price file"):
        load_prices(tmp_path / "nope.toml")
