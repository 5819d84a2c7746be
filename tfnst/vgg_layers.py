"""Facts about VGG19's layers (Simonyan & Zisserman 2015, configuration E), without
TensorFlow: names, channels, depth and stride, so that options can be checked before
TensorFlow loads."""

from __future__ import annotations

from tfnst.errors import TfnstError

# (block, number of convolutions, channels).
VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
CONV_LAYERS = tuple(f"block{b}_conv{i}" for b, n, _ in VGG19_BLOCKS for i in range(1, n + 1))
LAYER_CHANNELS = {f"block{b}_conv{i}": c for b, n, c in VGG19_BLOCKS for i in range(1, n + 1)}
POOLING = ("max", "avg")
# Compute precision of the convolutions; "auto" is bfloat16 where it is native
# (`tfnst.features.resolve_precision`).
PRECISIONS = ("auto", "float32", "bfloat16")
# Smallest image side VGG19 can take: after four 2x2 poolings block5 would be empty
# (and the losses NaN) below this.
MIN_SIDE = 16


def layer_depth(name: str) -> int:
    """How many VGG19 layers must run to produce layer ``name`` (its 1-based position).

    Raises:
        TfnstError: for a name that is not a VGG19 convolution.
    """
    if not isinstance(name, str) or name not in CONV_LAYERS:
        raise TfnstError(f"unknown VGG19 layer {name!r}; use Keras names such as block4_conv2")
    return CONV_LAYERS.index(name) + 1


def layer_stride(name: str) -> int:
    """Downsampling factor of a layer's output relative to the input (poolings before it)."""
    return 2 ** (int(name[len("block")]) - 1)
