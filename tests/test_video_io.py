"""Video reading and writing (tfnst.video_io): round trips, audio, atomic output, errors."""

import inspect
import os
import sys
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")

from tfnst import video_clips
from tfnst.errors import TfnstError
from tfnst.video_io import (
    VideoReader,
    VideoWriter,
    check_video_output,
    read_video,
    write_video,
)

BUNNY = Path(__file__).resolve().parent.parent / "data" / "video" / "bigbuckbunny_2s_128.mp4"
NTSC = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def clip():
    return video_clips.pan(8, size=(96, 128), shift=(1.5, 0.5))


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a) - np.asarray(b)) ** 2))


def streams(path):
    with av.open(str(path)) as c:
        return {
            s.type: (s.codec_context.name, float(s.duration * s.time_base) if s.duration else None) for s in c.streams
        }


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_video_round_trip_keeps_count_size_and_rate(tmp_path, clip, suffix):
    out = write_video(tmp_path / f"pan{suffix}", clip.frames, NTSC)
    reader = VideoReader(out)
    assert (reader.info.height, reader.info.width) == (96, 128)
    assert reader.info.fps == NTSC
    assert reader.info.frame_count == 8  # webm does not say: its packets are counted
    frames = list(reader.frames())
    assert len(frames) == 8
    assert all(f.shape == (96, 128, 3) and f.dtype == np.float32 for f in frames)
    # Lossy: measured PSNR 35.5-36.7 dB (mp4, CRF 18) and 35.8-37.7 dB (webm, CRF 31)
    # on this clip; yuv420p halves the chroma resolution, which costs most of it.
    assert min(psnr(a, b) for a, b in zip(frames, clip.frames)) > 33.0
    assert "audio" not in streams(out)


def test_folder_round_trip_is_lossless(tmp_path, clip):
    out = write_video(tmp_path / "frames", clip.frames, NTSC)
    names = sorted(os.listdir(out))
    assert names == [f"{i:06d}.png" for i in range(1, 9)] + ["framerate.txt"]
    reader = VideoReader(out)
    assert reader.info.fps == NTSC and reader.info.frame_count == 8 and reader.info.is_folder
    for a, b in zip(reader.frames(), clip.frames, strict=True):
        np.testing.assert_allclose(a, b, atol=0.5 / 255 + 1e-6)  # 8-bit rounding only


def test_odd_sizes(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.random((47, 65, 3), dtype=np.float32) for _ in range(3)]
    # mp4 (H.264 yuv420p) pads to even sizes by repeating the last row and column.
    reader = VideoReader(write_video(tmp_path / "odd.mp4", frames, 10))
    assert (reader.info.height, reader.info.width) == (48, 66)
    first = next(reader.frames())
    np.testing.assert_allclose(first[47], first[46], atol=0.1)
    # webm (VP9) keeps odd sizes; a folder too.
    for name in ("odd.webm", "odd_frames"):
        reader = VideoReader(write_video(tmp_path / name, frames, 10))
        assert (reader.info.height, reader.info.width) == (47, 65)
        assert len(list(reader.frames())) == 3


def test_reading_is_lazy():
    reader = VideoReader(BUNNY)
    assert reader.info.frame_count == 50 and reader.info.fps == 25 and reader.info.has_audio
    assert (reader.info.width, reader.info.height) == (128, 72)
    frames = reader.frames()
    assert inspect.isgenerator(frames)
    # Memory does not grow with the clip: the peak of Python allocations while decoding
    # all 50 frames stays near one frame (110 kB in float32; the clip is 5.5 MB).
    tracemalloc.start()
    n = sum(1 for _ in frames)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 50
    assert peak < 1_000_000
    assert len(list(reader.frames(max_frames=7))) == 7
    frames, info = read_video(BUNNY, max_frames=2)
    assert info.fps == 25 and len(list(frames)) == 2


def test_rotation_is_applied_as_players_do(tmp_path):
    # A landscape picture stored with "turn 90° counter-clockwise to show" (phones do
    # this for portrait video): read as the portrait picture a player shows.
    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:8, :8] = 255  # top-left corner
    path = tmp_path / "turned.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(90)
        for _ in range(2):
            out.mux(s.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        out.mux(s.encode())
    reader = VideoReader(path)
    assert (reader.info.width, reader.info.height) == (48, 64)
    frame = next(reader.frames())
    assert frame.shape == (64, 48, 3)
    assert frame[-4, 4].mean() > 0.9 and frame[4, 4].mean() < 0.1  # now bottom-left


def test_folder_frames_sort_numerically(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for n, value in [(10, 30), (2, 20), (1, 10), (100, 40)]:
        Image.fromarray(np.full((4, 6, 3), value, np.uint8)).save(folder / f"frame_{n}.png")
    (folder / "notes.txt").write_text("not a frame")
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(folder / "cover.png")  # no number
    reader = VideoReader(folder)
    assert reader.info.fps is None and reader.info.frame_count == 4
    assert [round(float(f[0, 0, 0]) * 255) for f in reader.frames()] == [10, 20, 30, 40]


# --------------------------------------------------------------------------- audio


def test_audio_is_copied_into_mp4_and_cut_to_the_video(tmp_path):
    frames = list(VideoReader(BUNNY).frames())
    out = write_video(tmp_path / "same.mp4", frames, 25, audio_from=BUNNY)
    s = streams(out)
    assert s["audio"][0] == "aac" and s["audio"][1] == pytest.approx(2.0, abs=0.05)
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.channels == 6  # copied, not re-encoded
    # Half the frames: the audio ends with the video (to the nearest 21 ms packet).
    out = write_video(tmp_path / "half.mp4", frames[:25], 25, audio_from=BUNNY)
    assert streams(out)["audio"][1] == pytest.approx(1.0, abs=0.05)
    assert len(list(VideoReader(out).frames())) == 25


def test_audio_is_reencoded_for_webm_and_dropped_for_folders(tmp_path, caplog):
    frames = list(VideoReader(BUNNY).frames(max_frames=10))
    out = write_video(tmp_path / "a.webm", frames, 25, audio_from=BUNNY)
    codec, _ = streams(out)["audio"]
    assert codec == "opus"  # AAC cannot go into webm
    with av.open(str(out)) as c:
        assert c.duration / 1e6 == pytest.approx(0.4, abs=0.08)
    caplog.set_level("INFO", logger="tfnst.video_io")
    out = write_video(tmp_path / "f", frames, 25, audio_from=BUNNY)
    assert len(os.listdir(out)) == 11
    assert "audio" in caplog.text and "dropped" in caplog.text


def make_late_video(path, lead=0.5, total=2.0):
    """Audio from 0 s (silent until ``lead``, then a 440 Hz tone), video from ``lead``."""
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        t = np.arange(int(48000 * total)) / 48000
        sound = np.where(t >= lead, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
        for k in range(0, len(sound), 1024):
            f = av.AudioFrame.from_ndarray(sound[None, k : k + 1024], format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = 48000, k, Fraction(1, 48000)
            out.mux(a.encode(f))
        out.mux(a.encode(None))
        for i in range(int(24 * lead), int(24 * total)):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 128, np.uint8), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 24)
            out.mux(v.encode(f))
        out.mux(v.encode(None))
    return path


def test_audio_keeps_sync_with_a_video_that_starts_late(tmp_path):
    # The source's video starts 0.5 s after its audio; the output's frame 0 is that
    # first video frame, so its audio starts with the tone, not with the silence.
    source = make_late_video(tmp_path / "late.mp4")
    frames = list(VideoReader(source).frames())
    assert len(frames) == 36
    for suffix in (".mp4", ".webm"):  # copied; re-encoded
        out = write_video(tmp_path / f"out{suffix}", frames, 24, audio_from=source)
        with av.open(str(out)) as c:
            samples = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
            rate, channels = c.streams.audio[0].rate, c.streams.audio[0].channels
        assert len(samples) / rate / channels == pytest.approx(1.5, abs=0.05)
        first = samples[: int(0.2 * rate)]
        assert np.sqrt(np.mean(first.astype(np.float64) ** 2)) > 0.1  # the tone (0.35 RMS), not silence


# --------------------------------------------------------------------------- atomic output


def test_output_appears_only_when_complete(tmp_path, clip):
    out = tmp_path / "a.mp4"
    out.write_bytes(b"old")
    with VideoWriter(out, 24) as w:
        w.write(clip.frames[0])
        assert out.read_bytes() == b"old"  # still the old file while writing
    assert out.stat().st_size > 100 and sorted(os.listdir(tmp_path)) == ["a.mp4"]
    # An error inside: the old output stays, no temporary file is left.
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), VideoWriter(out, 24) as w:
        w.write(clip.frames[0])
        raise RuntimeError("interrupted")
    assert out.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["a.mp4"]
    # The same for folders: an existing folder is replaced as a whole.
    folder = tmp_path / "frames"
    write_video(folder, clip.frames[:3], 24)
    with pytest.raises(RuntimeError), VideoWriter(folder, 24) as w:
        w.write(clip.frames[0])
        raise RuntimeError("interrupted")
    assert len(os.listdir(folder)) == 4
    write_video(folder, clip.frames[:2], 12)
    assert sorted(os.listdir(folder)) == ["000001.png", "000002.png", "framerate.txt"]
    assert VideoReader(folder).info.fps == 12
    assert sorted(os.listdir(tmp_path)) == ["a.mp4", "frames"]


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_give_one_line(tmp_path):
    def one_line(match, fn, *args):
        with pytest.raises(TfnstError, match=match) as e:
            fn(*args)
        assert "\n" not in str(e.value)

    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 10)
    one_line("not a readable video", VideoReader, text)
    one_line("no such file", VideoReader, tmp_path / "missing.mp4")
    # An audio-only file.
    audio = tmp_path / "sound.mp4"
    with av.open(str(BUNNY)) as src, av.open(str(audio), "w", format="mp4") as dst:
        a = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = a
                dst.mux(packet)
    one_line("no video stream", VideoReader, audio)
    # A video stream with no frames: an mp4 cut off right after its index (a download
    # that stopped), which says 8 frames but holds none.
    whole = write_video(tmp_path / "whole.mp4", [np.zeros((48, 64, 3), np.float32)] * 8, 24).read_bytes()
    assert whole.find(b"moov") < whole.find(b"mdat")  # faststart: the index first
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(whole[: whole.find(b"mdat") + 4])
    one_line("no frames", VideoReader, empty)
    # Folders: empty, or frames of changing size.
    (tmp_path / "none").mkdir()
    one_line("no frames", VideoReader, tmp_path / "none")
    sizes = tmp_path / "sizes"
    sizes.mkdir()
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(sizes / "1.png")
    Image.fromarray(np.zeros((4, 8, 3), np.uint8)).save(sizes / "2.png")
    one_line("change size", VideoReader, sizes)
    (tmp_path / "rated").mkdir()
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "rated" / "1.png")
    (tmp_path / "rated" / "framerate.txt").write_text("fast")
    one_line("not a frame rate", VideoReader, tmp_path / "rated")


def test_bad_outputs_fail_before_any_work(tmp_path, clip):
    for name, match in [
        ("a.avi", "cannot write .avi"),
        ("a.gif", "cannot write .gif"),
        ("missing/a.mp4", "does not exist"),
    ]:
        with pytest.raises(TfnstError, match=match):
            check_video_output(tmp_path / name)
        with pytest.raises(TfnstError, match=match):
            VideoWriter(tmp_path / name, 24)
    (tmp_path / "file").write_text("x")
    with pytest.raises(TfnstError, match="is a file"):
        check_video_output(tmp_path / "file")
    # Frames of changing size: an error, and no output.
    with pytest.raises(TfnstError, match="frames change size"):
        write_video(tmp_path / "b.mp4", [clip.frames[0], clip.frames[0][:50]], 24)
    with pytest.raises(TfnstError, match="no frames"):
        write_video(tmp_path / "c.mp4", [], 24)
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_missing_extra_says_what_to_install(monkeypatch, tmp_path):
    from tfnst.video_deps import require_av, require_cv2

    monkeypatch.setitem(sys.modules, "av", None)
    monkeypatch.setitem(sys.modules, "cv2", None)
    for require in (require_av, require_cv2):
        with pytest.raises(TfnstError, match=r"pip install 'tfnst\[video\]'") as e:
            require()
        assert "\n" not in str(e.value)
    with pytest.raises(TfnstError, match=r"tfnst\[video\]"):
        VideoReader(BUNNY)
