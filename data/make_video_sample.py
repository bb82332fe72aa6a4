"""Make the bundled sample video and its manifest with PyAV itself (no other tool needed).

    python data/make_video_sample.py       # writes data/video/colours.mp4 and data/video/manifest.parquet

An 8-second H.264 MP4, 320x180 at 10 frames a second, a different solid colour each second. A
frame is sent as an image, and the emulator's answer names each image it got (size, format,
sha256): sampled at 1 frame a second, the 8 frames are 8 different images, and a colour used
twice would give the same digest twice, so the answers show which frame went where and in what
order. ``jobs/video-sample.toml`` captions it.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent / "video"
COLOURS = [
    ("red", (220, 30, 30)),
    ("orange", (240, 140, 20)),
    ("yellow", (230, 220, 20)),
    ("green", (30, 200, 40)),
    ("cyan", (20, 210, 220)),
    ("blue", (20, 40, 230)),
    ("violet", (150, 40, 210)),
    ("grey", (128, 128, 128)),
]
SIZE = (320, 180)
FPS = 10


def write_clip(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"threads": "1"})
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for i in range(len(COLOURS) * FPS):
            pixels = np.empty((SIZE[1], SIZE[0], 3), np.uint8)
            pixels[:] = COLOURS[i // FPS][1]
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    write_clip(HERE / "colours.mp4")
    colours = ", ".join(name for name, _ in COLOURS)
    table = pa.table(
        {
            "id": ["colours"],
            "image": ["colours.mp4"],
            "prompt": [f"Each frame is one solid colour ({colours}, one a second). Name the colours in order."],
        }
    )
    pq.write_table(table, HERE / "manifest.parquet")


if __name__ == "__main__":
    main()
