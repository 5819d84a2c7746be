"""Batch stylization on Apache Beam: ``tfnst batch`` / ``python -m tfnst.batch``.

A Beam pipeline over a SavedModel from ``tfnst export`` (a trained network, or the
optimization graph with ``--style``)::

    MatchFiles(--input) -> [name check] -> ReadMatches -> Decode --failed--------+
                                                            |                    |
                RunInference(KeyedModelHandler(SavedModelHandler))               |
                        |                         `--failed_inferences----------+--> failures.jsonl
                    WritePng -> --output/<relative path>.png

- Files are found and read with ``apache_beam.io.fileio`` and written with
  ``FileSystems.create``, so any file system Beam has (local, ``gs://``, ``s3://``,
  with the extras that bring them) works for the inputs, the outputs and the model.
- Decoding follows the library's rules (`tfnst.image_io`: EXIF orientation, transparency
  on white, 16-bit and palette images, the first frame of an animation, a pixel limit).
  An input that cannot be decoded, is under 16x16 pixels, or whose inference fails is a
  line ``{"path": ..., "reason": ...}`` in ``--output/failures.jsonl``; the job goes on.
- Inference is Beam's ``RunInference`` with its TensorFlow handler
  (`TFModelHandlerTensor`), keyed by the input's path. Its stock ``load_model`` goes
  through ``tf.keras.models.load_model``, which under Keras 3 refuses a SavedModel, so
  `SavedModelHandler` loads it with ``tf.saved_model.load`` and calls the named
  signature ``stylize_float`` (float32 [N, H, W, 3] in [0, 1]) via ``inference_fn``.
- Sizes: one image per batch by default (``--batch-size 1``). A batch larger than one
  is split by exact image shape inside the inference function, so images are never
  resized or padded to share a batch (see docs/batch.md for why 1 is the default).
- Each result is quantized to 8 bits as the SavedModel's own PNG signature does
  (``tf.image.convert_image_dtype(..., tf.uint8, saturate=True)``) and encoded as PNG.
- Output names: the input's path relative to the pattern's folder (the part before its
  first wildcard), with the extension replaced by ``.png``: ``photos/a/x.jpg`` with
  ``--input 'photos/**'`` gives ``OUT/a/x.png``. Two inputs that would get the same name
  (``x.jpg`` and ``x.png`` in one folder) are both recorded as failures, never written
  over each other; ``--keep-extension`` names them ``x.jpg.png`` and ``x.png.png``
  instead (a name per input path, so no collisions at all, and no shuffle to find them).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import posixpath
import re
import sys
import tempfile
import warnings

import numpy as np

from tfnst.errors import TfnstError
from tfnst.image_io import DEFAULT_MAX_PIXELS

log = logging.getLogger(__name__)

SIGNATURE = "stylize_float"
OUTPUT_KEY = "stylized"
FAILURES = "failures.jsonl"
NAMESPACE = "tfnst"
MIN_SIDE = 16  # tfnst.vgg_layers.MIN_SIDE: both kinds of SavedModel refuse smaller images
_GLOB = re.compile(r"[*?\[{]")


def _require_beam(tensorflow: bool = True):
    """Raises `TfnstError` when the ``beam`` extra is missing (``tensorflow``: check
    Beam's TensorFlow handler too, which imports TensorFlow and TensorFlow Hub)."""
    try:
        import apache_beam  # noqa: F401

        if tensorflow:
            from apache_beam.ml.inference import tensorflow_inference  # noqa: F401
    except ImportError as e:
        raise TfnstError(
            f"tfnst batch needs Apache Beam's TensorFlow support ({e.name} is missing): pip install 'tfnst[beam]'"
        ) from None


# ------------------------------------------------------------------ names and paths
def _has_scheme(path: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path) is not None


def _join(base: str, *parts: str) -> str:
    if _has_scheme(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def pattern_base(pattern: str) -> str:
    """The folder a pattern's matches are named relative to: the part before its first
    wildcard, up to the last ``/`` (``gs://b/photos/**/*.jpg`` -> ``gs://b/photos/``).
    A local pattern's base is absolute."""
    match = _GLOB.search(pattern)
    fixed = pattern[: match.start()] if match else pattern
    base = fixed[: fixed.rfind("/") + 1] if "/" in fixed else ""
    if _has_scheme(pattern):
        return base
    return os.path.join(os.path.abspath(base or "."), "")


def relative_name(path: str, base: str) -> str:
    """``path`` relative to ``base`` (as `pattern_base` gives it), with ``/`` separators."""
    if not _has_scheme(path):
        path = os.path.abspath(path)
    if path.startswith(base):
        return path[len(base) :].lstrip("/")
    return path.rsplit("/", 1)[-1]  # not under the base (cannot happen for a match): the file name


def output_name(path: str, base: str, keep_extension: bool = False) -> str:
    """The result's name under ``--output`` for the input ``path``."""
    rel = relative_name(path, base)
    if keep_extension:
        return rel + ".png"
    folder, _, name = rel.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return (folder + "/" if folder else "") + stem + ".png"


# ------------------------------------------------------------------ decoding and encoding
def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Encoded image bytes to float32 [H, W, 3] in [0, 1], by `tfnst.image_io`'s rules
    (the same array `tfnst.read_image` gives for the file).

    Raises:
        ValueError: with a one-line reason, for anything that is not a usable image.
    """
    from PIL import Image, UnidentifiedImageError

    from tfnst.image_io import to_array

    if not data:
        raise ValueError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > max_pixels:
                    raise ValueError(
                        f"{img.width}x{img.height} is over the limit of {max_pixels} pixels "
                        "(a decompression bomb?); raise it with --max-pixels"
                    )
                img.seek(0)
                array = to_array(img)
    except UnidentifiedImageError:
        raise ValueError("not an image (no image format recognised)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"over PIL's pixel limit ({_first_line(e)})") from None
    except ValueError:
        raise
    except (OSError, SyntaxError, TypeError, IndexError, TfnstError) as e:  # truncated or corrupt data
        raise ValueError(f"damaged or truncated ({_first_line(e)})") from None
    if min(array.shape[:2]) < MIN_SIDE:
        raise ValueError(f"{array.shape[1]}x{array.shape[0]} is under the {MIN_SIDE}x{MIN_SIDE} pixels the model takes")
    return array


def to_uint8(stylized) -> np.ndarray:
    """float [H, W, 3] in [0, 1] -> uint8, exactly as the SavedModel's PNG signature does."""
    import tensorflow as tf

    return tf.image.convert_image_dtype(tf.convert_to_tensor(stylized, tf.float32), tf.uint8, saturate=True).numpy()


def encode_png(pixels: np.ndarray) -> bytes:
    import tensorflow as tf

    return tf.io.encode_png(pixels).numpy()


# ------------------------------------------------------------------ the model
def resolve_model(model: str) -> str:
    """The SavedModel folder: ``model`` itself, or, for ``tfnst export``'s ``--out``
    folder (TF Serving's layout), its highest integer version.

    Raises:
        TfnstError: when there is no SavedModel there.
    """
    from apache_beam.io.filesystems import FileSystems

    model = model.rstrip("/")
    if FileSystems.exists(_join(model, "saved_model.pb")):
        return model
    try:
        found = FileSystems.match([_join(model, "*", "saved_model.pb")])[0].metadata_list
    except Exception:  # noqa: BLE001 - a missing bucket or folder is "no model" too
        found = []
    versions = {}
    for m in found:
        folder = m.path[: -len("/saved_model.pb")]
        name = folder.rstrip("/").rsplit("/", 1)[-1]
        if name.isdigit():
            versions[int(name)] = folder
    if not versions:
        raise TfnstError(
            f"{model}: no SavedModel there (no saved_model.pb, nor version folders with "
            "one); export one with tfnst export"
        )
    return versions[max(versions)]


def local_copy(model: str) -> str:
    """A local folder holding the SavedModel ``model``: itself when local, else a copy
    made with Beam's file systems (so ``s3://`` works without tensorflow-io)."""
    if not _has_scheme(model):
        return model
    from apache_beam.io.filesystems import FileSystems

    target = tempfile.mkdtemp(prefix="tfnst-model-")
    for m in FileSystems.match([_join(model, "**")])[0].metadata_list:
        rel = m.path[len(model) :].lstrip("/")
        if not rel or rel.endswith("/"):
            continue
        dest = os.path.join(target, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with FileSystems.open(m.path) as src, open(dest, "wb") as out:
            out.write(src.read())
    return target


def signature_inputs(model: str) -> list[str]:
    """The input names of the model's ``stylize_float`` signature, read from its
    saved_model.pb (``images`` for a network; ``content``, ``style``, … for the
    optimization graph).

    Raises:
        TfnstError: when the SavedModel has no such signature.
    """
    from apache_beam.io.filesystems import FileSystems
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with FileSystems.open(_join(model, "saved_model.pb")) as f:
        try:
            proto.ParseFromString(f.read())
        except Exception as e:  # noqa: BLE001 - any decode error means the same
            raise TfnstError(f"{model}: saved_model.pb cannot be read ({_first_line(e)})") from None
    signatures = proto.meta_graphs[0].signature_def if proto.meta_graphs else {}
    if SIGNATURE not in signatures:
        raise TfnstError(
            f"{model}: no {SIGNATURE} signature (has {', '.join(sorted(signatures)) or 'none'}); "
            "use a SavedModel from tfnst export"
        )
    return sorted(signatures[SIGNATURE].inputs)


class CallSignature:
    """Beam's ``inference_fn``: call the SavedModel's ``stylize_float`` on a batch.

    The batch's images are stacked per exact shape (each shape one call), so a batch may
    mix sizes; results come back in the batch's order. ``inference_args`` are the style
    images of the optimization graph (``style``, ``style_2``, …), float32 [1, H, W, 3].
    """

    def __init__(self, input_name: str):
        self.input_name = input_name

    def __call__(self, model, batch, inference_args, model_id=None):
        import tensorflow as tf
        from apache_beam.ml.inference.base import PredictionResult

        call = model.signatures[SIGNATURE]
        groups: dict[tuple, list[int]] = {}
        for i, image in enumerate(batch):
            groups.setdefault(tuple(np.shape(image)), []).append(i)
        outputs = [None] * len(batch)
        extra = {k: tf.convert_to_tensor(v, tf.float32) for k, v in (inference_args or {}).items()}
        for indices in groups.values():
            stacked = tf.convert_to_tensor(np.stack([np.asarray(batch[i], np.float32) for i in indices]))
            result = call(**{self.input_name: stacked}, **extra)[OUTPUT_KEY].numpy()
            for j, i in enumerate(indices):
                outputs[i] = result[j]
        return [PredictionResult(x, y, model_id) for x, y in zip(batch, outputs)]


def model_handler(model: str, input_name: str, batch_size: int = 1):
    """A `TFModelHandlerTensor` for a tfnst SavedModel, keyed (key: the input's path)."""
    from apache_beam.ml.inference.base import KeyedModelHandler
    from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerTensor

    class SavedModelHandler(TFModelHandlerTensor):
        """Beam's TensorFlow handler, loading with ``tf.saved_model.load`` (Keras 3's
        ``load_model`` takes only .keras and .h5 files)."""

        def load_model(self):
            import tensorflow as tf

            return tf.saved_model.load(local_copy(self._model_uri))

        def get_num_bytes(self, batch):
            return sum(np.asarray(x).nbytes for x in batch)

    handler = SavedModelHandler(
        model, inference_fn=CallSignature(input_name), min_batch_size=1, max_batch_size=batch_size
    )
    return KeyedModelHandler(handler)


# ------------------------------------------------------------------ the pipeline's steps
def _failure(path: str, reason: str) -> dict:
    return {"path": path, "reason": reason}


def _decode_fn(max_pixels):
    import apache_beam as beam

    class Decode(beam.DoFn):
        """ReadableFile -> (path, float32 [H, W, 3]); or to ``failed``: {path, reason}."""

        def process(self, readable):
            path = readable.metadata.path
            try:
                image = decode(readable.read(), max_pixels)
            except Exception as e:  # noqa: BLE001 - every bad input is recorded, none is fatal
                yield beam.pvalue.TaggedOutput("failed", _failure(path, _first_line(e)))
                return
            yield path, image

    return Decode()


def _write_fn(output: str, base: str, keep_extension: bool):
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.metrics import Metrics

    class WritePng(beam.DoFn):
        """(path, PredictionResult) -> OUTPUT/<name>.png; yields the written path."""

        def __init__(self):
            self.written = Metrics.counter(NAMESPACE, "written")

        def process(self, keyed):
            path, result = keyed
            target = _join(output, output_name(path, base, keep_extension))
            data = encode_png(to_uint8(result.inference))
            with FileSystems.create(target, mime_type="image/png") as f:
                f.write(data)
            self.written.inc()
            yield target

    return WritePng()


def _error_text(error) -> str:
    """Beam's dead-letter error, (type, repr, traceback lines), as one line: the type's
    name and the message (TensorFlow's errors' repr has no message; the traceback's last
    line has it)."""
    if isinstance(error, (tuple, list)) and len(error) == 3:
        kind, text, lines = error
        last = lines[-1] if lines else text
        message = last.split(": ", 1)[1] if ": " in last else last
        text = f"{getattr(kind, '__name__', kind)}: {message}"
    else:
        text = str(error)
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."


def _failed_batches(item):
    """RunInference's dead letters, (batch of (path, image), error info) -> failures."""
    batch, error = item
    reason = f"inference failed: {_error_text(error)}"
    for element in batch if isinstance(batch, (list, tuple)) else [batch]:
        path = element[0] if isinstance(element, (list, tuple)) else str(element)
        yield _failure(path, reason)


def _unique_names(item):
    """(name, [FileMetadata]) -> the one file with that name, or each colliding one as a failure."""
    import apache_beam as beam

    name, files = item
    files = sorted(files, key=lambda m: m.path)
    if len(files) == 1:
        yield files[0]
        return
    for m in files:
        others = ", ".join(o.path for o in files if o is not m)
        yield beam.pvalue.TaggedOutput(
            "failed", _failure(m.path, f"output name {name} collides with {others}; use --keep-extension")
        )


def _to_json_fn():
    import apache_beam as beam
    from apache_beam.metrics import Metrics

    class ToJson(beam.DoFn):
        """A failure -> one JSON line of the manifest (and the ``failed`` count)."""

        def __init__(self):
            self.failed = Metrics.counter(NAMESPACE, "failed")

        def process(self, failure):
            self.failed.inc()
            yield json.dumps(failure, sort_keys=True)

    return ToJson()


def build_pipeline(
    p,
    *,
    model: str,
    input_name: str,
    pattern: str,
    output: str,
    styles: dict | None = None,
    batch_size: int = 1,
    keep_extension: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
):
    """Add the batch stylization to the Beam pipeline ``p``; returns the written paths."""
    import apache_beam as beam
    from apache_beam.io import fileio
    from apache_beam.ml.inference.base import RunInference

    base = pattern_base(pattern)
    files = p | "Match" >> fileio.MatchFiles(pattern)
    failures = []
    if not keep_extension:
        named = (
            files
            | "ByName" >> beam.Map(lambda m: (output_name(m.path, base), m))
            | "GroupByName" >> beam.GroupByKey()
            | "UniqueNames" >> beam.FlatMap(_unique_names).with_outputs("failed", main="files")
        )
        files = named.files
        failures.append(named.failed)
    decoded = (
        files
        | "Read" >> fileio.ReadMatches()
        | "Decode" >> beam.ParDo(_decode_fn(max_pixels)).with_outputs("failed", main="images")
    )
    failures.append(decoded.failed)
    results, dead = (
        decoded.images
        | "Stylize"
        >> RunInference(
            model_handler(model, input_name, batch_size), inference_args=styles or None
        ).with_exception_handling()
    )
    failures.append(dead.failed_inferences | "InferenceFailures" >> beam.FlatMap(_failed_batches))
    written = results | "WritePng" >> beam.ParDo(_write_fn(output, base, keep_extension))
    (
        failures
        | "AllFailures" >> beam.Flatten()
        | "ToJson" >> beam.ParDo(_to_json_fn())
        | "Manifest" >> beam.io.WriteToText(_join(output, FAILURES), shard_name_template="", num_shards=1)
    )
    return written


# ------------------------------------------------------------------ the command
def add_arguments(p: argparse.ArgumentParser) -> None:
    """``tfnst batch``'s own options (any others are Beam pipeline options)."""
    p.add_argument(
        "--model",
        required=True,
        metavar="SAVEDMODEL",
        help="a SavedModel from tfnst export (a network's or the optimization graph's), or "
        "its --out folder (the highest version is used); any Beam file system",
    )
    p.add_argument(
        "--input",
        required=True,
        metavar="PATTERN",
        help="input files, a glob ('photos/*.jpg', 'gs://bucket/photos/**'); any Beam file system",
    )
    p.add_argument(
        "--output", required=True, metavar="DIR", help=f"results as DIR/<name>.png and the failures as DIR/{FAILURES}"
    )
    p.add_argument(
        "--style",
        action="append",
        metavar="IMAGE",
        help="style image for an optimization graph (repeat for a blend); not for a network",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=1,
        metavar="N",
        help="most images per model call; images of different sizes are split into calls of one size each (default: 1)",
    )
    p.add_argument(
        "--keep-extension",
        action="store_true",
        help="name results NAME.EXT.png (one per input path) instead of NAME.png",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"inputs above this many pixels are failures (default: {DEFAULT_MAX_PIXELS})",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log details (Beam's too)")


def _read_style(path: str, max_pixels: int) -> np.ndarray:
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path) as f:
            data = f.read()
    except Exception as e:  # noqa: BLE001
        raise TfnstError(f"{path}: cannot be read ({_first_line(e)})") from None
    try:
        return decode(data, max_pixels)[None]
    except ValueError as e:
        raise TfnstError(f"{path}: {e}") from None


def prepare(args) -> dict:
    """Check the options and inputs before any pipeline runs; the keyword arguments of
    `build_pipeline`.

    Raises:
        TfnstError: for a missing model, a pattern that matches nothing, a style image
            missing or given where none is taken, or a bad number.
    """
    _require_beam(tensorflow=False)  # TensorFlow loads only once the cheap checks passed
    from apache_beam.io.filesystems import FileSystems

    if args.batch_size < 1:
        raise TfnstError(f"--batch-size must be at least 1, not {args.batch_size}")
    if args.max_pixels < 1:
        raise TfnstError(f"--max-pixels must be positive, not {args.max_pixels}")
    model = resolve_model(args.model)
    try:
        matched = FileSystems.match([args.input], limits=[1])[0].metadata_list
    except Exception as e:  # noqa: BLE001 - Beam raises BeamIOError for a missing folder
        raise TfnstError(f"{args.input}: cannot be listed ({_first_line(e)})") from None
    if not matched:
        raise TfnstError(f"{args.input}: no files match")
    output = args.output
    if not _has_scheme(output):
        parent = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(parent):
            raise TfnstError(f"{output}: folder {parent} does not exist")
        if os.path.exists(output) and not os.path.isdir(output):
            raise TfnstError(f"{output} is a file, not a folder")
    _require_beam()
    inputs = signature_inputs(model)
    style_names = [n for n in inputs if n.startswith("style")]
    content = [n for n in inputs if not n.startswith("style")]
    if len(content) != 1:
        raise TfnstError(f"{model}: {SIGNATURE} takes {', '.join(inputs)}; not a tfnst SavedModel")
    given = args.style or []
    if style_names and len(given) != len(style_names):
        raise TfnstError(
            f"{model} is an optimization graph taking {len(style_names)} style image(s): "
            f"give them with --style (got {len(given)})"
        )
    if not style_names and given:
        raise TfnstError(f"{model} is a trained network with its style built in: leave out --style")
    order = sorted(style_names, key=lambda n: int(n.split("_")[1]) if "_" in n else 1)
    styles = {name: _read_style(path, args.max_pixels) for name, path in zip(order, given)}
    if not _has_scheme(output):
        os.makedirs(output, exist_ok=True)
    return {
        "model": model,
        "input_name": content[0],
        "pattern": args.input,
        "output": output,
        "styles": styles,
        "batch_size": args.batch_size,
        "keep_extension": args.keep_extension,
        "max_pixels": args.max_pixels,
    }


LOCAL_RUNNERS = ("directrunner", "switchingdirectrunner", "bundlebaseddirectrunner", "prismrunner", "interactiverunner")


def remote_path_warning(beam_args: list[str], paths: list[str]) -> str | None:
    """A warning when a runner on other machines is given local paths (its workers would
    not find them), or None. The DirectRunner, Prism and a LOOPBACK environment run the
    steps on this machine."""
    from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions

    options = PipelineOptions(beam_args)
    runner = options.view_as(StandardOptions).runner
    name = (runner if isinstance(runner, str) else type(runner).__name__) if runner else "DirectRunner"
    if name.lower() in LOCAL_RUNNERS or name.lower() + "runner" in LOCAL_RUNNERS:
        return None
    if (options.view_as(PortableOptions).environment_type or "").upper() == "LOOPBACK":
        return None
    local = [p for p in paths if not _has_scheme(p)]
    if not local:
        return None
    return (
        f"{name}'s workers run elsewhere and will not see the local path(s) {', '.join(local)}; "
        "use gs://, s3:// or a folder every worker mounts"
    )


def counters(result) -> dict:
    """The job's ``written`` and ``failed`` counts, where the runner reports metrics."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except Exception:  # noqa: BLE001 - not every runner reports metrics
        return {}
    totals: dict[str, int] = {}
    for c in found:
        value = c.committed if c.committed is not None else c.attempted
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + (value or 0)
    return totals


def run_batch(args, beam_args: list[str]) -> int:
    """Run ``tfnst batch`` with parsed options and the Beam pipeline options left over."""
    root, level = logging.getLogger(), logging.getLogger().level
    if not args.verbose:  # Beam's own warnings (on import: GCP clients missing; RunInference's memory use)
        root.setLevel(logging.ERROR)
    try:
        kwargs = prepare(args)
        warning = remote_path_warning(beam_args, [kwargs["model"], kwargs["pattern"], kwargs["output"]])
        if warning:
            print(f"tfnst: warning: {warning}", file=sys.stderr)
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions

        with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
            build_pipeline(p, **kwargs)
    finally:
        root.setLevel(level)
    totals = counters(p.result) if hasattr(p, "result") else {}
    manifest = _join(kwargs["output"], FAILURES)
    if totals:
        print(
            f"tfnst: wrote {totals.get('written', 0)} images to {kwargs['output']}; "
            f"{totals.get('failed', 0)} failed (listed in {manifest})",
            file=sys.stderr,
        )
    else:
        print(f"tfnst: done; results in {kwargs['output']}, failures in {manifest}", file=sys.stderr)
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit status 2, as the tfnst command
        raise TfnstError(f"{message} (see '{self.prog} --help')")


def main(argv=None) -> int:
    """``python -m tfnst.batch``: the same as ``tfnst batch``."""
    parser = _Parser(
        prog="python -m tfnst.batch",
        allow_abbrev=False,
        description="Stylize a folder or bucket of images on Apache Beam.",
    )
    add_arguments(parser)
    try:
        args, beam_args = parser.parse_known_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
        return run_batch(args, beam_args)
    except TfnstError as e:
        print(f"tfnst: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
