"""Local OCR of a page (Tesseract in-process, digit repair from the page's own glyphs) and the hint text it yields."""

from .hint import format_ocr_hint
from .service import LocalOcrPool, azure_language, check_ocr_setup, vision_key

__all__ = ["LocalOcrPool", "azure_language", "check_ocr_setup", "format_ocr_hint", "vision_key"]
