"""``tfnst video``: a clip stylized frame by frame without flicker (Ruder, Dosovitskiy &
Brox, "Artistic Style Transfer for Videos", GCPR 2016; IJCV 2018).

Frame 1 is stylized as ``tfnst stylize`` would (the config's coarse-to-fine plan).
Each later frame i starts from the previous result warped into it by the content's
backward flow (Ruder et al., "short-term consistency by initialization") and is
optimized at full size for ``frame_iterations`` with the temporal term
(`tfnst.terms.Temporal`, weight ``temporal_weight``) against the results of the
frames i − j, j in ``temporal_frames`` (``(1,)``: short-term; ``(1, 2, 4)``: Ruder et
al.'s long-term loss, each pixel tied to the closest earlier frame that saw it). The
flow is OpenCV's DIS between the content frames at the result's size; the reliability
weights are Ruder et al.'s forward–backward test (`tfnst.flow`). With
``temporal_weight = 0`` every frame is stylized on its own, as frame 1: independent
frames, the baseline that flickers.

Long clips: frames are read lazily and only the last ``max(temporal_frames)`` content
frames and results are held, so memory does not grow with the clip. Each finished
frame is written (PNG, atomically) to a work folder beside the output, ``OUT.frames/``,
with ``run.json`` saying what run it belongs to (input, styles, options). A run that
finds a work folder of the same run resumes at the first unfinished frame; the earlier
results come back from their PNGs, and because every result goes through 8-bit PNG
before the next frame uses it, a resumed run gives the frames an uninterrupted one
gives. A work folder of another run is refused (``restart=True`` replaces it). The
video is written (atomically, `tfnst.video_io`) only when every frame is done; the
work folder is then removed. Ctrl-C keeps the finished frames.

Audio: copied from the input into an mp4 or webm output (re-encoded where the
container needs it), dropped for a frame folder (`tfnst.video_io`). The frame rate is
the input's (24 when a frame folder does not say).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tfnst.atomic import atomic_path
from tfnst.config import StyleConfig, check_layers_used, check_request
from tfnst.errors import TfnstError
from tfnst.image_io import read_image, to_array
from tfnst.resize import fit_size, resize
from tfnst.vgg_layers import MIN_SIDE

log = logging.getLogger(__name__)

FRAME_ITERATIONS = 50  # docs/video.md: 25 (against frame 1's 50) kept the style term; 50 leaves a margin
TEMPORAL_FRAMES = (1,)
RUN_FILE = "run.json"
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif")


class VideoInterrupted(KeyboardInterrupt):
    """Ctrl-C during `stylize_video`: ``done`` frames are finished and kept in ``work``."""

    def __init__(self, done: int, total: int | None, work: Path, cause: BaseException):
        super().__init__(f"interrupted after {done} frames")
        self.done, self.total, self.work, self.cause = done, total, work, cause


@dataclass
class VideoResult:
    """What `stylize_video` did: the output, how many frames, how many were resumed
    from the work folder, and the seconds each stylized frame took (in order)."""

    path: Path
    frames: int
    resumed: int
    seconds: list


def work_folder(output) -> Path:
    """Where the per-frame results of ``output`` are kept until the video is written."""
    output = Path(output)
    return output.with_name(output.name + ".frames")


def parse_temporal_frames(text) -> tuple[int, ...]:
    """``"1,2,4"`` (or a sequence) to (1, 2, 4): distinct offsets, ascending, starting at 1."""
    try:
        values = tuple(int(v) for v in (text.split(",") if isinstance(text, str) else text))
    except (TypeError, ValueError):
        raise TfnstError(f"temporal frames must be whole numbers such as 1,2,4, received {text!r}") from None
    if not values or values[0] != 1 or list(values) != sorted(set(values)):
        raise TfnstError(f"temporal frames must start at 1 and grow (e.g. 1 or 1,2,4), received {text!r}")
    return values


def _digest(paths: Sequence) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(np.ascontiguousarray(to_array(p), np.float32).tobytes())
    return h.hexdigest()


def _identity(source: Path, info, styles, config: StyleConfig, hw, frame_iterations, temporal_frames, flow) -> dict:
    stat = source.stat()
    options = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}
    return {
        "source": str(source.resolve()),
        "source_size": stat.st_size,
        "source_mtime": stat.st_mtime_ns,
        "frames": info.frame_count,
        "styles": _digest(styles),
        "options": options,
        "size": list(hw),
        "frame_iterations": frame_iterations,
        "temporal_frames": list(temporal_frames),
        "flow": flow,
    }


def _frame_path(work: Path, index: int) -> Path:
    return work / f"{index + 1:06d}.png"


def _finished(work: Path) -> int:
    """The number of frames finished: the first missing PNG's index."""
    n = 0
    while _frame_path(work, n).is_file():
        n += 1
    return n


def _save_frame(image, path: Path) -> np.ndarray:
    """The result as 8-bit RGB PNG, atomically; returns it as the next frames see it."""
    a = np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(a, mode="RGB").save(tmp, format="PNG")
    return a.astype(np.float32) / 255.0


def _prepare_work(work: Path, identity: dict, restart: bool) -> int:
    """The work folder ready for this run; returns the frames already finished."""
    run_file = work / RUN_FILE
    if work.exists():
        same = False
        if run_file.is_file():
            try:
                same = json.loads(run_file.read_text()) == json.loads(json.dumps(identity))
            except ValueError:
                same = False
        if same and not restart:
            return _finished(work)
        if not restart:
            raise TfnstError(
                f"{work} holds the frames of another run (other input, styles or options); "
                "pass --restart to replace them, or remove the folder"
            )
        if not work.is_dir():
            raise TfnstError(f"{work} is in the way of the work folder; remove it")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    with atomic_path(run_file) as tmp:
        Path(tmp).write_text(json.dumps(identity, indent=1))
    return 0


class _FrameBar:
    """A tqdm bar counting frames (to stderr), or nothing when quiet."""

    def __init__(self, total, initial: int, quiet: bool, size):
        self.bar = None
        if not quiet:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=initial, desc=f"tfnst video {size[1]}x{size[0]}", unit="frame", dynamic_ncols=True
            )

    def update(self, **postfix):
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def stylize_video(
    source,
    styles,
    output,
    config: StyleConfig | None = None,
    *,
    frame_iterations: int | None = None,
    temporal_frames: Sequence[int] = TEMPORAL_FRAMES,
    flow: str = "dis",
    restart: bool = False,
    quiet: bool = True,
    stylizer=None,
    callbacks=None,
    on_frame: Callable | None = None,
) -> VideoResult:
    """Stylize the clip ``source`` after ``styles`` into ``output`` (see the module notes).

    Args:
        source: a video file or a folder of numbered frames (`tfnst.video_io`).
        styles: a style image (path, array) or a list of them (blended as `stylize` does).
        output: ``.mp4``, ``.webm`` or a folder of PNG frames.
        config: the stylization's options (``size``, weights, ``iterations`` of frame 1,
            ``temporal_weight``, …).
        frame_iterations: iterations of each frame after the first (at full size, from
            the warped previous result); `FRAME_ITERATIONS` when None.
        temporal_frames: the offsets j of the earlier frames i − j each frame is tied
            to, ascending from 1.
        flow: OpenCV's ``dis`` or ``farneback``.
        restart: replace a work folder of another run instead of refusing it.
        quiet: no progress bar.
        stylizer: a `tfnst.Stylizer` to reuse (one is made from ``config`` otherwise).
        callbacks: per-iteration callbacks handed to each frame's run.
        on_frame: ``on_frame(index, image)`` after each frame is saved.

    Returns:
        A `VideoResult`.

    Raises:
        TfnstError: bad input (not a video, no frames, frames changing size, an output
            that cannot be written); the finished frames stay in the work folder.
        VideoInterrupted: on Ctrl-C, the finished frames kept.
    """
    from tfnst.api import Stylizer
    from tfnst.temporal import as_term_target, temporal_targets
    from tfnst.video_io import VideoReader, VideoWriter, check_video_output

    config = config or StyleConfig()
    styles = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    check_request(config, has_content=True, styles=len(styles))
    temporal_frames = parse_temporal_frames(temporal_frames)
    frame_iterations = FRAME_ITERATIONS if frame_iterations is None else int(frame_iterations)
    if frame_iterations <= 0:
        raise TfnstError(f"frame_iterations must be positive, received {frame_iterations}")
    output = check_video_output(output)
    reader = VideoReader(source)
    info = reader.info
    for s in styles:
        to_array(s, max_pixels=config.max_pixels)  # a bad style is reported before any work
    hw = fit_size((info.height, info.width), config.size)
    if min(hw) < MIN_SIDE:
        raise TfnstError(
            f"the frames are {hw[1]}x{hw[0]} at this size; VGG19 needs at least {MIN_SIDE} "
            "pixels per side (raise --size)"
        )
    work = work_folder(output)
    identity = _identity(Path(source), info, styles, config, hw, frame_iterations, temporal_frames, flow)
    done = _prepare_work(work, identity, restart)
    stylizer = stylizer or Stylizer(config)
    independent = config.temporal_weight == 0
    keep = max(temporal_frames)
    history: deque = deque(maxlen=keep)  # (content, result) of the last frames, latest last
    seconds, count, resumed = [], 0, min(done, info.frame_count or done)
    bar = _FrameBar(info.frame_count, 0, quiet, hw)
    try:
        for index, frame in enumerate(reader.frames()):
            content = resize(frame, hw).numpy()
            count = index + 1
            if index < done:  # finished by an earlier run
                history.append((content, read_image(_frame_path(work, index))))
                bar.update()
                continue
            start = time.perf_counter()
            if index == 0 or independent:
                result = stylizer.run(content, styles, callbacks=callbacks, **_options(stylizer, config))
            else:
                earlier = [(j, history[-j][0], history[-j][1]) for j in temporal_frames if j <= len(history)]
                targets = temporal_targets(content, earlier, method=flow)
                result = stylizer.run(
                    content,
                    styles,
                    callbacks=callbacks,
                    temporal=as_term_target(targets),
                    **_options(stylizer, config, init=targets[0].warped, iterations=frame_iterations, scales=1),
                )
            if result.failed:
                raise TfnstError(
                    f"frame {index + 1}: the optimization failed ({result.stop_reason}); "
                    f"the {index} frames before it are kept in {work}"
                )
            image = _save_frame(result.image, _frame_path(work, index))
            seconds.append(time.perf_counter() - start)
            history.append((content, image))
            if on_frame is not None:
                on_frame(index, image)
            bar.update(s_per_frame=f"{seconds[-1]:.1f}")
    except KeyboardInterrupt as e:
        bar.close()
        raise VideoInterrupted(_finished(work), info.frame_count, work, e) from None
    bar.close()
    if count == 0:
        raise TfnstError(f"{source}: the video has no frames")
    with VideoWriter(output, info.fps, audio_from=None if info.is_folder else source) as writer:
        for index in range(count):
            writer.write(read_image(_frame_path(work, index)))
    shutil.rmtree(work, ignore_errors=True)
    return VideoResult(output, count, resumed, seconds)


def _options(stylizer, config: StyleConfig, **overrides) -> dict:
    """A frame's per-call options: ``config`` where it differs from the stylizer's own,
    and ``overrides``."""
    base = stylizer.config
    options = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.name not in stylizer.NETWORK_OPTIONS and getattr(config, f.name) != getattr(base, f.name)
    }
    return {**options, **overrides}


# ------------------------------------------------------------------ by a trained network
def is_video(path) -> bool:
    """A video file by its suffix, or a folder (of numbered frames)."""
    path = Path(path)
    return path.suffix.lower() in VIDEO_SUFFIXES or path.is_dir()


def apply_network(model, source, output, size: int | None = None, *, quiet: bool = True) -> Path:
    """A clip through a trained network (`tfnst.networks`), frame by frame, at the input's
    frame rate and with its audio (`tfnst.video_io`); frames are read lazily and the
    output written atomically. ``size``: resize each frame to that longest side first."""
    from tfnst.networks import stylize_with
    from tfnst.video_io import VideoReader, VideoWriter, check_video_output

    output = check_video_output(output)
    reader = VideoReader(source)
    info = reader.info
    hw = fit_size((info.height, info.width), size) if size else (info.height, info.width)
    bar = _FrameBar(info.frame_count, 0, quiet, hw)
    try:
        with VideoWriter(output, info.fps, audio_from=None if info.is_folder else source) as writer:
            for frame in reader.frames():
                writer.write(stylize_with(model, frame, size))
                bar.update()
    finally:
        bar.close()
    return output


# ------------------------------------------------------------------ the command
def add_arguments(p) -> None:
    """``tfnst video``'s own options (the stylization's come from `tfnst.config`)."""
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output video (.mp4: H.264, .webm: VP9) or a folder of PNG frames; written when "
        "every frame is done (finished frames wait in OUTPUT.frames/, and a run that finds "
        "them resumes at the first unfinished frame)",
    )
    p.add_argument(
        "--frame-iterations",
        type=int,
        default=FRAME_ITERATIONS,
        metavar="N",
        help="iterations of each frame after the first, which starts from the previous "
        f"result warped by the optical flow (default: {FRAME_ITERATIONS}; frame 1 runs "
        "--iterations as stylize does)",
    )
    p.add_argument(
        "--temporal-frames",
        default="1",
        metavar="J",
        help="the earlier frames i-j each frame is tied to: 1 (short-term) or e.g. 1,2,4 "
        "(Ruder et al.'s long-term loss) (default: 1)",
    )
    p.add_argument("--flow", choices=("dis", "farneback"), default="dis", help="OpenCV's optical flow (default: dis)")
    p.add_argument(
        "--restart",
        action="store_true",
        help="discard finished frames of another run in OUTPUT.frames/ instead of refusing",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")


def video_command(args, options: dict) -> int:
    """``tfnst video``: checks everything before the first frame, then `stylize_video`."""
    import sys

    from tfnst.cli import _signals_as_interrupt, _Terminated
    from tfnst.video_deps import require_av, require_cv2

    require_av()
    require_cv2()
    config = StyleConfig().replace(**options)
    check_request(config, has_content=True, styles=len(args.style))  # before the first frame
    check_layers_used(config)
    try:
        with _signals_as_interrupt() as reraise_signal:
            result = stylize_video(
                args.input,
                args.style,
                args.output,
                config,
                frame_iterations=args.frame_iterations,
                temporal_frames=parse_temporal_frames(args.temporal_frames),
                flow=args.flow,
                restart=args.restart,
                quiet=args.quiet,
                callbacks=[reraise_signal],
            )
    except VideoInterrupted as e:
        terminated = isinstance(e.cause, _Terminated) or isinstance(getattr(e.cause, "cause", None), _Terminated)
        print(
            f"\ntfnst: {'terminated' if terminated else 'interrupted'}; {e.done} finished frames kept in "
            f"{e.work}; run the same command again to resume",
            file=sys.stderr,
        )
        return 143 if terminated else 130
    note = f", {result.resumed} resumed" if result.resumed else ""
    print(f"tfnst: wrote {result.path} ({result.frames} frames{note})", file=sys.stderr)
    return 0
