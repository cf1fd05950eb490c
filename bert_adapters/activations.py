"""The two GELUs BERT checkpoints are trained with.

TF1 BERT, TF Hub, Model Garden and keras-hub use the tanh approximation
(`"gelu_tanh"`); Hugging Face's `hidden_act="gelu"` is the exact erf form
(`"gelu"`). Reproducing a checkpoint exactly needs the right one.

Both compute their forward values with Keras' (TensorFlow's) own formula,
bit for bit, but carry a hand-written gradient that keeps only the input for
the backward pass. Differentiating the composite formula op by op keeps
three intermediates of the input's size as well (the erfc argument and
output and 0.5 x; for the tanh form x^3 terms and the tanh): on BERT's
feed-forward layer, `[tokens, 4 x hidden]` each, that is most of a training
step's activation memory after attention (measured with
benchmarks/train_throughput.py: the peak RSS column). The hand-written
gradient recomputes what it needs from the input; it equals the composite's
up to float rounding (tests/activations_test.py).
"""

import math

import keras
import tensorflow as tf

ACTIVATIONS = ("gelu", "gelu_tanh")

_SQRT_HALF = 0.7071067811865476            # 1 / sqrt(2)
_INV_SQRT_2PI = 0.3989422804014327         # 1 / sqrt(2 pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)  # 0.7978845608028654
_TANH_COEFF = 0.044715


@tf.custom_gradient
def gelu_exact(x):
    """`x * Phi(x)` (erf form), Keras' values; gradient from `x` alone."""
    y = keras.activations.gelu(x, approximate=False)

    def grad(dy):
        cdf = 0.5 * tf.math.erfc(-x * tf.cast(_SQRT_HALF, x.dtype))
        pdf = tf.exp(-0.5 * tf.square(x)) * tf.cast(_INV_SQRT_2PI, x.dtype)
        return dy * (cdf + x * pdf)

    return y, grad


@tf.custom_gradient
def gelu_tanh(x):
    """The tanh approximation, Keras' values; gradient from `x` alone."""
    y = keras.activations.gelu(x, approximate=True)

    def grad(dy):
        c = tf.cast(_SQRT_2_OVER_PI, x.dtype)
        k = tf.cast(_TANH_COEFF, x.dtype)
        x2 = tf.square(x)
        t = tf.tanh(c * (x + k * x2 * x))
        return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - tf.square(t)) * c * (1.0 + 3.0 * k * x2))

    return y, grad


def get(name):
    """Returns the activation function called `name` (one of ACTIVATIONS)."""
    if name == "gelu":
        return gelu_exact
    if name == "gelu_tanh":
        return gelu_tanh
    raise ValueError(f"Unsupported activation {name!r}: expected one of {ACTIVATIONS}")
