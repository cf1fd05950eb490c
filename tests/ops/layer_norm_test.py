"""`LayerNorm`: Keras' values bit for bit, gradients equal to Keras' LayerNormalization's."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_adapters.ops.layer_norm import LayerNorm


def _outputs_and_grads(layer, x, weights):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
    return y, tape.gradient(loss, [x, layer.gamma, layer.beta])


@pytest.mark.parametrize("policy,tolerance", [("float32", 2e-5), ("mixed_bfloat16", 3e-2)])
def test_matches_keras_layer_normalization(policy, tolerance):
    rng = np.random.default_rng(0)
    # An offset and a spread like BERT's residual stream.
    x = tf.cast(rng.normal(3.0, 4.0, size=(3, 7, 48)), keras.mixed_precision.Policy(
        policy).compute_dtype)
    weights = tf.constant(rng.normal(size=(3, 7, 48)), tf.float32)
    ours = LayerNorm(epsilon=1e-12, dtype=policy)
    theirs = keras.layers.LayerNormalization(epsilon=1e-12, dtype=policy)
    ours.build(x.shape)
    theirs.build(x.shape)
    gamma = rng.normal(1.0, 0.3, size=48).astype("float32")
    for layer in (ours, theirs):
        layer.gamma.assign(gamma)
        layer.beta.assign(np.linspace(-1, 1, 48, dtype="float32"))
    y_ours, g_ours = _outputs_and_grads(ours, x, weights)
    y_theirs, g_theirs = _outputs_and_grads(theirs, x, weights)
    assert y_ours.dtype == y_theirs.dtype
    np.testing.assert_array_equal(tf.cast(y_ours, "float32"), tf.cast(y_theirs, "float32"))
    for name, a, b in zip(("x", "gamma", "beta"), g_ours, g_theirs):
        assert a.dtype == b.dtype, name
        a, b = tf.cast(a, "float32").numpy(), tf.cast(b, "float32").numpy()
        scale = np.abs(b).max()
        np.testing.assert_allclose(a, b, rtol=0, atol=tolerance * scale, err_msg=name)


def test_other_settings_fall_back_to_keras():
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 3, 8)), tf.float32)
    for kwargs in (dict(center=False), dict(scale=False), dict(axis=[1, 2])):
        ours, theirs = LayerNorm(**kwargs), keras.layers.LayerNormalization(**kwargs)
        np.testing.assert_array_equal(ours(x), theirs(x))
