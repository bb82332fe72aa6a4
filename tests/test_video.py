"""Video rows end to end: clips made with PyAV, the real emulator over loopback, real Parquet out.

Frame order is proven by the emulator's request log: each request's time labels, and the
digests of the images it got, which repeat exactly where the clip's colours repeat."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batch.cli import main
from batch.core.spec import load_spec
from batch.emulator import EmbeddedEmulator
from batch.estimate.job import estimate_job
from tests import videos
from tests.support import API_KEY

ROOT = Path(__file__).resolve().parents[1]


def manifest(root: Path, rows: list[dict[str, Any]]) -> None:
    cols = {k: [r.get(k) for r in rows] for k in ("id", "image", "detail", "ocr")}
    pq.write_table(pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()}), root / "manifest.parquet")


def job(root: Path, url: str, video: str = "") -> Path:
    path = root / "job.toml"
    path.write_text(
        f"""
[input]
manifest = "{root / "manifest.parquet"}"
[prompt]
user = "What happens in this clip?"
max_tokens = 30
[video]
{video}
[endpoint]
deployment = "gpt-4o"
url = "{url}"
api_key_env = "TEST_API_KEY"
[output]
path = "{root / "out.parquet"}"
"""
    )
    return path


def results(root: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in pq.read_table(root / "out.parquet").to_pylist()}


def chats(emu: EmbeddedEmulator) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r["route"] == "azure" and r.get("status") == 200]


def pattern(values: list[Any]) -> list[int]:
    """Each value replaced by the index of its first occurrence: equal values, equal numbers."""
    return [values.index(v) for v in values]


def test_frames_go_in_order_with_time_labels_and_answers_per_segment(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    videos.write_clip(tmp_path / "clip.mp4", videos.PATTERN, size=(96, 64))
    manifest(tmp_path, [{"id": "clip", "image": "clip.mp4"}])
    assert (
        main(["run", str(job(tmp_path, emulator.url, "long_side = 48\nframes_per_request = 4")), "--no-progress"]) == 0
    )
    row = results(tmp_path)["clip"]
    assert row["status"] == "ok" and row["detail_used"] == "low"
    sent = chats(emulator)
    assert [len(r["images"]) for r in sent] == [4, 2]
    # The prompt, then a label before each frame, in time order.
    assert [r["texts"][1:] for r in sent] == [["t=0.0s", "t=1.0s", "t=2.0s", "t=3.0s"], ["t=4.0s", "t=5.0s"]]
    frames = [im for r in sent for im in r["images"]]
    assert all((im["width"], im["height"], im["detail"], im["format"]) == (48, 32, "low", "JPEG") for im in frames)
    assert pattern([im["sha256"] for im in frames]) == pattern(videos.PATTERN)
    # Kept per segment, joined in `answer`; the row's tokens are the segments' sums, as estimated.
    assert [p["pages"] for p in row["page_answers"]] == [[1, 2, 3, 4], [5, 6]]
    assert row["pages_processed"] == [1, 2, 3, 4, 5, 6]
    assert row["answer"].startswith("--- frames 1-4 ---\nimage 1: 48x32 JPEG sha256:" + frames[0]["sha256"][:16])
    assert "\n\n--- frames 5-6 ---\n" in row["answer"]
    assert row["prompt_tokens"] == row["estimated_prompt_tokens"] == sum(r["prompt_tokens"] for r in sent)


def test_estimate_counts_frames_and_image_tokens_as_billed(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    big = (1280, 720)
    videos.write_clip(tmp_path / "a.mp4", videos.PATTERN, size=big)
    videos.write_clip(tmp_path / "b.webm", videos.PATTERN[:3], size=(640, 480), codec="libvpx-vp9")
    videos.write_clip(tmp_path / "c.mkv", videos.PATTERN[:4], size=(300, 500), fmt="matroska")
    videos.write_clip(tmp_path / "d.mov", videos.PATTERN[:2], size=big)
    videos.write_clip(tmp_path / "e.avi", videos.PATTERN[:5], size=(320, 240), codec="mpeg4")
    rows = [
        {"id": "a", "image": "a.mp4", "detail": "high"},
        {"id": "b", "image": "b.webm"},
        {"id": "c", "image": "c.mkv", "detail": "high"},
        {"id": "d", "image": "d.mov", "detail": "auto"},
        {"id": "e", "image": "e.avi"},
    ]
    manifest(tmp_path, rows)
    path = job(tmp_path, emulator.url, "fps = 2\nlong_side = 1024\nframes_per_request = 5\nstart = 0.5")
    report = estimate_job(load_spec(path))
    assert main(["run", str(path), "--no-progress"]) == 0
    out = results(tmp_path)
    assert all(r["status"] == "ok" for r in out.values())
    sent = chats(emulator)
    video = report.video
    assert video is not None and video.rows == 5
    # fps 2 from 0.5 s: 11 + 5 + 7 + 3 + 9 frames; packed 5 to a request.
    assert video.frames == 35 == sum(len(r["images"]) for r in sent)
    assert video.requests == 3 + 1 + 2 + 1 + 2 == len(sent)
    assert video.image_tokens == sum(r["image_tokens"] for r in sent)  # exactly what the emulator billed
    assert video.prompt_tokens == sum(r["prompt_tokens"] for r in sent)
    assert {(im["width"], im["height"]) for r in sent for im in r["images"]} == {
        (1024, 576),
        (640, 480),
        (300, 500),
        (320, 240),
    }
    assert report.to_dict()["video"]["frames"] == 35


def test_bad_videos_are_error_rows_each_with_its_code(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    videos.write_clip(tmp_path / "good.mp4", videos.PATTERN[:2])
    videos.write_truncated(tmp_path / "truncated.mp4")
    cut = videos.write_clip(tmp_path / "cut.mkv", videos.PATTERN * 3, fmt="matroska")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 2 // 3])  # header intact, later frames cut off
    videos.write_unknown_codec(tmp_path / "codec.mp4")
    videos.write_empty(tmp_path / "empty.mkv")
    videos.write_empty(tmp_path / "empty.mp4")
    videos.write_audio_only(tmp_path / "audio.mp4")
    videos.write_fake(tmp_path / "fake.mov")
    expected = {
        "truncated": "video_corrupt",
        "cut": "video_corrupt",
        "codec": "video_codec_unsupported",
        "empty": "video_empty",
        "empty-mp4": "video_empty",
        "audio": "video_no_stream",
        "fake": "video_invalid",
        "legacy": "video_enhancement_retired",
    }
    files = {"empty-mp4": "empty.mp4", "legacy": "good.mp4", "cut": "cut.mkv", "empty": "empty.mkv", "fake": "fake.mov"}
    rows = [{"id": name, "image": files.get(name, f"{name}.mp4")} for name in expected]
    rows[-1]["ocr"] = "azure-enhancements"
    manifest(tmp_path, [{"id": "first", "image": "good.mp4"}, *rows, {"id": "last", "image": "good.mp4"}])
    assert main(["run", str(job(tmp_path, emulator.url)), "--no-progress"]) == 0
    out = results(tmp_path)
    assert out["first"]["status"] == out["last"]["status"] == "ok"
    assert {name: out[name]["error_code"] for name in expected} == expected
    legacy = out["legacy"]["error_message"]
    assert "retired" in legacy and "30 June 2025" in legacy and "Frame sampling" in legacy
    assert all(API_KEY not in (r["error_message"] or "") for r in out.values())
    assert len(chats(emulator)) == 2  # the two good rows, one request each; the cut one never got far


def test_too_many_frames_is_refused_before_decoding(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    videos.write_clip(tmp_path / "clip.mp4", videos.PATTERN)
    manifest(tmp_path, [{"id": "clip", "image": "clip.mp4"}])
    assert main(["run", str(job(tmp_path, emulator.url, "fps = 10\nmax_frames = 20")), "--no-progress"]) == 0
    row = results(tmp_path)["clip"]
    assert row["error_code"] == "video_too_long" and "60 frames" in row["error_message"]
    assert chats(emulator) == []


def test_the_sample_job_runs_on_a_fresh_machine(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "OPENAI_"))}
    out = tmp_path / "video-sample.parquet"
    cmd = [sys.executable, "-m", "batch", "run", "jobs/video-sample.toml", "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (row,) = pq.read_table(out).to_pylist()
    assert row["status"] == "ok" and row["pages_processed"] == list(range(1, 9))
    digests = [part.split(" ")[0] for part in row["answer"].split("sha256:")[1:]]
    assert len(digests) == 8 and len(set(digests)) == 8  # a colour a second: eight different frames
    assert row["prompt_tokens"] == row["estimated_prompt_tokens"]


def test_a_rows_own_columns_override_the_video_section(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    videos.write_clip(tmp_path / "clip.mp4", videos.PATTERN)
    table = pa.table(
        {
            "id": ["job", "count", "range", "bad"],
            "image": ["clip.mp4"] * 4,
            "video_frames": pa.array([None, 2, None, None], pa.int32()),
            "video_fps": pa.array([None, 4.0, 2.0, -1.0], pa.float64()),
            "video_start": pa.array([None, None, 4, None], pa.int64()),
            "video_end": pa.array([None, None, 5.5, None], pa.float32()),
        }
    )
    pq.write_table(table, tmp_path / "manifest.parquet")
    assert main(["run", str(job(tmp_path, emulator.url, "frames = 3")), "--no-progress"]) == 0
    out = results(tmp_path)
    assert out["bad"]["error_code"] == "bad_video_sampling" and "video_fps -1" in out["bad"]["error_message"]
    labels = {r["request_id"]: r["texts"][1:] for r in chats(emulator)}
    assert [labels[out[k]["request_id"]] for k in ("job", "count", "range")] == [
        ["t=1.0s", "t=3.0s", "t=5.0s"],  # [video].frames = 3
        ["t=1.5s", "t=4.5s"],  # video_frames wins over video_fps
        ["t=4.0s", "t=4.5s", "t=5.0s"],  # 2 fps from 4 s to 5.5 s
    ]
    assert [out[k]["estimated_image_tokens"] for k in ("job", "count", "range")] == [3 * 85, 2 * 85, 3 * 85]
