"""The [CLS]-only top layer (`--cls_only_top_layer`) against the full computation."""

import numpy as np
import pytest
import tensorflow as tf

from bert_adapters.model import heads, trainable
from bert_adapters.model.bert_encoder import BertEncoder
from bert_adapters.model.packed_models import PackedClassifier
from bert_adapters.ops import settings
from bert_adapters.training import packing
from conftest import random_canonical_weights, random_inputs, tiny_config

INTERMEDIATE = 16   # tiny_config's feed-forward width


@pytest.fixture(scope="module")
def models():
    """(full, cls_only, encoder): one encoder (adapters in layers 2-3, dropout off), two heads
    sharing its weights and the same classifier values."""
    encoder = BertEncoder(tiny_config(num_layers=3), adapter_size=2, adapter_init_scale=0.3,
                          adapter_layers="2-3")
    return _two_heads(encoder, head_dropout=0.0, seed=3) + (encoder,)


def _two_heads(encoder, head_dropout, seed):
    """(full, cls_only): `encoder` with random base weights, tuned as adapters, under
    two classifier heads of the same values."""
    encoder.set_canonical_weights(random_canonical_weights(encoder, seed=seed))
    trainable.apply_tuning(encoder, "adapters")
    full = heads.build_classifier_model(encoder, 3, head_dropout=head_dropout)
    cls_only = heads.build_classifier_model(encoder, 3, head_dropout=head_dropout,
                                            cls_only_top_layer=True)
    for a, b in zip(heads.head_weight_map(cls_only).values(),
                    heads.head_weight_map(full).values()):
        a.assign(b)
    return full, cls_only


def _loss_and_grads(model, inputs, labels):
    with tf.GradientTape() as tape:
        logits = model(inputs, training=True)   # dropout is 0 in tiny_config
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    return logits, tape.gradient(loss, model.trainable_variables)


def _assert_same_step(ours, theirs, labels, atol):
    """(model, inputs) pairs give the same logits and gradients (variable by variable)."""
    our_logits, our_grads = _loss_and_grads(*ours, labels)
    their_logits, their_grads = _loss_and_grads(*theirs, labels)
    np.testing.assert_allclose(our_logits, their_logits, rtol=1e-5, atol=atol)
    for g, h, v in zip(our_grads, their_grads, theirs[0].trainable_variables):
        np.testing.assert_allclose(tf.convert_to_tensor(g), tf.convert_to_tensor(h),
                                   rtol=1e-4, atol=atol, err_msg=v.path)


def test_same_logits_and_gradients_as_the_full_top_layer(models):
    full, cls_only, _ = models
    assert heads.is_cls_only(cls_only) and not heads.is_cls_only(full)
    assert [v.path for v in cls_only.trainable_variables] == [
        v.path for v in full.trainable_variables]
    inputs = random_inputs(batch_size=4, seq_length=9, pad_last=3)
    labels = tf.constant([0, 1, 2, 1])
    _assert_same_step((cls_only, inputs), (full, inputs), labels, atol=1e-6)


def test_packed_rows_each_example_at_its_own_cls(models):
    full, cls_only, encoder = models
    lengths = [9, 3, 6, 12, 4, 2, 7]
    inputs = random_inputs(batch_size=len(lengths), seq_length=12, pad_last=0, seed=5)
    inputs["input_mask"] = (np.arange(12)[None, :] < np.array(lengths)[:, None]).astype("int32")
    inputs["input_word_ids"] = inputs["input_word_ids"] * inputs["input_mask"]
    packed = {k: tf.constant(v) for k, v in packing.pack_examples(
        inputs, np.arange(len(lengths)), 16).items()}
    assert packed["input_mask"].shape[0] < len(lengths)
    assert set(packed["cls_positions"].numpy()[:, 1]) != {0}   # some [CLS] mid-row
    packed_model = PackedClassifier(cls_only, encoder)
    assert packed_model.cls_only_top_layer
    labels = tf.constant(np.arange(len(lengths)) % 3)
    _assert_same_step((packed_model, packed), (full, inputs), labels, atol=1e-5)


def _feed_forward_rows(model, batch, seq, fn=None):
    """The row counts of the traced step's feed-forward matmuls (`[rows, intermediate]`)."""
    spec = {k: tf.TensorSpec([batch, seq], tf.int32) for k in model.input}
    graph = tf.function(fn or (lambda x: model(x, training=True))).get_concrete_function(
        spec).graph
    return sorted(op.outputs[0].shape[0] for op in graph.get_operations()
                  if op.type in ("MatMul", "_FusedMatMul")
                  and op.outputs[0].shape.rank == 2 and op.outputs[0].shape[1] == INTERMEDIATE)


def test_the_top_layer_runs_one_position_per_example(models):
    full, cls_only, _ = models
    assert _feed_forward_rows(full, 4, 9) == [36, 36, 36]
    assert _feed_forward_rows(cls_only, 4, 9) == [4, 36, 36]


@pytest.mark.usefixtures("cpu_numerics")
@pytest.mark.parametrize("masks", [{}, {"compiled_masks": False}, {"fast_dropout": True}])
def test_with_dropout_the_same_masks_as_the_full_top_layer(masks):
    """Dropout on: the [CLS]-only top layer draws the full layer's masks at
    [CLS] (compiled, from TensorFlow's kernels, and fast masks), so a training
    step gives the same logits and gradients; each model starts from the same
    seed states."""
    encoder = BertEncoder(tiny_config(num_layers=2, dropout=0.3, attention_dropout=0.4),
                          adapter_size=2, adapter_init_scale=0.3)
    full, cls_only = _two_heads(encoder, head_dropout=0.2, seed=4)
    seeds = {m: [v for v in m.non_trainable_variables if "seed_generator" in v.path]
             for m in (cls_only, full)}
    assert len(seeds[full]) == 1 + 2 * 3 + 1   # embeddings; per layer probs, two outputs; head
    assert all(a is b for a, b in zip(seeds[cls_only][:-1], seeds[full][:-1]))   # the encoder's
    start = [v.numpy() for v in seeds[full]]
    inputs = random_inputs(batch_size=4, seq_length=9, pad_last=3)
    labels = tf.constant([0, 1, 2, 1])
    results = []
    with settings.use(**masks):
        for model in (cls_only, full):
            for v, value in zip(seeds[model], start):
                v.assign(value)
            results.append(_loss_and_grads(model, inputs, labels))
    (our_logits, our_grads), (their_logits, their_grads) = results
    np.testing.assert_allclose(our_logits, their_logits, rtol=1e-5, atol=1e-6)
    assert not np.allclose(_loss_and_grads(full, inputs, labels)[0], their_logits)  # masks matter
    for g, h, v in zip(our_grads, their_grads, full.trainable_variables):
        np.testing.assert_allclose(tf.convert_to_tensor(g), tf.convert_to_tensor(h),
                                   rtol=1e-4, atol=1e-6, err_msg=v.path)
