"""`attention_probs`: attention's softmax and dropout, fused around TensorFlow's softmax.

`dropout(cast(softmax(cast(scores, float32) + bias), dtype))` on the
`[batch, heads, queries, keys]` scores. In training, where dropout's
compiled masks apply (`dropout.philox_here`), it runs as four XLA loops
around TensorFlow's softmax (`dropped_softmax`): the scores' cast and the
bias add; the mask (`dropout.keep_bits`, packed); the dropout's cast, scale
and select; in the backward pass the dropout's select and scale, the casts
and the softmax gradient, ending in the scores' dtype. As TensorFlow kernels
the backward pass is seven passes over the scores (select, scale, cast, two
products, sum, difference) and keeps a boolean mask. The values and masks
are those of Keras' `Dropout` bit for bit, the gradients equal up to float
rounding (tests/model/self_attention_test.py). Elsewhere (evaluation, the
compiled loops off, a GPU or TPU): Keras' ops.
"""

import tensorflow as tf
from keras import ops

from bert_adapters.ops import dropout as dropout_lib
from bert_adapters.ops import fused, settings


def attention_probs(scores, bias, dropout, training=False, full_length=None):
    """`dropout(cast(softmax(cast(scores, float32) + bias), dtype))`.

    Args:
        scores: `q k^T`, `[batch, heads, queries, keys]` in the compute dtype.
        bias: the additive attention mask, broadcastable to `scores`, or
            None. It gets no gradient here (it comes from the input mask).
        dropout: the attention probabilities' `dropout.Dropout` layer; its
            compute dtype is the probabilities' dtype, and a training call
            draws one seed from its generator, as the layer's own call does.
        training: bool.
        full_length: the scores are the first queries of `full_length`
            (the [CLS]-only top layer's), and the dropout mask is the whole
            scores' mask at those queries (`dropout.keep_bits`).

    Returns:
        The dropped-out probabilities, `scores`' shape, in the dropout's dtype.
    """
    dtype = dropout.compute_dtype
    if training and 0 < dropout.rate < 1 and dropout_lib.philox_here(dtype):
        return dropped_softmax(scores, bias, dtype, dropout.rate, dropout.seed_generator.next(),
                               fast=settings.fast_dropout(), full_length=full_length)
    scores = ops.cast(scores, "float32")
    if bias is not None:
        scores = scores + ops.cast(bias, "float32")
    probs = ops.cast(ops.softmax(scores, axis=-1), dtype)
    return dropout(probs, training=training, full_length=full_length)


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


# One XLA loop each instead of seven passes over the scores in the backward
# pass, and two (the cast, the bias add) in the forward pass.
_FUSED_PROBS_GRADIENT = fused.compile(_probs_gradient)
_FUSED_BIASED = fused.compile(_biased)


def dropped_softmax(scores, bias, dtype, rate, seed, fast=False, full_length=None):
    """`Dropout(rate)(cast(softmax(cast(scores, float32) + bias), dtype))` as XLA loops.

    `scores`: `q k^T` in the compute dtype; `bias`: the additive attention
    mask (or None; it gets no gradient: it comes from the input mask).
    `seed`: the dropout layer's draw (`seed_generator.next()`).
    The values and masks are those of Keras' `Dropout` (which calls
    `tf.nn.experimental.stateless_dropout`), or with `fast` those of
    `dropout.fast_dropout`, from the same seed, bit for bit (`full_length`:
    see `dropout.keep_bits`). The backward pass keeps the float32
    probabilities and the packed mask. Callers check
    `dropout.philox_here(dtype)` first (`attention_probs` does).
    """

    @tf.custom_gradient
    def forward(scores, *bias):
        if bias:
            scores32 = _FUSED_BIASED(scores, bias[0])
        else:
            scores32 = tf.cast(scores, tf.float32)
        probs = tf.nn.softmax(scores32, axis=-1)
        mask = dropout_lib.keep_bits(probs, rate, seed, dtype=dtype, fast=fast,
                                     full_length=full_length)
        y = dropout_lib.scaled_select(probs, mask)

        def grad(dy):
            return (_FUSED_PROBS_GRADIENT(dy, mask, probs, scores.dtype),) + (None,) * len(bias)

        return y, grad

    return forward(scores, *([] if bias is None else [bias]))
