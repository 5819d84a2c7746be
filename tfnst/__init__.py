"""tfnst: neural style transfer for TensorFlow / Keras (Gatys et al. 2016).

The public API:

- `stylize(content, style, **options)`: restyle an image; returns float32 [H, W, 3] in [0, 1].
- `synthesize_texture(style, size, **options)`: a texture from noise (no content term).
- `Stylizer(**options)`: builds the VGG19 feature model once, for many calls.
- `StyleConfig`: every option and its default (from the literature), in one place.
- Callbacks: `Callback`, `IterationRecord`, `ProgressBar`, `History`, `SaveEvery`, `TimeLimit`.
- Keras losses over a feature model: `PerceptualLoss` (content + style + TV, for training
  networks), `ContentLoss`, `StyleLoss`, `TotalVariationLoss`, with
  `build_feature_model(layers, pooling=, weights=)` giving the VGG19 features.
- `load_image` / `save_image` (atomic), and `TfnstError`, raised for bad input.
- `tfnst.networks`: feed-forward networks (`StyleTransformer`, `train`, `Preview`,
  `export_network`); `tfnst.export.export_savedmodel`: the optimization as a TF-Serving
  SavedModel (also `tfnst export`).

Images may be paths, PIL images, numpy arrays (uint8 0-255 or float 0-1) or tensors.
Data flows one way: image_io → weights → features → losses → objective → optimizers →
engine → api / export / networks → cli.
"""

import importlib

__version__ = "0.1.0"

# Public name -> defining module. Imported on first use (PEP 562), so that
# `import tfnst.cli` can quiet TensorFlow's start-up logging before TensorFlow loads.
_EXPORTS = {
    "Stylizer": "api", "stylize": "api", "synthesize_texture": "api",
    "StyleConfig": "config",
    "Callback": "callbacks", "History": "callbacks", "IterationRecord": "callbacks",
    "ProgressBar": "callbacks", "SaveEvery": "callbacks", "TimeLimit": "callbacks",
    "ContentLoss": "losses", "StyleLoss": "losses", "TotalVariationLoss": "losses",
    "PerceptualLoss": "losses",
    "build_feature_model": "features",
    "load_image": "image_io", "save_image": "image_io",
    "TfnstError": "errors",
}
_RENAMED = {"load_image": "to_array"}

__all__ = [*_EXPORTS, "__version__"]


_SUBMODULES = {"api", "atomic", "callbacks", "checkpoint", "cli", "color", "config", "datasets", "engine",
               "errors", "export", "features", "image_io", "losses", "memory", "networks", "objective",
               "optimizers", "resize", "vgg_layers", "weights"}


def __getattr__(name):
    if name in _SUBMODULES:  # tfnst.networks, tfnst.resize, … after a bare `import tfnst`
        return importlib.import_module(f"tfnst.{name}")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tfnst' has no attribute {name!r}")
    module = importlib.import_module(f"tfnst.{_EXPORTS[name]}")
    value = getattr(module, _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
