"""Make the bundled sample images and manifest (deterministic: same bytes on every run).

    python data/make_samples.py            # writes data/images/* and data/manifest.parquet

Mixed sizes (64 px icons to 2400 px scans), formats (JPEG, PNG, WebP) and detail levels, so the
sample run exercises low/high/auto token maths and several encodings.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZES = [
    (64, 64),
    (320, 240),
    (512, 512),
    (640, 480),
    (800, 600),
    (1024, 768),
    (1024, 1024),
    (1280, 720),
    (1600, 1200),
    (2048, 1536),
    (768, 2048),
    (2400, 1800),
]
FORMATS = [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")]
SHAPES = ["circle", "square", "triangle", "stripes"]
PALETTE = [(220, 60, 60), (60, 160, 80), (50, 90, 200), (230, 180, 40), (140, 70, 170), (30, 30, 30)]


def draw(size: tuple[int, int], shape: str, color: tuple[int, int, int], rng: random.Random) -> Image.Image:
    w, h = size
    bg = tuple(255 - c // 4 for c in color)
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    m = min(w, h)
    cx, cy, r = w // 2 + rng.randint(-w // 8, w // 8), h // 2 + rng.randint(-h // 8, h // 8), m // 3
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    else:
        step = max(4, m // 12)
        for x in range(0, w, step * 2):
            d.rectangle([x, 0, x + step, h], fill=color)
    return img


def main() -> None:
    rng = random.Random(20261123)
    out = HERE / "images"
    out.mkdir(exist_ok=True)
    rows: dict[str, list[object]] = {k: [] for k in ("id", "image", "detail", "prompt", "max_tokens", "label")}
    details = ["low", "high", "auto", None]
    for i in range(36):
        size = SIZES[i % len(SIZES)]
        fmt, ext = FORMATS[i % len(FORMATS)]
        shape = SHAPES[i % len(SHAPES)]
        color = PALETTE[i % len(PALETTE)]
        name = f"img-{i + 1:03d}.{ext}"
        img = draw(size, shape, color, rng)
        kw = {"quality": 80} if fmt in ("JPEG", "WEBP") else {"optimize": True}
        img.save(out / name, fmt, **kw)
        rows["id"].append(f"img-{i + 1:03d}")
        rows["image"].append(f"images/{name}")
        rows["detail"].append(details[i % 4])
        rows["prompt"].append("What shape is shown, and what colour is it?" if i % 5 == 0 else None)
        rows["max_tokens"].append(40 if i % 7 == 0 else None)
        rows["label"].append(f"{shape} {size[0]}x{size[1]}")
    table = pa.table(
        rows,
        schema=pa.schema(
            [
                ("id", pa.string()),
                ("image", pa.string()),
                ("detail", pa.string()),
                ("prompt", pa.string()),
                ("max_tokens", pa.int32()),
                ("label", pa.string()),
            ]
        ),
    )
    pq.write_table(table, HERE / "manifest.parquet")
    print(f"wrote {len(rows['id'])} images and {HERE / 'manifest.parquet'}")


if __name__ == "__main__":
    main()
