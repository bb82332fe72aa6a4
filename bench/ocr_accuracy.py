"""Number recall and speed of the local OCR engine on generated financial scans.

    .venv/bin/python bench/ocr_accuracy.py                  # 20 pages, seeds 1000..1019
    .venv/bin/python bench/ocr_accuracy.py --pages 60 --seed 5000 --upscale 2 --misses

Each page comes from ``data/make_financial_samples.py`` (:func:`statement_page`): a statement of
10-15 transactions in a 10-14 px DejaVu font (Sans, Sans Mono, Serif or Sans Condensed), rotated
±1-2°, with noise and JPEG q60 artefacts. Every amount, date and account number printed on it is
ground truth; **number recall** is the share of them found *exactly* in the OCR text, as a whole
token (``1,234.56`` does not count inside ``11,234.56``; a lost minus sign is a miss). It is
printed for the cleaned text (what :class:`batch.ocr.engine.LocalOcr` returns) and for Tesseract's raw
text, overall and by kind, print size and font.

**Seconds per page** is CPU time (``time.process_time``) of the whole read (decode, deskew,
upscale, Tesseract, clean-up) in this single-threaded process, with ``OMP_THREAD_LIMIT=1``;
wall time is printed too. Page generation is not timed.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # before Tesseract loads: one core

import argparse
import io
import json
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "data")]

from make_financial_samples import statement_page  # noqa: E402

from batch.ocr.engine import LocalOcr  # noqa: E402
from batch.ocr.page import DEFAULT_UPSCALE  # noqa: E402

TARGET_RECALL = 0.98
TARGET_SECONDS = 1.0


def found(token: str, text: str) -> bool:
    """``token`` appears in ``text`` as a whole number (not inside a longer one)."""
    return re.search(r"(?<![\d.,-])" + re.escape(token) + r"(?![\d,]|\.\d)", text) is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1000, help="first page's seed; page i uses seed + i")
    ap.add_argument("--upscale", type=float, default=DEFAULT_UPSCALE)
    ap.add_argument("--no-deskew", action="store_true")
    ap.add_argument("--misses", action="store_true", help="print every missed token")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()

    pages = [statement_page(args.seed + i) for i in range(args.pages)]
    # Feed the engine encoded bytes (lossless PNG of the scanned page), decoded inside read().
    blobs = []
    for p in pages:
        buf = io.BytesIO()
        p.image.save(buf, "PNG")
        blobs.append(buf.getvalue())

    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    cpu: list[float] = []
    wall: list[float] = []
    misses: list[str] = []
    with LocalOcr(upscale=args.upscale, deskew=not args.no_deskew) as ocr:
        ocr.read(blobs[0])  # warm-up: first-call allocations are not a per-page cost
        for p, blob in zip(pages, blobs, strict=True):
            t0, w0 = time.process_time(), time.perf_counter()
            result = ocr.read(blob)
            cpu.append(time.process_time() - t0)
            wall.append(time.perf_counter() - w0)
            truth = p.truth
            for kind, tokens in (("amounts", truth.amounts), ("dates", truth.dates), ("accounts", truth.accounts)):
                for tok in tokens:
                    ok, raw_ok = found(tok, result.text), found(tok, result.raw_text)
                    for key in ("all", kind, f"{p.px}px", p.font.removesuffix(".ttf")):
                        hits[key][0] += ok
                        hits[key][1] += 1
                    hits["raw"][0] += raw_ok
                    hits["raw"][1] += 1
                    if not ok:
                        misses.append(f"  {p.px}px {p.font:28s} {tok:18s} skew {result.skew_degrees:+.2f}")

    def ratio(key: str) -> float:
        h, n = hits[key]
        return h / n if n else float("nan")

    figures = {
        "pages": args.pages,
        "tokens": hits["all"][1],
        "number_recall": round(ratio("all"), 4),
        "number_recall_raw_tesseract": round(ratio("raw"), 4),
        "by_kind": {k: round(ratio(k), 4) for k in ("amounts", "dates", "accounts")},
        "by_size": {k: round(ratio(k), 4) for k in sorted(hits) if k.endswith("px")},
        "by_font": {k: round(ratio(k), 4) for k in sorted(hits) if k.startswith("DejaVu")},
        "cpu_seconds_per_page": round(statistics.mean(cpu), 3),
        "cpu_seconds_per_page_max": round(max(cpu), 3),
        "wall_seconds_per_page": round(statistics.mean(wall), 3),
        "upscale": args.upscale,
        "deskew": not args.no_deskew,
    }
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        ok_recall = "ok" if figures["number_recall"] >= TARGET_RECALL else "BELOW TARGET"
        ok_speed = "ok" if figures["cpu_seconds_per_page"] <= TARGET_SECONDS else "ABOVE TARGET"
        print(f"{args.pages} pages, {hits['all'][1]} amounts/dates/account numbers, upscale {args.upscale}")
        print(f"number recall      {figures['number_recall']:.4f}   target >= {TARGET_RECALL}  {ok_recall}")
        print(f"  raw Tesseract    {figures['number_recall_raw_tesseract']:.4f}   (before number clean-up)")
        for group in ("by_kind", "by_size", "by_font"):
            print(f"  {group:16s} " + "  ".join(f"{k} {v:.3f}" for k, v in figures[group].items()))  # type: ignore[attr-defined]
        print(
            f"CPU s/page         {figures['cpu_seconds_per_page']:.3f}    target <= {TARGET_SECONDS}  {ok_speed} "
            f"(max {figures['cpu_seconds_per_page_max']:.3f}; wall {figures['wall_seconds_per_page']:.3f})"
        )
    if args.misses:
        print("\n".join(misses))


if __name__ == "__main__":
    main()
