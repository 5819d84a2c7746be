"""FLOPs of one style-transfer iteration, from the conv shapes alone."""

from tfnst.vgg_layers import CONV_LAYERS, LAYER_CHANNELS, layer_depth, layer_stride


def forward_flops(size, deepest: str) -> int:
    """Multiply-adds x2 of the 3x3 convolutions up to ``deepest`` at (H, W) ``size``."""
    h, w = size
    flops, channels_in = 0, 3
    for name in CONV_LAYERS[: layer_depth(deepest)]:
        s = layer_stride(name)
        channels_out = LAYER_CHANNELS[name]
        flops += 2 * (h // s) * (w // s) * 9 * channels_in * channels_out
        channels_in = channels_out
    return flops


def iteration_flops(size, deepest: str = "block5_conv1") -> int:
    """Forward plus the input-gradient backward pass (the same convolutions transposed);
    no weight gradients are needed. Pooling, ReLU and the losses are negligible."""
    return 2 * forward_flops(size, deepest)
