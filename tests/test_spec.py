"""Job specs: the shipped jobs load, every mistake is named, keys never come from the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch.core.errors import SpecError
from batch.core.overrides import apply_endpoint_env, with_overrides
from batch.core.spec import load_spec
from batch.inputs import Manifest

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = """
[input]
manifest = "m.parquet"
[prompt]
user = "Describe."
[endpoint]
deployment = "gpt-4o"
[output]
path = "out/r.parquet"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "job.toml"
    p.write_text(text)
    return p


# What each shipped job says, as parsed: (manifest, output, detail, max_tokens, tpm, OCR mode, latency).
SHIPPED = {
    "caption-azure.toml": ("data/manifest.parquet", "out/captions.parquet", "low", 120, 450000, "off", "realistic"),
    "caption-batch.toml": ("data/manifest.parquet", "out/caption-batch.parquet", "auto", 120, None, "off", "zero"),
    # a pool: limits per deployment, none in [limits]
    "caption-pool.toml": ("data/manifest.parquet", "out/caption-pool.parquet", "auto", 120, None, "off", "realistic"),
    "caption-sample.toml": (
        "data/manifest.parquet",
        "out/caption-sample.parquet",
        "auto",
        120,
        60000,
        "off",
        "realistic",
    ),
    "extract-statements.toml": (
        "data/financial/manifest.parquet",
        "out/extract-statements.parquet",
        "high",
        4000,
        450000,
        "local",
        "zero",
    ),
    "ocr-financial.toml": (
        "data/financial/manifest.parquet",
        "out/ocr-financial.parquet",
        "high",
        800,
        450000,
        "local",
        "zero",
    ),
    "video-sample.toml": (
        "data/video/manifest.parquet",
        "out/video-sample.parquet",
        "auto",
        120,
        60000,
        "off",
        "zero",
    ),
}


def test_every_shipped_job_is_pinned_here() -> None:
    assert sorted(p.name for p in (ROOT / "jobs").glob("*.toml")) == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "jobs").glob("*.toml")))
def test_shipped_jobs_are_valid(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    spec = load_spec(ROOT / "jobs" / name)
    assert spec.input.manifest.is_absolute()
    manifest, output, detail, max_tokens, tpm, ocr_mode, latency = SHIPPED[name]
    assert spec.source == ROOT / "jobs" / name
    assert spec.input.manifest == ROOT / manifest and spec.input.manifest.is_file()
    assert spec.input.base_dir == spec.input.manifest.parent
    assert spec.output.path == ROOT / output
    assert spec.endpoint.kind == "azure"
    assert spec.endpoint.model == "gpt-4o" and spec.endpoint.deployment == "gpt-4o"
    assert spec.prompt.user.strip() and spec.prompt.system.strip()
    assert spec.prompt.detail == detail and spec.prompt.max_tokens == max_tokens
    assert spec.limits.tpm == tpm
    assert spec.ocr.mode == ocr_mode
    assert spec.emulator.latency == latency
    if name == "caption-azure.toml":  # a real deployment: its URL is written in, so no emulator
        assert spec.endpoint.url == "https://YOUR-RESOURCE.openai.azure.com" and not spec.uses_embedded_emulator
    elif name == "caption-pool.toml":  # two deployments on two resources, each key its own variable
        assert [(e.url, e.deployment, e.api_key_env, e.tpm, e.rpm) for e in spec.deployments] == [
            ("https://YOUR-EAST-RESOURCE.openai.azure.com", "gpt-4o", "AZURE_OPENAI_KEY_EAST", 450000, None),
            ("https://YOUR-WEST-RESOURCE.openai.azure.com", "gpt-4o-west", "AZURE_OPENAI_KEY_WEST", 150000, 900),
        ]
        assert spec.pooled_limits == (600000, 2700 + 900) and not spec.uses_embedded_emulator
    else:  # runs out of the box on the embedded emulator
        assert spec.endpoint.url is None and spec.uses_embedded_emulator
    if ocr_mode == "local":
        assert spec.ocr.language == "en" and spec.ocr.hint
        assert spec.documents.dpi == 200 and spec.documents.requests == "per-page"
    assert spec.run.route == ("batch" if name == "caption-batch.toml" else "online")
    info = Manifest(spec.input.manifest, spec.input.columns, spec.input.batch_rows).check()
    assert info.path == spec.input.manifest and info.num_rows > 0
    assert {"id", "image"} <= set(info.columns)


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, MINIMAL))
    assert spec.input.manifest == tmp_path / "m.parquet"
    assert spec.input.base_dir == tmp_path
    assert spec.output.path == tmp_path / "out" / "r.parquet"
    assert spec.endpoint.model == "gpt-4o" and spec.endpoint.kind == "azure"
    assert spec.endpoint.api_key_env == "AZURE_OPENAI_API_KEY"
    assert spec.prompt.detail == "auto" and spec.prompt.max_tokens == 300
    assert spec.uses_embedded_emulator


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('[limits]\ntpm = "lots"\n', "[limits].tpm: expected integer, got str 'lots'"),
        ("[limits]\ntpm = 0\n", "[limits].tpm: 0 is out of range (minimum 1)"),
        (
            "[limits]\nburst = 3\n",
            "unknown key burst in [limits]; allowed keys: concurrency, max_attempts, rpm, tpm",
        ),
        ("[extra]\nx = 1\n", "unknown key extra in the job"),
        ("[input.columns]\nimg = 'x'\n", "unknown key img in [input.columns]"),
    ],
)
def test_errors_name_the_field_and_what_is_allowed(tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, MINIMAL + extra))
    assert expected in str(info.value)


def test_enum_error_lists_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, MINIMAL.replace('user = "Describe."', 'user = "D"\ndetail = "medium"')))
    assert "[prompt].detail: 'medium' is not allowed; allowed values: low, high, auto" in str(info.value)


def test_a_key_in_the_job_file_is_refused(tmp_path: Path) -> None:
    text = MINIMAL.replace('deployment = "gpt-4o"', 'deployment = "gpt-4o"\napi_key = "sk-secret"')
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    assert "unknown key api_key in [endpoint]" in str(info.value)
    assert "sk-secret" not in str(info.value)


def test_missing_sections_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="missing required key 'output'"):
        load_spec(write(tmp_path, MINIMAL.replace('[output]\npath = "out/r.parquet"', "")))
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(write(tmp_path, "[input\n"))
    with pytest.raises(SpecError, match="job file not found"):
        load_spec(tmp_path / "nope.toml")


def test_overrides_are_validated(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, MINIMAL))
    s2 = with_overrides(spec, tpm=1000, endpoint="https://x.openai.azure.com", deployment="d2")
    assert s2.limits.tpm == 1000 and s2.endpoint.url == "https://x.openai.azure.com"
    assert s2.limits.effective_rpm == 6
    with pytest.raises(SpecError, match="--endpoint"):
        with_overrides(spec, endpoint="ftp://nope")


def test_endpoint_from_environment(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, MINIMAL))
    s2 = apply_endpoint_env(spec, {"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"})
    assert s2.endpoint.url == "https://r.openai.azure.com" and not s2.uses_embedded_emulator
    assert apply_endpoint_env(spec, {"OPENAI_BASE_URL": "https://x"}).uses_embedded_emulator


def test_schema_file_in_schemas_is_the_package_schema() -> None:
    a = json.loads((ROOT / "schemas" / "job.schema.json").read_text())
    b = json.loads((ROOT / "batch" / "data" / "job.schema.json").read_text())
    assert a == b


def test_entra_auth_without_the_extra_says_how_to_install(tmp_path: Path) -> None:
    pytest.importorskip("batch.send.http")
    from batch.send.auth import credential_for

    try:
        import azure.identity  # noqa: F401

        pytest.skip("azure-identity is installed here")
    except ImportError:
        pass
    spec = load_spec(write(tmp_path, MINIMAL.replace('deployment = "gpt-4o"', 'deployment = "d"\nauth = "entra"')))
    with pytest.raises(SpecError, match=r"pip install 'vision-batch\[entra\]'"):
        credential_for(spec.endpoint, {})


def test_missing_key_names_the_variable(tmp_path: Path) -> None:
    from batch.send.auth import credential_for

    spec = load_spec(write(tmp_path, MINIMAL))
    with pytest.raises(SpecError, match="set the environment variable AZURE_OPENAI_API_KEY"):
        credential_for(spec.endpoint, {})
