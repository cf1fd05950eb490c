"""Adapters in a span of layers (`--adapter_layers=i-j`): the span, the model, what trains."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_adapters.model import heads, trainable
from bert_adapters.model.bert_encoder import BertEncoder
from bert_adapters.model.layer_span import format_layer_span, parse_layer_span
from conftest import random_canonical_weights, random_inputs, tiny_config


# === The span as users write it ===
def test_spans_parse_and_print():
    assert parse_layer_span("3-6") == (3, 6) == parse_layer_span(" 3-6 ", 6)
    assert parse_layer_span([6, 6], 6) == (6, 6)
    assert parse_layer_span(None) is None and format_layer_span(None) is None
    assert format_layer_span((1, 12)) == "1-12"


@pytest.mark.parametrize("value, message", [
    ("abc", r"--adapter_layers='abc': expected i-j with 1 <= i <= j \(1-based, inclusive"),
    ("3", r"--adapter_layers='3': expected i-j"),
    ("2-3-4", r"expected i-j"),
    ("-1-3", r"expected i-j"),
    ((1.0, 2.0), r"expected i-j"),
    ("0-3", r"--adapter_layers=0-3: layers are numbered from 1"),
    ("5-2", r"--adapter_layers=5-2: the first layer 5 is above the last 2"),
    ("7-7", r"--adapter_layers=7-7: the encoder has 6 layers: expected i-j with "
            r"1 <= i <= j <= 6"),
])
def test_bad_spans_name_the_flag_and_the_form(value, message):
    with pytest.raises(ValueError, match=message):
        parse_layer_span(value, 6)


# === The encoder ===
def _encoders(span, num_layers=3, seed=0):
    """An encoder with adapters in `span` and one with adapters everywhere, the
    same base weights, the same adapter weights where both have them."""
    config = tiny_config(num_layers=num_layers)
    spanned = BertEncoder(config, adapter_size=2, adapter_init_scale=0.3, adapter_layers=span)
    everywhere = BertEncoder(config, adapter_size=2, adapter_init_scale=0.3)
    base = random_canonical_weights(everywhere, seed=seed)
    everywhere.set_canonical_weights(base)
    spanned.set_canonical_weights(base)
    for name, variable in spanned.weight_map().items():
        if "_adapter/" in name:
            everywhere.weight_map()[name].assign(variable)
    return spanned, everywhere


def test_adapters_only_in_the_span_equal_the_others_switched_off():
    spanned, everywhere = _encoders("2-3")
    adapters = {n.split("/")[0] for n in spanned.weight_map() if "_adapter/" in n}
    assert adapters == {"layer_1", "layer_2"}
    assert [layer.adapter_size for layer in spanned.transformer_layers] == [None, 2, 2]
    assert [layer.stop_input_gradient for layer in spanned.transformer_layers] == [
        False, True, False]
    # The reference: every layer's adapters, layer 1's switched off (exact zeros).
    everywhere.set_adapters_enabled(False, layers=[0])
    inputs = random_inputs()
    ours, theirs = spanned(inputs), everywhere(inputs)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_array_equal(ours[key], theirs[key])
    assert not np.allclose(ours["pooled_output"],
                           BertEncoder(tiny_config(num_layers=3))(inputs)["pooled_output"])
    # The ablation switches only layers that have adapters.
    spanned.set_adapters_enabled(False)
    assert [layer.adapters_enabled for layer in spanned.transformer_layers] == [False, False, False]
    spanned.set_adapters_enabled(True, layers=[0, 1])
    assert spanned.transformer_layers[1].adapters_enabled


def test_config_round_trip_and_refusals():
    encoder = BertEncoder(tiny_config(num_layers=3), adapter_size=2, adapter_layers=(2, 3))
    config = encoder.get_config()
    assert config["adapter_layers"] == "2-3"
    again = BertEncoder.from_config(config)
    assert again.adapter_layers == (2, 3) and sorted(again.weight_map()) == sorted(
        encoder.weight_map())
    with pytest.raises(ValueError, match="adapter_layers=2-3 needs adapter_size"):
        BertEncoder(tiny_config(num_layers=3), adapter_layers="2-3")
    with pytest.raises(ValueError, match="--adapter_layers=3-4: the encoder has 3 layers"):
        BertEncoder(tiny_config(num_layers=3), adapter_size=2, adapter_layers="3-4")


# === What trains ===
@pytest.mark.parametrize("span", ["1-3", "2-3", "3-3", "2-2"])
def test_closed_form_and_trained_set(span):
    config = tiny_config(num_layers=3)
    encoder = BertEncoder(config, adapter_size=2, adapter_layers=span)
    names = trainable.apply_tuning(encoder, "adapters")
    trained = sum(int(np.prod(v.shape)) for v in encoder.trainable_weights)
    assert trained == trainable.count_trained_params(config, "adapters", 2, adapter_layers=span)
    first, last = parse_layer_span(span)
    layers = set(range(first - 1, last))
    assert {n for n in names if "layer_norm" in n} == (
        {f"layer_{i}/{part}_layer_norm/{w}" for i in layers for part in ("attention", "output")
         for w in ("gamma", "beta")}
        | ({"embeddings/layer_norm/gamma", "embeddings/layer_norm/beta"} if first == 1
           else set()))
    assert {n.split("/")[0] for n in names if "_adapter/" in n} == {f"layer_{i}" for i in layers}
    assert not any(n.startswith("pooler") for n in names)


def test_every_layer_written_as_a_span_is_the_default():
    config = tiny_config(num_layers=3)
    assert (trainable.count_trained_params(config, "adapters", 2, adapter_layers="1-3")
            == trainable.count_trained_params(config, "adapters", 2))


@pytest.mark.parametrize("mode, kwargs", [("full", {}), ("layer_norm", {}),
                                          ("top_k", {"num_tuned_layers": 1})])
def test_only_adapters_take_a_span(mode, kwargs):
    with pytest.raises(ValueError, match=r"--adapter_layers places adapters: it applies to "
                                         r"tuning='adapters' only"):
        trainable.check_tuning(mode, None, 3, adapter_layers="2-3", **kwargs)


def test_a_training_step_records_nothing_below_the_span_and_trains_only_the_span():
    spanned, _ = _encoders("2-3")
    trainable.apply_tuning(spanned, "adapters")
    model = heads.build_classifier_model(spanned, 2, head_dropout=0.0)
    inputs = random_inputs()
    frozen_below = spanned.weight_map()["layer_0/intermediate/kernel"]
    with tf.GradientTape() as tape:
        tape.watch(frozen_below.value)   # watched on purpose: still no gradient reaches it
        loss = tf.reduce_sum(model(inputs, training=True) ** 2)
    grads = tape.gradient(loss, model.trainable_variables + [frozen_below.value])
    assert grads[-1] is None
    assert all(g is not None for g in grads[:-1])
    before = {n: v.numpy().copy() for n, v in spanned.weight_map().items()}
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads[:-1], model.trainable_variables))
    changed = {n for n, v in spanned.weight_map().items()
               if not np.array_equal(v.numpy(), before[n])}
    assert changed and all(n.startswith(("layer_1/", "layer_2/")) for n in changed)
    # Without the span the same watched weight does get a gradient from the
    # trained embedding LayerNorm's path: the stop is what ends the backward pass.
    _, everywhere = _encoders(None)
    trainable.apply_tuning(everywhere, "adapters")
    low = everywhere.weight_map()["layer_0/intermediate/kernel"]
    with tf.GradientTape() as tape:
        tape.watch(low.value)
        loss = tf.reduce_sum(everywhere(inputs, training=True)["pooled_output"] ** 2)
    assert tape.gradient(loss, low.value) is not None
