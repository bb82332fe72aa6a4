"""Test helpers: real Pillow images and real Parquet manifests written to a folder."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

API_KEY = "sk-test-KEEP-THIS-SECRET-7f3a9c"


def make_image(path: Path, size: tuple[int, int], seed: int, fmt: str = "PNG") -> str:
    """A distinct picture per seed; returns the sha256 of the file's bytes."""
    img = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    d = ImageDraw.Draw(img)
    d.rectangle([seed % size[0] // 2, 0, size[0] // 2 + seed % 17, size[1] // 3], fill=(255, 255, 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt)
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Sample:
    """A folder with n images and a manifest; ``digests[i]`` is row i's image sha256."""

    def __init__(
        self,
        root: Path,
        n: int,
        *,
        details: list[str | None] | None = None,
        extra: dict[str, list[Any]] | None = None,
    ) -> None:
        self.root = root
        self.digests: list[str] = []
        self.images: list[str] = []
        formats = [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")]
        for i in range(n):
            fmt, ext = formats[i % 3]
            rel = f"img/{i:04d}.{ext}"
            self.digests.append(make_image(root / rel, (64 + 16 * (i % 9), 48 + 8 * (i % 5)), i, fmt))
            self.images.append(rel)
        cols: dict[str, list[Any]] = {"id": [f"row-{i}" for i in range(n)], "image": list(self.images)}
        if details is not None:
            cols["detail"] = details
        cols.update(extra or {})
        self.manifest = root / "manifest.parquet"
        pq.write_table(pa.table(cols), self.manifest)

    def job(
        self,
        url: str | None,
        *,
        kind: str = "azure",
        deployment: str = "gpt-4o",
        model: str = "gpt-4o",
        extra: str = "",
        out: str = "out/results.parquet",
        max_tokens: int = 50,
    ) -> Path:
        lines = [
            "[input]",
            f'manifest = "{self.manifest}"',
            "[prompt]",
            'system = "You caption images."',
            'user = "Describe the image."',
            f"max_tokens = {max_tokens}",
            "[endpoint]",
            f'kind = "{kind}"',
            f'deployment = "{deployment}"',
            f'model = "{model}"',
            'api_key_env = "TEST_API_KEY"',
        ]
        if url:
            lines.append(f'url = "{url}"')
        lines += ["[output]", f'path = "{self.root / out}"', "flush_rows = 7", "flush_seconds = 0.2"]
        path = self.root / "job.toml"
        path.write_text("\n".join(lines) + "\n" + extra)
        return path


class FakeTime:
    """A clock that moves only when the code under test sleeps (for limiters and pacers)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, d: float) -> None:
        self.t += max(d, 0.0)
        await asyncio.sleep(0)
