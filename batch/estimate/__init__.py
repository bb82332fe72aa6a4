"""Cost and time before a run: one streamed pass over the manifest, no API call."""

from .job import estimate_job
from .render import render_estimate

__all__ = ["estimate_job", "render_estimate"]
