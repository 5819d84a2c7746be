"""How far a tiled loss and gradient are from the whole image's, in each precision, beside
the precision's own rounding (what tests/test_tiling.py bounds them by).

    python -m benchmarks.tiling_exactness [--precisions float32,bfloat16] [--tile 64]

At 112x144 (tubingen.jpg; The Starry Night at 120 px), shallow layers (style
block1_conv1, block2_conv1, block3_conv1; content block3_conv3, margin 32), Adam's
objective: relative L2 of the gradient and relative loss difference against the whole
image at the same precision, for: the whole image one type wider (bfloat16 -> float32
convolutions, float32 -> float64), the tiled run, and the tiled run with its margin 16 px
short of what block3_conv3 needs (a wrong tiling).
"""

import argparse

import numpy as np
import tensorflow as tf

import tfnst
from tests.conftest import TEST_OPTIONS, small
from tests.test_tiling import _wider
from tfnst.engine import Engine
from tfnst.features import VGG19
from tfnst.objective import feature_layers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--tile", type=int, default=64)
    args = parser.parse_args(argv)
    content, style = small("tubingen.jpg", 144), small("starry_night.jpg", 120)
    size = (112, 144)
    image = tf.constant(tfnst.resize.resize(content, size).numpy() * 0.8 + 0.1)
    print("| precision | compared with the whole image | gradient (relative L2) | loss (relative) |")
    print("| --- | --- | --- | --- |")
    for precision in args.precisions.split(","):
        config = tfnst.StyleConfig(
            **{
                **TEST_OPTIONS,
                "precision": precision,
                "style_layers": ("block1_conv1", "block2_conv1", "block3_conv1"),
                "content_layers": ("block3_conv3",),
            }
        )
        vgg = VGG19(feature_layers(config), precision=precision)

        def run(features, tile=None, short=0, config=config):
            engine = Engine(config, features, tile=tile)
            if short:
                engine.objective.margin -= short
            targets = engine.targets(engine.inputs(content, [style]), size)
            total, _, _, g = engine.objective.value_and_gradient(image, targets, engine.objective.initial_state())
            return float(total), g.numpy()

        loss, gradient = run(vgg)
        rows = {
            "one type wider": run(_wider(VGG19(feature_layers(config), precision=precision))),
            f"tiles of {args.tile}": run(vgg, args.tile),
            f"tiles of {args.tile}, margin 16 px short": run(vgg, args.tile, 16),
        }
        for name, (other_loss, other) in rows.items():
            print(
                f"| {precision} | {name} | {np.linalg.norm(other - gradient) / np.linalg.norm(gradient):.2g} | "
                f"{abs(other_loss - loss) / loss:.2g} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
