"""The two GELUs BERT checkpoints are trained with.

TF1 BERT, TF Hub, Model Garden and keras-hub use the tanh approximation
(`"gelu_tanh"`); Hugging Face's `hidden_act="gelu"` is the exact erf form
(`"gelu"`). Reproducing a checkpoint exactly needs the right one.

Both compute their forward values with Keras' (TensorFlow's) own formula,
bit for bit (the exact form takes its 16-bit `erfc` through float32, which
gives the same bits for every bfloat16 and float16 input and is faster:
tests/ops/activations_test.py checks all 65,536 of each). A 16-bit input
has only 65,536 values: in a traced step on a CPU the forward pass is one
compiled gather from a table of the traced formula's value at each
(`fused.lookup`, when `settings.gelu_tables`; the same bits).

Both carry a hand-written gradient that keeps only the input for the
backward pass. Differentiating the composite formula op by op keeps three
intermediates of the input's size as well (the erfc argument and output and
0.5 x; for the tanh form x^3 terms and the tanh): on BERT's feed-forward
layer, `[tokens, 4 x hidden]` each, that is most of a training step's
activation memory after attention (benchmarks/train_throughput.py: the peak
RSS column). The hand-written gradient recomputes what it needs from the
input; it equals the composite's up to float rounding
(tests/ops/activations_test.py). The gradient is computed in float32
(float64 for float64 inputs): TensorFlow's bfloat16 `Erfc`, `Exp` and `Tanh`
have no vectorised CPU kernels, and float32 is the more accurate anyway. It
runs as one loop compiled by XLA (a dozen TensorFlow kernels otherwise, each
a pass over the tensor); where the loops are off, op by op (`fused.py`).
"""

import functools
import math

import keras
import numpy as np
import tensorflow as tf

from bert_adapters.ops import fused

ACTIVATIONS = ("gelu", "gelu_tanh")

_SQRT_HALF = 0.7071067811865476            # 1 / sqrt(2)
_INV_SQRT_2PI = 0.3989422804014327         # 1 / sqrt(2 pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)  # 0.7978845608028654
_TANH_COEFF = 0.044715


def _wide(x):
    """`x` in float32, or float64 if it is float64."""
    return x if x.dtype == tf.float64 else tf.cast(x, tf.float32)


def _erfc(x):
    """`tf.math.erfc`, 16-bit inputs computed in float32 (the same bits, faster)."""
    if x.dtype in (tf.bfloat16, tf.float16):
        return tf.cast(tf.math.erfc(tf.cast(x, tf.float32)), x.dtype)
    return tf.math.erfc(x)


def _exact_form(x):
    # tf.nn.gelu(x, approximate=False), in x's dtype: `-x * c` as `x * -c`, the
    # same bits (rounding is symmetric in sign) without a pass for the negation.
    return 0.5 * x * _erfc(x * tf.cast(-_SQRT_HALF, x.dtype))


def _tanh_form(x):
    return keras.activations.gelu(x, approximate=True)


_FORMS = {"gelu": _exact_form, "gelu_tanh": _tanh_form}


@functools.cache
def _table(name, dtype):
    """The traced form's value at every 16-bit pattern of `dtype`, in bit order."""
    with tf.init_scope():
        every = tf.bitcast(tf.constant(np.arange(2 ** 16, dtype=np.uint16)), dtype)
        return tf.function(_FORMS[name])(every)


def _forward(name, x):
    """Keras' values of the GELU `name`: 16-bit inputs of a traced step from
    `_table` (`fused.lookup`), the rest by the formula."""
    if fused.tabulated(x):
        return fused.lookup(_table(name, x.dtype), x)
    return _FORMS[name](x)


def _exact_slope(x):
    """d/dx of `x * Phi(x)`: `Phi(x) + x * phi(x)`."""
    cdf = 0.5 * tf.math.erfc(-x * _SQRT_HALF)
    pdf = tf.exp(-0.5 * tf.square(x)) * _INV_SQRT_2PI
    return cdf + x * pdf


def _tanh_slope(x):
    """d/dx of the tanh approximation."""
    c, k = _SQRT_2_OVER_PI, _TANH_COEFF
    x2 = tf.square(x)
    t = tf.tanh(c * (x + k * x2 * x))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - tf.square(t)) * c * (1.0 + 3.0 * k * x2)


def _input_gradient(slope, convert=False):
    """`dy * slope(x)` in float32 (float64 for float64); `convert`: through
    `fused.widen` / `fused.narrow` (inside a compiled loop)."""
    def input_gradient(x, dy):
        if convert:
            xf = fused.widen(x)
            return fused.narrow(fused.widen(dy) * slope(xf), x.dtype)
        xf = _wide(x)
        return tf.cast(tf.cast(dy, xf.dtype) * slope(xf), x.dtype)
    return input_gradient


# The gradients as one XLA loop each: as separate TensorFlow kernels they make
# about a dozen passes over `[tokens, 4 x hidden]` (casts, erfc, exp, the
# products); compiled, one (fused.py).
_SLOPES = {"gelu": _exact_slope, "gelu_tanh": _tanh_slope}
_GRADIENTS = {name: _input_gradient(slope) for name, slope in _SLOPES.items()}
_FUSED_GRADIENTS = {name: fused.compile(_input_gradient(slope, convert=True))
                    for name, slope in _SLOPES.items()}


def _gradient(name, x, dy):
    return fused.choose(_FUSED_GRADIENTS[name], _GRADIENTS[name])(x, dy)


@tf.custom_gradient
def gelu_exact(x):
    """`x * Phi(x)` (erf form), Keras' values; gradient from `x` alone."""
    x = tf.convert_to_tensor(x)
    return _forward("gelu", x), lambda dy: _gradient("gelu", x, dy)


@tf.custom_gradient
def gelu_tanh(x):
    """The tanh approximation, Keras' values; gradient from `x` alone."""
    x = tf.convert_to_tensor(x)
    return _forward("gelu_tanh", x), lambda dy: _gradient("gelu_tanh", x, dy)


def get(name):
    """Returns the activation function called `name` (one of ACTIVATIONS)."""
    if name == "gelu":
        return gelu_exact
    if name == "gelu_tanh":
        return gelu_tanh
    raise ValueError(f"Unsupported activation {name!r}: expected one of {ACTIVATIONS}")
