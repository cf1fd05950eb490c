"""One get_config round trip per Keras layer of the package.

For each layer: `from_config(get_config())` rebuilds a layer whose config is
the same, whose weights have the same names and shapes, and which, given the
original's weights, computes the same output. A constructor argument missing
from `get_config` (or read back wrong) fails here.
"""

import numpy as np
import pytest

from bert_adapters.model.adapter import Adapter
from bert_adapters.model.bert_encoder import BertEncoder, attention_bias
from bert_adapters.model.embeddings import BertEmbeddings
from bert_adapters.model.self_attention import SelfAttention
from bert_adapters.model.transformer_layer import TransformerLayer
from conftest import random_inputs, tiny_config

BATCH, SEQ, HIDDEN = 3, 7, 8


def _hidden(seed=0):
    return np.random.default_rng(seed).standard_normal((BATCH, SEQ, HIDDEN)).astype("float32")


def _adapter():
    layer = Adapter(4, adapter_init_scale=0.3, activation="gelu", name="adapter")
    return layer, lambda l: l(_hidden())


def _self_attention():
    layer = SelfAttention(2, attention_dropout=0.25, kernel_initializer="he_normal", name="att")
    bias = attention_bias(random_inputs(BATCH, SEQ)["input_mask"])
    return layer, lambda l: l(_hidden(), attention_bias=bias, training=False)


def _embeddings():
    layer = BertEmbeddings(64, HIDDEN, max_sequence_length=16, type_vocab_size=3, dropout=0.2,
                           layer_norm_epsilon=1e-6, initializer_range=0.5, name="emb")
    inputs = random_inputs(BATCH, SEQ)
    return layer, lambda l: l(inputs["input_word_ids"], inputs["input_type_ids"], training=False)


def _transformer_layer():
    layer = TransformerLayer(2, 16, activation="gelu", dropout=0.2, attention_dropout=0.3,
                             layer_norm_epsilon=1e-6, adapter_size=3, adapter_init_scale=0.5,
                             kernel_initializer="he_normal", name="layer")
    bias = attention_bias(random_inputs(BATCH, SEQ)["input_mask"])
    return layer, lambda l: l(_hidden(), attention_bias=bias, training=False)


def _encoder():
    layer = BertEncoder(tiny_config(activation="gelu", dropout=0.2), adapter_size=4,
                        adapter_init_scale=0.5, name="encoder")
    inputs = random_inputs(BATCH, SEQ)
    return layer, lambda l: l(inputs, training=False)["sequence_output"]


@pytest.mark.parametrize("make", [_adapter, _self_attention, _embeddings, _transformer_layer,
                                  _encoder], ids=lambda f: f.__name__.strip("_"))
def test_get_config_round_trip(make):
    layer, call = make()
    expected = np.asarray(call(layer))  # Builds the layer.
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    call(clone)  # Builds the clone.
    assert [(w.path, tuple(w.shape)) for w in clone.weights] == \
        [(w.path, tuple(w.shape)) for w in layer.weights]
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(call(clone)), expected, rtol=1e-6, atol=1e-6)
