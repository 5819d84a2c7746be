"""Peak memory of whole runs against tfnst's estimate (`tfnst.memory.estimate_bytes`).

    python -m benchmarks.memory [--sizes 128,256,512,768] [--iterations 2]
        [--optimizers adam,lbfgs] [--parts sizes,extensions,tiled,buffers,small-tiles,large,scales]

Each run is a fresh process (`benchmarks.worker stylize`), so its peak RSS (VmHWM) is
its own: Adam and L-BFGS at one scale, float32 and (on CPUs that have it) bfloat16, at
each size (what `tfnst.memory.FIT` is fitted to); then the extension options at 512 px
with Adam at one size (as docs/reliability.md's rows were measured), and tiled runs
with each optimizer (what `tfnst.memory.IMAGE_FLOATS_PER_PIXEL` is checked against);
with ``--parts large`` the 4096x3072 run of docs/tiling.md; with ``--parts scales``,
each size with the defaults at one and at two scales (what a coarser scale adds,
`tfnst.memory.SCALE_EXTRA`). Prints measured peak, estimate, the tile and L-BFGS
pairs of the run, and the ratio (the estimate must be at least the peak, and at most
1.3 times it; 1.4 times in tiles). A row runs 2 iterations: L-BFGS's pairs are allocated at the first.
"""

import argparse
import datetime
import sys

from benchmarks.run import RESULTS, has_bfloat16, measure, report_header, save_report

# The extension rows of docs/reliability.md were measured with Adam at one size
# (the defaults until 2026-11-25), and stay so that they compare with it.
ADAM = {"optimizer": "adam", "scales": 1}
EXTENSIONS = {
    "histogram loss": {"hist_weight": 1.0},
    "histogram loss, deep layers": {"hist_weight": 1.0, "hist_layers": ["block4_conv1", "block5_conv1"]},
    "style scale 2": {"style_scale": 2.0},
    "coarse-to-fine": {"scales": 3, "scale_factor": 2**0.5},
    "mean+covariance": {"style_statistic": "meancov"},
    "discriminator": {"style_statistic": "discriminator"},
    "laplacian": {"lap_weight": 1.0},
    "two styles": {"style": ["starry_night.jpg", "the_scream.jpg"], "style_blend": [1, 1]},
}
# Tiled runs (`tfnst.tiling`): (label, size, options), with each optimizer and precision.
TILED = [
    ("tiles of 256 px", 512, {"tile": 256}),
    ("tiles of 512 px", 1024, {"tile": 512}),
]
# ``--parts large``: issue 21's runs with the defaults (two scales, L-BFGS, its pairs as
# many as the budget leaves: `tfnst.memory.layout`) and --max-memory, one coarse
# iteration and 2 at full size (the peak is reached at the first full-size steps);
# on 2 cores the 4096 px one takes about an hour.
LARGE = [
    ("defaults, --max-memory 2GB", 1536, {"max_memory": 2 * 2**30, "coarse_iterations": 1}),
    ("defaults, --max-memory 8GB", 4096, {"max_memory": 8 * 2**30, "coarse_iterations": 1}),
]

# ``--parts small-tiles``: many small tiles with the default optimizer (issue 21: the
# 1536 px run above, 285 tiles of 80 px, peaked 5% over its estimate): L-BFGS in tiles
# of 32, 64 and 128 px at 384 px, in tiles of 128 px at 768 and 1024 px, and the last
# at two scales (what a coarser scale adds at that size).
SMALL_TILES = [
    ("tiles of 32 px", 384, {"tile": 32, "scales": 1}),
    ("tiles of 64 px", 384, {"tile": 64, "scales": 1}),
    ("tiles of 128 px", 384, {"tile": 128, "scales": 1}),
    ("tiles of 128 px", 768, {"tile": 128, "scales": 1}),
    ("tiles of 128 px", 1024, {"tile": 128, "scales": 1}),
    ("tiles of 128 px, two scales", 1024, {"tile": 128, "scales": 2}),
]


# ``--parts buffers``: L-BFGS's whole-image buffers (`tfnst.memory.IMAGE_FLOATS_PER_PIXEL`)
# as the difference between two image sizes in the same tiles, with one shallow style
# layer and no content term so that the tiles cost little and hold the same.
BUFFERS = {"optimizer": "lbfgs", "scales": 1, "tile": 256, "style_layers": ["block1_conv1"], "content_weight": 0.0}


def runs(sizes, precisions, optimizers=("adam", "lbfgs"), parts=("sizes", "extensions", "tiled")):
    if "sizes" in parts:
        for precision in precisions:
            for optimizer in optimizers:
                for size in sizes:
                    yield (
                        f"{optimizer} {precision}",
                        size,
                        {"optimizer": optimizer, "precision": precision, "scales": 1},
                    )
    if "extensions" in parts:
        for name, options in EXTENSIONS.items():
            yield name, 512, {"precision": precisions[0], **ADAM, **options}
    if "tiled" in parts:
        for precision in precisions:
            for name, size, options in TILED:
                for optimizer in optimizers:
                    yield (
                        f"{name}, {optimizer} {precision}",
                        size,
                        {"precision": precision, "optimizer": optimizer, "scales": 1, **options},
                    )
    if "buffers" in parts:
        for size in (1024, 2048):
            yield "whole-image buffers, L-BFGS", size, {"precision": precisions[0], **BUFFERS}
    if "small-tiles" in parts:
        for name, size, options in SMALL_TILES:
            yield f"{name}, lbfgs {precisions[0]}", size, {"precision": precisions[0], "optimizer": "lbfgs", **options}
    if "large" in parts:
        for name, size, options in LARGE:
            yield name, size, options
    if "scales" in parts:
        for size in sizes:
            for scales in (1, 2):
                yield (
                    f"defaults, {scales} scale(s) ({precisions[0]})",
                    size,
                    {"precision": precisions[0], "scales": scales},
                )


def table(rows) -> str:
    lines = [
        "| run | size (H×W) | tile | L-BFGS pairs | peak RSS | estimate | estimate / peak |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['label']} | {r['size']} | | | n/a ({r['error']}) | | |")
            continue
        lines.append(
            f"| {r['label']} | {r['hw'][0]}×{r['hw'][1]} | {r.get('tile') or ''} | {r.get('lbfgs_pairs') or ''} | "
            f"{r['peak_rss_bytes'] / 2**30:.2f} GB | "
            f"{r['estimate_bytes'] / 2**30:.2f} GB | {r['estimate_bytes'] / r['peak_rss_bytes']:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,256,512,768")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--precisions", help="default float32, and bfloat16 where it is native")
    parser.add_argument("--optimizers", default="adam,lbfgs")
    parser.add_argument("--parts", default="sizes,extensions,tiled")
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--name", default=f"memory-{datetime.date.today().isoformat()}")
    args = parser.parse_args(argv)
    precisions = (
        args.precisions.split(",") if args.precisions else ["float32"] + (["bfloat16"] if has_bfloat16() else [])
    )
    rows = []
    for label, size, options in runs(
        [int(s) for s in args.sizes.split(",")], precisions, args.optimizers.split(","), args.parts.split(",")
    ):
        r = measure("stylize", size, args.iterations, {**options, "tolerance": 0.0})
        rows.append({**r, "label": label, "size": size})
        print(
            label,
            size,
            {k: r.get(k) for k in ("hw", "peak_rss_bytes", "estimate_bytes", "error")},
            file=sys.stderr,
            flush=True,
        )
    report = {**report_header("benchmarks.memory", argv), "runs": rows}
    save_report(report, args.out, args.name, lambda path: None)
    print(f"{report['cpu']}, {report['cores']} cores")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
