"""Fast dropout masks (`--fast_dropout`): rate, scaling, determinism, off by default."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_adapters import dropout


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_default_is_keras_dropout_bit_for_bit(dtype):
    x = tf.cast(np.random.default_rng(0).normal(size=(4, 8, 16)), dtype)
    ours = dropout.Dropout(0.1, seed=3, dtype=dtype)
    theirs = keras.layers.Dropout(0.1, seed=3, dtype=dtype)
    for _ in range(2):   # and the next draw
        np.testing.assert_array_equal(tf.cast(ours(x, training=True), "float32"),
                                      tf.cast(theirs(x, training=True), "float32"))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fast_masks_rate_and_scale(dtype):
    layer = dropout.Dropout(0.1, seed=5, dtype=dtype)
    layer.fast_masks = True
    x = tf.ones((64, 12, 33, 31), dtype)          # odd sizes: one spare 16-bit half
    y = layer(x, training=True).numpy().astype("float64")
    kept = y != 0
    # 0.1 rounds to 6554 / 65536; kept values are scaled by 65536 / 58982.
    rate = 6554 / 65536
    n = kept.size
    assert abs((1 - kept.mean()) - rate) < 4 * np.sqrt(rate * (1 - rate) / n)
    scale = np.float64(np.asarray(65536 / (65536 - 6554), dtype=dtype).astype("float64"))
    np.testing.assert_array_equal(y[kept], scale)
    # A fresh draw per call, reproducible from the seed.
    again = dropout.Dropout(0.1, seed=5, dtype=dtype)
    again.fast_masks = True
    np.testing.assert_array_equal(again(x, training=True).numpy().astype("float64"), y)
    assert not np.array_equal(layer(x, training=True).numpy() != 0, kept)
    # Off at inference.
    np.testing.assert_array_equal(layer(x, training=False), x)


def test_fast_masks_are_independent_between_elements():
    layer = dropout.Dropout(0.5, seed=1)
    layer.fast_masks = True
    kept = layer(tf.ones((200000,)), training=True).numpy() != 0
    # The two halves of one 32-bit draw decide neighbouring elements: they
    # must not agree more often than chance.
    agree = (kept[0::2] == kept[1::2]).mean()
    assert abs(agree - 0.5) < 0.01


def test_gradient_is_the_mask_times_the_scale():
    layer = dropout.Dropout(0.2, seed=2)
    layer.fast_masks = True
    x = tf.ones((1000,))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        total = tf.reduce_sum(y)
    grad = tape.gradient(total, x).numpy()
    np.testing.assert_array_equal(grad, y.numpy())


def test_use_fast_masks_reaches_every_encoder_dropout():
    from bert_adapters.bert_encoder import BertConfig, BertEncoder

    encoder = BertEncoder(BertConfig(vocab_size=50, hidden_dim=16, num_layers=2, num_heads=2,
                                     intermediate_dim=32, max_sequence_length=16),
                          adapter_size=4)
    # Embeddings, then per layer attention probabilities, attention output, output.
    assert dropout.use_fast_masks(encoder, True) == 1 + 2 * 3
    layers = [l for l in encoder._flatten_layers() if isinstance(l, dropout.Dropout)]
    assert all(l.fast_masks for l in layers)
    dropout.use_fast_masks(encoder, False)
    assert not any(l.fast_masks for l in layers)
