"""Training images from a folder, as a `tf.data` pipeline: decode, fixed crops, batch, prefetch.

Every epoch is the same pass over the same crops in the same order (a seeded shuffle of
(image, crop) pairs, each crop's position and scale a function of the seed, the file and
the crop's number): so a training that `keras.callbacks.BackupAndRestore` resumes at an
epoch boundary sees the data an uninterrupted one would. Johnson et al. (2016) trained on
fixed 256x256 resizes of COCO; several fixed crops per image give a small set variety.
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


def _crop(path: tf.Tensor, crop: tf.Tensor, size: int, seed: int) -> tf.Tensor:
    """A size x size crop of the image at ``path``: scaled so that its shorter side is
    1 to 1.5 times ``size``, at a position drawn from (seed, file, crop), stateless."""
    image = tf.image.convert_image_dtype(
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False), tf.float32
    )
    key = tf.stack(
        [tf.cast(seed, tf.int64), tf.strings.to_hash_bucket_fast(path, 2**31 - 1) * 97 + tf.cast(crop, tf.int64)]
    )
    draws = tf.random.stateless_uniform([3], seed=key)
    hw = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = size * (1.0 + 0.5 * draws[0]) / tf.reduce_min(hw)
    scaled = tf.maximum(tf.cast(tf.round(hw * scale), tf.int32), size)
    image = resize(image, scaled)
    top = tf.cast(draws[1] * tf.cast(scaled[0] - size + 1, tf.float32), tf.int32)
    left = tf.cast(draws[2] * tf.cast(scaled[1] - size + 1, tf.float32), tf.int32)
    return tf.ensure_shape(image[top : top + size, left : left + size], [size, size, 3])


def training_dataset(folder, size: int, batch_size: int, crops: int = 4, seed: int = 0):
    """Batches of training crops ``(x, x)`` (a stylization network's target is its input:
    the perceptual loss compares features), repeated forever, one epoch a pass.

    Args:
        folder: a folder of images (COCO-style: any layout, JPEG/PNG/GIF/BMP).
        size: crops are size x size.
        batch_size: crops per batch.
        crops: fixed crops per image.
        seed: of the order and the crops.

    Returns:
        (dataset, steps per epoch).

    Raises:
        TfnstError: no readable image, or fewer crops than one batch.
    """
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
        .map(lambda p, c: _crop(p, c, size, seed), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .ignore_errors(log_warning=True)
        .batch(batch_size, drop_remainder=True)
    )
    dataset = one_pass.repeat().map(lambda x: (x, x)).prefetch(tf.data.AUTOTUNE)
    return dataset, steps


def load_images(paths, longest: int | None = None) -> list[np.ndarray]:
    """Images for previews and evaluation (float32 [H, W, 3]), optionally fitted to ``longest``."""
    from tfnst.image_io import read_image
    from tfnst.resize import fit_size

    images = [read_image(os.fspath(p)) for p in paths]
    if longest:
        images = [resize(im, fit_size(im.shape[:2], longest)).numpy() for im in images]
    return images
