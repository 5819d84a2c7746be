"""Cut a region of an image at full resolution, or shrink it, for the README.

python -m tools.crop docs/large.png -o docs/large_crop.jpg --box 1280,1792,512,768
python -m tools.crop docs/large.png -o docs/large_small.jpg --longest 1024
"""

import argparse
import sys

from tfnst.errors import TfnstError
from tfnst.image_io import read_image, save_image
from tfnst.resize import fit_size, resize


def crop(image, box):
    """``image[top:top + height, left:left + width]``; a box outside the image is an error."""
    top, left, height, width = box
    h, w = image.shape[:2]
    if top < 0 or left < 0 or height <= 0 or width <= 0 or top + height > h or left + width > w:
        raise TfnstError(f"box {top},{left},{height},{width} (top,left,height,width) is not inside the {w}x{h} image")
    return image[top : top + height, left : left + width]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--box", help="TOP,LEFT,HEIGHT,WIDTH in pixels")
    parser.add_argument("--longest", type=int, help="shrink so the longest side is this")
    args = parser.parse_args(argv)
    try:
        image = read_image(args.image)
        if args.box:
            try:
                box = [int(v) for v in args.box.split(",")]
            except ValueError:
                box = []
            if len(box) != 4:
                raise TfnstError(f"--box wants TOP,LEFT,HEIGHT,WIDTH (four integers), not {args.box!r}")
            image = crop(image, box)
        if args.longest:
            image = resize(image, fit_size(image.shape[:2], args.longest)).numpy()
        save_image(image, args.output)
    except TfnstError as e:
        print(f"crop: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
