"""Flicker and cost of ``tfnst video``: independent frames against Ruder et al.'s temporal term.

    python -m benchmarks.video [--clip pan|bunny] [--frames 24] [--size 128]
        [--weights 0,200] [--iterations 100] [--scales 2] [--frame-iterations 50] [--strip docs/video.jpg]

For each temporal weight (0 = independent frames, each stylized as frame 1), the clip
goes through `tfnst.video.stylize_video` (the same code as ``tfnst video``) into a
folder of PNG frames (lossless), and the benchmark reports Lai et al.'s warping error
(`tfnst.video_metrics`, with DIS flow of the content frames), the style and content
terms of each frame (tfnst's normalised terms, against the same targets the frames were
optimized for), and the seconds of frame 1 and the mean of the later frames. ``pan`` is
the synthetic pan of `tfnst.video_clips` (2 px a frame to the right over
examples/tubingen.jpg, written as a PNG folder); ``bunny`` the bundled Big Buck Bunny
excerpt (data/video, CC BY 3.0). ``--strip`` writes a picture: content frames (top),
the first weight's results (middle) and the last weight's (bottom).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tfnst import video_clips
from tfnst.api import Stylizer
from tfnst.config import StyleConfig
from tfnst.image_io import read_image
from tfnst.video import stylize_video
from tfnst.video_io import read_video, write_video
from tfnst.video_metrics import warping_error
from tools.side_by_side import side_by_side

ROOT = Path(__file__).resolve().parent.parent
BUNNY = ROOT / "data" / "video" / "bigbuckbunny_2s_128.mp4"
STYLE = ROOT / "examples" / "starry_night.jpg"


def clip_source(name: str, frames: int, size: int, folder: Path) -> Path:
    if name == "pan":
        # The photo large enough for the whole pan (2 px a frame from (8, 8)), so that
        # frames above 256 px are not windows onto its border.
        source = video_clips.photo(max(256, size + 2 * frames + 16))
        clip = video_clips.pan(frames, size=(size * 3 // 4, size), shift=(2.0, 0.0), source=source)
        return write_video(folder / "pan", clip.frames, clip.fps)
    frames_, info = read_video(BUNNY, max_frames=frames)
    return write_video(folder / "bunny", frames_, info.fps)


def terms_per_frame(stylizer: Stylizer, config: StyleConfig, contents, results) -> dict:
    """The style and content terms of each result, against its frame's targets."""
    engine = stylizer.engine(config, True)
    out = {"style": [], "content": []}
    for content, image in zip(contents, results):
        hw = content.shape[:2]
        targets = engine.targets(engine.inputs(content, [read_image(STYLE)]), hw)
        _, terms, _ = engine.objective(image, targets)
        for k, values in out.items():
            values.append(float(terms[k]))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", choices=("pan", "bunny"), default="pan")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--weights", default="0,200")
    parser.add_argument("--iterations", type=int, default=100, help="frame 1's (and independent frames')")
    parser.add_argument("--scales", type=int, default=2, help="frame 1's (and independent frames')")
    parser.add_argument("--frame-iterations", default="50", help="later frames'; a list sweeps")
    parser.add_argument("--temporal-frames", default="1")
    parser.add_argument("--strip", help="write a strip picture (first weight on top, last below)")
    parser.add_argument("--strip-frames", default="0,6,12,18,23")
    parser.add_argument(
        "--animation",
        help="write an animated picture (.gif or .webp, looping at the clip's rate): the content, "
        "the first weight and the last, side by side",
    )
    parser.add_argument("--json", help="append each run's numbers to this JSON-lines file")
    args = parser.parse_args(argv)
    config = StyleConfig(size=args.size, iterations=args.iterations, scales=args.scales)
    stylizer = Stylizer(config)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = clip_source(args.clip, args.frames, args.size, tmp)
        contents, info = read_video(source)
        contents = list(contents)
        print(f"{args.clip}: {len(contents)} frames {contents[0].shape[1]}x{contents[0].shape[0]}")
        print(
            "| temporal weight | frame iterations | warping error | vs independent | style (mean) | "
            "vs independent | content (mean) | s frame 1 | s per later frame |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        base = None
        for weight in (float(w) for w in args.weights.split(",")):
            for fi in (args.frame_iterations.split(",")[0],) if weight == 0 else args.frame_iterations.split(","):
                cfg = config.replace(temporal_weight=weight)
                out = tmp / f"out_{weight:g}_{fi}"
                start = time.perf_counter()
                result = stylize_video(
                    source,
                    STYLE,
                    out,
                    cfg,
                    frame_iterations=int(fi),
                    temporal_frames=args.temporal_frames,
                    stylizer=stylizer,
                    restart=True,
                )
                wall = time.perf_counter() - start
                results = list(read_video(out)[0])
                err = warping_error(results, contents)
                terms = terms_per_frame(stylizer, cfg, contents, results)
                row = dict(
                    clip=args.clip,
                    frames=len(results),
                    size=args.size,
                    weight=weight,
                    frame_iterations=int(fi) if weight else args.iterations,
                    temporal_frames=args.temporal_frames,
                    warping_error=err.mean,
                    style=float(np.mean(terms["style"])),
                    content=float(np.mean(terms["content"])),
                    style_per_frame=terms["style"],
                    first_s=result.seconds[0],
                    later_s=float(np.mean(result.seconds[1:])),
                    wall_s=wall,
                )
                base = base or row
                runs[(weight, fi)] = results
                print(
                    f"| {weight:g} | {row['frame_iterations']} | {err.mean:.5f} | "
                    f"{err.mean / base['warping_error']:.2f}x | {row['style']:.4f} | "
                    f"{row['style'] / base['style'] - 1:+.1%} | {row['content']:.3f} | "
                    f"{row['first_s']:.1f} | {row['later_s']:.2f} |",
                    flush=True,
                )
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(row) + "\n")
        if args.strip:
            keys = list(runs)
            pick = [int(i) for i in args.strip_frames.split(",") if int(i) < len(contents)]
            rows = [np.concatenate([runs[k][i] for i in pick], axis=1) for k in (keys[0], keys[-1])]
            strip = np.concatenate([np.concatenate([contents[i] for i in pick], axis=1), *rows], axis=0)
            Image.fromarray(np.round(strip * 255).astype(np.uint8)).save(args.strip, quality=88)
            print(f"wrote {args.strip}: content, weight {keys[0][0]:g}, weight {keys[-1][0]:g}")
        if args.animation:
            keys = list(runs)
            write_animation(args.animation, [contents, runs[keys[0]], runs[keys[-1]]], info.fps or 24)
            print(f"wrote {args.animation}: content | weight {keys[0][0]:g} | weight {keys[-1][0]:g}")


def write_animation(path, clips, fps, gap: int = 2) -> None:
    """Clips of equal length and frame size, side by side with ``gap`` white pixels, as a
    looping animation at ``fps`` (GIF or WebP, by the suffix)."""
    frames = []
    for images in zip(*clips):
        row = side_by_side(images, images[0].shape[0], gap)
        frames.append(Image.fromarray(np.round(np.clip(row, 0, 1) * 255).astype(np.uint8)))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=round(1000 / float(fps)), loop=0)


if __name__ == "__main__":
    main()
