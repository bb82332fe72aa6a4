"""Frame sampling rules and the [video] job section, without a run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from batch.core import BatchError, VideoSpec, WorkItem, lookup_model
from batch.core.errors import SpecError
from batch.core.spec import load_spec
from batch.inputs import VideoInfo, decode_frames, frame_size, probe_video, sample_times
from batch.inputs.video import claims_video
from batch.plan import Planner, Refusal, RequestPlan
from tests import videos

INFO = VideoInfo(1920, 1080, 10.0, 25.0, "h264")

JOB = """
[input]
manifest = "m.parquet"
[prompt]
user = "Describe."
[endpoint]
deployment = "gpt-4o"
[output]
path = "out/r.parquet"
"""


def test_fps_samples_from_start_every_step() -> None:
    assert sample_times(INFO, VideoSpec(), "v") == [float(k) for k in range(10)]  # default 1 fps
    assert sample_times(INFO, VideoSpec(fps=2, start_s=8.0), "v") == [8.0, 8.5, 9.0, 9.5]
    assert sample_times(INFO, VideoSpec(fps=0.25, end_s=9.0), "v") == [0.0, 4.0, 8.0]
    assert sample_times(INFO, VideoSpec(fps=1, start_s=2.0, end_s=50.0), "v")[-1] == 9.0  # end past the video


def test_a_frame_count_is_spread_evenly() -> None:
    assert sample_times(INFO, VideoSpec(frames=5), "v") == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert sample_times(INFO, VideoSpec(frames=2, start_s=2.0, end_s=4.0), "v") == [2.5, 3.5]


@pytest.mark.parametrize(("start", "end"), [(10.0, None), (12.0, None), (5.0, 5.0), (6.0, 3.0)])
def test_an_empty_range_is_a_row_error(start: float, end: float | None) -> None:
    with pytest.raises(BatchError) as err:
        sample_times(INFO, VideoSpec(start_s=start, end_s=end), "v.mp4")
    assert err.value.code == "video_bad_range" and "v.mp4" in str(err.value)


def test_frames_are_scaled_down_never_up() -> None:
    assert frame_size(INFO, 512) == (512, 288)
    assert frame_size(replace(INFO, width=720, height=1280), 768) == (432, 768)
    assert frame_size(INFO, 4096) == (1920, 1080)
    assert frame_size(INFO, None) == (1920, 1080)


def test_a_video_is_known_by_name_or_header() -> None:
    assert claims_video(Path("x.MKV"), b"")
    assert claims_video(Path("x.bin"), b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00")
    assert claims_video(Path("x.bin"), b"RIFF\x00\x00\x00\x00AVI LIST")
    assert not claims_video(Path("x.avif"), b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00")
    assert not claims_video(Path("x.png"), b"\x89PNG\r\n\x1a\n")


def test_metadata_is_read_without_decoding_and_frames_come_one_at_a_time(tmp_path: Path) -> None:
    clip = videos.write_clip(tmp_path / "c.webm", videos.PATTERN, size=(160, 90), codec="libvpx-vp9")
    info = probe_video(clip)
    assert (info.width, info.height, info.duration_s, info.fps, info.codec) == (160, 90, 6.0, 5.0, "vp9")
    frames = decode_frames(clip, [0.0, 2.0, 5.0], (80, 45))
    first = next(frames)
    assert (first.time_s, first.width, first.height, first.data[:2]) == (0.0, 80, 45, b"\xff\xd8")
    assert [f.time_s for f in frames] == [2.0, 5.0]


def test_the_video_section_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text(JOB + '[video]\nframes = 12\nstart = 1.5\nend = 30\nlong_side = 768\ndetail = "high"\n')
    v = load_spec(path).video
    assert (v.frames, v.fps, v.start_s, v.end_s, v.long_side, v.detail, v.max_frames) == (
        12,
        None,
        1.5,
        30.0,
        768,
        "high",
        1800,
    )
    path.write_text(JOB + "[video]\nfps = 1\nframes = 3\nkeyframes = true\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert "keyframes" in str(err.value) and "video" in str(err.value)


def test_the_plan_lists_each_requests_frames_and_refuses_the_retired_enhancement(tmp_path: Path) -> None:
    videos.write_clip(tmp_path / "c.mp4", videos.PATTERN, size=(1280, 720))
    path = tmp_path / "job.toml"
    path.write_text(JOB + "[video]\nfps = 2\nframes_per_request = 5\n")
    spec = load_spec(path)
    planner = Planner(spec, lookup_model("gpt-4o"))
    plan = planner.plan(WorkItem(0, "c", "c.mp4"))
    assert isinstance(plan, RequestPlan) and plan.source == "video" and plan.detail == "low"
    assert [len(r.images) for r in plan.requests] == [5, 5, 2]
    assert [im.time_s for im in plan.requests[2].images] == [5.0, 5.5]
    assert {im.size for r in plan.requests for im in r.images} == {(512, 288)}
    assert plan.image_tokens == 12 * 85
    refused = planner.plan(WorkItem(1, "c", "c.mp4", ocr="azure-enhancements"))
    assert isinstance(refused, Refusal) and refused.code == "video_enhancement_retired"
    assert "30 June 2025" in refused.message and "Frame sampling" in refused.message
    remote = planner.plan(WorkItem(2, "r", "https://example.com/clips/a.MP4?sig=x"))
    assert isinstance(remote, Refusal) and remote.code == "video_remote"
    assert isinstance(planner.plan(WorkItem(3, "r", "https://example.com/mp4/a.png")), RequestPlan)


def test_sampling_faster_than_the_video_repeats_frames_without_seeking_back(tmp_path: Path) -> None:
    clip = videos.write_clip(tmp_path / "c.mkv", videos.PATTERN[:2], fps=5, codec="ffv1", fmt="matroska")
    times = sample_times(probe_video(clip), VideoSpec(fps=20), "c")
    assert len(times) == 40
    frames = list(decode_frames(clip, times, (48, 32)))
    digests = [f.data for f in frames]
    # 20 samples a second of a 5 fps lossless clip: each second's frames all show its colour.
    assert len(set(digests[:20])) == 1 and len(set(digests[20:])) == 1 and digests[0] != digests[20]
