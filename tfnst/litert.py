"""A trained network as a TFLite / LiteRT model, for phones and small devices.

`convert` turns a `tfnst.networks.StyleTransformer` into a ``.tflite`` flatbuffer with
`tf.lite.TFLiteConverter` (TensorFlow's route for Keras 3 models: the network written
as a SavedModel by `keras.export.ExportArchive`, then `from_saved_model`), with only
TFLite's builtin ops (no Flex / TF Select: the runtime is LiteRT alone,
``pip install ai-edge-litert``). Four variants:

- ``none``: float32 weights and arithmetic;
- ``float16``: weights stored as float16 (half the file), computed in float32 on a
  CPU (a GPU delegate may compute in float16);
- ``dynamic``: dynamic-range quantization: int8 weights, activations quantized on the
  fly where a kernel supports it, float elsewhere;
- ``int8``: full-integer quantization, calibrated on crops of a folder of photos
  (the training folder): every op in int8 (``TFLITE_BUILTINS_INT8``), the model's
  input and output stay float32 [0, 1] (a quantize op at the start, a dequantize op at
  the end: callers pass the same arrays as to the float model).

The model has one signature, ``serving_default``: ``image`` float32 [1, H, W, 3] in
[0, 1] → ``stylized`` float32 [1, H, W, 3] in [0, 1]. H and W are dynamic (the
flatbuffer's shape signature is [1, -1, -1, 3]): any size of at least 16 pixels a side
runs after ``interpreter.resize_tensor_input(..., [1, H, W, 3])`` and
``allocate_tensors()`` (`LiteRTNetwork` does that when the size changes). Sides are
mirrored up to a multiple of 4 and cropped back inside the graph, as the Keras model does.

The exported graph is the network's own layers with one change: Keras' nearest-
neighbour `UpSampling2D` (a repeat, whose dynamic reshapes lose the channel count
TFLite's convolutions need) is swapped for `tf.image.resize(..., "nearest")`, TFLite's
RESIZE_NEAREST_NEIGHBOR: the same values for a factor of 2, sharing the same weights.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tfnst.errors import TfnstError

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
#: int8 calibration: this many crops of CALIBRATION_SIZE x CALIBRATION_SIZE pixels.
CALIBRATION_SAMPLES = 64
CALIBRATION_SIZE = 256


def _litert_core(model):
    """``model.core`` with Keras' nearest upsamplings (networks saved with
    ``upsampling="nearest"``) as `tfnst.networks.Upsampling2x`, which TFLite converts,
    sharing its weights."""
    import keras

    from tfnst.networks import Upsampling2x

    def swap(layer):
        if isinstance(layer, keras.layers.UpSampling2D):
            if tuple(layer.size) != (2, 2) or layer.interpolation != "nearest":
                raise TfnstError(f"{layer.name}: only 2x nearest upsampling converts")
            return Upsampling2x("nearest", name=layer.name)
        return layer  # the same layer: the same weights

    return keras.models.clone_model(model.core, clone_function=swap)


def _forward(core):
    """The serving function: float [1, H, W, 3] → {"stylized": float [1, H, W, 3]}."""
    import tensorflow as tf

    def forward(image):
        x = tf.clip_by_value(image, 0.0, 1.0)
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        padded_h, padded_w = h + (-h) % 4, w + (-w) % 4
        x = tf.pad(x, [[0, 0], [0, padded_h - h], [0, padded_w - w], [0, 0]], mode="SYMMETRIC")
        # A dynamic pad loses the static shape; TFLite's convolutions need the channels.
        x = tf.reshape(x, tf.stack([1, padded_h, padded_w, 3]))
        return {"stylized": core(x, training=False)[:, :h, :w, :]}

    return forward


def calibration_images(
    folder, size: int = CALIBRATION_SIZE, samples: int = CALIBRATION_SAMPLES, seed: int = 0
) -> list[np.ndarray]:
    """Up to ``samples`` size x size crops of the photos in ``folder``, float32 [1, size,
    size, 3]: the training pipeline's crops (`tfnst.datasets.training_dataset`, each a
    seeded function of the file), as many per image as it takes to reach ``samples``.

    Raises:
        TfnstError: no such folder, or no readable image in it.
    """
    from tfnst.datasets import image_files, readable_files, training_dataset

    files = readable_files(image_files(folder), min_side=16)
    crops = max(1, -(-samples // len(files)))
    dataset, _ = training_dataset(folder, size, 1, crops=crops, seed=seed)
    return [x.numpy() for x, _ in dataset.take(min(samples, len(files) * crops))]


def convert(
    model,
    quantize: str = "none",
    images=None,
    *,
    calibration_size: int = CALIBRATION_SIZE,
    samples: int = CALIBRATION_SAMPLES,
) -> bytes:
    """The network as a ``.tflite`` flatbuffer (see the module's doc for the variants).

    Args:
        model: a `tfnst.networks.StyleTransformer`.
        quantize: one of `QUANTIZATIONS`.
        images: for ``int8``, a folder of photos to calibrate on (the training folder).
        calibration_size, samples: int8 calibrates on ``samples`` crops of this side.

    Raises:
        TfnstError: an unknown ``quantize``, ``int8`` without ``images`` (or ``images``
            without ``int8``), a model that is not a StyleTransformer.
    """
    import keras
    import tensorflow as tf

    from tfnst.networks import StyleTransformer

    if quantize not in QUANTIZATIONS:
        raise TfnstError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, not {quantize!r}")
    if (quantize == "int8") != (images is not None):
        raise TfnstError(
            "int8 quantization needs a folder of calibration images"
            if images is None
            else "calibration images are for int8 quantization only"
        )
    if not isinstance(model, StyleTransformer):
        raise TfnstError(f"a {type(model).__name__} is not a tfnst StyleTransformer")
    calibration = calibration_images(images, calibration_size, samples) if quantize == "int8" else None
    with tempfile.TemporaryDirectory(prefix="tfnst-litert-") as saved_model:
        core = _litert_core(model)
        archive = keras.export.ExportArchive()
        archive.track(core)
        archive.add_endpoint(
            "serving_default",
            _forward(core),
            input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32, name="image")],
        )
        archive.write_out(saved_model, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif quantize == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([x] for x in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            # inference_input_type / inference_output_type stay float32: [0, 1] images in and out.
        try:
            return converter.convert()
        except Exception as e:  # the converter's MLIR dump is pages long; its first line says what
            raise TfnstError(f"TFLite conversion ({quantize}) failed: {str(e).strip().splitlines()[0][:300]}") from e


def export_litert(model, path, quantize: str = "none", images=None, **options) -> Path:
    """`convert`, written atomically to ``path`` (a ``.tflite`` file)."""
    from tfnst.atomic import atomic_write

    path = Path(path)
    if path.suffix != ".tflite":
        raise TfnstError(f"{path}: a LiteRT model is written as a .tflite file")
    if not path.parent.is_dir():
        raise TfnstError(f"{path.parent}: no such folder")
    data = convert(model, quantize, images, **options)
    return atomic_write(path, lambda f: f.write(data))


class LiteRTNetwork:
    """A ``.tflite`` network from `convert` in LiteRT's interpreter
    (``ai_edge_litert.interpreter.Interpreter``; TensorFlow not needed).

    ``network(image)``: an image [H, W, 3] or a batch of one [1, H, W, 3], uint8 (0-255)
    or float in [0, 1] → float32 of the same shape in [0, 1]. The input tensor is
    resized (``resize_tensor_input`` + ``allocate_tensors``) when the size changes.

    Args:
        model: the path of a ``.tflite`` file, or its bytes.
        num_threads: the interpreter's threads (default: LiteRT's).
    """

    def __init__(self, model, num_threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise TfnstError("LiteRT is not installed: pip install 'tfnst[litert]' (ai-edge-litert)") from None
        in_memory = isinstance(model, (bytes, bytearray))
        source = {"model_content": bytes(model)} if in_memory else {"model_path": str(model)}
        self.interpreter = Interpreter(**source, num_threads=num_threads)
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self._shape = None

    def __call__(self, image) -> np.ndarray:
        image = np.asarray(image)
        batched = image.ndim == 4
        x = image if batched else image[None]
        if x.ndim != 4 or x.shape[0] != 1 or x.shape[-1] != 3:
            raise TfnstError(f"expected an image [H, W, 3] or a batch of one [1, H, W, 3], got {image.shape}")
        if min(x.shape[1:3]) < 16:
            raise TfnstError(f"the image is {x.shape[2]}x{x.shape[1]}; the network needs at least 16 pixels a side")
        x = x.astype(np.float32) / 255.0 if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)
        if x.shape != self._shape:
            self.interpreter.resize_tensor_input(self._input, list(x.shape))
            self.interpreter.allocate_tensors()
            self._shape = x.shape
        self.interpreter.set_tensor(self._input, x)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output)
        return out if batched else out[0]


def export_command(args, options: dict) -> int:
    """``tfnst export --format tflite``: the options checked (each refusal one line, exit 2,
    before TensorFlow builds anything), then the network converted and written.

    ``--out``/``-o`` is the ``.tflite`` file here (the SavedModel's folder otherwise);
    ``--quantize`` and ``--images`` belong to ``--format tflite``; ``--images`` to
    ``--quantize int8``, which needs it; ``--max-size``, ``--version`` and the
    optimization's options belong to the SavedModel.
    """
    import sys

    from tfnst.datasets import image_files

    if args.format != "tflite":
        flag = "--quantize" if args.quantize else "--images"
        raise TfnstError(f"{flag} is an option of --format tflite (a SavedModel is not quantized)")
    if not args.network:
        raise TfnstError("--format tflite exports a trained network: give --network MODEL.keras")
    if options:
        raise TfnstError(
            f"--{next(iter(options)).replace('_', '-')} is an option of the "
            "optimization graph; a trained network has its style built in"
        )
    for flag, value in (("--max-size", args.max_size), ("--version", args.version)):
        if value is not None:
            raise TfnstError(f"{flag} is an option of the SavedModel; a LiteRT model takes any size and is one file")
    quantize = args.quantize or "none"
    if quantize == "int8" and not args.images:
        raise TfnstError("--quantize int8 needs --images DIR (photos to calibrate on, e.g. the training folder)")
    if args.images and quantize != "int8":
        raise TfnstError("--images is for --quantize int8 (calibration); the other modes need no data")
    out = Path(args.out)
    if out.suffix != ".tflite":
        raise TfnstError(f"{out}: with --format tflite, -o/--out is the model file, MODEL.tflite")
    if not out.parent.is_dir():
        raise TfnstError(f"{out.parent}: no such folder")
    if not Path(args.network).is_file():
        raise TfnstError(f"{args.network}: no such network file")
    if args.images:
        image_files(args.images)
    from tfnst.networks import load_network

    path = export_litert(load_network(args.network), out, quantize, args.images)
    print(f"tfnst: exported {path} ({path.stat().st_size / 1e3:.0f} kB, {quantize})", file=sys.stderr)
    return 0
