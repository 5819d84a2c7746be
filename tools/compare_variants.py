"""The README's comparison picture: one row per variant, same content and style.

    python -m tools.compare_variants -o docs/variants.jpg [--size 256] [--iterations 150]

Every row is made with the public API and the options shown in its label, on top of the
defaults, with a fixed number of iterations (no early stop).
"""

import argparse
import sys
import time

import numpy as np
from PIL import Image, ImageDraw

import tfnst
from tfnst.image_io import read_image, save_image
from tfnst.resize import fit_size, resize

CONTENT, STYLE, STYLE2 = "examples/tubingen.jpg", "examples/starry_night.jpg", "examples/the_scream.jpg"
MASKS = ["docs/masks/left.png", "docs/masks/right.png"]

# What docs/variants.jpg was made with: Adam at one size (the defaults until 2026-11-25),
# so that each variant's row differs from the first by its own option alone.
BASE = {"optimizer": "adam", "scales": 1}
# (label, network options, per-call options, styles)
VARIANTS = [
    ("Gatys: Gram matrices (default)", {}, {}, [STYLE]),
    ("--style-stat mean", {"style_statistic": "mean"}, {}, [STYLE]),
    ("--style-stat meancov", {"style_statistic": "meancov"}, {}, [STYLE]),
    ("--hist-weight 1 (Risser et al.)", {}, {"hist_weight": 1.0}, [STYLE]),
    ("--lap-weight 1 (Li et al.)", {}, {"lap_weight": 1.0}, [STYLE]),
    ("two styles, --style-blend 0.5,0.5", {}, {"style_blend": (0.5, 0.5)}, [STYLE, STYLE2]),
    ("two styles, --masks left right", {}, {"masks": MASKS}, [STYLE, STYLE2]),
    ("--preserve-color luminance", {}, {"preserve_color": "luminance"}, [STYLE]),
    ("--preserve-color histogram", {}, {"preserve_color": "histogram"}, [STYLE]),
    # coarse_iterations None: --iterations at every scale, as the picture was made.
    ("--scales 3 (coarse to fine)", {}, {"scales": 3, "scale_factor": 2**0.5, "coarse_iterations": None}, [STYLE]),
    ("--style-stat discriminator", {"style_statistic": "discriminator"}, {"learning_rate": 0.05}, [STYLE]),
    ("--normalize-vgg (bundled examples)", {"normalize_vgg": ()}, {}, [STYLE]),
]


def label_strip(text: str, height: int, width: int = 260) -> np.ndarray:
    strip = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(strip).multiline_text((8, height // 2 - 8), text.replace(", ", ",\n"), fill="black")
    return np.asarray(strip, np.float32) / 255.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=150)
    args = parser.parse_args(argv)
    content = read_image(CONTENT)
    content = resize(content, fit_size(content.shape[:2], args.size)).numpy()
    height = content.shape[0]

    def at_height(path):
        image = read_image(path)
        return resize(image, (height, round(image.shape[1] * height / image.shape[0]))).numpy()

    rows = [
        np.concatenate([label_strip("content | styles", height), content, at_height(STYLE), at_height(STYLE2)], axis=1)
    ]
    for label, network, per_call, styles in VARIANTS:
        start = time.perf_counter()
        per_call = {k: args.iterations if v is None else v for k, v in per_call.items()}
        out = tfnst.Stylizer(**BASE, **network).stylize(
            CONTENT, styles, size=args.size, iterations=args.iterations, seed=0, tolerance=0.0, **per_call
        )
        print(f"{label}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        rows.append(np.concatenate([label_strip(label, height), out], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in rows]
    save_image(np.concatenate(rows, axis=0), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
