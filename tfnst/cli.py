"""The ``tfnst`` command line: ``stylize``, ``texture``, ``export``, ``train``, ``apply`` and ``video``.

Its options are generated from the fields of `tfnst.config.StyleConfig` and
`tfnst.config.TrainConfig` (their help, default and parser live there); options the
user leaves out are not passed on, so the config stays their one home. Options are
checked before anything is built, input images by the library as it reads them: either
way a mistake is one line and exit status 2.
TensorFlow's start-up lines are hidden by `tfnst._startup`, when the package loads.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import re
import signal
import sys
from pathlib import Path

from tfnst.config import StyleConfig, TrainConfig, check_layers_used
from tfnst.errors import TfnstError

DEFAULTS = StyleConfig()
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), not a usage dump."""

    def error(self, message):
        raise TfnstError(f"{message} (see '{self.prog} --help')")


# ------------------------------------------------------------------ value parsers
def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _positive_int(text):
    value = _int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _layers(text):
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _numbers(text):
    return tuple(_number(v) for v in text.split(","))


def _ints(text):
    return tuple(_int(v) for v in text.split(","))


def _texture_size(text):
    """``WxH`` or ``N`` (square) to (width, height)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH or N, got {text!r}") from None
    if len(values) not in (1, 2) or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected WxH or N with positive sizes, got {text!r}")
    return (values[0], values[-1])


def _memory(text):
    """``2GB``, ``1500MB``, ``512M``, ``2GiB`` or bytes, to bytes (binary units)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMG]?)(I?B)?\s*", text.upper())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 2GB or 1500MB, got {text!r}")
    return int(float(match.group(1)) * 2 ** (10 * " KMG".index(match.group(2) or " ")))


# How the command line reads each kind of option (`tfnst.config.Rule.kind`); the range
# and the rest of the rule are checked by the config itself, once.
PARSERS = {
    "int": _int,
    "number": _number,
    "text": str,
    "layers": _layers,
    "numbers": _numbers,
    "ints": _ints,
    "paths": str,
    "memory": _memory,
}


def _shown(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_config_options(p: argparse.ArgumentParser, command: str, config=StyleConfig) -> None:
    """One option per field of ``config`` (a dataclass) that ``command`` takes, generated
    from its declaration (`tfnst.config.option`): flag, help, default, kind and choices."""
    for f in dataclasses.fields(config):
        meta = f.metadata
        if command not in meta["commands"]:
            continue
        rule = meta["rule"]
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        default = f.default
        text = meta["help"] + ("" if default is None else f" (default: {_shown(default)})")
        kwargs = dict(dest=f.name, default=argparse.SUPPRESS, help=text)
        if rule.kind == "paths":
            kwargs.update(nargs="*", metavar="IMAGE")
        else:
            kwargs.update(type=PARSERS[rule.kind])
        if rule.choices:
            kwargs["choices"] = rule.choices
        p.add_argument(flag, *meta["aliases"], **kwargs)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Options of a run on this machine (not of the stylization): stylize and texture."""
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, …), written atomically")
    p.add_argument(
        "--save-every",
        type=_positive_int,
        metavar="N",
        help="also save every N iterations, as OUTPUT_STEM_<iteration>.ext "
        "(OUTPUT_STEM_s<scale>_<iteration>.ext with --scales)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        metavar="N",
        help="save the optimizer state every N iterations to the --checkpoint file",
    )
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="checkpoint file, written at the end of each scale "
        "(and every --checkpoint-every iterations); default OUTPUT.ckpt.npz when either of "
        "--checkpoint-every or --resume is given",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint (same inputs and options; more iterations allowed)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log details (weights source, …)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tfnst", description="Neural style transfer (Gatys et al.) with TensorFlow.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("stylize", help="restyle a content image after a style image")
    p.add_argument("content", help="content image")
    p.add_argument("style", nargs="+", help="style image(s); several are blended (--style-blend)")
    p.add_argument(
        "--masks",
        nargs="+",
        metavar="MASK",
        help="spatial control: one grayscale mask per style image, any size: where each "
        "style applies (Gatys et al. 2017)",
    )
    p.add_argument(
        "--style-masks",
        nargs="+",
        metavar="MASK",
        help="with --masks, one mask per style image: which part of it to take",
    )
    add_config_options(p, "stylize")
    _add_run_options(p)

    p = sub.add_parser("texture", help="synthesize a texture from a style image (no content)")
    p.add_argument("style", nargs="+", help="style (texture) image(s)")
    p.add_argument(
        "--size", type=_texture_size, default=(256, 256), help="WxH of the texture, or N for NxN (default: 256x256)"
    )
    add_config_options(p, "texture")
    _add_run_options(p)

    p = sub.add_parser("export", help="export a stylization graph, or a trained network, for TF Serving")
    p.add_argument(
        "--out",
        "-o",
        required=True,
        help="model folder; the SavedModel goes to OUT/<version>/ (TF Serving's layout); "
        "with --format tflite, the model file MODEL.tflite",
    )
    p.add_argument(
        "--max-size",
        type=_positive_int,
        help="larger images are resized to this longest side inside the graph (needed without --network)",
    )
    p.add_argument("--version", type=int, help="version folder (default: one more than the highest)")
    p.add_argument(
        "--network",
        metavar="MODEL.keras",
        help="export this trained network (tfnst train) instead of an optimization graph",
    )
    p.add_argument(
        "--format",
        choices=("savedmodel", "tflite"),
        default="savedmodel",
        help="savedmodel (TF Serving) or tflite (LiteRT, phones; needs --network) (default: savedmodel)",
    )
    p.add_argument(
        "--quantize",
        choices=("none", "float16", "dynamic", "int8"),
        help="with --format tflite: float16 weights, dynamic-range (int8 weights) or full "
        "int8 (calibrated on --images; float32 input and output) (default: none)",
    )
    p.add_argument("--images", metavar="DIR", help="with --quantize int8: photos to calibrate on (the training folder)")
    add_config_options(p, "export")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")

    p = sub.add_parser("train", help="train a feed-forward stylization network (Johnson et al. 2016)")
    p.add_argument("style", help="style image")
    p.add_argument("--images", required=True, metavar="DIR", help="folder of training photos (any layout)")
    p.add_argument("-o", "--output", required=True, help="the network, MODEL.keras")
    add_config_options(p, "train", TrainConfig)
    p.add_argument(
        "--preview",
        metavar="IMAGE",
        help="write this image stylized every --preview-every steps, as OUTPUT_STEM_preview_<step>.png",
    )
    p.add_argument("--preview-every", type=_positive_int, metavar="N", help="with --preview (default: 100)")
    p.add_argument(
        "--backup",
        metavar="DIR",
        help="training state for resuming (Keras' BackupAndRestore) "
        "(default: OUTPUT.backup, removed when training ends)",
    )
    p.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard logs here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")

    p = sub.add_parser("apply", help="stylize images with a trained network")
    p.add_argument("network", help="MODEL.keras from tfnst train")
    p.add_argument("images", nargs="+", help="images to stylize")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output image, or a folder (needed for several images); written atomically",
    )
    p.add_argument("--size", type=_positive_int, help="resize each image to this longest side first")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")

    p = sub.add_parser("video", help="stylize a video frame by frame without flicker (Ruder et al. 2016)")
    p.add_argument("input", help="video file (.mp4, .webm, …) or folder of numbered frames")
    p.add_argument("style", nargs="+", help="style image(s); several are blended (--style-blend)")
    add_config_options(p, "video")
    # no Beam import until it runs
    from tfnst.batch import add_arguments as add_batch_arguments
    from tfnst.video import add_arguments as add_video_arguments

    add_video_arguments(p)

    add_batch_arguments(
        sub.add_parser(
            "batch",
            allow_abbrev=False,
            help="stylize a folder or bucket of images with a SavedModel on "
            "Apache Beam (tfnst[beam]); options it does not know are Beam pipeline options",
        )
    )
    return parser


def _config_options(args: argparse.Namespace, config=StyleConfig) -> dict:
    names = {f.name for f in dataclasses.fields(config)}
    return {k: v for k, v in vars(args).items() if k in names}


def _export(args, options) -> int:
    from tfnst.export import directory_size, export_savedmodel

    if args.network:
        from tfnst.networks import export_network, load_network

        path = export_network(load_network(args.network), args.out, max_size=args.max_size, version=args.version)
    else:
        config = StyleConfig().replace(**options)
        path = export_savedmodel(
            args.out, iterations=config.iterations, max_size=args.max_size, version=args.version, config=config
        )
    print(f"tfnst: exported {path} ({directory_size(path) / 1e6:.1f} MB)", file=sys.stderr)
    return 0


def _train(args, options, output: Path) -> int:
    import keras

    from tfnst.networks import Preview, save_network, train

    callbacks = [keras.callbacks.BackupAndRestore(args.backup or f"{output}.backup")]
    if args.preview:
        callbacks.append(
            Preview(args.preview, output.with_name(f"{output.stem}_preview_{{step}}.png"), args.preview_every or 100)
        )
    if args.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(args.tensorboard))
    model = train(args.style, args.images, callbacks=callbacks, verbose=0 if args.quiet else "auto", **options)
    save_network(model, output)
    print(f"tfnst: wrote {output} ({model.count_params():,} parameters)", file=sys.stderr)
    return 0


def _apply(args) -> int:
    from tfnst.image_io import check_output_path, save_image
    from tfnst.networks import load_network, stylize_with

    out = Path(args.output)
    several = len(args.images) > 1 or out.is_dir()
    if several and not out.is_dir():
        raise TfnstError(f"{out} is not a folder; several images need an output folder")
    targets = [out / f"{Path(p).stem}.png" for p in args.images] if several else [check_output_path(out)]
    model = load_network(args.network)
    for image, target in zip(args.images, targets):
        save_image(stylize_with(model, image, args.size), target)
        print(f"tfnst: wrote {target}", file=sys.stderr)
    return 0


def _apply_video(args) -> int:
    """``tfnst apply MODEL IN.mp4 -o OUT.mp4``: a clip through the network, frame by frame."""
    from tfnst.networks import load_network
    from tfnst.video import apply_network
    from tfnst.video_io import VideoReader, check_video_output

    if len(args.images) != 1:
        raise TfnstError("apply takes one video at a time")
    check_video_output(args.output)
    VideoReader(args.images[0])  # a bad clip is reported before the network loads
    path = apply_network(load_network(args.network), args.images[0], args.output, args.size)
    print(f"tfnst: wrote {path}", file=sys.stderr)
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so the optimizer hands back its best image."""


@contextlib.contextmanager
def _signals_as_interrupt():
    """Ctrl-C and SIGTERM end the run as `KeyboardInterrupt` (`_Terminated` for SIGTERM),
    so the optimizer hands back its best image.

    Python drops an exception raised while a finalizer or a callback from C code runs
    ("Exception ignored in ..."), and a signal landing there would be lost and the run
    go on. So the handler also remembers the signal, and the yielded per-iteration
    callback raises it again.
    """
    received = []

    def handler(signum, frame):
        received.append(signum)
        raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def reraise(record):
        if received:
            handler(received[-1], None)

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield reraise
        return
    try:
        yield reraise
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _run_options(args, output: Path) -> dict:
    """--checkpoint, --checkpoint-every and --resume as `tfnst.Stylizer.run` takes them."""
    if args.checkpoint_every or args.resume or args.checkpoint:
        return dict(
            checkpoint=args.checkpoint or f"{output}.ckpt.npz",
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
        )
    return {}


def _stylize_or_texture(args, config: StyleConfig, output: Path) -> int:
    from tfnst.api import Stylizer
    from tfnst.callbacks import ProgressBar, SaveEvery, snapshot_pattern
    from tfnst.image_io import save_image
    from tfnst.optimizers import Interrupted

    stylizer = Stylizer(config)
    callbacks = [] if args.quiet else [ProgressBar(args.command)]
    if args.save_every:
        callbacks.append(SaveEvery(snapshot_pattern(output, config.scales), args.save_every))
    try:
        with _signals_as_interrupt() as reraise_signal:
            callbacks.append(reraise_signal)
            if args.command == "stylize":
                result = stylizer.run(
                    args.content,
                    args.style,
                    masks=args.masks,
                    style_masks=args.style_masks,
                    callbacks=callbacks,
                    **_run_options(args, output),
                )
            else:
                result = stylizer.run(
                    None, args.style, texture_size=args.size, callbacks=callbacks, **_run_options(args, output)
                )
    except Interrupted as e:
        save_image(e.image, output)
        terminated = isinstance(e.cause, _Terminated)
        what = "the average of the iterates so far (their best loss" if e.averaged else "the best image so far (loss"
        print(
            f"\ntfnst: {'terminated' if terminated else 'interrupted'} at iteration {e.iteration}; "
            f"wrote {what} {e.loss:.4g}) to {output}",
            file=sys.stderr,
        )
        return 143 if terminated else 130
    save_image(result.image, output)
    if result.failed:
        print(
            f"tfnst: error: stopped early ({result.stop_reason}); wrote the best image so far to {output}",
            file=sys.stderr,
        )
        return 1
    note = f"; {result.stop_reason}" if result.stop_reason else ""
    height, width = result.image.shape[:2]
    print(f"tfnst: wrote {output} ({width}x{height}{note})", file=sys.stderr)
    return 0


def run(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "batch":  # only batch passes options on (to Beam)
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # tfnst's own logger and handler, on this call's stderr: the root logger belongs to a
    # host (a notebook, a test runner) and is configured once per process.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tfnst")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO if args.verbose else logging.WARNING)
    if args.command == "batch":
        from tfnst.batch import run_batch

        return run_batch(args, extra)
    if args.command == "video":
        from tfnst.video import video_command

        return video_command(args, _config_options(args))
    if args.command == "apply":
        from tfnst.image_io import to_array
        from tfnst.video import is_video

        if any(is_video(p) for p in args.images):
            return _apply_video(args)
        for path in args.images:  # a bad image is reported before the network loads
            to_array(path)
        return _apply(args)
    if args.command == "train":
        from tfnst.datasets import image_files
        from tfnst.image_io import check_output_path, to_array

        options = _config_options(args, TrainConfig)
        TrainConfig().replace(**options)
        output = Path(args.output)
        if output.suffix != ".keras":
            raise TfnstError(f"{output}: the network is written as a .keras file")
        check_output_path(output.with_suffix(".png"))  # the folder exists and is writable
        to_array(args.style)
        image_files(args.images)
        if args.preview:
            to_array(args.preview)
        elif args.preview_every:
            raise TfnstError("--preview-every needs --preview (the image to write)")
        return _train(args, options, output)
    if args.command == "export" and (args.format == "tflite" or args.quantize or args.images):
        from tfnst.litert import export_command

        return export_command(args, _config_options(args))
    options = _config_options(args)
    if args.command == "export":
        from tfnst.export import exportable

        exportable(StyleConfig().replace(**options))  # reject what cannot be served before building anything
        if args.network:
            if options:
                raise TfnstError(
                    f"--{next(iter(options)).replace('_', '-')} is an option of the "
                    "optimization graph; a trained network has its style built in"
                )
            if not Path(args.network).is_file():
                raise TfnstError(f"{args.network}: no such network file")
        elif args.max_size is None:
            raise TfnstError("export needs --max-size (the largest image side the graph takes)")
        return _export(args, options)
    from tfnst.image_io import check_output_path

    output = check_output_path(args.output)
    if args.command == "texture":
        options.pop("size")  # the texture's WxH, not StyleConfig.size (a longest side)
    config = StyleConfig().replace(**options)  # validated once; the layers below trust it
    check_layers_used(config, has_content=args.command == "stylize")
    return _stylize_or_texture(args, config, output)


def main(argv=None) -> int:
    """Entry point: user errors become one line on stderr and exit status 2."""
    try:
        return run(argv)
    except TfnstError as e:
        print(f"tfnst: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as e:  # before the optimization started: nothing to save
        terminated = isinstance(e, _Terminated)
        print(f"tfnst: {'terminated' if terminated else 'interrupted'}; no output written", file=sys.stderr)
        return 143 if terminated else 130
    except MemoryError:
        print("tfnst: error: out of memory; try a smaller --size", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
