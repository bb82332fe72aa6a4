"""A plan's requests made real: each request's images loaded (or rendered) when it is its turn.

:func:`load_requests` yields one list of :class:`Page` per planned request, lazily: memory holds
one request's pages, however long the document. Local images are read and checked by
:func:`batch.inputs.load_image` (re-encoded when the service would not take them); document pages
are rendered by :func:`batch.inputs.render_pages`; video frames are decoded one at a time by
:func:`batch.inputs.decode_frames`, each carrying its time label; a ``data:`` URL is decoded (its base64 checked
whole, and its bytes kept for OCR); an http(s) image is passed by URL, never downloaded.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Generator
from dataclasses import dataclass

from PIL import Image

from ..core import ImageError, JobSpec
from ..inputs import data_url_bytes, decode_frames, frame_label, load_image, render_pages
from .request import RequestPlan

__all__ = ["ImageRef", "Page", "load_requests"]


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One image as the request carries it: the URL (inline data URL or http(s)) and its size.

    A ``bytes`` URL is an inline ``data:`` URL in ASCII (:func:`batch.inputs.data_url_bytes`),
    spliced into the body as it is."""

    url: str | bytes
    size: tuple[int, int]
    label: str | None = None  # a text part sent just before the image (a video frame's time)


@dataclass(frozen=True, slots=True)
class Page:
    """One image a request carries. ``number`` is the 1-based document page (None for an image row);
    ``data`` the encoded bytes (None for an http(s) image, which is never downloaded); ``image`` the
    decoded page of a document (for local OCR); ``note`` what loading did (re-encoding, lower DPI)."""

    number: int | None
    ref: ImageRef
    data: bytes | None
    image: Image.Image | None
    note: str | None = None
    ocr_text: str | None = None

    def read_as(self, text: str) -> Page:
        """This page with its OCR text (and its decoded pixels let go)."""
        return Page(self.number, self.ref, self.data, None, self.note, text)


def load_requests(plan: RequestPlan, spec: JobSpec, data: bytes | None = None) -> Generator[list[Page], None, None]:
    """Each planned request's pages, loaded when the iterator gets to it. ``data``: a local image
    file's bytes as the planner read them (:meth:`~batch.plan.Planner.plan_and_read`), not read again."""
    if plan.source == "remote":
        yield [Page(None, ImageRef(plan.ref, plan.requests[0].images[0].size), None, None)]
    elif plan.source == "inline":
        yield [Page(None, ImageRef(plan.ref, plan.requests[0].images[0].size), _inline_bytes(plan.ref), None)]
    elif plan.source == "image":
        assert plan.path is not None
        img, data = load_image(plan.path, verify=spec.input.verify_images, data=data), None
        yield [Page(None, ImageRef(data_url_bytes(img), (img.width, img.height)), img.data, None, img.reencoded)]
    elif plan.source == "video":
        yield from _video(plan)
    else:
        yield from _document(plan, spec)


def _video(plan: RequestPlan) -> Generator[list[Page], None, None]:
    """A video's frames, decoded one at a time at the plan's times and size (the plan's size,
    not the decoder's, so the image tokens billed are the ones planned)."""
    assert plan.path is not None
    planned = [im for r in plan.requests for im in r.images]
    times = [im.time_s if im.time_s is not None else 0.0 for im in planned]
    frames = decode_frames(plan.path, times, planned[0].size)
    try:
        for request in plan.requests:
            group: list[Page] = []
            for im in request.images:
                frame = next(frames)
                url = b"data:image/jpeg;base64," + binascii.b2a_base64(frame.data, newline=False)
                label = frame_label(frame.time_s)
                group.append(Page(im.page, ImageRef(url, (frame.width, frame.height), label), frame.data, None))
            yield group
    finally:
        frames.close()  # closes the container now, also when the row is left early


def _document(plan: RequestPlan, spec: JobSpec) -> Generator[list[Page], None, None]:
    assert plan.path is not None
    rendered = render_pages(plan.path, [n for r in plan.requests for n in r.pages], spec.documents.dpi)
    for request in plan.requests:
        group: list[Page] = []
        for rp in rendered:
            url = b"".join(
                (b"data:", rp.mime.encode("ascii"), b";base64,", binascii.b2a_base64(rp.data, newline=False))
            )
            group.append(Page(rp.page, ImageRef(url, (rp.width, rp.height)), rp.data, rp.image, rp.note))
            if len(group) == len(request.images):
                break
        yield group


def _inline_bytes(url: str) -> bytes:
    """A data URL's image bytes, its base64 checked whole (the plan read only its header)."""
    try:
        return base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError, IndexError):
        raise ImageError("data URL holds invalid base64", code="bad_data_url") from None
