"""Test videos made with PyAV: solid-colour clips whose frames prove their order, and the bad
files a video row must turn into error rows (truncated, unknown codec, empty, audio only, fake)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

RED, GREEN, BLUE, YELLOW = (220, 30, 30), (30, 200, 40), (20, 40, 230), (230, 220, 20)
# Colours by second with repeats: the frames' image digests must repeat in the same pattern.
PATTERN = [RED, GREEN, RED, BLUE, BLUE, GREEN]


def write_clip(
    path: Path,
    colours: list[tuple[int, int, int]],
    *,
    fps: int = 5,
    size: tuple[int, int] = (96, 64),
    codec: str = "libx264",
    fmt: str | None = None,
) -> Path:
    """One second of each colour, ``fps`` frames a second."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(len(colours) * fps):
            pixels = np.empty((size[1], size[0], 3), np.uint8)
            pixels[:] = colours[i // fps]
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_truncated(path: Path) -> Path:
    """An MP4 cut in half: its index (written last) is gone."""
    write_clip(path, PATTERN)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_unknown_codec(path: Path) -> Path:
    """An MP4 whose video sample entry names a codec no decoder knows."""
    write_clip(path, PATTERN)
    data = path.read_bytes()
    assert data.count(b"avc1") >= 1
    path.write_bytes(data.replace(b"avc1", b"zzv9"))
    return path


def write_empty(path: Path) -> Path:
    """A video file with its header written and no frame (Matroska: a stream, MP4: none)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height = 96, 64
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
    return path


def write_audio_only(path: Path) -> Path:
    """An MP4 with one second of a tone and no video stream."""
    rate = 8000
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        t = np.arange(rate) / rate
        tone = (np.sin(2 * np.pi * 440 * t) * 0.3).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.time_base = Fraction(1, rate)
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_fake(path: Path) -> Path:
    """A text file named like a video."""
    path.write_text("this is not a video, whatever its name says\n" * 20)
    return path
