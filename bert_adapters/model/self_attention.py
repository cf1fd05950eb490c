"""BERT's multi-head self-attention, with the canonical `[in, out]` kernels."""

import math

import keras
from keras import ops

from bert_adapters.ops.attention_probs import attend
from bert_adapters.ops.dense import TokenDense
from bert_adapters.ops.dropout import Dropout


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
        inputs: `[batch_size, seq_length, hidden_dim]`, whose keys and values
            are attended over.
        attention_bias: additive float bias broadcastable to
            `[batch_size, num_heads, num_queries, seq_length]`: 0 for visible
            keys, a large negative number for padding.
        training: bool, enables dropout.
        queries: optional `[query_batch, num_queries, hidden_dim]`, the
            inputs at the positions whose outputs are wanted (Model Garden's
            `output_range`: the [CLS] position only for a classifier's top
            layer); default `inputs`, every position. Without `rows` they are
            `inputs[:, :num_queries]`, and the dropout masks are those of the
            full computation at those positions.
        rows: optional int `[query_batch]`, the row of `inputs` each query
            row attends over (packed rows hold several examples' [CLS]);
            default the same row.

    Returns:
        `[query_batch, num_queries, hidden_dim]` (by default `inputs`' shape),
        after the output projection.
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

    def call(self, inputs, attention_bias=None, training=None, queries=None, rows=None):
        queries = inputs if queries is None else queries
        q = self._split_heads(self.query(queries))
        k = self._split_heads(self.key(inputs))
        v = self._split_heads(self.value(inputs))
        if rows is not None:  # Each query row attends over its own row of `inputs`.
            k, v = ops.take(k, rows, axis=0), ops.take(v, rows, axis=0)
        q = q * ops.cast(1.0 / math.sqrt(self.head_dim), q.dtype)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))  # [batch, heads, queries, keys]
        # Keras casts float call arguments to the compute dtype: the bias is
        # added in float32, to the scores cast to float32.
        # Leading queries of each row: the full computation's masks at them.
        full_length = ops.shape(inputs)[1] if queries is not inputs and rows is None else None
        context = attend(scores, attention_bias, v, self.dropout, training,
                         full_length=full_length)  # [batch, heads, queries, head_dim]
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
