"""Sequence packing: the layout, and the same per-example logits, loss and gradients as unpacked."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from bert_adapters.model import heads, trainable
from bert_adapters.model.bert_encoder import BertEncoder
from bert_adapters.model.heads import MASKED_LOGIT
from bert_adapters.model.packed_models import PackedClassifier, PackedSpanModel, packed_attention_bias
from bert_adapters.training import evaluation, packing, trainer
from bert_adapters.tasks.classification import ClassifierConfig
from bert_adapters.tasks.squad import SquadConfig
from conftest import tiny_config
from tiny_runs import write_tiny_encoder, write_tiny_rte, write_tiny_squad

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
    trainable.apply_tuning(encoder, "adapters")
    model = heads.build_classifier_model(encoder, 3, head_dropout=0.0)
    return model, PackedClassifier(model, encoder)


def _loss_and_grads(model, inputs, loss_fn, mask=None):
    """Outputs, per-example losses and the gradients of their batch mean.

    `mask`: set unpacked span logits at padding to MASKED_LOGIT first.
    """
    with tf.GradientTape() as tape:
        outputs = model(inputs, training=True)   # dropout is 0 in tiny_config
        if mask is not None:
            outputs = tf.where(tf.cast(mask, tf.bool)[:, :, None], outputs, MASKED_LOGIT)
        losses = loss_fn(outputs)
        loss = tf.reduce_sum(losses) / losses.shape[0]
    return outputs, losses, tape.gradient(loss, model.trainable_variables)


def _assert_same_losses_and_gradients(model, packed_model, unpacked, packed):
    """`unpacked`, `packed`: `_loss_and_grads` of `model` and of `packed_model`."""
    np.testing.assert_allclose(packed[1], unpacked[1], atol=1e-5)
    assert [v.path for v in packed_model.trainable_variables] == [
        v.path for v in model.trainable_variables]
    for g, pg, v in zip(unpacked[2], packed[2], model.trainable_variables):
        np.testing.assert_allclose(tf.convert_to_tensor(pg), tf.convert_to_tensor(g),
                                   atol=1e-5, err_msg=v.path)


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

    def loss_fn(logits):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)

    unpacked = _loss_and_grads(model, unpacked_inputs, loss_fn)
    packed = _loss_and_grads(packed_model, packed_inputs, loss_fn)
    np.testing.assert_allclose(packed[0], unpacked[0], atol=1e-5)
    _assert_same_losses_and_gradients(model, packed_model, unpacked, packed)


@pytest.fixture(scope="module")
def span_models():
    encoder = BertEncoder(tiny_config(max_sequence_length=MAX_LEN), adapter_size=4,
                          adapter_init_scale=0.1)
    trainable.apply_tuning(encoder, "adapters")
    kind = SquadConfig().task_kind()
    model = kind.build_model(encoder)
    # Logits of a few units (not BERT's ~0.02 at init): a window cut one column off shows.
    head = model.get_layer("classifier")
    head.kernel.assign(np.random.default_rng(5).normal(size=head.kernel.shape))
    return model, PackedSpanModel(model, encoder), kind


@pytest.mark.parametrize("lengths", [
    [12, 3, 7, 16, 5, 2, 9, 4],   # Rows 16 | 12 4 | 9 7 | 5 3 2: 16 wide.
    [6, 2, 8, 3, 1, 5],           # Rows 8 | 6 2 | 5 3 | 1: half the encoder's width.
])
def test_span_logits_loss_and_gradients_as_unpacked_with_padding_masked(span_models, lengths):
    model, packed_model, kind = span_models
    features = _features(lengths, seed=2)
    rng = np.random.default_rng(3)
    starts = np.array([rng.integers(0, n) for n in lengths])
    labels = tf.constant(np.stack([starts, [rng.integers(s, n) for s, n in
                                            zip(starts, lengths)]], axis=1), tf.int64)
    unpacked_inputs = {k: tf.constant(v) for k, v in features.items()}
    packed = packing.pack_examples(features, np.arange(len(lengths)), MAX_LEN)
    width = packed["input_mask"].shape[1]
    assert width == -(-max(lengths) // 8) * 8 and packed["input_mask"].shape[0] < len(lengths)
    assert max(np.bincount(packed["cls_positions"][:, 0])) >= 2   # Rows of several windows.

    def loss_fn(logits):
        return kind.loss(labels, logits)

    unpacked = _loss_and_grads(model, unpacked_inputs, loss_fn, features["input_mask"])
    packed_outputs = _loss_and_grads(
        packed_model, {k: tf.constant(v) for k, v in packed.items()}, loss_fn)
    logits, packed_logits = unpacked[0], packed_outputs[0]
    assert packed_logits.dtype == tf.float32 and packed_logits.shape == (len(lengths), width, 2)
    for e, n in enumerate(lengths):
        # Each window's logits from column 0, as unpacked; MASKED_LOGIT past its tokens.
        np.testing.assert_allclose(packed_logits[e, :n], logits[e, :n], atol=1e-5)
        assert np.all(packed_logits.numpy()[e, n:] == MASKED_LOGIT)
    _assert_same_losses_and_gradients(model, packed_model, unpacked, packed_outputs)
    # BERT's unpacked loss (padding positions in the softmax) is another loss.
    bert_losses = _loss_and_grads(model, unpacked_inputs, loss_fn)[1]
    assert np.max(np.abs(bert_losses - unpacked[1])[np.array(lengths) < MAX_LEN]) > 1e-3


def test_span_predictions_packed_equal_unpacked(span_models):
    """`evaluation.predict`: per-token outputs at full width, MASKED_LOGIT off the tokens."""
    model, packed_model, _ = span_models
    lengths = [12, 3, 7, 16, 5, 2, 9, 4, 11, 6, 1]
    features = _features(lengths, seed=4)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    # Batches of 4, in length order: widths 8, 16, 16 (and a -1 slot).
    unpacked = evaluation.predict(strategy, model, features, 4, False)
    packed = evaluation.predict(strategy, packed_model, features, 4, False)
    assert unpacked.shape == packed.shape == (len(lengths), MAX_LEN, 2)
    padding = features["input_mask"] == 0
    assert np.all(unpacked[padding] == MASKED_LOGIT) and np.all(packed[padding] == MASKED_LOGIT)
    np.testing.assert_allclose(packed, unpacked, atol=1e-5)
    # Each row's real positions are its logits run alone (not its batch's).
    for e in (1, 3):
        alone = model({k: tf.constant(v[e:e + 1, :lengths[e]]) for k, v in features.items()})
        np.testing.assert_allclose(unpacked[e, :lengths[e]], alone[0], atol=1e-5)


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


def test_every_replica_of_a_step_packs_rows_of_the_step_width():
    """Span logits `[examples, width, 2]` of the replicas of a step must gather."""
    features = _features([12, 3, 7, 16, 5, 2, 9, 4])
    # Alone, replica 0 would pack 8-wide rows at both steps (lengths 3, 2 and 5, 4).
    rows = np.array([[1, 5, 3, 0], [4, 7, 2, 6]])
    cpus = tf.config.list_logical_devices("CPU")
    strategy = tf.distribute.MirroredStrategy([d.name for d in cpus[:2]])
    elements = list(iter(packing.make_packed_dataset(strategy, features, None, rows)))
    for inputs, _, _ in elements:
        masks = strategy.experimental_local_results(inputs["input_mask"])
        assert [m.shape[1] for m in masks] == [16, 16]


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


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def test_packed_squad_run_trains_and_predicts_as_unpacked(tmp_path):
    encoder = write_tiny_encoder(tmp_path / "encoder", max_sequence_length=64)
    config = SquadConfig(
        encoder=encoder, train_file=write_tiny_squad(tmp_path / "train.json"),
        predict_file=write_tiny_squad(tmp_path / "dev.json", num_articles=1, seed=1),
        adapter_size=4, adapter_init_scale=0.1, max_seq_length=32, doc_stride=8,
        max_query_length=6, train_batch_size=4, eval_batch_size=8, learning_rate=1e-2,
        num_train_epochs=1.0, do_train=True, do_predict=True, pack_sequences=True,
        max_answer_length=4, save_checkpoints_steps=100)
    out = str(tmp_path / "packed")
    results = trainer.run(config, out)
    assert results["global_step"] > 5 and 0 <= results["f1"] <= 100
    record = _read_json(os.path.join(out, "run_config.json"))
    assert record["settings"]["pack_sequences"]
    assert results["global_step"] == record["train_windows"] // 4
    predictions = _read_json(os.path.join(out, "predictions.json"))
    nbest = _read_json(os.path.join(out, "nbest_predictions.json"))
    assert len(predictions) == 8 and all(predictions.values())

    # The same artifact predicted unpacked, and packed on two replicas: the same answers.
    again = dataclasses.replace(config, do_train=False, task_dir=out, adapter_size=None)
    cpus = tf.config.list_logical_devices("CPU")
    for name, settings, strategy in (
            ("unpacked", dict(pack_sequences=False), None),
            ("packed_mirrored", {}, tf.distribute.MirroredStrategy([d.name for d in cpus[:2]]))):
        other = trainer.run(dataclasses.replace(again, **settings), str(tmp_path / name),
                            strategy=strategy)
        assert _read_json(tmp_path / name / "predictions.json") == predictions, name
        other_nbest = _read_json(tmp_path / name / "nbest_predictions.json")
        assert ({q: [e["text"] for e in v] for q, v in other_nbest.items()}
                == {q: [e["text"] for e in v] for q, v in nbest.items()}), name
        for q, entries in nbest.items():
            np.testing.assert_allclose([e["start_logit"] for e in other_nbest[q]],
                                       [e["start_logit"] for e in entries], atol=1e-5)
        assert other["f1"] == pytest.approx(results["f1"])


def test_packed_model_of_each_kind_and_refusals(models, span_models):
    class Kind:
        def __init__(self, name):
            self.name = name

    assert isinstance(packing.packed_train_model(Kind(heads.CLASSIFICATION), models[0],
                                                 None), PackedClassifier)
    span = packing.packed_train_model(Kind(heads.SPAN), span_models[0], None)
    assert isinstance(span, PackedSpanModel) and packing.is_packed(span)
    assert not packing.is_packed(span_models[0])
    with pytest.raises(ValueError, match="pack_sequences packs classification and span"):
        packing.packed_train_model(Kind("tagging"), None, None)
    with pytest.raises(ValueError, match="not on TPUs"):
        packing.packed_train_model(Kind(heads.SPAN), span_models[0], None, static_shapes=True)
