"""`LayerNorm`: Keras' LayerNormalization with a backward pass that keeps only its input.

Keras computes a LayerNorm in float32 as `x * inv + res` with `inv =
rsqrt(var + eps) * gamma` and `res = beta - mean * inv`, both as wide as `x`;
differentiated op by op, the float32 copy of `x`, `inv` and the moments'
intermediates are kept for the backward pass: several tensors of the input's
size per LayerNorm, 2L + 1 of them in BERT. `LayerNorm` computes the same
forward values (Keras' own function, bit for bit) and differentiates it by
hand from the input alone (standard LayerNorm backward, recomputing the mean
and the inverse standard deviation): gradients equal to Keras' up to float
rounding (tests/ops/layer_norm_test.py), less activation memory.
"""

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="bert_adapters")
class LayerNorm(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` over the last axis, lean backward pass.

    Other settings (several axes, RMS scaling, no center or scale) fall back to
    Keras' own computation.
    """

    def call(self, inputs):
        axes = [self.axis] if isinstance(self.axis, int) else list(self.axis)
        last = len(inputs.shape) - 1
        if (self.rms_scaling or not (self.center and self.scale)
                or [a % len(inputs.shape) for a in axes] != [last]):
            return super().call(inputs)
        # Values read here, outside the hand-differentiated function.
        outputs = layer_norm(inputs, tf.convert_to_tensor(self.gamma),
                             tf.convert_to_tensor(self.beta), self.epsilon)
        return ops.cast(outputs, self.compute_dtype)


def layer_norm(x, gamma, beta, epsilon):
    """Keras' `ops.layer_normalization(x, gamma, beta, -1, epsilon)`, hand-differentiated."""

    @tf.custom_gradient
    def forward(x, gamma, beta):
        y = ops.layer_normalization(x, gamma, beta, axis=-1, epsilon=epsilon)

        def grad(dy):
            xf = tf.cast(x, tf.float32)
            centered = xf - tf.reduce_mean(xf, axis=-1, keepdims=True)
            rstd = tf.math.rsqrt(tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True)
                                 + epsilon)
            xhat = centered * rstd
            dyf = tf.cast(dy, tf.float32)
            rows = list(range(len(x.shape) - 1))
            d_gamma = tf.reduce_sum(dyf * xhat, axis=rows)
            d_beta = tf.reduce_sum(dyf, axis=rows)
            g = dyf * tf.cast(gamma, tf.float32)
            dx = rstd * (g - tf.reduce_mean(g, axis=-1, keepdims=True)
                         - xhat * tf.reduce_mean(g * xhat, axis=-1, keepdims=True))
            return tf.cast(dx, x.dtype), tf.cast(d_gamma, gamma.dtype), tf.cast(d_beta, beta.dtype)

        return y, grad

    return forward(x, gamma, beta)
