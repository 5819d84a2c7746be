"""The grid in a stylization network's output, measured: peaks of the 2-D spectrum at the stride periods.

    python -m benchmarks.network_spectrum [--network starry.keras ...] [--size 256]

A network with two stride-2 convolutions and two 2x upsamplings, trained through VGG19
(whose max-pooling routes each gradient to one pixel of every 2x2 window), can print a
pattern of period 2 or 4 pixels on its output: the grid in the flat sky of
data/holdout/rocket.jpg. It shows in the output's spectrum as peaks at the frequencies
k/4 cycles per pixel (k = 1, 2, 3, along either axis), above the spectrum's background.

Each row is the mean-removed, Hann-windowed 2-D spectrum of the output's luminance, and
its peak at those frequencies relative to the median of the background (the high
frequencies, above 1/8 cycle per pixel, away from the peaks):

- the untrained networks (nearest and bilinear upsampling) on a slowly varying image
  (dark gradients, like a dusk sky; nothing of its own at those frequencies): what the
  architecture does before any training;
- the training loss's gradient on the same image: what the loss network (VGG19, its
  max-pooling) pushes the network's output towards;
- each ``--network`` on the sky of the rocket photo (a window of the output of the
  whole photo at ``--size``), and the photo itself (its own, JPEG, background).

Writes benchmarks/results/network-spectrum-<date>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

import numpy as np

from benchmarks.run import RESULTS, report_header

# The sky of data/holdout/rocket.jpg at 256 px (256x171): rows and columns of a window
# above the towers' tops and the rocket, multiples of 4 so the stride frequencies fall on bins.
SKY = (slice(4, 44), slice(40, 216))


def smooth_image(height: int = 128, width: int = 128) -> np.ndarray:
    """A slowly varying, dark image (float32 [H, W, 3] in [0, 1]): two gradients and a
    wave of period ``width``, nothing at the stride frequencies."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.1 + 0.15 * y / height + 0.05 * np.sin(2 * np.pi * x / width)
    return np.clip(np.stack([base, base + 0.03 * x / width, base + 0.1], -1), 0, 1).astype(np.float32)


def grid_peaks(image) -> dict:
    """The stride peaks of an image's spectrum, relative to its background.

    Args:
        image: [H, W] or [H, W, C] (channels averaged), H and W multiples of 4.

    Returns:
        ``{"period2": r2, "period4": r4, "levels2": a2, "levels4": a4}``: the largest
        magnitude at the bins of period 2 (1/2 cycle per pixel along one or both axes)
        and of period 4 only (1/4 or 3/4 cycle per pixel along one axis or both), each
        divided by the median magnitude of the other bins above 1/8 cycle per pixel (the
        background); and the same peaks as the amplitude of the periodic pattern, in
        8-bit levels (1/255) of the image.
    """
    y = np.asarray(image, np.float64)
    if y.ndim == 3:
        y = y.mean(-1)
    h, w = y.shape
    if h % 4 or w % 4:
        raise ValueError(f"{h}x{w}: sides must be multiples of 4")
    y = y - y.mean()
    # The window keeps the borders' discontinuity (the FFT's periodic wrap) out of the high frequencies.
    window = np.outer(np.hanning(h), np.hanning(w))
    spectrum = np.abs(np.fft.fft2(y * window))
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")  # cycles per pixel
    near = np.zeros((h, w), bool)  # each stride bin and its neighbours (the window's leakage)
    peaks = {"period2": 0.0, "period4": 0.0}
    for a in range(4):
        for b in range(4):
            if a == b == 0:
                continue
            i, j = a * h // 4, b * w // 4
            rows, cols = [(i + d) % h for d in (-1, 0, 1)], [(j + d) % w for d in (-1, 0, 1)]
            near[np.ix_(rows, cols)] = True
            key = "period2" if a % 2 == 0 and b % 2 == 0 else "period4"
            peaks[key] = max(peaks[key], float(spectrum[i, j]))
    high = (np.maximum(np.abs(fy), np.abs(fx)) > 1 / 8) & ~near
    background = float(np.median(spectrum[high]))
    # A pattern A cos(2 pi f x) has magnitude A/2 * sum(window) at f (A * sum at 1/2 cycle);
    # the levels are |F| / sum(window) x 255, the pattern's amplitude up to that factor 2.
    levels = 255 / window.sum()
    return {
        "period2": peaks["period2"] / background,
        "period4": peaks["period4"] / background,
        "levels2": float(peaks["period2"] * levels),
        "levels4": float(peaks["period4"] * levels),
    }


def loss_gradient(image, style, size: int) -> np.ndarray:
    """The gradient of the default training loss (`tfnst.networks.perceptual_loss` of a
    `TrainConfig`) with respect to an output ``image`` whose content is ``image``."""
    import tensorflow as tf

    from tfnst.config import TrainConfig
    from tfnst.networks import perceptual_loss

    loss = perceptual_loss(style, TrainConfig(size=size, precision="float32"))
    x = tf.Variable(image[None])
    with tf.GradientTape() as tape:
        value = loss(tf.constant(image[None]), x)
    return tape.gradient(value, x).numpy()[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", nargs="*", default=[], help="trained networks (.keras) to measure on the sky")
    parser.add_argument("--style", default="examples/starry_night.jpg", help="of the loss gradient")
    parser.add_argument("--photo", default="data/holdout/rocket.jpg")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--name", default=f"network-spectrum-{datetime.date.today().isoformat()}")
    args = parser.parse_args(argv)

    from tfnst.image_io import read_image
    from tfnst.networks import StyleTransformer, load_network, stylize_with
    from tfnst.resize import fit_size, resize

    smooth = smooth_image()
    photo = read_image(args.photo)
    photo = resize(photo, fit_size(photo.shape[:2], args.size)).numpy()
    rows = []
    for upsampling in ("nearest", "bilinear"):
        network = StyleTransformer(width=16, depth=3, upsampling=upsampling)
        rows.append({"what": f"untrained network (16, 3), {upsampling}", **grid_peaks(stylize_with(network, smooth))})
    gradient = grid_peaks(loss_gradient(smooth, read_image(args.style), args.size))
    rows.append({"what": "the training loss's gradient", **gradient, "levels2": None, "levels4": None})
    rows.append({"what": f"{os.path.basename(args.photo)} sky, the photo", **grid_peaks(photo[SKY])})
    for path in args.network:
        output = stylize_with(load_network(path), photo)
        rows.append(
            {"what": f"{os.path.basename(args.photo)} sky, {os.path.basename(path)}", **grid_peaks(output[SKY])}
        )
    for row in rows:
        print(row, file=sys.stderr, flush=True)
    report = {
        **report_header("benchmarks.network_spectrum", argv),
        "sky": [[s.start, s.stop] for s in SKY],
        "rows": rows,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, args.name + ".json"), "w") as f:
        json.dump(report, f, indent=1)
    print(
        "| input, source | period 2: peak / background | period 4: peak / background | period 2, levels "
        "| period 4, levels |\n| --- | --- | --- | --- | --- |"
    )
    levels = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731 (a gradient has no pixel levels)
    for r in rows:
        ratios = f"{r['period2']:.1f} | {r['period4']:.1f}"
        print(f"| {r['what']} | {ratios} | {levels(r['levels2'])} | {levels(r['levels4'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
