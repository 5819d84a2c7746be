"""Loading every kind of image the CLI may meet, and atomic saving."""

import os
import stat

import numpy as np
import pytest
from PIL import Image

from tfnst.errors import TfnstError
from tfnst.image_io import read_image, save_image, to_array


def _rgb(h=12, w=16):
    return (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "CMYK", "I;16", "I", "F", "1"])
def test_unusual_modes_become_rgb(tmp_path, mode):
    img = Image.fromarray(_rgb()).convert("RGB")
    if mode == "I;16":
        img = Image.fromarray((np.linspace(0, 65535, 12 * 16).reshape(12, 16)).astype(np.uint16))
    elif mode == "F":
        img = Image.fromarray(np.linspace(0, 1, 12 * 16, dtype=np.float32).reshape(12, 16), mode="F")
    else:
        img = img.convert(mode)
    ext = ".tiff" if mode in ("I;16", "I", "F", "CMYK") else ".png"
    path = tmp_path / f"x{ext}"
    img.save(path)
    a = read_image(path)
    assert a.shape == (12, 16, 3) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    if mode in ("I;16", "F"):  # high bit depth keeps its full range
        assert a.max() == pytest.approx(1.0, abs=1e-3) and a.min() == pytest.approx(0.0, abs=1e-3)


def test_exif_rotation_is_applied(tmp_path):
    img = Image.fromarray(_rgb(10, 20))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif)
    assert read_image(path).shape == (20, 10, 3)


def test_rgba_transparency_composites_on_white(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    Image.fromarray(a, "RGBA").save(tmp_path / "t.png")
    np.testing.assert_allclose(read_image(tmp_path / "t.png"), 1.0)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "not a readable image"),
        (b"hello, I am text", "not a readable image"),
    ],
)
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(TfnstError, match=match):
        read_image(path)


def test_truncated_image(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(_rgb(64, 64)).save(good, quality=95)
    bad = tmp_path / "trunc.jpg"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(TfnstError, match="damaged or truncated"):
        read_image(bad)


def test_missing_and_directory(tmp_path):
    with pytest.raises(TfnstError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(TfnstError, match="directory"):
        read_image(tmp_path)


def test_pixel_limit(tmp_path):
    Image.fromarray(_rgb(40, 40)).save(tmp_path / "x.png")
    with pytest.raises(TfnstError, match="over the limit"):
        read_image(tmp_path / "x.png", max_pixels=1000)


def test_arrays_and_tensors():
    import tensorflow as tf

    u8 = _rgb()
    np.testing.assert_allclose(to_array(u8), u8 / 255.0, rtol=1e-6)
    np.testing.assert_allclose(to_array(tf.constant(u8[None] / 255.0)), u8 / 255.0, rtol=1e-6)
    assert to_array(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert to_array(Image.fromarray(u8)).shape == (12, 16, 3)
    for bad in (np.zeros((5,)), np.zeros((4, 4, 2)), np.full((3, 3, 3), np.nan)):
        with pytest.raises(TfnstError):
            to_array(bad)


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    save_image(np.zeros((4, 4, 3)), path)
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        save_image(np.ones((4, 4, 3)), path)
    assert path.read_bytes() == before  # the old file is intact
    assert os.listdir(tmp_path) == ["out.png"]  # and no temporary is left


def test_output_path_checks(tmp_path):
    with pytest.raises(TfnstError, match="does not exist"):
        save_image(np.zeros((4, 4, 3)), tmp_path / "missing" / "x.png")
    with pytest.raises(TfnstError, match="unsupported output format"):
        save_image(np.zeros((4, 4, 3)), tmp_path / "x.gifx")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.access(ro, os.W_OK):  # root ignores permissions
        pytest.skip("running as a user who can write anywhere")
    with pytest.raises(TfnstError, match="not writable"):
        save_image(np.zeros((4, 4, 3)), ro / "x.png")
