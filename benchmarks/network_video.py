"""Flicker of a trained network applied to a clip frame by frame, with and without the
stability term (`tfnst.networks.stability_loss`, ``tfnst train --stability-weight``).

    python -m benchmarks.network_video [--weights 0,100] [--steps 200] [--size 64] [--clip-size 128]
        [--width 16] [--depth 3] [--learning-rate 0.003] [--frames 24]
        [--apply-sizes 256,512] [--networks DIR] [--strip docs/network_video_strip.jpg]

For each stability weight, a network is trained by `tfnst.networks.train` (the code of
``tfnst train``) with the same seed, steps and data (data/photos: ten scikit-image
sample photos, 4 fixed crops each; style examples/starry_night.jpg; small crops and
few steps by default, for a shared 2-core machine) and saved in ``--networks`` (an
existing file there is reused, so the evaluation can be rerun, or the networks trained
by separate invocations with ``--clips '' --apply-sizes ''``). Each network then
stylizes the synthetic pan of `benchmarks.video` (``--clip-size`` wide, 2 px a frame
over examples/tubingen.jpg, which is not among the training photos) and the Big Buck
Bunny excerpt (128x72), frame by frame, its results rounded to 8 bits as a video's
frames are, and the benchmark reports:

* Lai et al.'s warping error (`tfnst.video_metrics`, DIS flow of the content frames, as
  `benchmarks.video` measures the optimization); on the pan also with the exact flow
  (the known 2 px shift: `stability_loss` between consecutive results, the columns
  that enter the view left out); and the same for the input frames themselves, the
  metric's floor on that clip;
* the style and content terms of each frame (`benchmarks.video.terms_per_frame`: the
  defaults' Gatys layers, each frame against its own targets, as for the optimization);
* seconds per frame of `tfnst.video.apply_network` (the code of ``tfnst apply
  NET.keras IN.mp4 -o OUT.mp4``) on the bunny excerpt resized to each of
  ``--apply-sizes`` (longest side; mp4 in and out, decoding and encoding included,
  start-up not), for the first network (the term changes the weights, not the cost),
  with the load average (on a shared machine the seconds are a comparison, not a speed).

``--strip`` writes a picture: pan frames (top), then each weight's results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.run import RESULTS, report_header
from benchmarks.video import BUNNY, STYLE, clip_source, terms_per_frame

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "data" / "photos"
PAN_SHIFT = (0, 2)  # (dy, dx): benchmarks.video's pan moves the camera 2 px a frame to the right


def exact_pan_error(results) -> list[float]:
    """Lai et al.'s warping error of each consecutive pair of the pan with its exact flow:
    result t+1 at (i, j) against result t at (i, j + 2), where both see the photo."""
    import tensorflow as tf

    from tfnst.networks import stability_loss

    return [
        float(stability_loss(a[None], b[None], tf.constant([PAN_SHIFT]))) for a, b in zip(results[:-1], results[1:])
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="0,100", help="stability weights, one network each")
    parser.add_argument("--shift", type=int, default=4, help="--stability-shift")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=64, help="training crops are SIZExSIZE")
    parser.add_argument("--clip-size", type=int, default=128, help="the pan's width (the bunny excerpt is 128x72)")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--clips", default="pan,bunny")
    parser.add_argument("--apply-sizes", default="256,512", help="'' to skip the timing")
    parser.add_argument(
        "--networks",
        default=str(Path(tempfile.gettempdir()) / "tfnst-network-video"),
        help="where the networks are kept",
    )
    parser.add_argument("--strip", help="a picture: pan frames (top), then each weight's results")
    parser.add_argument("--strip-frames", default="0,1,2,3")
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--name", default=f"network-video-{datetime.date.today().isoformat()}")
    args = parser.parse_args(argv)

    import keras

    from tfnst.api import Stylizer
    from tfnst.config import StyleConfig
    from tfnst.networks import load_network, save_network, stylize_with, train
    from tfnst.video import apply_network
    from tfnst.video_io import read_video
    from tfnst.video_metrics import warping_error

    report = {**report_header("benchmarks.network_video", argv), "rows": [], "floors": [], "apply": []}
    folder = Path(args.networks)
    folder.mkdir(parents=True, exist_ok=True)
    common = dict(
        size=args.size,
        steps=args.steps,
        width=args.width,
        depth=args.depth,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        precision=args.precision,
        seed=0,
    )
    networks = {}
    for weight in (float(w) for w in args.weights.split(",")):
        path = folder / f"starry_w{args.width}_d{args.depth}_s{args.size}_{args.steps}steps_stab{weight:g}.keras"
        stab = dict(stability_weight=weight, stability_shift=args.shift) if weight else {}
        if path.exists():
            print(f"reusing {path}", flush=True)
            seconds = cpu = losses = None
        else:
            losses = []
            start, cpu = time.perf_counter(), time.process_time()
            model = train(
                STYLE,
                PHOTOS,
                **common,
                **stab,
                verbose=0,
                callbacks=[
                    keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs, seen=losses: seen.append(logs["loss"]))
                ],
            )
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            save_network(model, path)
            print(f"trained {path} in {seconds:.0f} s; loss {losses[0]:.3f} -> {losses[-1]:.3f}", flush=True)
        networks[weight] = load_network(path)
        report.setdefault("training", []).append(
            dict(
                weight=weight,
                network=str(path),
                seconds=seconds,
                cpu_seconds=cpu,
                epoch_losses=losses,
                **common,
                **stab,
            )
        )

    config = StyleConfig(size=args.clip_size)
    stylizer = Stylizer(config)
    results_by = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for clip in filter(None, args.clips.split(",")):
            contents = list(read_video(clip_source(clip, args.frames, args.clip_size, tmp))[0])
            h, w = contents[0].shape[:2]
            print(f"\n{clip}: {len(contents)} frames {w}x{h}")
            print(
                "| stability weight | warping error (DIS flow) | vs weight 0 | warping error (exact flow) | "
                "vs weight 0 | style term (mean) | vs weight 0 | style per frame vs weight 0 | content term (mean) |"
            )
            print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            # The metric's floor: the input frames against their own flow (0 with exact
            # flow and no new content; DIS flow's errors and real motion leave more).
            floor = warping_error(contents, contents)
            exact_floor = float(np.mean(exact_pan_error(contents))) if clip == "pan" else None
            report["floors"].append(dict(clip=clip, warping_error=floor.mean, exact_warping_error=exact_floor))
            exact_text = "–" if exact_floor is None else f"{exact_floor:.5f}"
            print(f"| input frames (no network) | {floor.mean:.5f} | – | {exact_text} | – | – | – | – | – |")
            base = None
            for weight, model in networks.items():
                results = [stylize_with(model, frame) for frame in contents]
                # Through 8 bits, as a video or PNG frames would store them.
                results = [np.round(r * 255) / 255 for r in results]
                results_by[(clip, weight)] = results
                err = warping_error(results, contents)
                exact = exact_pan_error(results) if clip == "pan" else None
                terms = terms_per_frame(stylizer, config, contents, results)
                row = dict(
                    clip=clip,
                    frames=len(results),
                    hw=[h, w],
                    weight=weight,
                    warping_error=err.mean,
                    warping_error_pairs=err.pairs,
                    exact_warping_error=None if exact is None else float(np.mean(exact)),
                    style=float(np.mean(terms["style"])),
                    content=float(np.mean(terms["content"])),
                    style_per_frame=terms["style"],
                    content_per_frame=terms["content"],
                )
                report["rows"].append(row)
                base = base or row
                per_frame = np.array(terms["style"]) / np.array(base["style_per_frame"]) - 1
                exact_text = "– | –"
                if exact is not None:
                    ratio = row["exact_warping_error"] / base["exact_warping_error"]
                    exact_text = f"{row['exact_warping_error']:.5f} | {ratio:.2f}x"
                print(
                    f"| {weight:g} | {err.mean:.5f} | {err.mean / base['warping_error']:.2f}x | {exact_text} | "
                    f"{row['style']:.4f} | {row['style'] / base['style'] - 1:+.1%} | "
                    f"{per_frame.min():+.1%} … {per_frame.max():+.1%} | {row['content']:.3f} |",
                    flush=True,
                )
            if clip == "pan":
                pan_contents = contents
        if args.strip and "pan" in args.clips.split(","):
            pick = [int(i) for i in args.strip_frames.split(",")]
            rows = [np.concatenate([pan_contents[i] for i in pick], axis=1)]
            rows += [np.concatenate([results_by[("pan", wt)][i] for i in pick], axis=1) for wt in networks]
            Image.fromarray(np.round(np.concatenate(rows, axis=0) * 255).astype(np.uint8)).save(args.strip, quality=90)
            print(f"wrote {args.strip}: pan frames {pick}, then weights {list(networks)}")

        sizes = [int(s) for s in args.apply_sizes.split(",") if s]
        if sizes:
            model = next(iter(networks.values()))
            frames = read_video(BUNNY)[1].frame_count
            print(f"\ntfnst apply on {BUNNY.name} ({frames} frames, mp4 to mp4)")
            print(
                "| frames' size | frames | seconds | s / frame | CPU s / frame (all threads) | load average (1 min) |"
            )
            print("| --- | --- | --- | --- | --- | --- |")
            apply_network(model, BUNNY, tmp / "warm.mp4", size=sizes[0])  # warm-up (tracing)
            for size in sizes:
                start, cpu = time.perf_counter(), time.process_time()
                apply_network(model, BUNNY, tmp / f"apply_{size}.mp4", size=size)
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                frames_out = list(read_video(tmp / f"apply_{size}.mp4")[0])
                n, hw = len(frames_out), list(frames_out[0].shape[:2])
                load = os.getloadavg()[0]
                report["apply"].append(
                    dict(
                        size=size,
                        hw=hw,
                        frames=n,
                        seconds=seconds,
                        per_frame=seconds / n,
                        cpu_per_frame=cpu / n,
                        load=load,
                    )
                )
                print(
                    f"| {hw[1]}x{hw[0]} | {n} | {seconds:.1f} | {seconds / n:.3f} | {cpu / n:.3f} | {load:.1f} |",
                    flush=True,
                )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    out = Path(args.out) / f"{args.name}.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
