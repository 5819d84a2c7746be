"""Shared fixtures: small real images (downscaled from examples/) and one Stylizer."""

import os
import tempfile
from pathlib import Path

# Keras' own VGG19 file, when a user has it cached in ~/.keras, would take precedence
# over the offline weights the tests pin (tfnst.weights): a Keras home of the tests' own,
# set before Keras is imported, so the suite sees the same weights on every machine.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="tfnst-tests-keras-")

import numpy as np
import pytest

import tfnst
from tfnst.features import VGG19
from tfnst.image_io import read_image
from tfnst.resize import fit_size, resize

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONTENT, STYLE = str(EXAMPLES / "tubingen.jpg"), str(EXAMPLES / "starry_night.jpg")


def run_cli(capsys, *args):
    """``tfnst ARGS`` in this process: (exit status, what it wrote to stderr)."""
    from tfnst import cli

    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().err


def run_quiet(capsys, *args):
    """`run_cli` with ``-q`` (no progress bar)."""
    return run_cli(capsys, *args, "-q")


def fitted(image, longest: int) -> np.ndarray:
    """``image`` resized to ``longest`` pixels on its longest side."""
    return resize(image, fit_size(image.shape[:2], longest)).numpy()


def small(name: str, longest: int) -> np.ndarray:
    """A bundled example (examples/), downscaled."""
    return fitted(read_image(EXAMPLES / name), longest)


@pytest.fixture(scope="session")
def content64():
    return small("tubingen.jpg", 64)


@pytest.fixture(scope="session")
def style64():
    return small("starry_night.jpg", 64)


@pytest.fixture(scope="session")
def scream64():
    return small("the_scream.jpg", 64)


# Tests run at 32-128 px, where bfloat16 does not pay, and on machines with and without
# native bfloat16: they pin float32 unless they test precision. They count iterations,
# so the stall stop is off unless they test it.
# float32 (deterministic), and Adam at one scale with the iterations a test asks for: the
# tests written for the defaults before 2026-11-26 keep their meaning; the defaults
# themselves (L-BFGS, two scales) have their own tests (test_api, test_optimizers).
TEST_OPTIONS = dict(precision="float32", tolerance=0.0, optimizer="adam", scales=1)


@pytest.fixture(scope="session")
def stylizer():
    """Built once: the feature extractor and compiled steps are reused across tests."""
    return tfnst.Stylizer(**TEST_OPTIONS)


STYLE_LAYERS = tfnst.StyleConfig().style_layers

# A training loss with VGG19 to block2 only, for tests whose claim does not depend on the
# loss network's depth (fit, strategies, resuming, saving): each training traces and
# runs VGG19, and to block4 that is most of a tiny training's cost.
SHALLOW_TRAINING = dict(content_layers=("block2_conv2",), style_layers=("block1_conv2", "block2_conv2"))


# A small random image, for loaders and hostile inputs.
RGB = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def vgg():
    """VGG19 with the default style layers and the content layer."""
    return VGG19(STYLE_LAYERS + ("block4_conv2",))


def distance(vgg, statistic, image, style):
    """Σ over the style layers of ``statistic``'s loss of ``image`` against ``style``."""
    f, t = vgg(image[None]), vgg(style[None])
    return sum(float(statistic.loss(f[n], statistic.target(t[n]))[0]) for n in STYLE_LAYERS)
