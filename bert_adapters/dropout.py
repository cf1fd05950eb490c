"""Dropout with opt-in cheaper masks (`--fast_dropout`).

Keras' dropout draws one 32-bit uniform float per element with TensorFlow's
Philox generator, which is most of its cost: on a 2-core CPU the masks of a
BERT training step (the attention probabilities' above all) take 10-17% of
the step's kernel time (`benchmarks/profile_step.py`). Fast masks compare 16
random bits per element against the rate instead, so one 32-bit draw serves
two elements: half the generator's work, the same Bernoulli masks except
that the dropout rate is rounded to a multiple of 2^-16 (0.1 -> 0.1000061)
and kept values are scaled by the exact inverse of the rounded keep rate.
The masks differ from the default's, so it is opt-in; with it off (the
default) this layer is Keras' `Dropout`.
"""

import keras
import tensorflow as tf

MASK_BITS = 16


@keras.saving.register_keras_serializable(package="bert_adapters")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout`, with `fast_masks` (set by `use_fast_masks`)."""

    fast_masks = False  # A training setting, not part of the config.

    def call(self, inputs, training=False):
        if (not training or not self.fast_masks or self.noise_shape is not None
                or not 0.0 < self.rate < 1.0):
            return super().call(inputs, training=training)
        return fast_dropout(inputs, self.rate, self.seed_generator.next())


def fast_dropout(inputs, rate, seed):
    """Dropout of `inputs` at `rate` from 16-bit draws; `seed` int `[2]`."""
    scale_bits = 2 ** MASK_BITS
    threshold = int(round(rate * scale_bits))
    if not 0 < threshold < scale_bits:
        raise ValueError(f"dropout rate {rate} rounds to {threshold}/{scale_bits}: "
                         f"use the default masks for it")
    size = tf.size(inputs)
    words = tf.random.stateless_uniform(
        [(size + 1) // 2], tf.cast(seed, tf.int64), minval=None, maxval=None, dtype=tf.uint32)
    bits = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
    keep = tf.reshape(bits >= tf.constant(threshold, tf.uint16), tf.shape(inputs))
    scale = tf.cast(scale_bits / (scale_bits - threshold), inputs.dtype)
    return tf.where(keep, inputs * scale, tf.zeros_like(inputs))


def use_fast_masks(model, enabled):
    """Sets `fast_masks` on every `Dropout` of `model` (before it is traced)."""
    count = 0
    for layer in model._flatten_layers(include_self=True, recursive=True):  # pylint: disable=protected-access
        if isinstance(layer, Dropout):
            layer.fast_masks = bool(enabled)
            count += 1
    return count
