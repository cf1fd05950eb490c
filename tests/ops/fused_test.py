"""fused.widen / fused.narrow: bfloat16 <-> float32 by integer arithmetic, the bits of a cast."""

import numpy as np
import pytest
import tensorflow as tf

from bert_adapters.ops import fused

pytestmark = pytest.mark.usefixtures("cpu_numerics")


def test_widen_is_the_cast_for_every_bfloat16_value():
    values = tf.bitcast(tf.constant(np.arange(65536, dtype=np.uint16)), tf.bfloat16)
    widened = fused.compile(fused.widen)(values)
    assert widened.dtype == tf.float32
    np.testing.assert_array_equal(tf.bitcast(widened, tf.uint32).numpy(),
                                  tf.bitcast(tf.cast(values, tf.float32), tf.uint32).numpy())


def test_narrow_rounds_to_nearest_even_as_the_cast_does():
    rng = np.random.default_rng(0)
    bits = np.concatenate([
        rng.integers(0, 2 ** 32, size=200_000, dtype=np.uint64).astype(np.uint32),
        # Exact ties (low half 0x8000) with even and odd high halves, one
        # below and above, denormals, the largest finite values, infinities.
        np.array([0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001, 0x00008000, 0x00018000,
                  0x007FFFFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000, 0x7F800000, 0xFF800000,
                  0x00000000, 0x80000000], np.uint32)])
    values = tf.bitcast(tf.constant(bits), tf.float32)
    narrowed = fused.compile(lambda v: fused.narrow(v, tf.bfloat16))(values)
    cast = tf.cast(values, tf.bfloat16)
    got, want = (tf.bitcast(t, tf.uint16).numpy() for t in (narrowed, cast))
    nan = np.isnan(values.numpy())
    assert nan.any() and np.isnan(tf.cast(narrowed, tf.float32).numpy()[nan]).all()
    np.testing.assert_array_equal(got[~nan], want[~nan])


def test_other_dtypes_are_plain_casts():
    x = tf.constant([1.5, -2.25], tf.float16)
    assert fused.widen(x).dtype == tf.float32
    assert fused.widen(tf.constant([1.0], tf.float64)).dtype == tf.float64
    assert fused.narrow(tf.constant([1.5], tf.float32), tf.float16).dtype == tf.float16
