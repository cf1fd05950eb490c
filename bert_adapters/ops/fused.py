"""Backward passes compiled by XLA into single loops (where XLA compiles).

Hand-written gradients of elementwise chains (the GELUs', the attention
probabilities' softmax and dropout) are, as TensorFlow kernels, one pass over
the tensor per op: a dozen for a GELU gradient. Compiled by XLA each is one
loop, which runs faster on a CPU (benchmarks/profile_step.py;
docs/performance.md). Forward passes are compiled only where the loop's bits
are Keras' own (dropout masks and selects, the attention scores' cast and
bias add, 16-bit GELUs read from a table of their values by `lookup`:
tested bit for bit); XLA's vector loop and its scalar tail round some math
differently (a 16-bit GELU, tests/ops/activations_test.py; multiply-adds it
fuses), which gradients tolerate and forward values, kept bit for bit those
of Keras, do not. Inside the loops `widen` and `narrow` convert bfloat16 by
integer arithmetic on CPUs, where XLA's own conversion is slower. XLA
compiles once per input shape.

Whether the loops run, and which conversions they use, is decided by
`settings` (`settings.compiled_loops`, `settings.integer_bf16`).
"""

import functools

import tensorflow as tf
from absl import logging

from bert_adapters.ops import settings


def compile(fn):  # pylint: disable=redefined-builtin
    """`fn` as a function XLA compiles (a nested `tf.function(jit_compile=True)`)."""
    return tf.function(fn, jit_compile=True)


@functools.cache
def xla_available():
    """Whether XLA compiles here (it does in TensorFlow's pip packages)."""
    try:
        with tf.init_scope():
            compile(lambda x: x * 2.0)(tf.zeros([2]))
        return True
    except (tf.errors.OpError, NotImplementedError, ValueError) as error:
        logging.warning("XLA is not available (%s): gradients run op by op", error)
        return False


def active():
    """Whether gradients run compiled (`settings.compiled_loops`)."""
    return settings.compiled_loops()


def widen(x):
    """`x` in float32 (float64 stays), inside a compiled loop.

    bfloat16 is the high half of a float32, so on CPUs it widens by a shift
    of its bits, faster there than XLA's own conversion and the same bits.
    GPUs and TPUs keep XLA's conversion (`settings.integer_bf16`).
    """
    if x.dtype == tf.bfloat16 and settings.integer_bf16():
        bits = tf.cast(tf.bitcast(x, tf.uint16), tf.uint32)
        return tf.bitcast(tf.bitwise.left_shift(bits, 16), tf.float32)
    return x if x.dtype == tf.float64 else tf.cast(x, tf.float32)


def narrow(x, dtype):
    """float32 `x` as `dtype`, inside a compiled loop: bfloat16 on CPUs rounded
    to nearest even by integer arithmetic (`widen`'s reason; NaN stays NaN),
    the same bits as a cast."""
    dtype = tf.as_dtype(dtype)
    if dtype == tf.bfloat16 and x.dtype == tf.float32 and settings.integer_bf16():
        bits = tf.bitcast(x, tf.uint32)
        odd = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 16), 1)
        high = tf.bitwise.right_shift(bits + 0x7FFF + odd, 16)
        high = tf.where(tf.math.is_nan(x), tf.constant(0x7FC0, tf.uint32), high)
        return tf.bitcast(tf.cast(high, tf.uint16), tf.bfloat16)
    return tf.cast(x, dtype)


def multiply(x, scale):
    """`x * scale` in `x`'s dtype (`scale` a scalar of it), inside a compiled loop:
    bfloat16 on CPUs as the exact float32 product rounded once by `narrow`,
    the bits of bfloat16's own product."""
    if x.dtype == tf.bfloat16 and settings.integer_bf16():
        return narrow(widen(x) * widen(scale), x.dtype)
    return x * scale


def _by_bits(table, x):
    return tf.gather(table, tf.cast(tf.bitcast(x, tf.uint16), tf.int32))


_BY_BITS = compile(_by_bits)


def tabulated(x):
    """Whether `lookup` serves `x` here: a 16-bit float in a traced function, with
    GELU tables on (`settings.gelu_tables`: XLA compiling, on CPUs; a compiled
    gather from a 65,536-entry table is faster there than a 16-bit GELU's
    TensorFlow kernels; GPUs and TPUs keep their kernels)."""
    return (x.dtype in (tf.bfloat16, tf.float16) and not tf.executing_eagerly()
            and settings.gelu_tables())


def lookup(table, x):
    """`table[bits of x]` as one compiled gather: `table` holds a function's
    value at every 16-bit pattern of `x`'s dtype, in bit order."""
    return _BY_BITS(table, x)


def choose(fused_fn, plain_fn):
    """`fused_fn` if `active()`, else `plain_fn`."""
    return fused_fn if active() else plain_fn
