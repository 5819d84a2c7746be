"""A trained network against optimization, on photos it never saw.

    python -m benchmarks.network_quality --network starry.keras --style examples/starry_night.jpg
        [--images examples/tubingen.jpg data/holdout/rocket.jpg] [--size 256] [--picture docs/network.jpg]
        [--cache DIR] [--noise-curve 5,10,15,20,30]

For each image, at ``--size`` (longest side): the network's result (one forward pass)
and three optimizations': from the content, 300 iterations of Adam (the defaults until
2026-11-25) and 50 of L-BFGS, ``tfnst.Stylizer(optimizer="lbfgs", scales=1,
iterations=50)``; and 50 of L-BFGS from uniform noise (``init="noise", seed=0``). The
last is the bar of Johnson, Alahi & Fei-Fei 2016 as they measured it: on the objective
their networks were trained on, the networks scored as 50 to 100 iterations of their
baseline, Gatys et al.'s optimization by L-BFGS with the image "initialized with white
noise" (Sec. 4.1, Fig. 5); from the content (tfnst's default start) 50 iterations get
much further, a harder bar. All are scored by
the float32 objective of the defaults (the Gatys layers: its style and content terms are
tfnst's relative Gram and content distances), with their times. Then the network,
exported for TF Serving, serves the first image at 512 px (encoded bytes in, PNG out):
the median of 5 requests after one warm-up. Writes the report and a picture
(content | style | network | 50 L-BFGS iterations from noise | from the content | 300
Adam iterations, per image).
"""

import argparse
import datetime
import os
import sys
import tempfile
import time

from benchmarks.run import RESULTS, report_header, save_report

# Photos no network here was trained on (data/README.md): the benchmarks' yardstick.
UNSEEN = ("examples/tubingen.jpg", "data/holdout/rocket.jpg")

# Johnson et al.'s baseline as they ran it (Sec. 4.1): Gatys et al.'s optimization from
# white noise by L-BFGS, one scale; `Stylizer` options, iterations apart.
FROM_NOISE = dict(optimizer="lbfgs", scales=1, init="noise", seed=0)


def optimized(stylizer, content, style, args, key):
    """``stylizer``'s result on ``content`` and its wall and CPU seconds; with ``--cache``, kept there
    (the optimizations do not depend on the network: one run of them serves several
    networks, and can run beside a training)."""
    import json

    import numpy as np

    stem = args.cache and os.path.join(args.cache, f"{key.replace('/', '_')}-{args.size}")
    if stem and os.path.exists(stem + ".json"):
        with open(stem + ".json") as f:
            return np.load(stem + ".npy"), json.load(f)
    start, cpu = time.perf_counter(), time.process_time()
    result = stylizer.stylize(content, style, size=args.size)
    # CPU seconds too (the process's, all threads): on a shared machine wall time is inflated.
    seconds = {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}
    if stem:
        os.makedirs(args.cache, exist_ok=True)
        np.save(stem + ".npy", result)
        with open(stem + ".json", "w") as f:
            json.dump(seconds, f)
    return result, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network")
    parser.add_argument("--style", required=True)
    parser.add_argument("--images", nargs="+", default=list(UNSEEN))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--name", default=f"network-quality-{datetime.date.today().isoformat()}")
    parser.add_argument("--picture")
    parser.add_argument("--cache", help="a folder for the optimizations' results and times, reused when there")
    parser.add_argument("--only-optimizations", action="store_true", help="fill --cache and stop")
    parser.add_argument(
        "--noise-curve",
        default="",
        help="comma-separated iteration counts: L-BFGS from noise scored at each (a run each), "
        "to say how many iterations the network equals",
    )
    args = parser.parse_args(argv)
    if not args.network and not args.only_optimizations:
        parser.error("--network is needed (unless --only-optimizations)")

    import tensorflow as tf

    import tfnst
    from benchmarks.quality import scorer
    from tfnst.image_io import read_image
    from tfnst.networks import export_network, load_network, stylize_with
    from tfnst.resize import fit_size, resize

    network = None if args.only_optimizations else load_network(args.network)
    # The optimization docs/network.jpg compares with: the defaults until 2026-11-25.
    stylizer = tfnst.Stylizer(optimizer="adam", scales=1, iterations=300)
    # Johnson et al.'s bar: 50 iterations of L-BFGS, one scale, from the content (the default start).
    lbfgs50 = tfnst.Stylizer(optimizer="lbfgs", scales=1, iterations=50)
    lbfgs50_noise = tfnst.Stylizer(iterations=50, **FROM_NOISE)
    style = read_image(args.style)
    rows, pictures = [], []
    for path in args.images:
        content = read_image(path)
        content = resize(content, fit_size(content.shape[:2], args.size)).numpy()
        slow, optimization_seconds = optimized(stylizer, content, style, args, f"{path}-adam300")
        short, lbfgs50_seconds = optimized(lbfgs50, content, style, args, f"{path}-lbfgs50")
        noisy, noise_seconds = optimized(lbfgs50_noise, content, style, args, f"{path}-lbfgs50-noise")
        curve = {}
        for n in [int(n) for n in args.noise_curve.split(",") if n]:
            shorter = lbfgs50_noise.config.replace(iterations=n)
            curve[n], _ = optimized(tfnst.Stylizer(config=shorter), content, style, args, f"{path}-lbfgs{n}-noise")
        if network is None:
            continue
        stylize_with(network, content)  # warm-up (tracing)
        start, cpu = time.perf_counter(), time.process_time()
        fast = stylize_with(network, content)
        network_seconds, network_cpu = time.perf_counter() - start, time.process_time() - cpu
        fitted = stylizer.engine(stylizer.config, True).fit_style(style, content.shape[:2]).numpy()
        score = scorer(content, fitted)
        rows.append(
            {
                "image": path,
                "hw": list(content.shape[:2]),
                "network": score(fast),
                "optimization": score(slow),
                "lbfgs50": score(short),
                "lbfgs50_noise": score(noisy),
                "lbfgs_noise_curve": {n: score(image)["total"] for n, image in curve.items()},
                "content": score(content),
                "network_seconds": network_seconds,
                "network_cpu_seconds": network_cpu,
                "optimization_seconds": optimization_seconds["seconds"],
                "optimization_cpu_seconds": optimization_seconds["cpu_seconds"],
                "lbfgs50_seconds": lbfgs50_seconds["seconds"],
                "lbfgs50_cpu_seconds": lbfgs50_seconds["cpu_seconds"],
                "lbfgs50_noise_seconds": noise_seconds["seconds"],
                "lbfgs50_noise_cpu_seconds": noise_seconds["cpu_seconds"],
            }
        )
        pictures.append([content, fitted, fast, noisy, short, slow])
        print(rows[-1], file=sys.stderr, flush=True)
    if network is None:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        served = tf.saved_model.load(str(export_network(network, os.path.join(tmp, "served"))))
        image = read_image(args.images[0])
        big = resize(image, fit_size(image.shape[:2], 512)).numpy()
        encoded = tf.io.encode_png(tf.image.convert_image_dtype(big, tf.uint8, saturate=True))
        data = tf.reshape(encoded, [1])
        serve = served.signatures["serving_default"]
        serve(images=data)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            serve(images=data)["stylized_bytes"].numpy()
            times.append(time.perf_counter() - start)
    report = {
        **report_header("benchmarks.network_quality", argv),
        "network": args.network,
        "parameters": int(network.count_params()),
        "rows": rows,
        "serving_512_seconds": sorted(times)[2],
        "serving_hw": list(big.shape[:2]),
    }

    def picture(path):
        from tfnst.image_io import save_image
        from tools.side_by_side import side_by_side, stacked

        save_image(stacked([side_by_side(images, 256) for images in pictures]), path)

    save_report(report, args.out, args.name, picture)
    if args.picture:
        picture(args.picture)
    print(f"{report['cpu']}, {report['cores']} cores; network {args.network} ({report['parameters']:,} parameters)")
    print(
        "| image | method | wall s | CPU s | objective | style term | content term |"
        "\n| --- | --- | --- | --- | --- | --- | --- |"
    )
    for r in rows:
        for method, name in (
            ("network", "network"),
            ("lbfgs50_noise", "L-BFGS, 50 iterations from noise"),
            ("lbfgs50", "L-BFGS, 50 iterations"),
            ("optimization", "Adam, 300 iterations"),
        ):
            s = r[method]
            print(
                f"| {os.path.basename(r['image'])} {r['hw'][1]}×{r['hw'][0]} | {name} | "
                f"{r[method + '_seconds']:.2f} | {r[method + '_cpu_seconds']:.2f} | "
                f"{s['total']:.3f} | {s['style']:.4f} | {s['content']:.3f} |"
            )
    for r in rows:
        if r["lbfgs_noise_curve"]:
            counts = ", ".join(f"{n}: {total:.3f}" for n, total in r["lbfgs_noise_curve"].items())
            print(f"{os.path.basename(r['image'])}: L-BFGS from noise, the objective after {counts} iterations")
    print(
        f"served at {report['serving_hw'][1]}x{report['serving_hw'][0]}: {report['serving_512_seconds']:.2f} s "
        "a request (median of 5)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
