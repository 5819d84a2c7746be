"""Training images from a folder, as a `tf.data` pipeline: decode, fixed crops, batch, prefetch.

Every epoch is the same pass over the same crops in the same order (a seeded shuffle of
(image, crop) pairs, each crop's position, scale and mirroring a function of the seed, the
file and the crop's number): so a training that `keras.callbacks.BackupAndRestore`
resumes at an epoch boundary sees the data an uninterrupted one would. Johnson et al.
(2016) trained on fixed 256x256 resizes of COCO; several fixed crops per image, at
several scales and mirrored or not, give a small set variety.

The crops may be smaller than the scale the photos are brought to (``crop_size`` under
``size``): windows of photos at the resolution the network is trained for, at a fraction
of the loss network's cost per crop.

For the stability term (`tfnst.networks.stability_loss`), each crop comes with a second
view of the same photo: the crop window moved by a whole number of pixels (a known
translation, also a seeded function of the file and the crop) plus a little Gaussian
noise, so the two views' correspondence is exact without optical flow.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from tfnst.errors import TfnstError
from tfnst.resize import resize

log = logging.getLogger(__name__)

# What tf.io.decode_image reads.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def image_files(folder) -> list[Path]:
    """The image files under ``folder`` (recursively, by suffix), sorted.

    Raises:
        TfnstError: when the folder does not exist or holds no image file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TfnstError(f"{folder}: no such folder of training images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise TfnstError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def readable_files(files, min_side: int) -> list[Path]:
    """The files whose header PIL can read, of at least ``min_side`` pixels a side; each
    other one is skipped with a warning. (A file damaged past its header is dropped by
    the pipeline, also with a warning.)

    Raises:
        TfnstError: when none is readable.
    """
    good = []
    for path in files:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError, ValueError) as e:
            log.warning("tfnst: skipping %s: not a readable image (%s)", path, e)
            continue
        if min(width, height) < min_side:
            log.warning("tfnst: skipping %s: %dx%d is under %d pixels a side", path, width, height, min_side)
            continue
        good.append(path)
    if not good:
        raise TfnstError(f"no readable image of at least {min_side} pixels a side among {len(files)} files")
    return good


# The second view's noise (standard deviation, [0, 1] pixel units): about 2.5/255, the
# order of a camera's or a video codec's frame-to-frame noise.
STABILITY_NOISE = 0.01


def _crop(
    path: tf.Tensor,
    crop: tf.Tensor,
    size: int,
    seed: int,
    shift: int = 0,
    noise: float = STABILITY_NOISE,
    crop_size: int | None = None,
):
    """A crop_size x crop_size crop (``size`` when unset) of the image at ``path``: scaled so
    that its shorter side is 1 to 1.5 times ``size``, mirrored left to right or not, at a
    position drawn from (seed, file, crop), stateless.

    With ``shift`` > 0, ``(crop, moved, (dy, dx))``: ``moved`` is the same scaled photo
    seen through the window moved by (dy, dx) whole pixels (each drawn in [-shift, shift],
    clipped so that the window stays on the photo), plus Gaussian noise of standard
    deviation ``noise``, clipped to [0, 1]. Without the noise ``moved[i, j] = crop[i + dy,
    j + dx]`` wherever both are in the crop. The crop itself is the one ``shift`` 0 gives.
    """
    image = tf.image.convert_image_dtype(
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False), tf.float32
    )
    key = tf.stack(
        [tf.cast(seed, tf.int64), tf.strings.to_hash_bucket_fast(path, 2**31 - 1) * 97 + tf.cast(crop, tf.int64)]
    )
    draws = tf.random.stateless_uniform([4], seed=key)
    hw = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = size * (1.0 + 0.5 * draws[0]) / tf.reduce_min(hw)
    side = crop_size or size
    scaled = tf.maximum(tf.cast(tf.round(hw * scale), tf.int32), size)
    image = resize(image, scaled)
    # The photo is mirrored before any window is cut, so a second view (below) is a
    # window of the same mirrored photo and its shift keeps its meaning.
    image = tf.cond(draws[3] < 0.5, lambda: image[:, ::-1], lambda: image)
    top = tf.cast(draws[1] * tf.cast(scaled[0] - side + 1, tf.float32), tf.int32)
    left = tf.cast(draws[2] * tf.cast(scaled[1] - side + 1, tf.float32), tf.int32)
    first = tf.ensure_shape(image[top : top + side, left : left + side], [side, side, 3])
    if not shift:
        return first
    # Draws of their own (another key), so the first view is the crop shift 0 gives.
    moves = tf.random.stateless_uniform(
        [2], seed=tf.random.experimental.stateless_fold_in(key, 1), minval=-shift, maxval=shift + 1, dtype=tf.int32
    )
    dy = tf.clip_by_value(moves[0], -top, scaled[0] - side - top)
    dx = tf.clip_by_value(moves[1], -left, scaled[1] - side - left)
    moved = image[top + dy : top + dy + side, left + dx : left + dx + side]
    if noise:
        moved += noise * tf.random.stateless_normal(
            [side, side, 3], seed=tf.random.experimental.stateless_fold_in(key, 2)
        )
    moved = tf.ensure_shape(tf.clip_by_value(moved, 0.0, 1.0), [side, side, 3])
    return first, moved, tf.stack([dy, dx])


def training_dataset(
    folder,
    size: int,
    batch_size: int,
    crops: int = 4,
    seed: int = 0,
    shift: int = 0,
    noise: float = STABILITY_NOISE,
    crop_size: int | None = None,
):
    """Batches of training crops ``(x, x)`` (a stylization network's target is its input:
    the perceptual loss compares features), repeated forever, one epoch a pass.

    With ``shift`` > 0, batches ``(x, {"content": x, "moved": moved, "shift": shift})``:
    each crop's second view, moved by ``shift[b] = (dy, dx)`` whole pixels and with
    Gaussian noise of standard deviation ``noise`` (see `_crop`), for the stability term
    (`tfnst.networks.StyleTransformer.compute_loss`). Each second view, like each crop,
    is the same every epoch; the crops ``x`` are the ones ``shift`` 0 gives.

    Args:
        folder: a folder of images (COCO-style: any layout, JPEG/PNG/GIF/BMP).
        size: photos are scaled so that their shorter side is 1 to 1.5 times this.
        crop_size: crops are crop_size x crop_size (at most ``size``); unset: ``size``.
        batch_size: crops per batch.
        crops: fixed crops per image.
        seed: of the order and the crops.
        shift: the second view's largest move, in pixels along each axis (0: none).
        noise: the second view's noise.

    Returns:
        (dataset, steps per epoch).

    Raises:
        TfnstError: no readable image, or fewer crops than one batch.
    """
    if crop_size is not None and crop_size > size:
        raise TfnstError(f"crop_size ({crop_size}) must be at most size ({size})")
    files = readable_files(image_files(folder), min_side=16)
    pairs = [(str(f), c) for f in files for c in range(crops)]
    order = np.random.default_rng(seed).permutation(len(pairs))
    steps = len(pairs) // batch_size
    if steps == 0:
        raise TfnstError(
            f"{len(files)} images x {crops} crops is fewer than one batch of {batch_size}; "
            "lower --batch-size or add images"
        )
    paths = tf.constant([pairs[i][0] for i in order])
    crop_ids = tf.constant([pairs[i][1] for i in order], tf.int32)
    one_pass = (
        tf.data.Dataset.from_tensor_slices((paths, crop_ids))
        .map(
            lambda p, c: _crop(p, c, size, seed, shift, noise, crop_size),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .ignore_errors(log_warning=True)
        .batch(batch_size, drop_remainder=True)
    )
    if shift:
        to_xy = lambda x, moved, d: (x, {"content": x, "moved": moved, "shift": d})  # noqa: E731
    else:
        to_xy = lambda x: (x, x)  # noqa: E731
    dataset = one_pass.repeat().map(to_xy).prefetch(tf.data.AUTOTUNE)
    return dataset, steps


def load_images(paths, longest: int | None = None) -> list[np.ndarray]:
    """Images for previews and evaluation (float32 [H, W, 3]), optionally fitted to ``longest``."""
    from tfnst.image_io import read_image
    from tfnst.resize import fit_size

    images = [read_image(os.fspath(p)) for p in paths]
    if longest:
        images = [resize(im, fit_size(im.shape[:2], longest)).numpy() for im in images]
    return images
