"""Dropout: Keras' masks from the compiled Philox loop, bit for bit; fast masks
(`--fast_dropout`): rate, scaling, determinism, off by default."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.ops import gen_stateless_random_ops_v2

from bert_adapters.ops import dropout, settings

pytestmark = pytest.mark.usefixtures("cpu_numerics")


def _bits(x):
    """`x`'s bit patterns, to compare floats exactly (signed zeros, NaNs)."""
    return tf.bitcast(x, {2: tf.uint16, 4: tf.uint32}[x.dtype.size]).numpy()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_compiled_masks_are_tensorflows(dtype):
    """`compiled_dropout` equals `tf.nn.experimental.stateless_dropout` (what Keras'
    Dropout calls) bit for bit: rates whose rounding to `dtype` matters, seeds
    of any sign, sizes that are not multiples of Philox's four words."""
    rng = np.random.default_rng(0)
    for shape, rates in (((1,), (0.5,)), ((3, 5, 7), (0.1, 1 / 3, 0.999)),
                         ((4, 12, 16, 16), (0.1, 0.9))):
        x = tf.cast(rng.normal(size=shape), dtype)
        for rate in rates:
            for seed in ([7, -3], [2**31 - 2, 123456789]):
                seed = tf.constant(seed, tf.int32)
                expected = tf.nn.experimental.stateless_dropout(x, rate=rate, seed=seed)
                np.testing.assert_array_equal(
                    _bits(dropout.compiled_dropout(x, rate, seed)), _bits(expected),
                    err_msg=f"shape {shape} rate {rate} seed {seed}")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_keep_threshold_is_tensorflows_comparison(dtype):
    """`m >= threshold` iff TensorFlow's uniform `m / 2**bits` (in `dtype`) `>= rate`,
    for every mantissa of the 16-bit types and those around the threshold of float32."""
    for rate in np.concatenate([[0.1, 0.5, 1 / 3, 0.05, 0.9, 0.999, 1e-6, 1 - 1e-9],
                                np.random.default_rng(3).uniform(size=40)]):
        threshold, bits = dropout.keep_threshold(float(rate), dtype)
        m = np.arange(2**bits) if bits < 16 else np.arange(threshold - 3, threshold + 3)
        m = m[(m >= 0) & (m < 2**bits)]
        uniform = tf.cast(tf.constant(m / 2**bits, tf.float64), dtype)  # exact
        np.testing.assert_array_equal((uniform >= float(rate)).numpy(), m >= threshold,
                                      err_msg=f"rate {rate}")


def test_compiled_masks_in_a_traced_function_of_unknown_shape():
    seed = tf.constant([11, 12], tf.int32)
    step = tf.function(lambda x: dropout.compiled_dropout(x, 0.1, seed),
                       input_signature=[tf.TensorSpec([None, None], tf.bfloat16)])
    for shape in ((5, 9), (32, 384)):
        x = tf.cast(tf.random.stateless_normal(shape, [1, 2]), tf.bfloat16)
        np.testing.assert_array_equal(
            _bits(step(x)), _bits(tf.nn.experimental.stateless_dropout(x, 0.1, seed=seed)))


def test_philox_counter_carries_as_tensorflows():
    """Blocks past the counter's low 64 bits carry into its high 64 (Philox's Skip)."""
    key = tf.constant([0x0123456789ABCDEF], tf.uint64)
    counter = tf.constant([2**64 - 5, 2**64 - 1], tf.uint64)   # the high word wraps too
    like = tf.zeros([8, 5], tf.float32)   # 10 blocks: 5 before the carry, 5 after
    uniform = gen_stateless_random_ops_v2.stateless_random_uniform_v2(
        [8, 5], key=key, counter=counter, alg=1, dtype=tf.float32)
    threshold, mantissa_bits = dropout.keep_threshold(0.5, tf.float32)
    bits = dropout._KEEP_BITS(key, counter, like, threshold, mantissa_bits, 1, 0)  # pylint: disable=protected-access
    assert bits.shape == (10,) and bits.dtype == tf.uint8
    np.testing.assert_array_equal(dropout.unpack_keep(bits, [8, 5], 4).numpy(),
                                  (uniform >= 0.5).numpy())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_compiled_dropout_gradient_is_tensorflows(dtype):
    x = tf.cast(np.random.default_rng(1).normal(size=(6, 7, 11)), dtype)
    dy = tf.cast(np.random.default_rng(2).normal(size=(6, 7, 11)), dtype)
    seed = tf.constant([5, 6], tf.int32)
    grads = []
    for fn in (lambda x: dropout.compiled_dropout(x, 0.2, seed),
               lambda x: tf.nn.experimental.stateless_dropout(x, 0.2, seed=seed)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        grads.append(_bits(tape.gradient(y, x, output_gradients=dy)))
    np.testing.assert_array_equal(grads[0], grads[1])


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("compiled", [True, False])
def test_leading_rows_get_the_whole_tensors_mask(compiled, dtype, fast):
    """`full_length`: the first `n` positions along axis -2 dropped out with the
    whole tensor's mask there (the [CLS]-only top layer), compiled (each element's
    Philox block alone) and from TensorFlow's kernels; values and gradients.
    Row widths 5 and 7 put rows across Philox blocks; 16 and 128 as the model's."""
    rng = np.random.default_rng(6)
    seed = tf.constant([2**33 + 7, -11], tf.int64)   # a SeedGenerator's draw
    if fast:
        whole_dropout = lambda x: dropout.fast_dropout(x, 0.1, seed)
    else:
        whole_dropout = lambda x: tf.nn.experimental.stateless_dropout(
            x, 0.1, seed=dropout.keras_seed(seed))
    for shape, n in (((3, 9, 5), 1), ((2, 3, 6, 7), 2), ((4, 2, 16, 16), 1), ((2, 128, 16), 1)):
        whole = tf.cast(rng.normal(size=shape), dtype)
        dy = tf.cast(rng.normal(size=shape), dtype)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(whole)
            rows = whole[..., :n, :]
            if compiled:
                y = dropout.compiled_dropout(rows, 0.1, seed, fast=fast, full_length=shape[-2])
            else:
                y = dropout.leading_rows_dropout(rows, 0.1, seed, shape[-2], fast=fast)
            expected = whole_dropout(whole)
        np.testing.assert_array_equal(_bits(y), _bits(expected[..., :n, :]), err_msg=str(shape))
        ours = tape.gradient(y, whole, output_gradients=dy[..., :n, :])
        theirs = tape.gradient(expected, whole, output_gradients=dy)
        np.testing.assert_array_equal(_bits(ours[..., :n, :]), _bits(theirs[..., :n, :]),
                                      err_msg=str(shape))


@pytest.mark.parametrize("fuse", [True, False])
def test_layer_compiles_its_masks_only_where_fused(fuse):
    layer = dropout.Dropout(0.1, seed=3)
    theirs = keras.layers.Dropout(0.1, seed=3)
    x = tf.random.stateless_normal((4, 8, 16), [3, 4])
    step = tf.function(lambda x, layer: layer(x, training=True))
    with settings.use(fused=fuse):
        graph = step.get_concrete_function(x, layer).graph.as_graph_def()
        compiled = [n for n in graph.node if n.attr["_XlaMustCompile"].b]
        assert len(compiled) == (2 if fuse else 0)   # the mask; its scale and select
        np.testing.assert_array_equal(step(x, layer), theirs(x, training=True))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_compiled_fast_masks_are_those_of_tensorflows_kernels(dtype):
    """`--fast_dropout`'s masks compiled (8 elements per Philox block, 16-bit
    halves) equal `fast_dropout`'s from TensorFlow's kernels, values and gradients."""
    rng = np.random.default_rng(4)
    for shape in ((1,), (3, 5, 7), (4, 12, 16, 16)):
        x = tf.cast(rng.normal(size=shape), dtype)
        dy = tf.cast(rng.normal(size=shape), dtype)
        seed = tf.constant([2**40 + 9, -5], tf.int64)   # a SeedGenerator's draw: int64
        outputs = []
        for fn in (lambda x: dropout.compiled_dropout(x, 0.1, seed, fast=True),
                   lambda x: dropout.fast_dropout(x, 0.1, seed)):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fn(x)
            outputs.append((_bits(y), _bits(tape.gradient(y, x, output_gradients=dy))))
        np.testing.assert_array_equal(outputs[0][0], outputs[1][0], err_msg=str(shape))
        np.testing.assert_array_equal(outputs[0][1], outputs[1][1], err_msg=str(shape))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_default_is_keras_dropout_bit_for_bit(dtype):
    x = tf.cast(np.random.default_rng(0).normal(size=(4, 8, 16)), dtype)
    ours = dropout.Dropout(0.1, seed=3, dtype=dtype)
    theirs = keras.layers.Dropout(0.1, seed=3, dtype=dtype)
    for _ in range(2):   # and the next draw
        np.testing.assert_array_equal(tf.cast(ours(x, training=True), "float32"),
                                      tf.cast(theirs(x, training=True), "float32"))


@pytest.fixture
def fast_masks():
    with settings.use(fast_dropout=True):
        yield


@pytest.mark.usefixtures("fast_masks")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fast_masks_rate_and_scale(dtype):
    layer = dropout.Dropout(0.1, seed=5, dtype=dtype)
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
    np.testing.assert_array_equal(again(x, training=True).numpy().astype("float64"), y)
    assert not np.array_equal(layer(x, training=True).numpy() != 0, kept)
    # Off at inference.
    np.testing.assert_array_equal(layer(x, training=False), x)


@pytest.mark.usefixtures("fast_masks")
def test_fast_masks_are_independent_between_elements():
    layer = dropout.Dropout(0.5, seed=1)
    kept = layer(tf.ones((200000,)), training=True).numpy() != 0
    # The two halves of one 32-bit draw decide neighbouring elements: they
    # must not agree more often than chance.
    agree = (kept[0::2] == kept[1::2]).mean()
    assert abs(agree - 0.5) < 0.01


@pytest.mark.usefixtures("fast_masks")
def test_gradient_is_the_mask_times_the_scale():
    layer = dropout.Dropout(0.2, seed=2)
    x = tf.ones((1000,))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        total = tf.reduce_sum(y)
    grad = tape.gradient(total, x).numpy()
    np.testing.assert_array_equal(grad, y.numpy())


@pytest.mark.parametrize("fast", [True, False])
def test_the_setting_reaches_every_encoder_dropout(fast, monkeypatch):
    from bert_adapters.model.bert_encoder import BertConfig, BertEncoder
    from bert_adapters.ops import attention_probs

    encoder = BertEncoder(BertConfig(vocab_size=50, hidden_dim=16, num_layers=2, num_heads=2,
                                     intermediate_dim=32, max_sequence_length=16),
                          adapter_size=4)
    calls = []
    for module, name in ((dropout, "compiled_dropout"), (attention_probs, "dropped_attention")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _f=original, _n=name, **k: (
            calls.append((_n, k["fast"])), _f(*a, **k))[1])
    ids = np.ones((2, 5), "int32")
    with settings.use(fast_dropout=fast):
        encoder({"input_word_ids": ids, "input_mask": ids, "input_type_ids": 0 * ids},
                training=True)
    # Embeddings, then per layer attention output and output; the attention
    # probabilities' own in each layer.
    assert sorted(calls) == sorted([("compiled_dropout", fast)] * (1 + 2 * 2)
                                   + [("dropped_attention", fast)] * 2)


def _per_replica(make_layer, x, state, **call_kwargs):
    """A layer from `make_layer`, built under a strategy of two replicas (conftest's two
    logical CPUs, the layer's variables mirrored as the trainer's), on `x` split
    between them from seed `state`: the replicas' outputs concatenated in replica order."""
    cpus = tf.config.list_logical_devices("CPU")
    assert len(cpus) >= 2, f"conftest could not configure two logical CPUs: {cpus}"
    strategy = tf.distribute.MirroredStrategy([d.name for d in cpus[:2]])
    with strategy.scope():
        layer = make_layer()
        layer.seed_generator.state.assign(state)
    shares = tf.split(x, 2)

    @tf.function
    def step():
        def share(context):
            return tf.gather(tf.stack(shares), context.replica_id_in_sync_group)

        inputs = strategy.experimental_distribute_values_from_function(share)
        return strategy.run(lambda v: layer(v, training=True, **call_kwargs), args=(inputs,))

    return tf.concat(strategy.experimental_local_results(step()), 0)


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("shape,full_length", [((8, 6, 16), None), ((4, 3, 5), None),
                                               ((8, 1, 16), 6), ((18,), None)])
def test_replicas_draw_the_global_batchs_mask(shape, full_length, fast):
    """Two replicas holding halves of a batch drop what one device drops for the
    whole batch (aligned Philox blocks, a size that is not, the [CLS]-only rows),
    where TensorFlow's kernels would drop the same positions of both halves."""
    x = tf.constant(np.random.default_rng(0).normal(size=shape), tf.float32)
    make = lambda: dropout.Dropout(0.3, seed=5)  # noqa: E731
    with settings.use(fast_dropout=fast):
        layer = make()
        layer.seed_generator.state.assign([5, 11])
        one = layer(x, training=True, full_length=full_length)
        two = _per_replica(make, x, [5, 11], full_length=full_length)
    np.testing.assert_array_equal(_bits(two), _bits(one))
    assert (two.numpy() == 0).any()


@pytest.mark.parametrize("compiled", [True, False])
def test_replicas_do_not_share_masks(compiled):
    x = tf.ones((8, 6, 16))
    with settings.use(compiled_masks=compiled):
        halves = tf.split(_per_replica(lambda: dropout.Dropout(0.5, seed=5), x, [5, 11]), 2)
    assert not np.array_equal(halves[0].numpy(), halves[1].numpy())
