"""BERT's multi-head self-attention, with the canonical `[in, out]` kernels."""

import math

import keras
import tensorflow as tf
from keras import ops

from bert_adapters.ops import dropout as dropout_lib
from bert_adapters.ops import fused
from bert_adapters.ops.dense import TokenDense
from bert_adapters.ops.dropout import Dropout


def _probs_gradient(dy, mask, probs, dtype):
    """The `dtype` scores' gradient of `dropout(cast(softmax(cast(scores) + bias)))`.

    `mask`: the dropout's packed keep mask (`dropout.keep_bits`).
    """
    keep = dropout_lib.unpack_keep(mask.bits, tf.shape(dy), mask.per_byte)
    dy = tf.where(keep, dy, tf.zeros([], dy.dtype))  # dropout's select
    g = tf.cast(fused.widen(fused.multiply(dy, mask.scale)), probs.dtype)  # its scale, the cast's
    g = (g - tf.reduce_sum(g * probs, axis=-1, keepdims=True)) * probs  # softmax's
    return fused.narrow(g, dtype)  # the scores' cast to float32 (the bias add passes it on)


def _biased(scores, bias):
    """`cast(scores, float32) + bias`: the float32 scores softmax takes."""
    return fused.widen(scores) + fused.widen(bias)


# One XLA loop instead of seven passes over `[batch, heads, seq, seq]` (select,
# scale, cast, two products, sum, difference): 1.7x faster (fused.py); and one
# for the scores' cast and bias add, which were two.
_FUSED_PROBS_GRADIENT = fused.compile(_probs_gradient)
_FUSED_BIASED = fused.compile(_biased)


def dropped_softmax(scores, bias, dtype, rate, seed, fast=False):
    """`Dropout(rate)(cast(softmax(cast(scores, float32) + bias), dtype))`, fused.

    `scores`: `q k^T` in the compute dtype; `bias`: the additive attention
    mask (or None; it gets no gradient: it comes from the input mask).
    `seed`: the dropout layer's draw (`seed_generator.next()`).
    The values and masks are those of Keras' `Dropout` (which calls
    `tf.nn.experimental.stateless_dropout`), or with `fast` those of
    `dropout.fast_dropout`, from the same seed, bit for bit
    (tests/model/self_attention_test.py). Around TensorFlow's softmax, four XLA
    loops: the scores' cast and the bias add; the mask (`dropout.keep_bits`,
    packed); the dropout's cast, scale and select; in the backward pass the
    dropout's select and scale, the casts and the softmax gradient, ending in
    the scores' dtype. The backward pass keeps the float32 probabilities and
    the packed mask. Callers check `dropout.philox_here(dtype)` first.
    """

    @tf.custom_gradient
    def forward(scores, *bias):
        if bias:
            scores32 = _FUSED_BIASED(scores, bias[0])
        else:
            scores32 = tf.cast(scores, tf.float32)
        probs = tf.nn.softmax(scores32, axis=-1)
        mask = dropout_lib.keep_bits(probs, rate, seed, dtype=dtype, fast=fast)
        y = dropout_lib.scaled_select(probs, mask)

        def grad(dy):
            return (_FUSED_PROBS_GRADIENT(dy, mask, probs, scores.dtype),) + (None,) * len(bias)

        return y, grad

    return forward(scores, *([] if bias is None else [bias]))


@keras.saving.register_keras_serializable(package="bert_adapters")
class SelfAttention(keras.layers.Layer):
    """Multi-head scaled dot-product self-attention with output projection.

    The query, key, value and output projections are plain `Dense` layers with
    `[hidden_dim, hidden_dim]` kernels, the layout of the original TF1 BERT
    checkpoint (head index major when split into `[num_heads, head_dim]`).
    Softmax runs in float32 even under a mixed-precision policy.

    Args:
        num_heads: int. Number of attention heads; must divide the width.
        attention_dropout: float. Dropout on the attention probabilities.
        kernel_initializer: initializer of the four kernels.

    Call arguments:
        inputs: `[batch_size, seq_length, hidden_dim]`.
        attention_bias: additive float bias broadcastable to
            `[batch_size, num_heads, seq_length, seq_length]`: 0 for visible
            keys, a large negative number for padding.
        training: bool, enables dropout.

    Returns:
        `[batch_size, seq_length, hidden_dim]`, after the output projection.
    """

    def __init__(self, num_heads, attention_dropout=0.1, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        if hidden_dim % self.num_heads:
            raise ValueError(
                f"hidden_dim {hidden_dim} is not divisible by num_heads {self.num_heads}")
        self.head_dim = hidden_dim // self.num_heads

        def dense(name):
            # A fresh initializer per kernel, so that no two kernels share values.
            initializer = keras.initializers.deserialize(
                keras.initializers.serialize(self.kernel_initializer))
            layer = TokenDense(
                hidden_dim, kernel_initializer=initializer,
                dtype=self.dtype_policy, name=name)
            layer.build(input_shape)
            return layer

        self.query = dense("query")
        self.key = dense("key")
        self.value = dense("value")
        self.output_dense = dense("output")
        self.dropout = Dropout(
            self.attention_dropout, dtype=self.dtype_policy, name="attention_probs_dropout")
        self.built = True

    def _split_heads(self, x):
        # [batch, seq, hidden] -> [batch, heads, seq, head_dim]
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, seq, self.num_heads, self.head_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, inputs, attention_bias=None, training=None):
        q = self._split_heads(self.query(inputs))
        k = self._split_heads(self.key(inputs))
        v = self._split_heads(self.value(inputs))
        q = q * ops.cast(1.0 / math.sqrt(self.head_dim), q.dtype)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        # Keras casts float call arguments to the compute dtype: the bias is
        # added in float32, to the scores cast to float32.
        dropout = self.dropout
        if training and 0 < dropout.rate < 1 and dropout_lib.philox_here(self.compute_dtype):
            probs = dropped_softmax(scores, attention_bias, self.compute_dtype, dropout.rate,
                                    dropout.seed_generator.next(), fast=dropout.fast_masks)
        else:
            scores = ops.cast(scores, "float32")
            if attention_bias is not None:
                scores = scores + ops.cast(attention_bias, "float32")
            probs = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
            probs = dropout(probs, training=training)
        context = ops.matmul(probs, v)  # [batch, heads, seq, head_dim]
        context = ops.transpose(context, (0, 2, 1, 3))
        batch, seq = ops.shape(context)[0], ops.shape(context)[1]
        context = ops.reshape(context, (batch, seq, self.num_heads * self.head_dim))
        return self.output_dense(context)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads,
            "attention_dropout": self.attention_dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        })
        return config
