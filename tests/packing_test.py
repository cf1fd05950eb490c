"""Sequence packing: the layout, and the same per-example logits, loss and gradients as unpacked."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from bert_adapters import heads, tuning
from bert_adapters.bert_encoder import BertEncoder
from bert_adapters.packed_classifier import PackedClassifier, packed_attention_bias
from bert_adapters.training import packing, trainer
from bert_adapters.tasks.classification import ClassifierConfig
from conftest import tiny_config
from tiny_runs import write_tiny_encoder, write_tiny_rte

MAX_LEN = 16


def _features(lengths, seed=0, vocab_size=64):
    """[CLS] a [SEP] b [SEP]-like rows: random ids, type 1 on the second half."""
    rng = np.random.default_rng(seed)
    n = len(lengths)
    ids = np.zeros((n, MAX_LEN), np.int32)
    types = np.zeros((n, MAX_LEN), np.int32)
    mask = np.zeros((n, MAX_LEN), np.int32)
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.integers(5, vocab_size, length)
        ids[i, 0] = 2
        types[i, length // 2:length] = 1
        mask[i, :length] = 1
    return {"input_word_ids": ids, "input_type_ids": types, "input_mask": mask}


def test_pack_examples_layout():
    lengths = [10, 3, 6, 16, 5, 2]
    features = _features(lengths)
    indices = np.array([0, 1, 2, 3, 4, 5, -1])
    packed = packing.pack_examples(features, indices, MAX_LEN)
    rows, width = packed["input_mask"].shape
    assert width == MAX_LEN and rows == 3   # 16 | 10 + 6 | 5 + 3 + 2 (first fit, longest first)
    assert packed["input_mask"].sum() == sum(lengths)
    for slot, example in enumerate(indices[:-1]):
        r, c = packed["cls_positions"][slot]
        n = lengths[example]
        np.testing.assert_array_equal(packed["input_word_ids"][r, c:c + n],
                                      features["input_word_ids"][example, :n])
        np.testing.assert_array_equal(packed["input_type_ids"][r, c:c + n],
                                      features["input_type_ids"][example, :n])
        np.testing.assert_array_equal(packed["input_position_ids"][r, c:c + n], np.arange(n))
        ids = packed["input_example_ids"][r, c:c + n]
        assert len(set(ids)) == 1 and ids[0] > 0
        assert (packed["input_example_ids"][r] == ids[0]).sum() == n
    assert tuple(packed["cls_positions"][-1]) == (0, 0)
    # Rows pad to a multiple of 8 when shorter than the longest allowed.
    short = packing.pack_examples(features, np.array([1, 5]), MAX_LEN)
    assert short["input_mask"].shape == (1, 8)


def test_block_diagonal_bias():
    bias = packed_attention_bias(np.array([[1, 1, 2, 0]], np.int32)).numpy()
    assert bias.shape == (1, 1, 4, 4)
    visible = bias[0, 0] == 0
    # Padding (example id 0) is seen by no token, and sees nothing.
    np.testing.assert_array_equal(visible, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0],
                                            [0, 0, 0, 0]])


@pytest.fixture(scope="module")
def models():
    encoder = BertEncoder(tiny_config(max_sequence_length=MAX_LEN), adapter_size=4,
                          adapter_init_scale=0.1)
    tuning.apply_tuning(encoder, "adapters")
    model = heads.build_classifier_model(encoder, 3, head_dropout=0.0)
    return model, PackedClassifier(model, encoder)


def test_same_logits_loss_and_gradients_as_unpacked(models):
    model, packed_model = models
    lengths = [12, 3, 7, 16, 5, 2, 9, 4]
    features = _features(lengths, seed=1)
    labels = tf.constant(np.arange(len(lengths)) % 3, tf.int64)
    width = 16
    unpacked_inputs = {k: tf.constant(v[:, :width]) for k, v in features.items()}
    packed_inputs = {k: tf.constant(v) for k, v in packing.pack_examples(
        features, np.arange(len(lengths)), MAX_LEN).items()}
    assert packed_inputs["input_mask"].shape[0] < len(lengths)

    def loss_and_grads(m, inputs):
        with tf.GradientTape() as tape:
            logits = m(inputs, training=True)   # dropout is 0 in tiny_config
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            loss = tf.reduce_sum(losses) / len(lengths)
        return logits, losses, tape.gradient(loss, m.trainable_variables)

    logits, losses, grads = loss_and_grads(model, unpacked_inputs)
    packed_logits, packed_losses, packed_grads = loss_and_grads(packed_model, packed_inputs)
    np.testing.assert_allclose(packed_logits, logits, atol=1e-5)
    np.testing.assert_allclose(packed_losses, losses, atol=1e-5)
    assert [v.path for v in packed_model.trainable_variables] == [
        v.path for v in model.trainable_variables]
    for g, pg, v in zip(grads, packed_grads, model.trainable_variables):
        np.testing.assert_allclose(tf.convert_to_tensor(pg), tf.convert_to_tensor(g),
                                   atol=1e-5, err_msg=v.path)


def test_packed_dataset_gives_each_step_its_examples_in_order():
    lengths = [12, 3, 7, 16, 5, 2, 9, 4]
    features = _features(lengths)
    labels = np.arange(8, dtype=np.int64)
    rows = np.array([[3, 1, 0, 2], [4, 5, 6, -1]])
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    elements = list(iter(packing.make_packed_dataset(strategy, features, labels, rows)))
    assert len(elements) == 2
    for (inputs, step_labels, valid), row in zip(elements, rows):
        np.testing.assert_array_equal(step_labels, np.where(row >= 0, labels[row], 0))
        np.testing.assert_array_equal(valid, row >= 0)
        positions = inputs["cls_positions"].numpy()
        for slot, example in enumerate(row):
            if example >= 0:
                r, c = positions[slot]
                assert inputs["input_word_ids"][r, c] == features["input_word_ids"][example, 0]


def test_packed_training_run(tmp_path):
    encoder = write_tiny_encoder(tmp_path / "encoder", max_sequence_length=32)
    data = write_tiny_rte(tmp_path / "RTE", num_train=24, num_dev=10)
    config = ClassifierConfig(task_name="rte", data_dir=data, encoder=encoder, adapter_size=4,
                              max_seq_length=32, train_batch_size=8, eval_batch_size=8,
                              do_train=True, do_eval=True, pack_sequences=True)
    results = trainer.run(config, str(tmp_path / "run"))
    assert results["global_step"] == 9 and 0 <= results["accuracy"] <= 1
    # Packed evaluation gives the unpacked evaluation's results.
    unpacked = trainer.run(dataclasses.replace(config, do_train=False, pack_sequences=False,
                                               task_dir=str(tmp_path / "run")),
                           str(tmp_path / "unpacked_eval"))
    assert unpacked["accuracy"] == results["accuracy"]
    assert unpacked["eval_loss"] == pytest.approx(results["eval_loss"], abs=1e-5)

    class SpanKind:
        name = heads.SPAN

    with pytest.raises(ValueError, match="pack_sequences"):
        packing.packed_train_model(SpanKind(), None, None)
