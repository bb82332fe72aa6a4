"""Cost and outcomes after a run, from the result file alone: terminal tables, JSON, one HTML page."""

from .html import write_html
from .job import build_report
from .render import render_report

__all__ = ["build_report", "render_report", "write_html"]
