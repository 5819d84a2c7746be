"""Feed-forward networks: training throughput, and the time per image against optimization.

    python -m benchmarks.networks [--train-sizes 128,256] [--apply-sizes 256,512,1024]

Training: images per second of `tfnst.networks.train` (batch 4, on data/photos) for
Johnson et al.'s network (width 32, depth 5) and the small one (16, 3), each size in a
process of its own. Inference: seconds per image of one forward pass, against the
optimization of the same image by Adam at one size, the defaults until 2026-11-25
(seconds per iteration measured over 10 iterations, times 300 iterations; the run's
start-up is not counted).
"""

import argparse
import datetime
import sys

from benchmarks.run import RESULTS, measure, report_header, save_report

NETWORKS = {"johnson": {"width": 32, "depth": 5}, "small": {"width": 16, "depth": 3}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-sizes", default="128,256")
    parser.add_argument("--apply-sizes", default="256,512,1024")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps")
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--name", default=f"networks-{datetime.date.today().isoformat()}")
    args = parser.parse_args(argv)
    rows = []
    for size in map(int, args.train_sizes.split(",")):
        for name, net in NETWORKS.items():
            rows.append({"network": name, **measure("train", size, args.steps, {**net, "batch_size": 4})})
            print(rows[-1], file=sys.stderr, flush=True)
    for size in map(int, args.apply_sizes.split(",")):
        # Adam at one size, the defaults when docs/networks.md's rows were measured.
        optimization = measure("stylize", size, 10, {"optimizer": "adam", "scales": 1})
        for name, net in NETWORKS.items():
            rows.append({"network": name, "optimization": optimization, **measure("apply", size, 5, net)})
            print(rows[-1], file=sys.stderr, flush=True)
    report = {**report_header("benchmarks.networks", argv), "rows": rows}
    save_report(report, args.out, args.name, lambda path: None)
    print(f"{report['cpu']}, {report['cores']} cores")
    print("| network | training size | images / s | peak RSS |\n| --- | --- | --- | --- |")
    for r in rows:
        if r.get("impl") == "train":
            print(
                f"| {r['network']} | {r['size']} | {r.get('images_per_second', float('nan')):.2f} | "
                f"{r.get('peak_rss_bytes', 0) / 2**30:.2f} GB |"
            )
    print(
        "\n| network | image (H×W) | network s / image | optimization (300 its) s | ratio |\n"
        "| --- | --- | --- | --- | --- |"
    )
    for r in rows:
        if r.get("impl") == "apply" and "error" not in r:
            opt = 300 * r["optimization"]["seconds_per_iteration"]
            print(
                f"| {r['network']} | {r['hw'][0]}×{r['hw'][1]} | {r['seconds_per_image']:.3f} | {opt:.0f} | "
                f"{opt / r['seconds_per_image']:.0f}× |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
