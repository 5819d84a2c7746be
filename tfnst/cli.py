"""The ``tfnst`` command line: ``tfnst stylize`` and ``tfnst texture``.

Defaults come from `tfnst.config.StyleConfig`; options the user leaves out are not
passed on, so the config stays their one home.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path



def _import_tensorflow_quietly() -> None:
    """Load TensorFlow with its C++ start-up lines (CUDA probing, CPU features) hidden.

    TF 2.21 writes them through absl before it reads TF_CPP_MIN_LOG_LEVEL, so stderr
    is closed at the file-descriptor level for the import and device set-up only.
    TFNST_TF_LOGS=1 shows them.
    """
    if "tensorflow" in sys.modules or os.environ.get("TFNST_TF_LOGS"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
        tf.constant(0.0).numpy()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


_import_tensorflow_quietly()

from tfnst.config import INITS, OPTIMIZERS, PRESERVE_COLOR, StyleConfig  # noqa: E402
from tfnst.errors import TfnstError  # noqa: E402
from tfnst.features import POOLING, PRECISIONS  # noqa: E402
from tfnst.losses import STYLE_LOSSES  # noqa: E402

DEFAULTS = StyleConfig()
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), not a usage dump."""

    def error(self, message):
        raise TfnstError(f"{message} (see '{self.prog} --help')")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
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
    return tuple(_positive_int(v) for v in text.split(","))


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


def _default(name):
    value = getattr(DEFAULTS, name)
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def _add_style_options(p: argparse.ArgumentParser) -> None:
    """Options that shape the loss: shared by stylize, texture and export."""
    S = argparse.SUPPRESS  # absent options keep StyleConfig's default
    p.add_argument("--iterations", type=_positive_int, default=S, help=f"default {_default('iterations')}")
    p.add_argument("--learning-rate", type=_number, default=S,
                   help=f"Adam step size in [0,1] pixel units; default {_default('learning_rate')}")
    p.add_argument("--ema-decay", type=_number, default=S,
                   help="Adam: return a moving average of the iterates with this decay, e.g. 0.9 "
                   "(smoother; fewer iterations for the same loss late in a run); default 0 (off)")
    p.add_argument("--style-weight", type=_number, default=S, help=f"β; default {_default('style_weight')}")
    p.add_argument("--tv-weight", type=_number, default=S,
                   help=f"total variation weight γ; default {_default('tv_weight')}")
    p.add_argument("--style-layers", type=_layers, default=S,
                   help=f"comma-separated Keras layer names; default {_default('style_layers')}")
    p.add_argument("--style-layer-weights", type=_numbers, default=S,
                   help="one weight per style layer (normalised); default equal")
    p.add_argument("--style-stat", "--style-loss", dest="style_statistic", choices=STYLE_LOSSES,
                   default=S, help="statistic matched per layer, or 'discriminator' (a GAN loss, "
                   f"Adam only); default {_default('style_statistic')}")
    p.add_argument("--hist-weight", type=_number, default=S,
                   help="histogram loss weight (Risser et al. 2017); default 0 (off)")
    p.add_argument("--hist-layers", type=_layers, default=S,
                   help=f"layers of the histogram loss; default {_default('hist_layers')}")
    p.add_argument("--style-blend", type=_numbers, default=S,
                   help="weights of several style images, e.g. 0.7,0.3; default equal")
    p.add_argument("--scales", type=_positive_int, default=S,
                   help="coarse-to-fine: optimize at this many sizes up to --size; default 1")
    p.add_argument("--scale-factor", type=_number, default=S,
                   help=f"size ratio between scales; default {_default('scale_factor'):.4g} (√2)")
    p.add_argument("--normalize-vgg", nargs="*", metavar="IMAGE", type=str, default=S,
                   help="rescale VGG19 so each filter's mean activation over IMAGEs (default: "
                   "the bundled examples) is 1, as Gatys et al. did")
    p.add_argument("--pooling", choices=POOLING, default=S, help=f"default {_default('pooling')}")
    p.add_argument("--precision", choices=PRECISIONS, default=S,
                   help="bfloat16: VGG19 in bfloat16, about 2x faster on GPUs and on CPUs with "
                   f"AVX512_BF16/AMX, much slower on other CPUs; default {_default('precision')}")
    p.add_argument("--style-scale", type=_number, default=S,
                   help=f"style image size relative to the output; default {_default('style_scale')}")
    p.add_argument("--weights", default=S,
                   help="'imagenet' (default; works offline) or a Keras VGG19 notop weights file")
    p.add_argument("-v", "--verbose", action="store_true", help="log details (weights source, …)")


def _add_content_options(p: argparse.ArgumentParser) -> None:
    S = argparse.SUPPRESS
    p.add_argument("--content-weight", type=_number, default=S,
                   help=f"α (0 = texture synthesis from the init); default {_default('content_weight')}")
    p.add_argument("--content-layers", type=_layers, default=S,
                   help=f"default {_default('content_layers')}")
    p.add_argument("--lap-weight", type=_number, default=S,
                   help="Laplacian loss weight (Li et al. 2017, keeps edges); default 0 (off)")
    p.add_argument("--lap-pool", type=_ints, default=S,
                   help=f"pool sizes of the Laplacian loss; default {_default('lap_pool')}")
    p.add_argument("--preserve-color", choices=PRESERVE_COLOR, default=S,
                   help="keep the content's colours (Gatys et al. 2016b); default off")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Options of a run on this machine: stylize and texture."""
    S = argparse.SUPPRESS
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, …), written atomically")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=S, help=f"default {_default('optimizer')}")
    p.add_argument("--seed", type=int, default=S, help="makes runs reproducible")
    p.add_argument("--max-pixels", type=_positive_int, default=S,
                   help=f"refuse input images larger than this; default {_default('max_pixels')}")
    p.add_argument("--save-every", type=_positive_int, metavar="N",
                   help="also save every N iterations, as OUTPUT_STEM_<iteration>.ext")
    p.add_argument("--checkpoint-every", type=_positive_int, metavar="N",
                   help="save the optimizer state every N iterations to the --checkpoint file")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="checkpoint file; default OUTPUT.ckpt.npz")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint (same inputs and options; more iterations allowed)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tfnst", description="Neural style transfer (Gatys et al.) with TensorFlow.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("stylize", help="restyle a content image after a style image")
    p.add_argument("content", help="content image")
    p.add_argument("style", nargs="+", help="style image(s); several are blended (--style-blend)")
    p.add_argument("--size", type=_positive_int, default=argparse.SUPPRESS,
                   help=f"longest side of the result; default {_default('size')}")
    p.add_argument("--init", default=argparse.SUPPRESS,
                   help=f"{', '.join(INITS)} or an image path; default {_default('init')}")
    _add_content_options(p)
    _add_style_options(p)
    _add_run_options(p)

    p = sub.add_parser("texture", help="synthesize a texture from a style image (no content)")
    p.add_argument("style", nargs="+", help="style (texture) image(s)")
    p.add_argument("--size", type=_texture_size, default=(256, 256),
                   help="WxH of the texture, or N for NxN; default 256x256")
    _add_style_options(p)
    _add_run_options(p)

    p = sub.add_parser("export", help="export a fixed-iteration stylization graph for TF Serving")
    p.add_argument("--out", required=True,
                   help="model folder; the SavedModel goes to OUT/<version>/ (TF Serving's layout)")
    p.add_argument("--max-size", type=_positive_int, required=True,
                   help="larger images are resized to this longest side inside the graph")
    p.add_argument("--version", type=int, help="version folder; default one more than the highest")
    _add_content_options(p)
    _add_style_options(p)
    return parser


def _config_options(args: argparse.Namespace) -> dict:
    names = {f.name for f in dataclasses.fields(StyleConfig)}
    options = {k: v for k, v in vars(args).items() if k in names}
    if "normalize_vgg" in options:
        options["normalize_vgg"] = tuple(options["normalize_vgg"])
    return options


def _callbacks(args, output: Path) -> list:
    from tfnst.callbacks import ProgressBar, SaveEvery

    callbacks = [] if args.quiet else [ProgressBar(args.command)]
    if args.save_every:
        callbacks.append(SaveEvery(output.with_name(f"{output.stem}_{{iteration}}{output.suffix}"),
                                   args.save_every))
    return callbacks


def _export(args, options) -> int:
    from tfnst.export import directory_size, export_savedmodel

    config = StyleConfig().replace(**options)
    path = export_savedmodel(args.out, iterations=config.iterations, max_size=args.max_size,
                             version=args.version, config=config)
    print(f"tfnst: exported {path} ({directory_size(path) / 1e6:.1f} MB)", file=sys.stderr)
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


def _stylize_or_texture(args, options, output: Path) -> int:
    from tfnst.api import Stylizer
    from tfnst.image_io import save_image
    from tfnst.optimizers import Interrupted

    stylizer = Stylizer(**{k: v for k, v in options.items() if k in Stylizer._NETWORK_OPTIONS})
    per_call = {k: v for k, v in options.items() if k not in Stylizer._NETWORK_OPTIONS}
    checkpoint = args.checkpoint or (f"{output}.ckpt.npz" if args.checkpoint_every or args.resume else None)
    run_options = dict(checkpoint=checkpoint, checkpoint_every=args.checkpoint_every,
                       resume=args.resume)
    try:
        with _signals_as_interrupt() as reraise_signal:
            run_options["callbacks"] = [*_callbacks(args, output), reraise_signal]
            if args.command == "stylize":
                result = stylizer.stylize(args.content, args.style, **run_options, **per_call)
            else:
                result = stylizer.synthesize_texture(args.style, args.size, **run_options, **per_call)
    except Interrupted as e:
        save_image(e.image, output)
        terminated = isinstance(e.cause, _Terminated)
        what = ("the average of the iterates so far (their best loss" if e.averaged
                else "the best image so far (loss")
        print(f"\ntfnst: {'terminated' if terminated else 'interrupted'} at iteration {e.iteration}; "
              f"wrote {what} {e.loss:.4g}) to {output}", file=sys.stderr)
        return 143 if terminated else 130
    save_image(result, output)
    stopped = stylizer.last_result.stopped_early
    if stopped:
        print(f"tfnst: error: stopped early ({stopped}); wrote the best image so far to {output}",
              file=sys.stderr)
        return 1
    print(f"tfnst: wrote {output} ({result.shape[1]}x{result.shape[0]})", file=sys.stderr)
    return 0


def run(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s")
    if args.command == "export":
        return _export(args, _config_options(args))
    from tfnst.image_io import check_output_path

    output = check_output_path(args.output)
    options = _config_options(args)
    if args.command == "texture":
        options.pop("size", None)
    StyleConfig().replace(**options)  # reject bad options before loading TensorFlow's model
    return _stylize_or_texture(args, options, output)


def main(argv=None) -> int:
    """Entry point: user errors become one line on stderr and exit status 2."""
    try:
        return run(argv)
    except TfnstError as e:
        print(f"tfnst: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as e:  # before the optimization started: nothing to save
        terminated = isinstance(e, _Terminated)
        print(f"tfnst: {'terminated' if terminated else 'interrupted'}; no output written",
              file=sys.stderr)
        return 143 if terminated else 130
    except MemoryError:
        print("tfnst: error: out of memory; try a smaller --size", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
