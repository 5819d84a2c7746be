"""A trained network against optimization, on photos it never saw.

    python -m benchmarks.network_quality --network starry.keras --style examples/starry_night.jpg
        [--images examples/tubingen.jpg data/holdout/rocket.jpg] [--size 256] [--picture docs/network.jpg]

For each image, at ``--size`` (longest side): the network's result (one forward pass)
and the optimization's (the defaults until 2026-11-25: Adam, 300 iterations), both scored by the
float32 objective of the defaults (the Gatys layers: its style and content terms are
tfnst's relative Gram and content distances), with their times. Then the network,
exported for TF Serving, serves the first image at 512 px (encoded bytes in, PNG out):
the median of 5 requests after one warm-up. Writes the report and a picture
(content | style | network | optimization per image).
"""

import argparse
import datetime
import os
import sys
import tempfile
import time

from benchmarks.run import RESULTS, report_header, save_report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", required=True)
    parser.add_argument("--style", required=True)
    parser.add_argument("--images", nargs="+", default=["examples/tubingen.jpg", "data/holdout/rocket.jpg"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--name", default=f"network-quality-{datetime.date.today().isoformat()}")
    parser.add_argument("--picture")
    args = parser.parse_args(argv)

    import tensorflow as tf

    import tfnst
    from benchmarks.quality import scorer
    from tfnst.image_io import read_image
    from tfnst.networks import export_network, load_network, stylize_with
    from tfnst.resize import fit_size, resize

    network = load_network(args.network)
    # The optimization docs/network.jpg compares with: the defaults until 2026-11-25.
    stylizer = tfnst.Stylizer(optimizer="adam", scales=1, iterations=300)
    style = read_image(args.style)
    rows, pictures = [], []
    for path in args.images:
        content = read_image(path)
        content = resize(content, fit_size(content.shape[:2], args.size)).numpy()
        stylize_with(network, content)  # warm-up (tracing)
        start = time.perf_counter()
        fast = stylize_with(network, content)
        network_seconds = time.perf_counter() - start
        start = time.perf_counter()
        slow = stylizer.stylize(content, style, size=args.size)
        optimization_seconds = time.perf_counter() - start
        fitted = stylizer.engine(stylizer.config, True).fit_style(style, content.shape[:2]).numpy()
        score = scorer(content, fitted)
        rows.append(
            {
                "image": path,
                "hw": list(content.shape[:2]),
                "network": score(fast),
                "optimization": score(slow),
                "content": score(content),
                "network_seconds": network_seconds,
                "optimization_seconds": optimization_seconds,
            }
        )
        pictures.append([content, fitted, fast, slow])
        print(rows[-1], file=sys.stderr, flush=True)
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
    print("| image | method | seconds | objective | style term | content term |\n| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        for method in ("network", "optimization"):
            s = r[method]
            print(
                f"| {os.path.basename(r['image'])} {r['hw'][1]}×{r['hw'][0]} | {method} | "
                f"{r[method + '_seconds']:.2f} | {s['total']:.3f} | {s['style']:.4f} | {s['content']:.3f} |"
            )
    print(
        f"served at {report['serving_hw'][1]}x{report['serving_hw'][0]}: {report['serving_512_seconds']:.2f} s "
        "a request (median of 5)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
