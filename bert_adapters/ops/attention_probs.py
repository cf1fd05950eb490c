"""`attend`: attention's softmax, dropout and context, fused around TensorFlow's kernels.

`dropout(cast(softmax(cast(scores, float32) + bias), dtype)) @ value` on the
`[batch, heads, queries, keys]` scores. In training, where dropout's
compiled masks apply (`dropout.philox_here`), it runs as four XLA loops
around TensorFlow's softmax and batched matmuls (`dropped_attention`): the
scores' cast and the bias add; the mask (`dropout.keep_bits`, packed); the
dropout's cast, scale and select; in the backward pass, after the matmuls'
own gradients, the dropout's select and scale, the casts and the softmax
gradient in one pass over the scores, ending in the scores' dtype. Softmax's
gradient needs a sum over each row of the scores; taken instead over the
context's width (FlashAttention's `D = rowsum(dO * O)`, the same sum
reordered) it leaves no reduction over the scores. As TensorFlow kernels the
backward pass is seven passes over the scores (select, scale, cast, two
products, sum, difference) and keeps a boolean mask. The values and masks are
those of Keras' `Dropout` and `ops.matmul` bit for bit, the gradients equal
up to float rounding (tests/model/self_attention_test.py). Elsewhere
(evaluation, the compiled loops off, a GPU or TPU): Keras' ops.
"""

import tensorflow as tf
from keras import ops

from bert_adapters.ops import dropout as dropout_lib
from bert_adapters.ops import fused, settings


def attend(scores, bias, value, dropout, training=False, full_length=None):
    """`dropout(cast(softmax(cast(scores, float32) + bias), dtype)) @ value`.

    Args:
        scores: `q k^T`, `[batch, heads, queries, keys]` in the compute dtype.
        bias: the additive attention mask, broadcastable to `scores`, or
            None. It gets no gradient here (it comes from the input mask).
        value: `[batch, heads, keys, head_dim]` in the compute dtype.
        dropout: the attention probabilities' `dropout.Dropout` layer; its
            compute dtype is the probabilities' dtype, and a training call
            draws one seed from its generator, as the layer's own call does.
        training: bool.
        full_length: the scores are the first queries of `full_length`
            (the [CLS]-only top layer's), and the dropout mask is the whole
            scores' mask at those queries (`dropout.keep_bits`).

    Returns:
        The context, `[batch, heads, queries, head_dim]`.
    """
    dtype = dropout.compute_dtype
    if training and 0 < dropout.rate < 1 and dropout_lib.philox_here(dtype):
        return dropped_attention(scores, bias, value, dtype, dropout.rate,
                                 dropout.seed_generator.next(), fast=settings.fast_dropout(),
                                 full_length=full_length)
    scores = ops.cast(scores, "float32")
    if bias is not None:
        scores = scores + ops.cast(bias, "float32")
    probs = ops.cast(ops.softmax(scores, axis=-1), dtype)
    return ops.matmul(dropout(probs, training=training, full_length=full_length), value)


def _scores_gradient(d_probs, mask, probs, d_context, context, dtype):
    """The `dtype` scores' gradient of `dropout(cast(softmax(cast(scores) + bias))) @ value`.

    `d_probs`: the dropped-out probabilities' gradient (`d_context @ value^T`);
    `mask`: the dropout's packed keep mask (`dropout.keep_bits`). Softmax's
    gradient needs each row's `sum_k g_k p_k`, `g` the probabilities' gradient
    through the dropout: that equals `sum_d d_context_d context_d` (both are
    `d_context . sum_k y_k value_k`, `y` the dropped probabilities), a sum over
    the head's width instead of the keys, so that the pass over the scores is
    one elementwise loop with no reduction in it (FlashAttention's `D`). The
    dropout's scale is applied in float32, not rounded to a 16-bit `d_probs`'
    dtype first.
    """
    rows = tf.reduce_sum(fused.widen(d_context) * fused.widen(context), axis=-1, keepdims=True)
    keep = dropout_lib.unpack_keep(mask.bits, tf.shape(d_probs), mask.per_byte)
    g = fused.widen(d_probs) * fused.widen(mask.scale)  # dropout's scale, in float32
    g = tf.where(keep, g - rows, -rows) * probs  # its select, softmax's gradient
    return fused.narrow(g, dtype)  # the scores' cast to float32 (the bias add passes it on)


def _biased(scores, bias):
    """`cast(scores, float32) + bias`: the float32 scores softmax takes."""
    return fused.widen(scores) + fused.widen(bias)


# One XLA loop each: in the backward pass instead of seven passes over the
# scores and a reduction over them, in the forward pass instead of two (the
# cast, the bias add).
_FUSED_SCORES_GRADIENT = fused.compile(_scores_gradient)
_FUSED_BIASED = fused.compile(_biased)


def dropped_attention(scores, bias, value, dtype, rate, seed, fast=False, full_length=None):
    """`Dropout(rate)(cast(softmax(cast(scores, float32) + bias), dtype)) @ value`, its
    elementwise work in XLA loops.

    `scores`: `q k^T` in the compute dtype; `bias`: the additive attention
    mask (or None; it gets no gradient: it comes from the input mask);
    `value`: `[batch, heads, keys, head_dim]`. `seed`: the dropout layer's
    draw (`seed_generator.next()`). The values and masks are those of
    Keras' `Dropout` (which calls `tf.nn.experimental.stateless_dropout`)
    followed by `ops.matmul`, or with `fast` those of `dropout.fast_dropout`,
    from the same seed, bit for bit (`full_length`: see `dropout.keep_bits`).
    The backward pass keeps the float32 probabilities, the packed mask, the
    dropped probabilities and the context. Callers check
    `dropout.philox_here(dtype)` first (`attend` does).
    """

    @tf.custom_gradient
    def forward(scores, value, *bias):
        if bias:
            scores32 = _FUSED_BIASED(scores, bias[0])
        else:
            scores32 = tf.cast(scores, tf.float32)
        probs = tf.nn.softmax(scores32, axis=-1)
        mask = dropout_lib.keep_bits(probs, rate, seed, dtype=dtype, fast=fast,
                                     full_length=full_length)
        dropped = dropout_lib.scaled_select(probs, mask)
        context = ops.matmul(dropped, value)

        def grad(d_context):
            # BatchMatMul's own gradients, then the scores' in one loop.
            d_probs = tf.matmul(d_context, value, adjoint_b=True)
            d_value = tf.matmul(dropped, d_context, adjoint_a=True)
            d_scores = _FUSED_SCORES_GRADIENT(d_probs, mask, probs, d_context, context,
                                              scores.dtype)
            return (d_scores, d_value) + (None,) * len(bias)

        return context, grad

    return forward(scores, value, *([] if bias is None else [bias]))
