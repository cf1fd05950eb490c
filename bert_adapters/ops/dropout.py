"""Dropout: Keras' masks drawn by one compiled loop, and opt-in cheaper masks.

By default `Dropout` gives exactly what Keras' `Dropout` gives (it calls
`tf.nn.experimental.stateless_dropout`), only faster. TensorFlow's
`StatelessRandomUniformV2` CPU kernel runs the Philox generator one 4-word
block at a time in scalar code and writes a float per element; the dropout
then compares, scales and selects in three more kernels, and its gradient
keeps a boolean mask. `keep_bits` runs the same Philox blocks (the same key
and counter, derived from the seed by TensorFlow's own op) as one XLA loop
that vectorises, compares each word's mantissa bits with the rate in
integers (`keep_threshold`) and packs four keep bits per byte; one more loop
scales and selects, and the backward pass reuses the packed bits (a quarter
of the boolean mask's memory). Values and masks equal
`stateless_dropout`'s for float32, bfloat16 and float16
(tests/ops/dropout_test.py); the masks, scale and select take a fraction of
the stock kernels' time (benchmarks/profile_step.py, `--stock_dropout` for
the stock kernels; docs/performance.md). Where the compiled loops do not
apply (`settings.compiled_dropout`: XLA missing, the loops off, a GPU or TPU
among the run's devices, `compiled_masks=False`) or for other dtypes:
Keras' ops.

The [CLS]-only top layer computes the first position of each row only; its
dropouts take `full_length`, the whole rows' length, and draw the masks the
whole tensor's dropout would draw at those positions: Philox is counter
based, so each such element's block is computed alone (`keep_bits`), or,
where the compiled loops do not apply, the rows are padded to the whole
tensor for TensorFlow's kernels (`leading_rows_dropout`).

Several replicas (tf.distribute) read one seed generator, so TensorFlow's
kernels would drop the same positions of every replica's share of a batch.
A replica's compiled mask is instead the global batch's mask at its rows
(`replica_position`: replica r holds the r-th equal share), the mask one
device draws for the whole batch: a multi-replica step is the one-device
step up to float rounding (tests/training/trainer_test.py). Where the
compiled loops do not apply, each replica's seed is its own
(`replica_seed`): independent masks, not the one-device ones.

Fast masks (opt-in `--fast_dropout`, `settings.fast_dropout`) compare 16
random bits per element against the rate instead, so one 32-bit draw serves
two elements: half the generator's work, the same Bernoulli masks except
that the dropout rate is rounded to a multiple of 2^-16 (0.1 -> 0.1000061)
and kept values are scaled by the exact inverse of the rounded keep rate. The masks differ from Keras',
so they are opt-in. `keep_bits(fast=True)` compiles them the same way (eight
elements per Philox block); where the compiled loops do not apply,
`fast_dropout` draws the same masks with TensorFlow's kernels.
"""

import math
import typing

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.ops import gen_stateless_random_ops_v2

from bert_adapters.ops import fused, settings

MASK_BITS = 16

# Philox4x32-10 (Salmon et al. 2011), as TensorFlow's random/philox_random.h.
_PHILOX_M0, _PHILOX_M1 = 0xD2511F53, 0xCD9E8D57   # round multipliers
_PHILOX_W0, _PHILOX_W1 = 0x9E3779B9, 0xBB67AE85   # key increments
_PHILOX_ROUNDS = 10
# Replicas' seeds for TensorFlow's kernels: apart in the generator's fixed
# component, which a `SeedGenerator` never advances.
_REPLICA_SEED_STRIDE = 0x3C6EF35
# A uniform float of TensorFlow's is 1.m - 1 with the low mantissa bits of
# one 32-bit Philox word as m (random_distributions.h): 23 bits for float32,
# 7 for bfloat16, 10 for float16.
_MANTISSA_BITS = {tf.float32: 23, tf.bfloat16: 7, tf.float16: 10}


@keras.saving.register_keras_serializable(package="bert_adapters")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` with compiled masks, or fast ones (`settings.fast_dropout`)."""

    def call(self, inputs, training=False, full_length=None):
        """`full_length`: `inputs` are the first positions along axis -2 of a
        tensor with `full_length` positions there (the [CLS]-only top layer's
        rows), and the mask is that tensor's mask at those positions: the
        layer drops out what the whole tensor's dropout would."""
        if not training or self.noise_shape is not None or not 0.0 < self.rate < 1.0:
            return super().call(inputs, training=training)
        # One seed drawn per call on every path, as Keras' own.
        if philox_here(inputs.dtype):
            return compiled_dropout(inputs, self.rate, self.seed_generator.next(),
                                    fast=settings.fast_dropout(), full_length=full_length)
        _, replicas = replica_position()
        if full_length is not None:
            return leading_rows_dropout(inputs, self.rate,
                                        replica_seed(self.seed_generator.next()),
                                        full_length, fast=settings.fast_dropout())
        if settings.fast_dropout():
            return fast_dropout(inputs, self.rate, replica_seed(self.seed_generator.next()))
        if replicas > 1:
            return tf.nn.experimental.stateless_dropout(
                inputs, rate=self.rate, seed=keras_seed(replica_seed(self.seed_generator.next())))
        return super().call(inputs, training=training)


def keras_seed(seed):
    """A `SeedGenerator` draw cast as Keras' TensorFlow backend casts it."""
    if seed.dtype != tf.int32:
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
    return seed


def philox_here(dtype):
    """Whether `keep_bits` draws the masks of `dtype` here, compiled
    (`settings.compiled_dropout`, for the dtypes whose uniforms it knows)."""
    return tf.as_dtype(dtype) in _MANTISSA_BITS and settings.compiled_dropout()


def _philox_words(key, counter, index):
    """The four 32-bit words (in uint64 lanes) of the Philox blocks at `counter`
    + `index` (uint64), as TensorFlow's `FillPhiloxRandom` lays blocks out."""
    u64 = lambda v: tf.constant(v, tf.uint64)
    low32 = u64(0xFFFFFFFF)
    high = lambda v: tf.bitwise.right_shift(v, u64(32))
    # The 128-bit counter plus the block index, carried as Philox's Skip does.
    low = counter[0] + index
    high_words = counter[1] + tf.cast(low < index, tf.uint64)
    c0, c1, c2, c3 = low & low32, high(low), high_words & low32, high(high_words)
    k0, k1 = key[0] & low32, high(key[0])
    for _ in range(_PHILOX_ROUNDS):
        p0, p1 = c0 * u64(_PHILOX_M0), c2 * u64(_PHILOX_M1)
        c0, c1, c2, c3 = high(p1) ^ c1 ^ k0, p1 & low32, high(p0) ^ c3 ^ k1, p0 & low32
        k0, k1 = (k0 + u64(_PHILOX_W0)) & low32, (k1 + u64(_PHILOX_W1)) & low32
    return c0, c1, c2, c3


def _philox_keep_bits(key, counter, like, threshold, field_bits, fields, first_block):
    """Keep bits of `like`'s elements, `4 * fields` per byte, from Philox blocks.

    Philox block i (at `counter` + `first_block` + i) gives four 32-bit words; each word
    decides `fields` elements: with one field, its low `field_bits` bits (a
    uniform float's mantissa), with two, its low and high 16 bits. An element
    is kept when its field, read as an integer, reaches `threshold`; element
    `4 * fields * i + j` is bit j of byte i. Unsigned 64-bit lanes hold the
    words and their products.
    """
    per_block = 4 * fields
    blocks = (tf.size(like, out_type=tf.int64) + per_block - 1) // per_block
    words = _philox_words(key, counter, tf.cast(tf.range(blocks) + first_block, tf.uint64))
    bits = tf.zeros_like(words[0], tf.uint8)
    for k, word in enumerate(words):
        for f in range(fields):
            kept = _kept(word, tf.constant(f * field_bits, tf.uint64), field_bits, threshold)
            bits = bits | tf.bitwise.left_shift(kept, tf.constant(k * fields + f, tf.uint8))
    return bits


def _kept(word, shift, field_bits, threshold):
    """1 (uint8) where the `field_bits`-bit field of `word` at `shift` reaches `threshold`."""
    field = tf.bitwise.right_shift(word, shift) & tf.constant((1 << field_bits) - 1, tf.uint64)
    return tf.cast(field >= tf.constant(threshold, tf.uint64), tf.uint8)


def _philox_keep_rows(key, counter, like, full_length, threshold, field_bits, fields,
                      first_row):
    """Keep flags (uint8 0 or 1, one per byte) of `like`'s elements, `like` being
    the first `n` positions along axis -2 of a tensor whose axis -2 has
    `full_length`: that tensor's `_philox_keep_bits` at those positions. `like`'s
    leading positions (all axes before -2, flattened) start at `first_row` of
    that tensor's (a replica's share of a global batch).

    Each element's Philox block is computed alone (a handful of rows: the
    [CLS]-only top layer's), so the blocks of the other rows are never drawn.
    """
    shape = tf.shape(like, out_type=tf.int64)
    row = tf.cast(shape[-2] * shape[-1], tf.uint64)          # n positions of the last axis
    full_row = tf.cast(full_length, tf.uint64) * tf.cast(shape[-1], tf.uint64)
    i = tf.cast(tf.range(tf.size(like, out_type=tf.int64)), tf.uint64)
    element = (i // row + tf.cast(first_row, tf.uint64)) * full_row + i % row  # in the whole
    per_block = tf.constant(4 * fields, tf.uint64)
    words = _philox_words(key, counter, element // per_block)
    slot = element % per_block
    k, f = slot // tf.constant(fields, tf.uint64), slot % tf.constant(fields, tf.uint64)
    word = tf.where(k == 0, words[0], tf.where(k == 1, words[1],
                                               tf.where(k == 2, words[2], words[3])))
    return _kept(word, f * tf.constant(field_bits, tf.uint64), field_bits, threshold)


def unpack_keep(bits, shape, per_byte):
    """The boolean keep mask of `shape` from `keep_bits`' bytes."""
    shifts = tf.constant(list(range(per_byte)), tf.uint8)
    keep = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits[:, None], shifts),
                                  tf.constant(1, tf.uint8)) > 0
    return tf.reshape(tf.reshape(keep, [-1])[:tf.reduce_prod(shape)], shape)


class KeepMask(typing.NamedTuple):
    """A dropout's keep mask, `per_byte` elements packed per uint8 of `bits`
    (`unpack_keep`), and the kept values' `scale` (a scalar of the output dtype)."""
    bits: tf.Tensor
    per_byte: int
    scale: tf.Tensor


def _scaled_select(x, mask):
    """`where(keep, x * scale, 0)`, in the scale's dtype: dropout's forward and backward."""
    y = fused.multiply(fused.narrow(x, mask.scale.dtype), mask.scale)
    keep = unpack_keep(mask.bits, tf.shape(y), mask.per_byte)
    return tf.where(keep, y, tf.zeros([], y.dtype))


_KEEP_BITS = fused.compile(_philox_keep_bits)
_KEEP_ROWS = fused.compile(_philox_keep_rows)
scaled_select = fused.compile(_scaled_select)


def keep_threshold(rate, dtype):
    """`(threshold, mantissa_bits)`: TensorFlow's uniform `u` of `dtype` is `>= rate`
    (the rate rounded to `dtype`, as `stateless_dropout` compares) exactly when
    its mantissa integer `m` (`u = m / 2**mantissa_bits`) is `>= threshold`."""
    dtype = tf.as_dtype(dtype)
    bits = _MANTISSA_BITS[dtype]
    rounded = float(np.asarray(rate, dtype=dtype.as_numpy_dtype))
    return math.ceil(rounded * 2 ** bits), bits


def _fast_threshold(rate):
    """Fast masks drop a 16-bit draw below `round(rate * 2**16)`."""
    threshold = int(round(rate * 2 ** MASK_BITS))
    if not 0 < threshold < 2 ** MASK_BITS:
        raise ValueError(f"dropout rate {rate} rounds to {threshold}/{2 ** MASK_BITS}: "
                         f"use the default masks for it")
    return threshold


def keep_bits(like, rate, seed, dtype=None, fast=False, full_length=None):
    """A `KeepMask`: a dropout's keep mask for an `x` of `like`'s shape and
    `dtype` (default `like`'s), packed by one XLA loop, and the kept values'
    scale in `dtype`.

    `seed`: a `SeedGenerator` draw. The default mask is the one
    `tf.nn.experimental.stateless_dropout` draws with Keras' cast of it
    (`keras_seed`); `fast`: `fast_dropout`'s. `full_length`: `like` holds the
    first positions along axis -2 of a tensor with `full_length` positions
    there, and the mask is that tensor's mask at those positions (one flag
    per byte), drawn without the other positions' blocks.
    """
    dtype = tf.as_dtype(dtype or like.dtype)
    if fast:
        threshold, field_bits, fields = _fast_threshold(rate), MASK_BITS, 2
        key, counter = gen_stateless_random_ops_v2.stateless_random_get_key_counter(
            tf.cast(seed, tf.int64))
        scale = tf.cast(2 ** MASK_BITS / (2 ** MASK_BITS - threshold), dtype)
    else:
        (threshold, field_bits), fields = keep_threshold(rate, dtype), 1
        key, counter = gen_stateless_random_ops_v2.stateless_random_get_key_counter(
            keras_seed(seed))
        scale = tf.constant(1 / (1 - rate), dtype)
    replica, replicas = replica_position()
    per_block = 4 * fields
    if full_length is None and replicas == 1:
        return KeepMask(_KEEP_BITS(key, counter, like, threshold, field_bits, fields, 0),
                        per_block, scale)
    # A replica's share of a global batch: the global tensor's mask at its rows.
    shape = tf.shape(like, out_type=tf.int64)
    size = tf.size(like, out_type=tf.int64)
    known = math.prod(d for d in like.shape.as_list() if d is not None)
    if full_length is None and known % per_block == 0:   # whole Philox blocks per replica
        first_block = tf.cast(replica, tf.int64) * (size // per_block)
        return KeepMask(_KEEP_BITS(key, counter, like, threshold, field_bits, fields,
                                   first_block), per_block, scale)
    if like.shape.rank == 1:   # rows of one element each
        like, shape = tf.reshape(like, [-1, 1]), tf.stack([size, 1])
    leading = size // (shape[-2] * shape[-1])
    length = shape[-2] if full_length is None else full_length
    return KeepMask(_KEEP_ROWS(key, counter, like, length, threshold, field_bits, fields,
                               tf.cast(replica, tf.int64) * leading), 1, scale)


def replica_seed(seed):
    """`seed` for this replica's TensorFlow dropout kernels: its own stream when
    several replicas run a step (they read one seed generator, and would
    otherwise drop the same positions of their shares); `seed` itself on one."""
    replica, replicas = replica_position()
    if replicas == 1:
        return seed
    shift = tf.cast(replica, seed.dtype) * tf.constant(_REPLICA_SEED_STRIDE, seed.dtype)
    return seed + tf.stack([shift, tf.zeros([], seed.dtype)])


def replica_position():
    """`(replica id, replicas in sync)` of the replica context this runs in: `(0, 1)`
    outside a multi-replica step. Replicas hold equal, consecutive shares of each
    global batch (`input_pipeline.split_by_replica`), so `keep_bits` draws for a
    replica the global batch's mask at its rows, the mask one device would draw."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return 0, 1
    return context.replica_id_in_sync_group, context.num_replicas_in_sync


def compiled_dropout(x, rate, seed, fast=False, full_length=None):
    """Dropout of `x` with `keep_bits`' mask: Keras' values bit for bit (or, with
    `fast`, `fast_dropout`'s); the backward pass keeps only the packed bits.
    `full_length`: see `keep_bits`."""

    @tf.custom_gradient
    def forward(x):
        mask = keep_bits(x, rate, seed, fast=fast, full_length=full_length)
        return scaled_select(x, mask), lambda dy: scaled_select(dy, mask)

    return forward(x)


def leading_rows_dropout(x, rate, seed, full_length, fast=False):
    """Dropout of `x`, the first positions along axis -2 of a tensor with
    `full_length` positions there, with that tensor's mask at those positions,
    from TensorFlow's kernels: `x` padded with zeros to the whole tensor,
    dropped out as Keras does (or as `fast_dropout`), and cut back."""
    shape = tf.shape(x)
    rank = len(x.shape)
    padding = [[0, 0]] * (rank - 2) + [[0, full_length - shape[-2]], [0, 0]]
    whole = tf.pad(x, padding)
    if fast:
        dropped = fast_dropout(whole, rate, seed)
    else:
        dropped = tf.nn.experimental.stateless_dropout(whole, rate=rate, seed=keras_seed(seed))
    return dropped[..., :shape[-2], :]


def fast_dropout(inputs, rate, seed):
    """Dropout of `inputs` at `rate` from 16-bit draws, TensorFlow's kernels; `seed` int `[2]`."""
    threshold = _fast_threshold(rate)
    scale_bits = 2 ** MASK_BITS
    size = tf.size(inputs)
    words = tf.random.stateless_uniform(
        [(size + 1) // 2], tf.cast(seed, tf.int64), minval=None, maxval=None, dtype=tf.uint32)
    bits = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
    keep = tf.reshape(bits >= tf.constant(threshold, tf.uint16), tf.shape(inputs))
    scale = tf.cast(scale_bits / (scale_bits - threshold), inputs.dtype)
    return tf.where(keep, inputs * scale, tf.zeros_like(inputs))

