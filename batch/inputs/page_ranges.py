"""A row's ``pages`` value (``"1-3,7"``, ``"5-"``) as page numbers: the one place it is parsed."""

from __future__ import annotations

import re

from ..core import RowError

__all__ = ["parse_pages"]

_PAGES_ITEM = re.compile(r"^(\d+)(?:\s*-\s*(\d*))?$")


def parse_pages(spec: str | None, n_pages: int) -> list[int]:
    """1-based page numbers from ``"1-3,7"``; ``None`` or blank means every page.

    Items are single pages (``7``) or ranges (``1-3``; ``5-`` runs to the last page), separated
    by commas, in the order given; a page named twice is kept once. Raises
    :class:`~batch.core.errors.RowError` (``bad_pages``) for anything else, page 0, a reversed
    range, or a page beyond the document's ``n_pages``.
    """
    if spec is None or not spec.strip():
        return list(range(1, n_pages + 1))
    pages: list[int] = []
    seen: set[int] = set()
    for raw in spec.split(","):
        item = raw.strip()
        m = _PAGES_ITEM.match(item)
        if not m:
            what = "an empty item" if not item else f"{item!r}"
            raise RowError(
                f'bad pages {spec!r}: {what} is not a page or range (use e.g. "1-3,7" or "5-")', code="bad_pages"
            )
        first = int(m.group(1))
        last = first if m.group(2) is None else (int(m.group(2)) if m.group(2) else n_pages)
        if first == 0 or last == 0:
            raise RowError(f"bad pages {spec!r}: pages are numbered from 1", code="bad_pages")
        if last < first:
            raise RowError(f"bad pages {spec!r}: range {item!r} is reversed (write {last}-{first})", code="bad_pages")
        if last > n_pages:
            raise RowError(
                f"bad pages {spec!r}: page {last} is beyond the document's {n_pages} page{'s' * (n_pages != 1)}",
                code="bad_pages",
            )
        for p in range(first, last + 1):
            if p not in seen:
                seen.add(p)
                pages.append(p)
    return pages
