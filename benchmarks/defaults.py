"""The quick-start defaults against the defaults before them, on the bundled pairs.

    python -m benchmarks.defaults [--size 512] [--styles starry_night.jpg,the_scream.jpg]
        [--picture docs/defaults.jpg] [--settings 'fast={"learning_rate": 0.03, "tolerance": 0.01}']
        [--before-from benchmarks/results/defaults-<date>.json]

For each bundled style, two runs of `tfnst.Stylizer` on the bundled content photo, each
in a process of its own, from the file paths as ``tfnst stylize`` runs them: "before"
(the defaults until 2026-11-25: float32, Adam at 0.02, 300 iterations, the last
iterate, no early stop) and "defaults" (`StyleConfig()` as it is), or with ``--settings`` named options on
top of the defaults instead (the "before" runs are always made: every row is compared
with them). Wall time from before TensorFlow is
imported to the result; each result scored by the float32 objective of the defaults
(the total, and the style and content terms). Writes the report (JSON, and a picture
content | style | before | defaults per pair) and prints a table.
"""

import argparse
import datetime
import json
import os
import sys
import tempfile

from benchmarks.run import RESULTS, measure, report_header, save_report
from tfnst.config import StyleConfig  # no TensorFlow: each run imports it in its own process

# The defaults until 2026-11-25 (float32 Adam at one size, the last iterate, 300 iterations).
BEFORE = {
    "optimizer": "adam",
    "scales": 1,
    "iterations": 300,
    "precision": "float32",
    "learning_rate": 0.02,
    "ema_decay": 0.0,
    "tolerance": 0.0,
}
SETTINGS = {"before": BEFORE, "defaults": {}}


def table(report) -> str:
    rows = [
        "| style | settings | seconds | iterations | stopped | peak RSS | objective | style term | "
        "content term | objective vs before |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for style, runs in report["pairs"].items():
        before = runs["before"].get("scores", {}).get("total")
        for name, r in runs.items():
            if "error" in r:
                rows.append(f"| {style} | {name} | n/a ({r['error']}) | | | | | | | |")
                continue
            s = r["scores"]
            stopped = (
                "converged"
                if r["stop_reason"] and r["stop_reason"].startswith("converged")
                else (r["stop_reason"] or "")
            )
            rows.append(
                f"| {style} | {name} | {r['seconds']:.0f} | {r['iterations_run']} | {stopped} | "
                f"{r['peak_rss_bytes'] / 2**30:.2f} GB | {s['total']:.4f} | {s['style']:.4f} | "
                f"{s['content']:.4f} | {100 * (s['total'] / before - 1):+.1f}% |"
            )
    return "\n".join(rows)


def picture(report, path) -> None:
    from tfnst.image_io import read_image, save_image
    from tools.side_by_side import side_by_side, stacked

    rows = []
    for style, runs in report["pairs"].items():
        images = [
            os.path.join("examples", "tubingen.jpg"),
            os.path.join("examples", style),
            runs["before"]["image"],
            runs["defaults"]["image"],
        ]
        rows.append(side_by_side([read_image(p) for p in images], 256))
    save_image(stacked(rows), path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--styles", default="starry_night.jpg,the_scream.jpg")
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--name", default=f"defaults-{datetime.date.today().isoformat()}")
    parser.add_argument("--picture", help="also write content | style | before | defaults here")
    parser.add_argument(
        "--settings", nargs="+", metavar="NAME=JSON", help="options to compare instead of the defaults, on top of them"
    )
    parser.add_argument(
        "--before-from",
        metavar="REPORT",
        help="take the 'before' runs from this saved report (same machine and day) "
        "instead of making them again: their scores are deterministic (float32)",
    )
    args = parser.parse_args(argv)
    settings = dict(SETTINGS)
    if args.settings:
        settings = {"before": BEFORE, **{k: json.loads(v) for k, v in (x.split("=", 1) for x in args.settings)}}
    images = tempfile.mkdtemp(prefix="tfnst-defaults-")
    earlier = {}
    if args.before_from:
        with open(args.before_from) as f:
            earlier = json.load(f)["pairs"]
    pairs = {}
    for style in args.styles.split(","):
        pairs[style] = {}
        for name, options in settings.items():
            if name == "before" and style in earlier:
                pairs[style][name] = {**earlier[style]["before"], "from": args.before_from}
                continue
            image = os.path.join(images, f"{os.path.splitext(style)[0]}-{name}.png")
            options = dict(options)
            iterations = options.pop("iterations", StyleConfig().iterations)
            r = measure("stylize", args.size, iterations, {**options, "style": style, "score": True, "save": image})
            pairs[style][name] = {**r, "image": image}
            print(style, name, {k: v for k, v in r.items() if k != "options"}, file=sys.stderr, flush=True)
    report = {**report_header("benchmarks.defaults", argv), "size": args.size, "settings": settings, "pairs": pairs}
    save_report(report, args.out, args.name, lambda path: picture(report, path) if "defaults" in settings else None)
    if args.picture:
        picture(report, args.picture)
    print(f"{report['cpu']}, {report['cores']} cores; {args.size} px")
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
