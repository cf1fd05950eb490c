"""Attention's fused softmax + dropout: Keras' values and masks, gradients up to rounding."""

import numpy as np
import pytest
import tensorflow as tf

from bert_adapters.ops import settings
from bert_adapters.model.self_attention import SelfAttention

pytestmark = pytest.mark.usefixtures("cpu_numerics")


def _layer(dtype):
    layer = SelfAttention(num_heads=2, attention_dropout=0.3, dtype=dtype)
    layer.build((None, None, 16))
    return layer


def _inputs():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, 7, 16)), tf.float32)
    # The last two keys of the second example are padding.
    bias = np.zeros((3, 1, 1, 7), np.float32)
    bias[1, ..., 5:] = -1e9
    return x, tf.constant(bias)


_PROJECTIONS = ("query", "key", "value", "output")


def _run(layer, fuse, state, fast=False):
    """Output and gradients (inputs, kernels) of one training call from seed `state`."""
    layer.dropout.seed_generator.state.assign(state)
    x, bias = _inputs()
    weights = tf.cast(tf.range(16) % 5, tf.float32)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, attention_bias=bias, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
        return y, tape.gradient(loss, [x] + layer.trainable_variables)

    with settings.use(fused=fuse, fast_dropout=fast):  # Read when `step` is traced.
        graph = step.get_concrete_function(x).graph.as_graph_def()
        # The attention's own loops (the projections' bf16 bias adds are the dense layers').
        compiled = [n.name for n in graph.node if "Call" in n.op and n.attr["_XlaMustCompile"].b
                    and not any(f"/{name}" in n.name for name in _PROJECTIONS)]
        y, grads = step(x)
    return y, grads, compiled


@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-5), ("mixed_bfloat16", 2e-2)])
def test_fused_attention_has_keras_values_masks_and_gradients(dtype, tolerance):
    layer = _layer(dtype)
    state = layer.dropout.seed_generator.state.numpy()
    y_fused, g_fused, compiled = _run(layer, True, state)
    y_plain, g_plain, none = _run(layer, False, state)
    # The scores' cast and bias add, the mask, its scale and select, the
    # backward pass: four XLA loops.
    assert len(compiled) == 4 and not none
    # Bit for bit: the same softmax, the same dropout masks from the same seed.
    np.testing.assert_array_equal(tf.cast(y_fused, tf.float32).numpy(),
                                  tf.cast(y_plain, tf.float32).numpy())
    # Both drew one seed: the generator advanced alike.
    np.testing.assert_array_equal(layer.dropout.seed_generator.state.numpy(), state + [0, 1])
    # Against the largest gradient: the key bias's is zero up to rounding (softmax
    # ignores a constant per row), noise of either version.
    scale = max(float(tf.reduce_max(tf.abs(tf.cast(b, tf.float32)))) for b in g_plain)
    for a, b in zip(g_fused, g_plain):
        np.testing.assert_allclose(tf.cast(a, tf.float32).numpy(), tf.cast(b, tf.float32).numpy(),
                                   rtol=tolerance, atol=tolerance * scale)


def test_dropout_actually_drops_and_fast_masks_are_compiled_alike():
    layer = _layer("float32")
    x, bias = _inputs()
    layer.dropout.seed_generator.state.assign([0, 7])
    y_train = layer(x, attention_bias=bias, training=True)
    y_eval = layer(x, attention_bias=bias, training=False)
    assert not np.allclose(y_train.numpy(), y_eval.numpy())
    y_fused, _, compiled = _run(layer, True, [0, 7], fast=True)
    y_plain, _, none = _run(layer, False, [0, 7], fast=True)
    assert len(compiled) == 4 and not none
    np.testing.assert_array_equal(y_fused.numpy(), y_plain.numpy())
    y_default, _, _ = _run(layer, True, [0, 7])
    assert not np.array_equal(y_default.numpy(), y_fused.numpy())
