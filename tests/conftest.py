"""Shared fixtures: small real images (downscaled from examples/) and one Stylizer."""

from pathlib import Path

import numpy as np
import pytest

import tfnst
from tfnst.image_io import fit_size, read_image, resize

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def small(name: str, longest: int) -> np.ndarray:
    image = read_image(EXAMPLES / name)
    return resize(image, fit_size(image.shape[:2], longest))


@pytest.fixture(scope="session")
def content64():
    return small("tubingen.jpg", 64)


@pytest.fixture(scope="session")
def style64():
    return small("starry_night.jpg", 64)


@pytest.fixture(scope="session")
def stylizer():
    """Built once: the feature model and compiled steps are reused across tests."""
    return tfnst.Stylizer()
