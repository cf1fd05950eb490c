"""Backward passes compiled by XLA into single loops (where XLA compiles).

Hand-written gradients of elementwise chains (the GELUs', the attention
probabilities' softmax and dropout) are, as TensorFlow kernels, one pass over
the tensor per op: a dozen for a GELU gradient. Compiled by XLA each is one
loop, 1.7-3x faster on a CPU (benchmarks/profile_step.py). Only gradients are
compiled: XLA's vector loop and its scalar tail round some values differently
(tests/activations_test.py found that for a 16-bit GELU), which gradients
tolerate and forward values, kept bit for bit those of Keras, do not.
XLA compiles once per input shape (about 0.1 s).
"""

import functools

import tensorflow as tf
from absl import logging

enabled = True  # False: every gradient op by op (for comparisons and tests).


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
    """Whether gradients run compiled: fusion on and XLA compiling here."""
    return enabled and xla_available()


def choose(fused_fn, plain_fn):
    """`fused_fn` if `active()`, else `plain_fn`."""
    return fused_fn if active() else plain_fn
