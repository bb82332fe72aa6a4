"""What a run reads: the manifest (streamed), images and their structural walk, documents and
their pages, header probes."""

from .documents import (
    DocumentKind,
    RenderedPage,
    document_pages,
    is_document,
    page_count,
    page_sizes,
    parse_pages,
    render_pages,
)
from .images import MAX_BYTES, data_url_bytes, load_image, probe_image, to_data_url
from .manifest import Manifest, ManifestInfo
from .probe import FileKind, FileProbe, data_url_size, probe_file, webp_header_size
from .video import (
    VIDEO_SUFFIXES,
    VideoFrame,
    VideoInfo,
    decode_frames,
    frame_label,
    frame_size,
    probe_video,
    sample_times,
)

__all__ = [
    "MAX_BYTES",
    "VIDEO_SUFFIXES",
    "VideoFrame",
    "VideoInfo",
    "decode_frames",
    "frame_label",
    "frame_size",
    "probe_video",
    "sample_times",
    "DocumentKind",
    "FileKind",
    "FileProbe",
    "RenderedPage",
    "document_pages",
    "probe_file",
    "Manifest",
    "ManifestInfo",
    "data_url_bytes",
    "data_url_size",
    "is_document",
    "load_image",
    "page_count",
    "page_sizes",
    "parse_pages",
    "probe_image",
    "render_pages",
    "to_data_url",
    "webp_header_size",
]
