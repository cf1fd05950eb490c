"""The GELUs: Keras' values bit for bit, gradients equal to the composite formula's."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import erf

from bert_adapters.ops import activations, fused, settings

pytestmark = pytest.mark.usefixtures("cpu_numerics")


def _grad(fn, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        total = tf.reduce_sum(y * tf.cast(tf.range(tf.size(x)) % 7, y.dtype))
    return y, tape.gradient(total, x)


@pytest.mark.parametrize("name,approximate", [("gelu", False), ("gelu_tanh", True)])
# Gradients of size up to 6 (the weights); near the tails both forms round
# differently (1 - tanh^2, 1 + tanh), so the tolerance is absolute too.
@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-4), ("bfloat16", 6e-2)])
@pytest.mark.parametrize("fuse", [True, False])
def test_values_and_gradients_match_the_composite(name, approximate, dtype, tolerance, fuse):
    x = tf.cast(tf.linspace(-8.0, 8.0, 4001), dtype)
    with settings.use(fused=fuse):
        ours, ours_grad = _grad(activations.get(name), x)
    theirs, theirs_grad = _grad(lambda v: keras.activations.gelu(v, approximate=approximate), x)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_allclose(tf.cast(ours_grad, "float64"), tf.cast(theirs_grad, "float64"),
                               rtol=tolerance / 10, atol=tolerance)


@pytest.mark.parametrize("name,approximate", [("gelu", False), ("gelu_tanh", True)])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("traced", [False, True])
def test_forms_equal_keras_bit_for_bit_on_every_16_bit_value(name, approximate, dtype, traced):
    # Eagerly the formula (the exact form's erfc through float32, faster than
    # TensorFlow's 16-bit kernel); traced, one gather from the table of the
    # traced formula's values (fused.lookup). TensorFlow's own eager and
    # traced values differ on a few inputs (1 bfloat16 and 235 float16 ones
    # for the exact form): each is compared with its own mode.
    bits = tf.constant(np.arange(65536, dtype=np.uint16))
    x = tf.bitcast(bits, tf.as_dtype(dtype))
    ours = activations.get(name)
    theirs = lambda v: keras.activations.gelu(v, approximate=approximate)  # noqa: E731
    if traced:
        ours, theirs = tf.function(ours), tf.function(theirs)
    a = tf.bitcast(ours(x), tf.uint16).numpy()
    b = tf.bitcast(theirs(x), tf.uint16).numpy()
    nan = tf.math.is_nan(tf.cast(x, tf.float32)).numpy()  # NaN payloads may differ
    assert (a != b)[~nan].sum() == 0
    assert np.isnan(tf.cast(ours(x), tf.float32).numpy()[nan]).all()


@pytest.mark.parametrize("traced", [False, True])
def test_exact_form_equals_keras_bit_for_bit_in_float32(traced):
    """float32 inputs of every magnitude, subnormals, zeros of both signs and infinities."""
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.normal(scale=3.0, size=50000),
                        rng.choice([-1, 1], 20000) * 10.0 ** rng.uniform(-45, 38, 20000),
                        [0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45]]).astype(np.float32)
    ours, theirs = activations.get("gelu"), lambda v: keras.activations.gelu(v, approximate=False)
    if traced:
        ours, theirs = tf.function(ours), tf.function(theirs)
    np.testing.assert_array_equal(tf.bitcast(ours(tf.constant(x)), tf.uint32).numpy(),
                                  tf.bitcast(theirs(tf.constant(x)), tf.uint32).numpy())


@pytest.mark.parametrize("name", activations.ACTIVATIONS)
@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_traced_16_bit_forward_is_one_gather_equal_to_the_formula(name, dtype):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(0, 4, (3, 5, 7)), dtype)
    forward = tf.function(activations.get(name))
    graph = forward.get_concrete_function(tf.TensorSpec([None, 5, 7], dtype)).graph
    assert len(_compiled_calls(graph)) == 1
    tabulated = forward(x)
    with settings.use(fused=False):
        plain = tf.function(activations.get(name))
        assert not _compiled_calls(plain.get_concrete_function(x).graph)
        np.testing.assert_array_equal(tf.bitcast(tabulated, tf.uint16).numpy(),
                                      tf.bitcast(plain(x), tf.uint16).numpy())


def test_exact_gradient_against_the_closed_form():
    x = np.linspace(-6, 6, 1201)
    _, grad = _grad(activations.get("gelu"), tf.constant(x, tf.float64))
    weights = np.arange(x.size) % 7
    cdf = 0.5 * (1 + erf(x / np.sqrt(2)))
    pdf = np.exp(-x ** 2 / 2) / np.sqrt(2 * np.pi)
    # (TensorFlow's float64 erfc is good to about 1e-7 relative.)
    np.testing.assert_allclose(grad.numpy(), weights * (cdf + x * pdf), rtol=1e-6, atol=1e-7)


def test_second_use_in_a_traced_function_and_unknown_name():
    f = tf.function(lambda v: _grad(activations.get("gelu"), v)[1])
    np.testing.assert_allclose(f(tf.constant([0.0, 1.0])).numpy()[0], 0.5 * 0, atol=1e-7)
    with pytest.raises(ValueError, match="expected one of"):
        activations.get("relu")


def _compiled_calls(graph):
    """The XLA-compiled function calls in a traced `graph`."""
    return [n.name for n in graph.as_graph_def().node
            if "Call" in n.op and n.attr["_XlaMustCompile"].b]


def _calls_compiled_by_xla(fn, dtype):
    """XLA-compiled function calls in the traced gradient of `fn`."""
    def grad(v):
        return _grad(fn, v)[1]
    return _compiled_calls(tf.function(grad).get_concrete_function(
        tf.TensorSpec([None, 16], dtype)).graph)


@pytest.mark.parametrize("name", activations.ACTIVATIONS)
@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_gradient_is_one_xla_loop_and_fallback_is_op_by_op(name, dtype):
    assert fused.xla_available()
    # The gradient's loop, and for 16 bits the forward's gather.
    expected = 1 if dtype == tf.float32 else 2
    assert len(_calls_compiled_by_xla(activations.get(name), dtype)) == expected
    with settings.use(fused=False):
        assert not _calls_compiled_by_xla(activations.get(name), dtype)


def test_fused_gradient_equals_the_op_by_op_one_on_many_shapes():
    # XLA compiles per shape; every shape gives the op-by-op values up to float
    # rounding (the tails' cancellation in cdf + x pdf: absolute 1e-6 at most).
    rng = np.random.default_rng(0)
    for shape in [(3,), (5, 7), (2, 3, 1536)]:
        x = tf.constant(rng.normal(0, 3, shape), tf.float32)
        dy = tf.constant(rng.normal(0, 1, shape), tf.float32)
        for name in activations.ACTIVATIONS:
            compiled = activations._FUSED_GRADIENTS[name](x, dy)
            plain = activations._GRADIENTS[name](x, dy)
            np.testing.assert_allclose(compiled.numpy(), plain.numpy(), rtol=1e-5, atol=1e-5)


def test_without_xla_gradients_run_op_by_op(monkeypatch):
    def no_xla(*args):
        raise tf.errors.UnimplementedError(None, None, "no XLA JIT here")

    monkeypatch.setattr(fused, "compile", lambda fn: no_xla)
    monkeypatch.setitem(activations._FUSED_GRADIENTS, "gelu", no_xla)
    monkeypatch.setitem(activations._FUSED_GRADIENTS, "gelu_tanh", no_xla)
    fused.xla_available.cache_clear()
    try:
        assert not fused.xla_available()
        x = tf.constant([-1.0, 0.0, 2.0])
        for name in activations.ACTIVATIONS:
            _, grad = _grad(activations.get(name), x)
            expected = activations._GRADIENTS[name](x, tf.cast(tf.range(3) % 7, tf.float32))
            np.testing.assert_array_equal(grad.numpy(), expected.numpy())
    finally:
        fused.xla_available.cache_clear()
