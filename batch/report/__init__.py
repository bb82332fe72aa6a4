"""Cost and outcomes after a run, from the result file alone: terminal tables, JSON, one HTML page."""

from .html import write_html
from .job import build_report
from .render import render_text

__all__ = ["build_report", "render_text", "write_html"]
