"""Seconds per frame of the video building blocks, and DIS flow's accuracy on known motion.

    python -m benchmarks.video_flow [--sizes 128,256,512] [--frames 6]

For each size (the frames' width; 4:3), a synthetic pan (1.5, 0.5) px a frame and a zoom
(1.03 a frame) over examples/tubingen_1024.jpg (tfnst.video_clips): the time of one
flow (DIS preset medium, Farnebäck), of Ruder et al.'s weights from a forward and a
backward flow, and of one TF warp (eager; the first call, which traces, left out); and
DIS's end-point error against the true flow, mean over the interior (8 px border off).
"""

import argparse
import time
from pathlib import Path

import numpy as np

from tfnst import video_clips
from tfnst.flow import consistency_weights, optical_flow, warp

PHOTO = Path(__file__).resolve().parent.parent / "examples" / "tubingen_1024.jpg"


def timed(fn, repeat):
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - start) / repeat, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,256,512")
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args(argv)
    print("| width | motion | DIS s | Farnebäck s | weights s | warp s | DIS end-point error (mean, px) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for width in (int(s) for s in args.sizes.split(",")):
        size = (width * 3 // 4, width)
        source = video_clips.photo(max(2 * width, 256), PHOTO)
        clips = {
            "pan": video_clips.pan(args.frames, size=size, shift=(1.5, 0.5), source=source),
            "zoom": video_clips.zoom(args.frames, size=size, factor=1.03, source=source),
        }
        for name, clip in clips.items():
            t_dis = t_fb = t_w = t_warp = 0.0
            epe = []
            n = args.frames - 1
            for t in range(n):
                a, b = clip.frames[t], clip.frames[t + 1]
                s, back = timed(lambda a=a, b=b: optical_flow(b, a), 1)
                t_dis += s
                t_fb += timed(lambda a=a, b=b: optical_flow(b, a, "farneback"), 1)[0]
                fwd = optical_flow(a, b)
                t_w += timed(lambda f=fwd, w=back: consistency_weights(f, w), 1)[0]
                t_warp += timed(lambda a=a, w=back: warp(a, w).numpy(), 1)[0]
                epe.append(np.linalg.norm(back - clip.backward[t], axis=-1)[8:-8, 8:-8].mean())
            print(
                f"| {width} | {name} | {t_dis / n:.4f} | {t_fb / n:.4f} | {t_w / n:.4f} | "
                f"{t_warp / n:.4f} | {np.mean(epe):.3f} |"
            )


if __name__ == "__main__":
    main()
