"""The baseline most TensorFlow users start from, written as the TensorFlow "Neural style
transfer" tutorial does it: the full `keras.applications.VGG19` feature model up to
block5_conv1 built with `keras.Model`, a `tf.function` train step with Keras' Adam on a
`tf.Variable` image, a Gram matrix per layer, and no other tuning.

The only change: the ImageNet weights are set from tfnst's offline loader (the
tutorial's `weights="imagenet"` downloads at run time), so both use the same weights.
"""

import keras
import tensorflow as tf

from tfnst.weights import load_vgg19_weights

CONTENT_LAYERS = ["block5_conv2"]
STYLE_LAYERS = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]


def vgg_layers(layer_names):
    vgg = keras.applications.VGG19(include_top=False, weights=None)
    for name, (kernel, bias) in load_vgg19_weights().items():
        vgg.get_layer(name).set_weights([kernel, bias])
    vgg.trainable = False
    outputs = [vgg.get_layer(name).output for name in layer_names]
    return keras.Model([vgg.input], outputs)


def gram_matrix(input_tensor):
    result = tf.linalg.einsum("bijc,bijd->bcd", input_tensor, input_tensor)
    input_shape = tf.shape(input_tensor)
    num_locations = tf.cast(input_shape[1] * input_shape[2], tf.float32)
    return result / num_locations


class StyleContentModel(keras.models.Model):
    def __init__(self, style_layers, content_layers):
        super().__init__()
        self.vgg = vgg_layers(style_layers + content_layers)
        self.style_layers = style_layers
        self.content_layers = content_layers
        self.num_style_layers = len(style_layers)
        self.vgg.trainable = False

    def call(self, inputs):
        inputs = inputs * 255.0
        preprocessed_input = keras.applications.vgg19.preprocess_input(inputs)
        outputs = self.vgg(preprocessed_input)
        style_outputs, content_outputs = (outputs[: self.num_style_layers], outputs[self.num_style_layers :])
        style_outputs = [gram_matrix(style_output) for style_output in style_outputs]
        content_dict = {name: value for name, value in zip(self.content_layers, content_outputs)}
        style_dict = {name: value for name, value in zip(self.style_layers, style_outputs)}
        return {"content": content_dict, "style": style_dict}


class Reference:
    """The tutorial's loop: `step()` is one Adam iteration; `image` is the tf.Variable."""

    style_weight, content_weight, total_variation_weight = 1e-2, 1e4, 30

    def __init__(self, content, style):
        self.extractor = StyleContentModel(STYLE_LAYERS, CONTENT_LAYERS)
        self.style_targets = self.extractor(tf.constant(style[None]))["style"]
        self.content_targets = self.extractor(tf.constant(content[None]))["content"]
        self.image = tf.Variable(content[None])
        self.opt = keras.optimizers.Adam(learning_rate=0.02, beta_1=0.99, epsilon=1e-1)

    def style_content_loss(self, outputs):
        style_outputs, content_outputs = outputs["style"], outputs["content"]
        style_loss = tf.add_n(
            [tf.reduce_mean((style_outputs[name] - self.style_targets[name]) ** 2) for name in style_outputs.keys()]
        )
        style_loss *= self.style_weight / len(STYLE_LAYERS)
        content_loss = tf.add_n(
            [
                tf.reduce_mean((content_outputs[name] - self.content_targets[name]) ** 2)
                for name in content_outputs.keys()
            ]
        )
        content_loss *= self.content_weight / len(CONTENT_LAYERS)
        return style_loss + content_loss

    @tf.function()
    def step(self):
        with tf.GradientTape() as tape:
            outputs = self.extractor(self.image)
            loss = self.style_content_loss(outputs)
            loss += self.total_variation_weight * tf.image.total_variation(self.image)
        grad = tape.gradient(loss, self.image)
        self.opt.apply_gradients([(grad, self.image)])
        self.image.assign(tf.clip_by_value(self.image, 0.0, 1.0))
        return loss


def tutorial_features(layer_names):
    """The tutorial's extractor as a tfnst feature model: [B, H, W, 3] RGB in [0, 1] in,
    ``{layer: features}`` out (the full Keras VGG19 sliced with ``keras.Model``)."""
    model = vgg_layers(list(layer_names))

    def features(images):
        outputs = model(keras.applications.vgg19.preprocess_input(images * 255.0))
        return dict(zip(layer_names, outputs if isinstance(outputs, (list, tuple)) else [outputs]))

    return features


class TutorialLoop:
    """The tutorial's optimization loop (a `tf.Variable` image, Keras' Adam, a
    `tf.function` step, clipping to [0, 1]) over another loss: ``objective(image,
    targets) -> (total, terms, state)`` with the targets captured once, as the tutorial does.
    The time-to-quality study runs it on tfnst's objective so that losses compare."""

    def __init__(self, objective, targets, init, learning_rate=0.02, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.objective, self.targets = objective, targets
        self.image = tf.Variable(init)
        self.opt = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)

    @tf.function()
    def step(self):
        with tf.GradientTape() as tape:
            loss = self.objective(self.image, self.targets)[0]
        grad = tape.gradient(loss, self.image)
        self.opt.apply_gradients([(grad, self.image)])
        self.image.assign(tf.clip_by_value(self.image, 0.0, 1.0))
        return loss
