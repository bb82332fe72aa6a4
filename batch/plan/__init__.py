"""One manifest row turned into a typed request plan (what it sends, in how many requests, at what
token estimate), then made real: its pages loaded and each request's body composed."""

from .body import PreparedRequest, RequestBuilder
from .load import ImageRef, Page, load_requests
from .planner import REMOTE_IMAGE_SIZE, OcrAccess, Planner, pages_per_request, row_ocr_mode
from .request import PlannedImage, PlannedRequest, Refusal, RequestPlan, SourceKind, TokenField
from .schema_check import format_tokens, response_format
from .video import label_tokens

__all__ = [
    "REMOTE_IMAGE_SIZE",
    "ImageRef",
    "OcrAccess",
    "Page",
    "PlannedImage",
    "PlannedRequest",
    "Planner",
    "PreparedRequest",
    "Refusal",
    "RequestBuilder",
    "RequestPlan",
    "SourceKind",
    "TokenField",
    "format_tokens",
    "label_tokens",
    "load_requests",
    "pages_per_request",
    "response_format",
    "row_ocr_mode",
]
