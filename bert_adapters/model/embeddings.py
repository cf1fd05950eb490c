"""BERT's input embeddings: word + position + token type, LayerNorm, dropout."""

import keras
from keras import ops

from bert_adapters.ops.dropout import Dropout
from bert_adapters.ops.layer_norm import LayerNorm


@keras.saving.register_keras_serializable(package="bert_adapters")
class BertEmbeddings(keras.layers.Layer):
    """Sum of word, absolute position and token-type embeddings, normalised.

    Args:
        vocab_size: int.
        hidden_dim: int.
        max_sequence_length: int. Number of position embeddings.
        type_vocab_size: int. Number of token types (segments).
        dropout: float.
        layer_norm_epsilon: float.
        initializer_range: float. Stddev of the truncated normal initialiser.

    Call arguments:
        input_word_ids: int `[batch_size, seq_length]`.
        input_type_ids: int `[batch_size, seq_length]`.
        training: bool.
        input_position_ids: optional int `[batch_size, seq_length]`; default
            0, 1, ... in every row (packed rows restart at each example).

    Returns:
        `[batch_size, seq_length, hidden_dim]`.
    """

    def __init__(self, vocab_size, hidden_dim, max_sequence_length=512, type_vocab_size=2,
                 dropout=0.1, layer_norm_epsilon=1e-12, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_dim = hidden_dim
        self.max_sequence_length = max_sequence_length
        self.type_vocab_size = type_vocab_size
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        init = lambda: keras.initializers.TruncatedNormal(stddev=initializer_range)
        policy = self.dtype_policy
        self.word_embeddings = keras.layers.Embedding(
            vocab_size, hidden_dim, embeddings_initializer=init(), dtype=policy,
            name="word_embeddings")
        self.position_embeddings = keras.layers.Embedding(
            max_sequence_length, hidden_dim, embeddings_initializer=init(), dtype=policy,
            name="position_embeddings")
        self.type_embeddings = keras.layers.Embedding(
            type_vocab_size, hidden_dim, embeddings_initializer=init(), dtype=policy,
            name="type_embeddings")
        self.layer_norm = LayerNorm(
            epsilon=layer_norm_epsilon, dtype=policy, name="layer_norm")
        self.dropout_layer = Dropout(dropout, dtype=policy, name="dropout")

    def build(self, input_shape):
        self.word_embeddings.build(input_shape)
        self.position_embeddings.build(input_shape)
        self.type_embeddings.build(input_shape)
        self.layer_norm.build(tuple(input_shape) + (self.hidden_dim,))
        self.built = True

    def call(self, input_word_ids, input_type_ids, training=None, input_position_ids=None):
        x = self.sum_embeddings(input_word_ids, input_type_ids, input_position_ids)
        return self.dropout_layer(self.layer_norm(x), training=training)

    def sum_embeddings(self, input_word_ids, input_type_ids, input_position_ids=None):
        """Word + position + type embeddings, before the LayerNorm.

        The multi-task bank applies each example's own (per-task) LayerNorm
        to this sum.
        """
        if input_position_ids is not None:
            return (self.word_embeddings(input_word_ids)
                    + self.position_embeddings(input_position_ids)
                    + self.type_embeddings(input_type_ids))
        seq_length = ops.shape(input_word_ids)[1]
        positions = self.position_embeddings(ops.arange(seq_length))  # [seq, hidden]
        return (self.word_embeddings(input_word_ids)
                + ops.expand_dims(positions, 0)
                + self.type_embeddings(input_type_ids))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.hidden_dim,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocab_size": self.vocab_size,
            "hidden_dim": self.hidden_dim,
            "max_sequence_length": self.max_sequence_length,
            "type_vocab_size": self.type_vocab_size,
            "dropout": self.dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "initializer_range": self.initializer_range,
        })
        return config
