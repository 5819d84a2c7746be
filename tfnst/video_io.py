"""Video in and out: a video file (through PyAV) or a folder of numbered frames.

Frames are float32 ``[H, W, 3]`` RGB in [0, 1], like `tfnst.image_io`, and are read
lazily: `VideoReader.frames()` is a generator that decodes one frame at a time, so
memory does not grow with the clip's length. `VideoWriter` takes frames one at a time
and writes the output atomically: into a temporary file (or folder) beside the target,
renamed to it only when the writer closes without an error.

Containers written:

* ``.mp4``: H.264 (libx264, CRF 18, ``yuv420p`` so that every player shows it; the
  index at the front, "faststart", for playing while downloading).
  ``yuv420p`` needs even dimensions: a frame with an odd width or height is padded by
  repeating its last column or row (nothing of the picture is lost; the video is one
  pixel wider or taller than the frames, and reads back that way).
* ``.webm``: VP9 (libvpx-vp9, CRF 31, ``yuv420p``; odd sizes are kept as they are, VP9
  allows them), VP8 where the FFmpeg inside PyAV has no VP9 encoder.
* a folder (a path without a suffix, or an existing folder): PNG frames
  ``000001.png``, ``000002.png`` … (lossless) and a ``framerate.txt`` holding the frame
  rate as a fraction (``30000/1001``), which `VideoReader` reads back.

Audio: given ``audio_from=`` (the source clip), the writer copies the source's audio
stream into an mp4 or webm output, packet by packet when the container takes its codec
(mp4: AAC, MP3, AC-3, E-AC-3, ALAC, FLAC, Opus; webm: Opus, Vorbis), otherwise
re-encoded (AAC for mp4, Opus for webm). It is cut at the end of the video (to the
nearest audio packet) when the output has fewer frames than the source, and starts
where the source's video starts (the output's frame 0 is the source's first video
frame, so audio before it is left out and sync is kept). A frame folder
has no audio: it is dropped there, with a log line saying so.

Files: the first video stream is read; a rotation stored with it (portrait phone video)
is applied, as players do; other streams are ignored.

Folder input: the image files in the folder (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``,
``.tif``, ``.tiff``, ``.webp``) whose names hold a number, in the order of the last number
in the name (``frame_2.png`` before ``frame_10.png``); other files are ignored. All
frames must have one size. The frame rate is ``framerate.txt``'s, else unknown (None).

Problems the user can fix raise `TfnstError` with one line: a file that is not a video,
a video with no video stream or no frames, frames of changing size, an output suffix
that cannot be written or whose codec this FFmpeg lacks (checked by `check_video_output`
before any work).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tfnst.atomic import atomic_path
from tfnst.errors import TfnstError
from tfnst.image_io import _first_line, read_image
from tfnst.video_deps import require_av

log = logging.getLogger(__name__)

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
RATE_FILE = "framerate.txt"
VIDEO_SUFFIXES = (".mp4", ".webm")
# Encoders tried in order for each container, and their options.
VIDEO_CODECS = {".mp4": ("libx264",), ".webm": ("libvpx-vp9", "libvpx")}
CODEC_OPTIONS = {
    "libx264": {"crf": "18", "preset": "medium"},
    "libvpx-vp9": {"crf": "31", "b": "0", "row-mt": "1"},
    "libvpx": {"crf": "10", "b": "1M"},
}
CONTAINER_FORMATS = {".mp4": "mp4", ".webm": "webm"}
# Audio codecs each container takes as they are (copied packet by packet), and the
# encoder used to re-encode anything else.
AUDIO_COPY = {".mp4": {"aac", "mp3", "ac3", "eac3", "alac", "flac", "opus"}, ".webm": {"opus", "vorbis"}}
AUDIO_ENCODERS = {".mp4": ("aac",), ".webm": ("libopus", "opus", "libvorbis")}
DEFAULT_FPS = Fraction(24)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a clip before decoding it.

    ``fps`` is a Fraction (``30000/1001`` for NTSC), None when unknown (a frame folder
    without ``framerate.txt``); ``frame_count`` is the container's count, or else the
    number of video packets (one frame each; webm does not say, so its packets are
    counted, which reads the file once without decoding it), None if neither is known;
    ``width`` and ``height`` are the frames' as shown, after the stream's rotation
    (portrait phone video); ``has_audio`` is whether a file has an audio stream.
    """

    path: Path
    width: int
    height: int
    fps: Fraction | None
    frame_count: int | None
    has_audio: bool = False
    is_folder: bool = False


def _frame_number(name: str) -> int | None:
    numbers = re.findall(r"\d+", Path(name).stem)
    return int(numbers[-1]) if numbers else None


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The numbered image files in ``folder``, in numerical order (see the module notes)."""
    folder = Path(folder)
    files = []
    for p in folder.iterdir():
        if p.suffix.lower() in FRAME_SUFFIXES and p.is_file():
            n = _frame_number(p.name)
            if n is not None:
                files.append((n, p.name, p))
    return [p for _, _, p in sorted(files)]


def _read_rate_file(folder: Path) -> Fraction | None:
    f = folder / RATE_FILE
    if not f.is_file():
        return None
    text = f.read_text().strip()
    try:
        rate = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise TfnstError(f"{f}: not a frame rate ({text[:40]!r}; write e.g. 25 or 30000/1001)") from None
    if rate <= 0:
        raise TfnstError(f"{f}: the frame rate must be positive, not {text}")
    return rate


def _av_error(path: Path, e: BaseException) -> TfnstError:
    return TfnstError(f"{path} is not a readable video ({_first_line(e)})")


class VideoReader:
    """A clip to read: ``VideoReader(path).info`` at once, ``.frames()`` lazily.

    Opening checks what can be checked without decoding the whole clip: that the file
    is a video with a video stream and at least one decodable frame, or that the folder
    has numbered frames, all of one size (read from the files' headers).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise TfnstError(f"{self.path}: no such file or folder")
        if self.path.is_dir():
            self.info = self._probe_folder()
        else:
            self.info = self._probe_file()

    # -- folders
    def _probe_folder(self) -> VideoInfo:
        self._files = list_frame_files(self.path)
        if not self._files:
            raise TfnstError(f"{self.path}: no frames (no numbered image files {', '.join(FRAME_SUFFIXES)})")
        size = None
        for f in self._files:
            try:
                with Image.open(f) as img:
                    this = img.size
            except (UnidentifiedImageError, OSError) as e:
                raise TfnstError(f"{f} is not a readable image ({_first_line(e)})") from None
            if size is None:
                size = this
            elif this != size:
                raise TfnstError(
                    f"{self.path}: frames change size ({self._files[0].name} is "
                    f"{size[0]}x{size[1]}, {f.name} is {this[0]}x{this[1]})"
                )
        return VideoInfo(
            self.path, size[0], size[1], _read_rate_file(self.path), len(self._files), has_audio=False, is_folder=True
        )

    # -- files
    def _open(self):
        av = require_av()
        try:
            container = av.open(str(self.path), "r")
        except (av.FFmpegError, UnicodeDecodeError) as e:
            raise _av_error(self.path, e) from None
        if not container.streams.video:
            container.close()
            raise TfnstError(f"{self.path} has no video stream")
        return container

    def _probe_file(self) -> VideoInfo:
        av = require_av()
        with self._open() as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            rate = Fraction(rate) if rate else None
            count = stream.frames or None
            has_audio = bool(container.streams.audio)
            try:
                first = next(container.decode(stream), None)
            except av.FFmpegError as e:
                raise _av_error(self.path, e) from None
            if first is None:
                raise TfnstError(f"{self.path}: the video has no frames")
            # Phones store portrait video as landscape frames plus a rotation to show
            # them with: frames are turned as players turn them.
            self._turns = round((getattr(first, "rotation", 0) or 0) / 90) % 4
            width, height = first.width, first.height
            if self._turns % 2:
                width, height = height, width
        if count is None:  # webm and some others do not say: count the packets
            count = self._count_packets() or None
        return VideoInfo(self.path, width, height, rate, count, has_audio=has_audio, is_folder=False)

    def _count_packets(self) -> int:
        av = require_av()
        try:
            with self._open() as container:
                return sum(1 for p in container.demux(container.streams.video[0]) if p.size)
        except av.FFmpegError:
            return 0

    def __len__(self) -> int:
        if self.info.frame_count is None:
            raise TypeError("the container does not say how many frames it has")
        return self.info.frame_count

    def frames(self, max_frames: int | None = None) -> Iterator[np.ndarray]:
        """Yield frames one at a time, float32 [H, W, 3] in [0, 1]."""
        if self.info.is_folder:
            yield from self._folder_frames(max_frames)
        else:
            yield from self._file_frames(max_frames)

    __iter__ = frames

    def _folder_frames(self, max_frames):
        files = self._files if max_frames is None else self._files[:max_frames]
        for f in files:
            frame = read_image(f)
            if frame.shape[:2] != (self.info.height, self.info.width):
                raise TfnstError(
                    f"{self.path}: frames change size ({f.name} is "
                    f"{frame.shape[1]}x{frame.shape[0]}, the first frame is "
                    f"{self.info.width}x{self.info.height})"
                )
            yield frame

    def _file_frames(self, max_frames):
        av = require_av()
        with self._open() as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            n = 0
            try:
                for frame in container.decode(stream):
                    if max_frames is not None and n >= max_frames:
                        return
                    rgb = frame.to_ndarray(format="rgb24")
                    if self._turns:
                        rgb = np.ascontiguousarray(np.rot90(rgb, self._turns))
                    if rgb.shape[:2] != (self.info.height, self.info.width):
                        raise TfnstError(
                            f"{self.path}: frames change size (frame {n} is "
                            f"{rgb.shape[1]}x{rgb.shape[0]}, the first is "
                            f"{self.info.width}x{self.info.height})"
                        )
                    n += 1
                    yield rgb.astype(np.float32) / 255.0
            except av.FFmpegError as e:
                raise TfnstError(f"{self.path}: damaged after {n} frames ({_first_line(e)})") from None


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[Iterator[np.ndarray], VideoInfo]:
    """``(frames, info)``: a lazy generator of frames and what is known about the clip."""
    reader = VideoReader(path)
    return reader.frames(max_frames), reader.info


# --------------------------------------------------------------------------- writing


def _output_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == "":
        return "folder"
    if suffix in VIDEO_SUFFIXES:
        return suffix
    raise TfnstError(
        f"{path}: cannot write {suffix or 'this'} video; use .mp4 (H.264), .webm (VP9) or a folder name (PNG frames)"
    )


def _encoder(kind: str) -> str:
    av = require_av()
    available = av.codec.codecs_available
    for name in VIDEO_CODECS[kind]:
        if name in available:
            try:
                av.codec.Codec(name, "w")
            except (av.FFmpegError, ValueError):
                continue
            return name
    raise TfnstError(
        f"this FFmpeg (inside PyAV {av.__version__}) has no encoder for {kind} "
        f"({' or '.join(VIDEO_CODECS[kind])}); write another container"
    )


def check_video_output(path: str | os.PathLike) -> Path:
    """Fail early, before any frame is computed, if ``path`` cannot be written: the
    suffix is not one we write, the encoder is missing, or the folder it goes into does
    not exist or is not writable."""
    path = Path(path)
    kind = _output_kind(path)
    if kind != "folder":
        _encoder(kind)
        if path.is_dir():
            raise TfnstError(f"{path} is a folder")
    elif path.exists() and not path.is_dir():
        raise TfnstError(f"{path} is a file; a frame folder needs a new or existing folder")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise TfnstError(f"{path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise TfnstError(f"{path}: folder {parent} is not writable")
    return path


def _to_uint8(frame) -> np.ndarray:
    if hasattr(frame, "numpy"):
        frame = frame.numpy()
    a = np.asarray(frame)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3 or a.shape[-1] != 3:
        raise TfnstError(f"a frame must be [H, W, 3], got {tuple(a.shape)}")
    if a.dtype != np.uint8:
        a = np.round(np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0) * 255.0).astype(np.uint8)
    return a


class _AudioCopy:
    """Carries the source's audio into the output, interleaved with the video."""

    def __init__(self, output, source: Path, kind: str):
        av = require_av()
        self._source = av.open(str(source), "r")
        stream = self._source.streams.audio[0]
        self._in = stream
        # The output's frame 0 is the source's first video frame: audio keeps its sync
        # with it (what came before the video starts is left out).
        video = self._source.streams.video[0] if self._source.streams.video else None
        self._start = (
            float(video.start_time * video.time_base) if video is not None and video.start_time is not None else 0.0
        )
        self.copied = stream.codec_context.name in AUDIO_COPY[kind]
        if self.copied:
            self._out = output.add_stream_from_template(stream)
            self._items = self._source.demux(stream)
        else:
            for name in AUDIO_ENCODERS[kind]:
                if name in av.codec.codecs_available:
                    break
            else:
                raise TfnstError(f"this FFmpeg has no audio encoder for {kind}")
            rate = 48000 if "opus" in name else stream.codec_context.sample_rate
            self._out = output.add_stream(name, rate=rate)
            self._items = self._source.decode(stream)
        self._pending = None
        self._done = False
        self.description = (
            f"{stream.codec_context.name} audio {'copied' if self.copied else 'in ' + self._out.codec_context.name}"
        )

    def _next(self):
        """The next packet (copying) or decoded frame (re-encoding) and its start in
        seconds after the source's first video frame; None at the end."""
        while self._pending is None and not self._done:
            item = next(self._items, None)
            if item is None:
                self._done = True
            elif self.copied and item.dts is None:
                continue
            else:
                start = float(item.pts * item.time_base) - self._start if item.pts is not None else 0.0
                length = float(getattr(item, "duration", 0) * item.time_base) if getattr(item, "duration", 0) else 0.0
                if start + length <= 0.0 and self._start > 0.0:
                    continue  # all of it before the video starts
                self._pending = (item, start)
        return self._pending

    def until(self, output, seconds: float) -> None:
        """Write the source's audio that starts before ``seconds`` (output time)."""
        while (pending := self._next()) is not None:
            item, start = pending
            if start >= seconds:
                return
            self._pending = None
            if self.copied:
                shift = round(self._start / item.time_base)
                if shift:
                    item.pts -= shift
                    item.dts -= shift
                item.stream = self._out
                output.mux(item)
            else:
                item.pts = None
                output.mux(self._out.encode(item))

    def close(self, output) -> None:
        if not self.copied:
            output.mux(self._out.encode(None))
        self._source.close()


class VideoWriter:
    """Write frames one at a time; the output appears only when the writer closes.

    ``with VideoWriter("out.mp4", fps=Fraction(25)) as w: w.write(frame)`` — frames are
    float [H, W, 3] in [0, 1] (or uint8); all must have the first one's size. An
    exception inside the block (or `abort`) removes the temporary output and leaves an
    existing file at ``path`` as it was. ``audio_from`` names the source clip whose
    audio goes into the output (see the module notes); None for none.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: Fraction | float | None = None,
        *,
        audio_from: str | os.PathLike | None = None,
    ):
        self.path = check_video_output(path)
        self.kind = _output_kind(self.path)
        self.fps = Fraction(fps).limit_denominator(1_000_000) if fps else DEFAULT_FPS
        if self.fps <= 0:
            raise TfnstError(f"the frame rate must be positive, not {fps}")
        self.count = 0
        self.size: tuple[int, int] | None = None  # (height, width) of the frames given
        self._audio_from = Path(audio_from) if audio_from else None
        self._audio: _AudioCopy | None = None
        self._container = None
        self._stream = None
        self._closed = False
        if self.kind == "folder":
            self._tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}."))
            if self._audio_from is not None and _has_audio(self._audio_from):
                log.info("tfnst: %s is a frame folder: the audio of %s is dropped", self.path, self._audio_from)
        else:
            self._atomic = atomic_path(self.path, suffix=self.kind)
            self._tmp = Path(self._atomic.__enter__())

    def _open(self, height: int, width: int) -> None:
        av = require_av()
        codec = _encoder(self.kind)
        # mp4: the index (moov) at the front, so that players can start before the end.
        options = {"movflags": "+faststart"} if self.kind == ".mp4" else {}
        self._container = av.open(str(self._tmp), "w", format=CONTAINER_FORMATS[self.kind], options=options)
        stream = self._container.add_stream(codec, rate=self.fps, options=CODEC_OPTIONS.get(codec, {}))
        pad_h, pad_w = (height % 2, width % 2) if self.kind == ".mp4" else (0, 0)
        if pad_h or pad_w:
            log.info(
                "tfnst: %s: %dx%d frames padded to %dx%d (H.264 yuv420p needs even sizes)",
                self.path,
                width,
                height,
                width + pad_w,
                height + pad_h,
            )
        self._pad = (pad_h, pad_w)
        stream.width, stream.height = width + pad_w, height + pad_h
        stream.pix_fmt = "yuv420p"
        self._stream = stream
        if self._audio_from is not None and _has_audio(self._audio_from):
            self._audio = _AudioCopy(self._container, self._audio_from, self.kind)
            log.info("tfnst: %s: %s from %s", self.path, self._audio.description, self._audio_from)

    def write(self, frame) -> None:
        if self._closed:
            raise RuntimeError("the writer is closed")
        a = _to_uint8(frame)
        if self.size is None:
            self.size = a.shape[:2]
            if self.kind != "folder":
                self._open(*self.size)
        elif a.shape[:2] != self.size:
            raise TfnstError(
                f"frames change size: frame {self.count} is {a.shape[1]}x{a.shape[0]}, "
                f"the first was {self.size[1]}x{self.size[0]}"
            )
        if self.kind == "folder":
            Image.fromarray(a, mode="RGB").save(self._tmp / f"{self.count + 1:06d}.png")
        else:
            av = require_av()
            if any(self._pad):
                a = np.pad(a, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
            video_frame = av.VideoFrame.from_ndarray(a, format="rgb24")
            video_frame.pts = self.count
            video_frame.time_base = 1 / self.fps
            if self._audio is not None:
                self._audio.until(self._container, float((self.count + 1) / self.fps))
            self._container.mux(self._stream.encode(video_frame))
        self.count += 1

    def close(self) -> Path:
        """Finish the file and move it into place; returns the path."""
        if self._closed:
            return self.path
        if self.count == 0:
            self.abort()
            raise TfnstError(f"{self.path}: no frames to write")
        self._closed = True
        try:
            if self.kind == "folder":
                (self._tmp / RATE_FILE).write_text(f"{self.fps}\n")
                _replace_folder(self._tmp, self.path)
            else:
                self._container.mux(self._stream.encode(None))
                if self._audio is not None:
                    self._audio.until(self._container, float(self.count / self.fps))
                    self._audio.close(self._container)
                self._container.close()
                self._atomic.__exit__(None, None, None)
        except BaseException:
            self._closed = False
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop what was written; an existing output stays as it was."""
        if self._closed:
            return
        self._closed = True
        if self.kind == "folder":
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        try:
            if self._audio is not None:
                self._audio._source.close()
            if self._container is not None:
                self._container.close()
        except Exception as e:  # noqa: BLE001 - the output is being thrown away
            log.debug("tfnst: closing the abandoned %s: %s", self._tmp, e)
        self._atomic.__exit__(_Abort, _Abort(), None)  # removes the temporary file

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _Abort(Exception):
    pass


def _has_audio(path: Path) -> bool:
    if path.is_dir():
        return False
    av = require_av()
    try:
        with av.open(str(path), "r") as c:
            return bool(c.streams.audio)
    except av.FFmpegError:
        return False


def _replace_folder(tmp: Path, path: Path) -> None:
    """Rename the finished folder ``tmp`` to ``path``; an existing ``path`` is moved aside
    first and removed after (so ``path`` is missing for the moment between two renames)."""
    if path.exists():
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old."))
        os.replace(path, old / "x")
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
    os.chmod(path, 0o755)


def write_video(
    path: str | os.PathLike, frames: Iterable, fps=None, *, audio_from: str | os.PathLike | None = None
) -> Path:
    """Write an iterable of frames (see `VideoWriter`); returns the path."""
    with VideoWriter(path, fps, audio_from=audio_from) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path
