"""Task heads on their own: BERT's classifier, the span head, the task kinds' losses."""

import numpy as np
import pytest
import tensorflow as tf

from bert_adapters.model import heads
from bert_adapters.model.bert_encoder import BertEncoder
from bert_adapters.tasks.classification import ClassifierConfig
from conftest import random_inputs, tiny_config


@pytest.fixture(scope="module")
def encoder():
    return BertEncoder(tiny_config(), adapter_size=2)


def test_classifier_head_is_one_dense_on_the_pooled_output(encoder):
    model = heads.build_classifier_model(encoder, num_outputs=3, head_dropout=0.5)
    inputs = random_inputs()
    logits = np.asarray(model(inputs, training=False))
    assert logits.shape == (3, 3)
    weights = heads.head_weight_map(model)
    assert sorted(weights) == ["head/bias", "head/kernel"]
    kernel, bias = (np.asarray(weights[k]) for k in ("head/kernel", "head/bias"))
    assert kernel.shape == (8, 3) and not bias.any()
    # BERT's initialiser: truncated normal, stddev 0.02 (so within 2 stddev).
    assert np.abs(kernel).max() <= 0.04 and kernel.std() > 0.005
    pooled = np.asarray(encoder(inputs, training=False)["pooled_output"])
    np.testing.assert_allclose(logits, pooled @ kernel + bias, rtol=1e-5, atol=1e-6)
    # Dropout 0.5 on the pooled vector, in training only.
    dropped = np.asarray(model(inputs, training=True))
    assert not np.allclose(dropped, logits)


def test_span_head_gives_start_and_end_logits_per_token(encoder):
    model = heads.build_span_model(encoder)
    inputs = random_inputs(batch_size=2, seq_length=9)
    outputs = np.asarray(model(inputs, training=False))
    assert outputs.shape == (2, 9, 2)
    weights = heads.head_weight_map(model)
    sequence = np.asarray(encoder(inputs, training=False)["sequence_output"])
    np.testing.assert_allclose(
        outputs, sequence @ np.asarray(weights["head/kernel"]) + np.asarray(weights["head/bias"]),
        rtol=1e-5, atol=1e-6)


def test_task_model_from_an_artifact_config(encoder):
    model = heads.build_task_model(encoder, {"kind": "classification", "num_outputs": 1})
    assert model.output_shape == (None, 1)
    assert heads.build_task_model(encoder, {"num_outputs": 2}).output_shape == (None, 2)
    assert heads.build_task_model(encoder, {"kind": "span"}).output_shape == (None, None, 2)
    with pytest.raises(ValueError, match="task kind 'tagging'"):
        heads.build_task_model(encoder, {"kind": "tagging"})


def test_classification_and_regression_losses_per_example(tmp_path):
    kind = ClassifierConfig(task_name="RTE", data_dir=str(tmp_path)).task_kind()
    logits = tf.constant([[2.0, 0.0], [0.0, 1.0]])
    loss = np.asarray(kind.loss(tf.constant([0, 0]), logits))
    expected = -np.log(np.exp([2.0, 0.0]) / np.exp([[2.0, 0.0], [0.0, 1.0]]).sum(1))
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    stsb = ClassifierConfig(task_name="STS-B", data_dir=str(tmp_path)).task_kind()
    loss = np.asarray(stsb.loss(tf.constant([1.5, 4.0]), tf.constant([[1.0], [4.5]])))
    np.testing.assert_allclose(loss, [0.25, 0.25], rtol=1e-6)
