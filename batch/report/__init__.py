"""Cost and outcomes after a run, from the result file alone: terminal tables, JSON, one HTML page."""

from .errors import failed_rows, write_failed_rows
from .html import write_html
from .job import build_report
from .render import render_report

__all__ = ["build_report", "failed_rows", "render_report", "write_failed_rows", "write_html"]
