"""Put images side by side at one height, for the README: content | style | result.

    python -m tools.side_by_side examples/tubingen.jpg examples/starry_night.jpg \
        docs/tubingen_starry_night.jpg -o docs/example.jpg
"""

import argparse
import sys

import numpy as np

from tfnst.errors import TfnstError
from tfnst.image_io import read_image, save_image
from tfnst.resize import resize


def side_by_side(images, height: int, gap: int = 8) -> np.ndarray:
    rows = [resize(im, (height, max(1, round(im.shape[1] * height / im.shape[0])))).numpy() for im in images]
    spacer = np.ones((height, gap, 3), np.float32)
    parts = [p for row in rows for p in (row, spacer)][:-1]
    return np.concatenate(parts, axis=1)


def stacked(rows, gap: int = 8) -> np.ndarray:
    """Rows of pictures one under another, left-aligned, white ``gap`` px between them
    and white to the right of the narrower ones."""
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in rows]
    return np.concatenate(rows, axis=0)[: -gap or None]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--height", type=int, default=384)
    args = parser.parse_args(argv)
    try:
        save_image(side_by_side([read_image(p) for p in args.images], args.height), args.output)
    except TfnstError as e:
        print(f"side_by_side: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
