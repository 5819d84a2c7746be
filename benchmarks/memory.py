"""Peak memory of whole runs against tfnst's estimate (`tfnst.memory.estimate_bytes`).

    python -m benchmarks.memory [--sizes 128,256,512,768] [--iterations 2]
        [--optimizers adam,lbfgs] [--parts sizes,extensions,tiled,buffers,small-tiles,large,scales]
    python -m benchmarks.memory --fit REPORT.json [REPORT.json ...]
    python -m benchmarks.memory --table REPORT.json

Each run is a fresh process (`benchmarks.worker stylize`), so its peak RSS (VmHWM) is
its own: Adam and L-BFGS at one scale, float32 and (on CPUs that have it) bfloat16, at
each size (what `tfnst.memory.FITS` is fitted to, by ``--fit``); then the extension options at 512 px
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
import json
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


# The fitted line may fall this far short of a row's peak (`tfnst.memory.MARGIN` covers it).
ENVELOPE = 1.05


def sizes_key(label: str):
    """(optimizer, precision) of a ``--parts sizes`` row's label ("lbfgs float32"), the
    key of its line in ``tfnst.memory.FITS``; None for other rows."""
    from tfnst import memory

    optimizer, _, precision = label.partition(" ")
    return (optimizer, precision) if (optimizer, precision) in memory.FITS["avx2"] else None


def fit_lines(rows, envelope=ENVELOPE) -> dict:
    """``tfnst.memory.FITS``' lines for one machine from its ``--parts sizes`` rows:
    {(optimizer, precision): (fixed bytes, slope)}, per label the line a + b x over the
    float32 activation bytes x of the defaults' layers (L-BFGS's pairs taken off the
    peak: they are counted apart) that every row's peak / ``envelope`` lies under,
    with the least total height over the rows (a linear programme in a, and b >= 0,
    whose optimum is a line through two rows or a flat one through the highest)."""
    import itertools

    import tfnst
    from tfnst import memory
    from tfnst.config import LBFGS_HISTORY
    from tfnst.objective import feature_layers
    from tfnst.vgg_layers import layer_depth

    depth = max(layer_depth(n) for n in feature_layers(tfnst.StyleConfig(), True))
    points = {}  # (optimizer, precision) -> [(x, peak / envelope)]
    for r in rows:
        key = sizes_key(r["label"])
        if r.get("error") is None and key is not None:
            hw = tuple(r["hw"])
            pairs = memory.pair_bytes(hw, LBFGS_HISTORY) if key[0] == "lbfgs" else 0
            x = 4 * memory.activation_floats(hw, depth)
            points.setdefault(key, []).append((x, (r["peak_rss_bytes"] - pairs) / envelope))
    lines = {}
    for key, xy in points.items():
        candidates = [(max(y for _, y in xy), 0.0)]
        for (x1, y1), (x2, y2) in itertools.combinations(xy, 2):
            if x1 != x2 and (y2 - y1) / (x2 - x1) >= 0:
                slope = (y2 - y1) / (x2 - x1)
                candidates.append((y1 - slope * x1, slope))
        under = [(a, b) for a, b in candidates if all(a + b * x >= y * (1 - 1e-9) for x, y in xy)]
        lines[key] = min(under, key=lambda ab: sum(ab[0] + ab[1] * x for x, _ in xy))
    return lines


def reestimated(report) -> list:
    """The report's rows with ``estimate_bytes`` from the current model, for the
    machine kind of the report's CPU flags (what a change of `tfnst.memory` does to the
    recorded rows, without running them again)."""
    import tfnst
    from tfnst import memory
    from tfnst.config import LBFGS_HISTORY

    kind = memory.machine_kind(set(report["cpu_flags"]))
    rows = []
    for r in report["runs"]:
        if r.get("error") is None:
            options = r.get("options")
            if options is None:  # reports of 2026-12-02 kept none: "<optimizer> <precision>" rows say them
                key = sizes_key(r["label"])
                if key is None:
                    raise SystemExit(f"{r['label']!r} keeps no options to estimate it with: measure it again")
                options = {"optimizer": key[0], "precision": key[1], "scales": 1}
            options = {k: v for k, v in options.items() if k not in ("style", "score", "save")}
            config = tfnst.StyleConfig(**options).replace(size=r["size"], iterations=r.get("iterations", 2))
            pairs = r.get("lbfgs_pairs") or LBFGS_HISTORY
            estimate = memory.estimate_bytes(tuple(r["hw"]), config, True, r.get("tile"), pairs, kind)
            r = {**r, "estimate_bytes": estimate}
        rows.append(r)
    return rows


def table(rows) -> str:
    lines = [
        "| run | size (H×W) | tile | L-BFGS pairs | peak RSS | estimate | estimate / peak |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r.get("error") is not None:
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
    parser.add_argument(
        "--fit", metavar="REPORT", nargs="+", help="print the FITS lines of --parts sizes reports' rows; run nothing"
    )
    parser.add_argument(
        "--table", metavar="REPORT", help="print a report's rows re-estimated by the current model; run nothing"
    )
    args = parser.parse_args(argv)
    if args.fit:
        rows = []
        for path in args.fit:
            with open(path) as f:
                rows += json.load(f)["runs"]
        for (optimizer, precision), (fixed, slope) in fit_lines(rows).items():
            print(f'("{optimizer}", "{precision}"): ({fixed / 2**30:.3f} * GB, {slope:.2f}),')
        return 0
    if args.table:
        with open(args.table) as f:
            report = json.load(f)
        print(f"{report['cpu']}, {report['cores']} cores, {report['date']}: {report['command']}")
        print(table(reestimated(report)))
        return 0
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
