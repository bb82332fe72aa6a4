"""One manifest row turned into a typed request plan: what it sends, in how many requests, at what token estimate."""

from .body import ImageRef, PreparedRequest, RequestBuilder, RowPlan, data_url_size

__all__ = ["ImageRef", "PreparedRequest", "RequestBuilder", "RowPlan", "data_url_size"]
