"""Loading every kind of image the CLI may meet (hostile ones and fuzzed bytes
included), and atomic saving."""

import io
import logging
import os
import stat
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.conftest import RGB, STYLE, run_quiet
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


# ----------------------------------------------------------------- hostile images
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_bomb(path):
    """A tiny PNG whose header declares 100000 x 100000 pixels."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile ü")
    make_bomb(d / "bomb.png")
    frames = [Image.fromarray(RGB), Image.fromarray(255 - RGB)]
    frames[0].save(d / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(d / "pages.tiff", save_all=True, append_images=frames[1:])
    Image.fromarray(RGB).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray((RGB.astype(np.uint16) * 257)[..., 0]).save(d / "gray16.png")
    Image.fromarray(RGB[..., 0].astype(np.float32) / 255.0, mode="F").save(d / "float.tiff")
    Image.fromarray(RGB[:1, :1]).save(d / "one_pixel.png")
    Image.fromarray(np.zeros((8, 4000, 3), np.uint8)).save(d / "sliver.png")
    img = Image.fromarray(RGB)
    exif = img.getexif()
    exif[0x0112] = 8  # rotate 90° counter-clockwise to display
    img.save(d / "rotated.jpg", exif=exif)
    Image.fromarray(RGB).save(d / "with space ü.png")
    return d


@pytest.mark.parametrize(
    "name,shape",
    [
        ("animated.gif", (40, 48)),
        ("pages.tiff", (40, 48)),
        ("cmyk.jpg", (40, 48)),
        ("gray16.png", (40, 48)),
        ("float.tiff", (40, 48)),
        ("one_pixel.png", (1, 1)),
        ("rotated.jpg", (48, 40)),
        ("with space ü.png", (40, 48)),
    ],
)
def test_unusual_images_load(hostile, name, shape):
    a = read_image(hostile / name)
    assert a.shape == (*shape, 3) and np.isfinite(a).all() and 0 <= a.min() and a.max() <= 1


def test_multi_frame_images_say_first_frame(hostile, caplog):
    with caplog.at_level(logging.WARNING):
        first = read_image(hostile / "animated.gif")
    assert "using the first" in caplog.text
    # GIF's 256-colour palette quantizes noise coarsely: compare with both frames.
    assert np.abs(first - RGB / 255.0).mean() < 0.5 * np.abs(first - (255 - RGB) / 255.0).mean()


def test_decompression_bomb_is_refused_quickly(hostile):
    t = time.perf_counter()
    with pytest.raises(TfnstError, match="over the limit"):
        read_image(hostile / "bomb.png")
    assert time.perf_counter() - t < 1.0  # refused from the header, nothing decoded
    read_image(hostile / "one_pixel.png", max_pixels=1)


def test_hostile_inputs_through_the_cli(capsys, hostile, tmp_path):
    out = tmp_path / "out.png"
    for name, message in [("bomb.png", "over the limit"), ("sliver.png", "at least 16 pixels")]:
        code, err = run_quiet(capsys, "stylize", hostile / name, STYLE, "-o", out, "--iterations", "1")
        assert code == 2 and message in err and err.count("\n") == 1, err
        assert not out.exists()
    code, err = run_quiet(
        capsys, "stylize", hostile / "bomb.png", STYLE, "-o", out, "--max-pixels", "20000000000", "--iterations", "1"
    )
    assert code == 2 and "damaged or truncated" in err  # past the limit, the data is bad
    # A 1x1 content is upscaled; an animated style uses its first frame.
    code, err = run_quiet(
        capsys,
        "stylize",
        hostile / "one_pixel.png",
        hostile / "animated.gif",
        "-o",
        out,
        "--size",
        "32",
        "--iterations",
        "1",
    )
    assert code == 0, err
    assert Image.open(out).size == (32, 32)


# ----------------------------------------------------------------- fuzzing
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".jpg", ".png", ".gif", ".tiff", ".bmp"]))
def test_fuzz_loader_raises_only_tfnst_error(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        image = read_image(path)
    except TfnstError:
        return
    assert image.ndim == 3 and image.shape[-1] == 3


def _mutated_png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(RGB[:16, :16]).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    rng = np.random.default_rng(seed)
    for i in rng.integers(8, len(data), size=4):
        data[i] = rng.integers(0, 256)
    return bytes(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_fuzz_mutated_png(tmp_path, seed):
    path = tmp_path / "m.png"
    path.write_bytes(_mutated_png(seed))
    try:
        read_image(path)
    except TfnstError:
        pass
