"""`TokenDense`: a Dense layer applied to every token as one 2-D matmul.

Keras' `Dense` on a `[batch, seq, in]` input computes reshape, matmul,
reshape, then adds the bias to the 3-D result: the reshape between the
matmul and the bias add keeps TensorFlow's Grappler remapper from fusing
them into oneDNN's `_FusedMatMul` (matmul + bias in one pass over the
output). `TokenDense` flattens the tokens first, so matmul and bias add are
adjacent and fuse, then restores the leading axes. Same weights, names and
config as `Dense`; values equal to Dense's up to float rounding (the same
products, summed by a 2-D instead of a reshaped kernel).

bfloat16 matmuls through float32 kernels: a bfloat16 matmul multiplies
bfloat16 operands (their products are exact in float32), sums them in
float32 and rounds the sum once to bfloat16. Casting the operands to float32
and running the float32 kernel computes the same products and sums, only in
another order, and rounds once as well (the bias, too, is added before that
rounding; TensorFlow's bfloat16 kernels round the product, then its sum with
the bias; where the compiled loops run, the bias add stays a separate loop
in a traced step too, so that TensorFlow does not fuse it into a matmul
kernel that rounds once and, on AMX CPUs, runs without AMX: `_add_bias`).
With either kernel the bias gradient is summed in float32 (TensorFlow's own
sums it in bfloat16: `_matmul_bias`). Outputs and gradients
are the exactly rounded sums within one bfloat16 step, almost all of them
equal (tests/ops/dense_test.py). The backward pass keeps the 16-bit
operands, as the bfloat16 kernels' does. On CPUs whose bfloat16 kernel is
slower than their float32 one (AVX-512 BF16 without AMX on Intel) that is
faster even with the casts. Which kernels run is `settings.float32_matmuls`
(`--bf16_matmuls`: "auto" takes float32 kernels on the CPUs where they were
measured faster, decided from the CPU's flags; GPUs and TPUs keep bfloat16
kernels under "auto").
"""

import keras
import tensorflow as tf
from keras import ops

from bert_adapters.ops import fused, settings


@keras.saving.register_keras_serializable(package="bert_adapters")
class TokenDense(keras.layers.Dense):
    """`keras.layers.Dense` whose matmul and bias add fuse on inputs of rank > 2."""

    def call(self, inputs, training=None):
        if (len(inputs.shape) <= 2 or getattr(self, "lora_enabled", False)
                or getattr(self, "quantization_mode", None)):
            return super().call(inputs, training=training)
        x = self.project(inputs, self.bias)
        return x if self.activation is None else self.activation(x)

    def project(self, inputs, bias):
        """`inputs @ kernel + bias` over the last axis, as one fusable 2-D matmul.

        `bias` is this layer's own or any tensor of shape `[units]` (None:
        no bias); `Adapter` passes a gated one.
        """
        return token_matmul(inputs, self.kernel, bias)


def token_matmul(inputs, kernel, bias=None):
    """`inputs @ kernel (+ bias)` for `[..., in]` inputs, as one 2-D matmul.

    The tokens are flattened first, so that the matmul and the bias add are
    adjacent in the graph and fuse (oneDNN's `_FusedMatMul`).
    """
    leading = ops.shape(inputs)[:-1]
    x = ops.reshape(inputs, (-1, inputs.shape[-1]))
    if settings.float32_matmuls(x.dtype):
        kernel = ops.cast(kernel, x.dtype)
        x = (_wide_matmul(x, kernel) if bias is None else
             _wide_matmul_bias(x, kernel, ops.cast(bias, x.dtype)))
    elif bias is not None and x.dtype == tf.bfloat16:
        x = _matmul_bias(x, ops.cast(kernel, x.dtype), ops.cast(bias, x.dtype))
    else:
        x = ops.matmul(x, kernel)
        if bias is not None:
            x = ops.add(x, bias)
    return ops.reshape(x, tuple(leading) + (kernel.shape[-1],))


@tf.custom_gradient
def _matmul_bias(x, kernel, bias):
    """`x @ kernel + bias` in bfloat16 kernels (the bias added by `_add_bias`), the bias
    gradient summed in float32.

    TensorFlow's own gradient sums the bias's over the tokens in bfloat16: once
    the running sum is large the small terms are lost (tests/ops/dense_test.py
    sums 4096 tokens; and its bfloat16 reduction is slower than a matmul). Here the
    sum is `ones @ dy`, a bfloat16 matmul: exact products, float32 sums, one
    rounding (tested within one bfloat16 step of the exact sum). The input and
    kernel gradients are TensorFlow's own MatMul gradients.
    """
    y = _add_bias(tf.matmul(x, kernel), bias)

    def grad(dy):
        ones = tf.ones([1, tf.shape(dy)[0]], dy.dtype)
        return (tf.matmul(dy, kernel, transpose_b=True), tf.matmul(x, dy, transpose_a=True),
                tf.reshape(tf.matmul(ones, dy), [-1]))

    return y, grad


def _bias_sum(y, bias):
    return fused.narrow(fused.widen(y) + fused.widen(bias), y.dtype)


_COMPILED_BIAS_SUM = fused.compile(_bias_sum)


def _add_bias(y, bias):
    """`y + bias` for a bfloat16 matmul's output `y`, not fused into the matmul: TensorFlow's
    fused bfloat16 matmul-with-bias runs oneDNN's inner product, which on AMX CPUs takes a
    kernel without AMX (`ONEDNN_VERBOSE=1`: `gemm:jit`) while a plain matmul takes the AMX
    one (`brg_matmul:..._amx`). The sum is bfloat16's (the float32 sum of the two, rounded
    once), as a compiled loop on CPUs (`settings.compiled_bias_adds`), else `tf.nn.bias_add`."""
    if settings.compiled_bias_adds():
        return _COMPILED_BIAS_SUM(y, bias)
    return tf.nn.bias_add(y, bias)


def _wide(*tensors):
    return [tf.cast(t, tf.float32) for t in tensors]


def _wide_gradients(x, kernel, dy):
    """`(dx, dkernel, dy in float32)` of `x @ kernel` from float32 kernels, each rounded once.

    The backward pass keeps `x` and `kernel` in their own (16-bit) dtype, as
    the 16-bit kernels' does, and widens them again here, after `dy` exists:
    without that dependency Grappler merges these casts with the forward
    pass's and keeps each float32 copy from forward to backward.
    """
    with tf.control_dependencies([dy]):
        xf, kf, dyf = _wide(x, kernel, dy)
    return (tf.cast(tf.matmul(dyf, kf, transpose_b=True), x.dtype),
            tf.cast(tf.matmul(xf, dyf, transpose_a=True), kernel.dtype), dyf)


@tf.custom_gradient
def _wide_matmul(x, kernel):
    """`x @ kernel` for 2-D bfloat16 operands: float32 products and sums, one rounding."""
    y = tf.cast(tf.matmul(*_wide(x, kernel)), x.dtype)
    return y, lambda dy: _wide_gradients(x, kernel, dy)[:2]


@tf.custom_gradient
def _wide_matmul_bias(x, kernel, bias):
    """`x @ kernel + bias` likewise, the bias added before the rounding (one fused matmul)."""
    xf, kf, bf = _wide(x, kernel, bias)
    y = tf.cast(tf.nn.bias_add(tf.matmul(xf, kf), bf), x.dtype)

    def grad(dy):
        dx, dkernel, dyf = _wide_gradients(x, kernel, dy)
        return dx, dkernel, tf.cast(tf.reduce_sum(dyf, axis=0), bias.dtype)

    return y, grad
