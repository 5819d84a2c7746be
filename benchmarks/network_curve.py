"""A trained network's objective on unseen photos as its training goes on (issue 23).

    python -m benchmarks.network_curve --steps 2400 --save-at 150,300,600,1200
        [--settings '{"crops": 60}'] [--style examples/starry_night.jpg] [--images data/photos]
        [--size 256] [--seen data/photos/chelsea.jpg,…] [--noise-curve 10,15,20,30,50]
        [--objective '{"content_layers": ["block2_conv2"], …}'] [--window 128] [--keep DIR] [--name NAME]

Trains with the README's recipe (``tfnst train … --size 256 --crop-size 128 --width 16
--depth 3 --learning-rate 0.003 --learning-rate-decay cosine`` on the objective's layers;
``--settings`` adds or overrides `tfnst.TrainConfig` options), saving the network at
each step of ``--save-at`` (the cosine decay spans ``--steps``, so a network saved at
step 600 of 2400 is not the 600-step recipe's). Then scores each saved network on the
unseen photos as ``benchmarks.network_quality`` does (the float32 objective of the
defaults at ``--size``) and measures the grid in the rocket's sky as
``benchmarks.network_spectrum`` does. Prints a row per saved step: the training loss
(the mean since the epoch's start), wall and CPU seconds so far, the objective on each
photo, the sky's period-4 peak. ``--seen`` scores training photos the same way beside
the unseen ones: the gap between the two says whether the network fails to generalize
from the few photos or fails to fit them. ``--noise-curve`` also runs Johnson et al.'s
yardstick on every scored photo, L-BFGS from noise (``network_quality.FROM_NOISE``)
for each iteration count, scored the same way: the
network's objective in iterations of that optimization. ``--objective`` (`StyleConfig`
options, e.g. other layers) changes the objective everywhere at once: the training's
loss (its layers and weights, unless ``--settings`` sets them), the score, and the
optimization of the yardstick. ``--window`` also scores (and runs the yardstick on) a
centre window of that many pixels of each photo brought to the training's scale (its
shorter side the recipe's ``size``, the lower end of the training's scale jitter), with
the style at the training's scale too (``style_scale`` = size / window): what the
network trained on, against the whole photo it is scored on. With ``--name`` the report goes to
``benchmarks/results/NAME.json``.
"""

import argparse
import json
import os
import sys
import tempfile
import time

from benchmarks.network_quality import FROM_NOISE, UNSEEN
from benchmarks.run import RESULTS, report_header

# The README's training command (docs/networks.md, "Measurements").
RECIPE = dict(
    size=256,
    crop_size=128,
    width=16,
    depth=3,
    learning_rate=0.003,
    learning_rate_decay="cosine",
    content_layers=("block4_conv2",),
    style_layers=("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--save-at", required=True, help="comma-separated steps at which the network is saved and scored")
    p.add_argument("--settings", default="{}", help="TrainConfig options as JSON, on top of the recipe")
    p.add_argument("--style", default="examples/starry_night.jpg")
    p.add_argument("--images", default="data/photos")
    p.add_argument("--size", type=int, default=256, help="the scored photos' longest side")
    p.add_argument("--seen", default="", help="comma-separated training photos to score beside the unseen ones")
    p.add_argument("--noise-curve", default="", help="comma-separated L-BFGS iteration counts from noise")
    p.add_argument(
        "--objective", default="{}", help="StyleConfig options as JSON: the objective trained, scored and optimized"
    )
    p.add_argument("--window", type=int, help="also score centre windows of this side at the training's scale")
    p.add_argument("--keep", help="a folder to keep the saved networks in (default: a temporary one)")
    p.add_argument("--name", help="write benchmarks/results/NAME.json")
    args = p.parse_args(argv)
    save_at = sorted({int(s) for s in args.save_at.split(",")})
    objective = json.loads(args.objective)
    trained = ("content_layers", "style_layers", "content_weight", "style_weight", "tv_weight")
    options = {**RECIPE, **{k: v for k, v in objective.items() if k in trained}, **json.loads(args.settings)}
    options["steps"] = args.steps
    counts = [int(n) for n in args.noise_curve.split(",") if n]

    import keras

    import tfnst
    from benchmarks.network_spectrum import SKY, grid_peaks
    from benchmarks.quality import scorer
    from tfnst.image_io import read_image
    from tfnst.networks import load_network, save_network, stylize_with, train
    from tfnst.resize import fit_size, resize

    folder = args.keep or tempfile.mkdtemp(prefix="tfnst-curve-")
    os.makedirs(folder, exist_ok=True)
    start, cpu = time.perf_counter(), time.process_time()
    saved = []

    class Save(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            step = int(self.model.optimizer.iterations.numpy())
            if step in save_at:
                path = os.path.join(folder, f"step{step}.keras")
                save_network(self.model, path)
                seconds = {"wall_seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}
                saved.append({"step": step, "path": path, "training_loss": float(logs["loss"]), **seconds})
                print(f"saved step {step}: {saved[-1]}", file=sys.stderr, flush=True)

    train(args.style, args.images, callbacks=[Save()], verbose=0, **options)

    style = read_image(args.style)
    stylizer = tfnst.Stylizer(scales=1, **objective)
    noise = stylizer.config.replace(**FROM_NOISE)
    curves = {}
    photos = []
    scored = UNSEEN + tuple(s for s in args.seen.split(",") if s)
    for path in scored:
        image = read_image(path)
        # (name, image, style_scale): the style at the scale the training saw it, its
        # longest side the recipe's size, for the whole photo (at --size) and the window.
        views = [(os.path.basename(path), resize(image, fit_size(image.shape[:2], args.size)).numpy(), 1.0)]
        if args.window:
            hw = image.shape[:2]
            scaled = resize(image, [round(d * options["size"] / min(hw)) for d in hw]).numpy()
            top, left = [(d - args.window) // 2 for d in scaled.shape[:2]]
            window = scaled[top : top + args.window, left : left + args.window]
            views.append((f"{os.path.basename(path)} window", window, options["size"] / args.window))
        for name, content, style_scale in views:
            score = scorer(content, style, **{**objective, "style_scale": style_scale})
            photos.append((name, content, score))
            curve = {}
            for n in counts:
                config = noise.replace(iterations=n, style_scale=style_scale)
                optimized = tfnst.Stylizer(config=config).stylize(content, style, size=max(content.shape[:2]))
                curve[n] = score(optimized)["total"]
            curves[name] = curve
    for row in saved:
        network = load_network(row["path"])
        for name, content, score in photos:
            out = stylize_with(network, content)
            row[name] = score(out)
            if name == "rocket.jpg":
                row["sky"] = grid_peaks(out[SKY])
    if not args.keep:
        import shutil

        shutil.rmtree(folder)
        for row in saved:
            del row["path"]
    report = {**report_header("benchmarks.network_curve", argv), "options": options, "objective": objective}
    report.update(rows=saved, noise_curve=curves)
    if args.name:
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, args.name + ".json"), "w") as f:
            json.dump(report, f, indent=1)
    names = [name for name, _, _ in photos]
    print(f"{report['cpu']}, {report['cores']} cores; {json.dumps(json.loads(args.settings))}")
    print("| step | training loss | wall s | CPU s | " + " | ".join(names) + " | sky, period 4 (levels) |")
    print("| --- " * (5 + len(names)) + "|")
    for r in saved:
        objectives = " | ".join(f"{r[n]['total']:.3f}" for n in names)
        print(
            f"| {r['step']} | {r['training_loss']:.3f} | {r['wall_seconds']:.0f} | {r['cpu_seconds']:.0f} | "
            f"{objectives} | {r['sky']['period4']:.0f}x ({r['sky']['levels4']:.2f}) |"
        )
    for n in counts:
        objectives = " | ".join(f"{curves[name][n]:.3f}" for name in names)
        print(f"| L-BFGS from noise, {n} iterations | | | | {objectives} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
