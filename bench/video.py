"""Issue-18 benchmark: a video row's memory stays flat whatever the video's length, and decoding speed.

    .venv/bin/python bench/video.py [--minutes 10] [--size 1280x720] [--fps 25] [--clip PATH]

Generates (with PyAV, libx264 ultrafast, a keyframe every 10 s) a clip of a sliding gradient and
a moving block, so every frame differs, unless ``--clip`` names one.
Then, each in a fresh subprocess (peak RSS = VmHWM from ``/proc/self/status``), a video row goes
through the run's own path without the network: planned (:class:`batch.plan.Planner`), its frames
decoded request by request (:func:`batch.plan.load_requests`) and each request's body composed
(:class:`batch.plan.RequestBuilder`):

- the first minute at 1 fps against the whole clip at 1 fps: peak RSS of both, ratio (target <= 1.1);
- the whole clip sampled evenly to 60 frames (a seek per frame);
- the whole clip at 4 fps (the upper end of OpenAI's advice).

Printed per case: frames sent, requests, peak RSS, CPU seconds, frames sent per CPU second
(decoding, scaling, JPEG and base64 included), body MB; then PyAV alone decoding every frame of
the clip (decoded frames per CPU second: the floor under dense sampling, which decodes them all).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT  # noqa: E402

CHILD = r"""
import json, sys, time
from pathlib import Path
from batch.core import WorkItem, lookup_model
from batch.core.spec import load_spec
from batch.plan import Planner, RequestBuilder, RequestPlan, load_requests

spec = load_spec(sys.argv[1])
model = lookup_model("gpt-4o")
planner, builder = Planner(spec, model), RequestBuilder(spec, model, None)
cpu0, wall0 = time.process_time(), time.perf_counter()
plan = planner.plan(WorkItem(0, "clip", sys.argv[2]))
assert isinstance(plan, RequestPlan), plan
frames = body_bytes = 0
for pages in load_requests(plan, spec):
    body_bytes += len(builder.compose(plan, [p.ref for p in pages]).body)
    frames += len(pages)
cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
times = [im.time_s for r in plan.requests for im in r.images]
print(json.dumps({"frames": frames, "requests": len(plan.requests), "cpu": cpu, "wall": wall,
                  "hwm_kb": hwm, "first": times[0], "last": times[-1], "body_mb": body_bytes / 1e6}))
"""


RAW = r"""
import json, sys, time, av
cpu0 = time.process_time()
with av.open(sys.argv[1]) as c:
    n = sum(1 for _ in c.decode(c.streams.video[0]))
cpu = time.process_time() - cpu0
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"frames": n, "cpu": cpu, "hwm_kb": hwm}))
"""


def make_clip(path: Path, minutes: float, size: tuple[int, int], fps: int) -> None:
    w, h = size
    # A gradient sliding sideways and a block crossing it, its colour changing every frame: every
    # frame differs, the file stays camera-sized, and encoding keeps up on a small machine.
    wide = np.tile(np.linspace(0, 255, w, dtype=np.uint8)[None, :, None], (h, 2, 3))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "g": str(fps * 10)})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(int(minutes * 60 * fps)):
            x = (i * 4) % w
            frame = np.ascontiguousarray(wide[:, x : x + w])
            bx, by = (i * 5) % (w - w // 5), (i * 3) % (h - h // 5)
            frame[by : by + h // 5, bx : bx + w // 5] = (i % 256, (i * 3) % 256, 255 - i % 256)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def run_case(tmp: Path, clip: Path, name: str, video: str) -> dict[str, Any]:
    job = tmp / f"{name}.toml"
    job.write_text(
        f'[input]\nmanifest = "{tmp / "m.parquet"}"\nbase_dir = "{clip.parent}"\n'
        f'[prompt]\nuser = "Describe the clip."\n[video]\n{video}\nmax_frames = 100000\n'
        f'[endpoint]\ndeployment = "gpt-4o"\n[output]\npath = "{tmp / "out.parquet"}"\n'
    )
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(job), clip.name], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--clip", type=Path, help="an existing video instead of a generated one")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clip = args.clip.resolve() if args.clip else tmp / "clip.mp4"
        if not args.clip:
            t0 = time.perf_counter()
            make_clip(clip, args.minutes, (w, h), args.fps)
            print(
                f"clip: {args.minutes:g} min {w}x{h} {args.fps} fps H.264, {clip.stat().st_size / 1e6:.1f} MB, "
                f"made in {time.perf_counter() - t0:.0f} s"
            )
        with av.open(str(clip)) as c:
            s = c.streams.video[0]
            duration = float(s.duration * s.time_base) if s.duration and s.time_base else c.duration / av.time_base
        cases = {
            "first minute, 1 fps": "fps = 1\nend = 60",
            "whole clip, 1 fps": "fps = 1",
            "whole clip, 60 frames": "frames = 60",
            "whole clip, 4 fps": "fps = 4",
        }
        print(
            f"{'case':<24} {'frames':>6} {'reqs':>5} {'peak RSS':>9} {'CPU s':>7} {'frames/CPU s':>12} {'body MB':>8}"
        )
        results = {}
        for name, video in cases.items():
            r = run_case(tmp, clip, name.replace(" ", "_").replace(",", ""), video)
            results[name] = r
            print(
                f"{name:<24} {r['frames']:>6} {r['requests']:>5} {r['hwm_kb'] / 1024:>7.0f}MB {r['cpu']:>7.1f} "
                f"{r['frames'] / r['cpu']:>12.1f} {r['body_mb']:>8.1f}"
            )
        raw = json.loads(
            subprocess.run([sys.executable, "-c", RAW, str(clip)], capture_output=True, text=True, check=True).stdout
        )
        print(
            f"{'PyAV decode, every frame':<24} {raw['frames']:>6} {'-':>5} {raw['hwm_kb'] / 1024:>7.0f}MB "
            f"{raw['cpu']:>7.1f} {raw['frames'] / raw['cpu']:>12.1f} {'-':>8}"
        )
        small, large = results["first minute, 1 fps"], results["whole clip, 1 fps"]
        print(
            f"\nvideo length {duration / 60:.1f} min; peak RSS whole clip / first minute = "
            f"{large['hwm_kb'] / small['hwm_kb']:.3f} (target <= 1.1)"
        )


if __name__ == "__main__":
    main()
