import numpy as np
import pytest
import keras

from bert_adapters.model import trainable
from bert_adapters.model.bert_encoder import BertConfig, BertEncoder
from conftest import random_inputs, tiny_config


@pytest.mark.parametrize("adapter_size,expected", [(8, 351_936), (64, 2_417_664), (256, 9_500_160)])
def test_bert_base_adapter_counts_from_the_config(adapter_size, expected):
    assert trainable.count_trained_params(BertConfig.bert_base(), "adapters", adapter_size) == expected


def test_bert_base_built_model_matches_the_closed_form():
    config = BertConfig.bert_base()
    encoder = BertEncoder(config, adapter_size=64)
    trainable.apply_tuning(encoder, "adapters")
    trained = sum(int(np.prod(v.shape)) for v in encoder.trainable_weights)
    assert trained == 2_417_664
    base = sum(int(np.prod(v.shape)) for v in encoder.base_weight_map().values())
    assert base == trainable.count_trained_params(config, "full") == 109_482_240


@pytest.mark.parametrize("mode,kwargs", [("adapters", dict(adapter_size=3)), ("full", {}),
                                         ("top_k", dict(num_tuned_layers=1)),
                                         ("top_k", dict(num_tuned_layers=2)), ("layer_norm", {})])
def test_closed_form_equals_built_model(mode, kwargs):
    config = tiny_config(num_layers=3)
    encoder = BertEncoder(config, adapter_size=kwargs.get("adapter_size"))
    trainable.apply_tuning(encoder, mode, kwargs.get("num_tuned_layers"))
    trained = sum(int(np.prod(v.shape)) for v in encoder.trainable_weights)
    assert trained == trainable.count_trained_params(config, mode, **kwargs)


def test_trainable_sets_are_pinned():
    config = tiny_config(num_layers=3)
    enc = BertEncoder(config, adapter_size=2)
    names = trainable.apply_tuning(enc, "adapters")
    assert len([n for n in names if "layer_norm" in n]) == 2 * (2 * 3 + 1)
    assert len([n for n in names if "_adapter/" in n]) == 3 * 2 * 4
    assert not any(n.startswith("pooler") for n in names)
    enc = BertEncoder(config)
    names = trainable.apply_tuning(enc, "top_k", 2)
    assert {n.split("/")[0] for n in names} == {"layer_1", "layer_2", "pooler"}
    assert trainable.apply_tuning(enc, "layer_norm") == sorted(
        n for n in enc.weight_map() if "layer_norm/" in n)
    assert trainable.apply_tuning(enc, "full") == sorted(enc.weight_map())


@pytest.mark.parametrize("mode,adapter_size,k", [("adapters", None, None), ("full", 8, None),
                                                 ("top_k", None, 0), ("top_k", None, 4),
                                                 ("layer_norm", None, 2), ("lora", None, None)])
def test_invalid_combinations(mode, adapter_size, k):
    with pytest.raises(ValueError):
        trainable.check_tuning(mode, adapter_size, 3, k)


def _classifier(encoder):
    inputs = {k: keras.Input((None,), dtype="int32", name=k) for k in encoder.input}
    pooled = encoder(inputs)["pooled_output"]
    logits = keras.layers.Dense(2, name="head")(pooled)
    return keras.Model(inputs, logits)


@pytest.mark.parametrize("mode,adapter_size,k", [("adapters", 4, None), ("full", None, None),
                                                 ("top_k", None, 1), ("layer_norm", None, None)])
def test_one_training_step_changes_exactly_the_trained_weights(mode, adapter_size, k):
    keras.utils.set_random_seed(0)
    config = tiny_config()
    encoder = BertEncoder(config, adapter_size=adapter_size, adapter_init_scale=0.1)
    expected = set(trainable.apply_tuning(encoder, mode, k))
    model = _classifier(encoder)
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = {n: np.asarray(v).copy() for n, v in encoder.weight_map().items()}
    head_before = np.asarray(model.get_layer("head").kernel).copy()
    inputs = random_inputs(batch_size=4, seq_length=9)
    model.train_on_batch(inputs, np.array([0, 1, 1, 0]))
    changed = {n for n, v in encoder.weight_map().items() if not np.array_equal(before[n], v)}
    assert changed == expected
    assert not np.array_equal(head_before, np.asarray(model.get_layer("head").kernel))


def test_parameter_report():
    config = tiny_config()
    encoder = BertEncoder(config, adapter_size=4)
    trainable.apply_tuning(encoder, "adapters")
    report = trainable.parameter_report(_classifier(encoder), encoder)
    head = 8 * 2 + 2
    assert report["trained_params"] == trainable.count_trained_params(config, "adapters", 4) + head
    assert report["base_params"] == trainable.count_trained_params(config, "full")
    assert report["total_params"] == report["base_params"] + 2 * 2 * (2 * 4 * 8 + 8 + 4) + head
    assert report["trained_percent_of_base"] == pytest.approx(
        100 * report["trained_params"] / report["base_params"], abs=1e-4)
