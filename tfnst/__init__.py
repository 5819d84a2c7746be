"""tfnst: neural style transfer for TensorFlow / Keras (Gatys et al. 2016).

The public API:

- `stylize(content, style, **options)`: restyle an image; returns float32 [H, W, 3] in [0, 1].
- `synthesize_texture(style, size, **options)`: a texture from noise (no content term).
- `Stylizer(**options)`: builds the VGG19 feature model once, for many calls.
- `StyleConfig`: every option and its default (from the literature), in one place.
- Callbacks: `Callback`, `IterationRecord`, `ProgressBar`, `History`, `SaveEvery`, `TimeLimit`.
- Keras losses over a feature model: `PerceptualLoss` (content + style + TV, for training
  networks), `ContentLoss`, `StyleLoss`, `TotalVariationLoss`, with
  `build_feature_model(layers, pooling=, vgg_weights=)` giving the VGG19 features.
- `load_image` / `save_image` (atomic), and `TfnstError`, raised for bad input.
- `tfnst.networks`: feed-forward networks (`StyleTransformer`, `train`, `Preview`,
  `export_network`); `tfnst.export.export_savedmodel`: the optimization as a TF-Serving
  SavedModel (also `tfnst export`).

Images may be paths, PIL images, numpy arrays (uint8 0-255 or float 0-1) or tensors.
Data flows one way: image_io → weights → features → losses → objective → optimizers →
engine → api / export / networks → cli.
"""

from tfnst import _startup

_startup.quiet_if_command()  # before TensorFlow loads; only for the tfnst command (see there)

# Eager, not on first use: Keras 3 finds a saved model's custom classes only in its
# registry, so `import tfnst` alone must register them (tfnst.networks: StyleTransformer,
# ReflectionPadding2D; tfnst.keras_losses: PerceptualLoss and the other losses; tfnst.features:
# the feature model's layer) for `keras.saving.load_model` to load what tfnst saved.
from tfnst import (  # noqa: F401  (tfnst.networks, tfnst.memory, … after `import tfnst`)
    api,
    callbacks,
    config,
    datasets,
    errors,
    export,
    features,
    image_io,
    keras_losses,
    losses,
    memory,
    networks,
    objective,
    plan,
    resize,
    serving,
    terms,
    tiling,
    weights,
)
from tfnst.api import StyleResult, Stylizer, stylize, synthesize_texture
from tfnst.callbacks import Callback, History, IterationRecord, ProgressBar, SaveEvery, TimeLimit
from tfnst.config import StyleConfig
from tfnst.errors import TfnstError
from tfnst.features import build_feature_model
from tfnst.image_io import save_image
from tfnst.image_io import to_array as load_image
from tfnst.keras_losses import ContentLoss, PerceptualLoss, StyleLoss, TotalVariationLoss

__version__ = "0.1.0"

__all__ = [
    "Stylizer",
    "StyleResult",
    "stylize",
    "synthesize_texture",
    "StyleConfig",
    "Callback",
    "History",
    "IterationRecord",
    "ProgressBar",
    "SaveEvery",
    "TimeLimit",
    "ContentLoss",
    "StyleLoss",
    "TotalVariationLoss",
    "PerceptualLoss",
    "build_feature_model",
    "load_image",
    "save_image",
    "TfnstError",
    "__version__",
]
