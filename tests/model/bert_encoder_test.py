import numpy as np
import pytest

from bert_adapters.model.bert_encoder import BertConfig, BertEncoder
from conftest import random_canonical_weights, random_inputs, tiny_config


def _outputs(encoder, inputs):
    return {k: (np.asarray(v) if not isinstance(v, list) else [np.asarray(t) for t in v])
            for k, v in encoder(inputs, training=False).items()}


def test_output_structure_like_tf_hub():
    config = tiny_config()
    out = _outputs(BertEncoder(config), random_inputs())
    assert out["sequence_output"].shape == (3, 7, 8)
    assert out["pooled_output"].shape == (3, 8)
    assert len(out["encoder_outputs"]) == config.num_layers
    np.testing.assert_array_equal(out["encoder_outputs"][-1], out["sequence_output"])


def test_padding_does_not_change_real_tokens():
    encoder = BertEncoder(tiny_config())
    inputs = random_inputs(batch_size=1, seq_length=6, pad_last=0)
    padded = {k: np.concatenate([v, np.zeros((1, 3), "int32")], axis=1) for k, v in inputs.items()}
    padded["input_word_ids"][:, 6:] = 5  # garbage under the mask must not matter
    a = _outputs(encoder, inputs)["sequence_output"]
    b = _outputs(encoder, padded)["sequence_output"][:, :6]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_zero_up_projection_adapters_reproduce_the_base_exactly():
    config = tiny_config()
    base = BertEncoder(config)
    with_adapters = BertEncoder(config, adapter_size=4)
    weights = random_canonical_weights(base)
    base.set_canonical_weights(weights)
    with_adapters.set_canonical_weights(weights)
    for name, var in with_adapters.weight_map().items():
        if name.endswith("up/kernel"):
            var.assign(np.zeros(var.shape, "float32"))
    inputs = random_inputs()
    a, b = _outputs(base, inputs), _outputs(with_adapters, inputs)
    np.testing.assert_array_equal(a["sequence_output"], b["sequence_output"])
    np.testing.assert_array_equal(a["pooled_output"], b["pooled_output"])


def test_adapters_can_be_switched_off_per_layer():
    config = tiny_config()
    base = BertEncoder(config)
    encoder = BertEncoder(config, adapter_size=4, adapter_init_scale=0.5)
    weights = random_canonical_weights(base)
    base.set_canonical_weights(weights)
    encoder.set_canonical_weights(weights)
    inputs = random_inputs()
    on = _outputs(encoder, inputs)["sequence_output"]
    assert not np.allclose(on, _outputs(base, inputs)["sequence_output"], atol=1e-3)
    encoder.set_adapters_enabled(False, layers=[0])
    only_top = _outputs(encoder, inputs)
    assert not np.allclose(only_top["sequence_output"], on, atol=1e-3)
    # Layer 0 without its adapters equals the base's layer 0.
    np.testing.assert_allclose(only_top["encoder_outputs"][0],
                               _outputs(base, inputs)["encoder_outputs"][0], atol=1e-6)
    encoder.set_adapters_enabled(False)
    np.testing.assert_allclose(_outputs(encoder, inputs)["sequence_output"],
                               _outputs(base, inputs)["sequence_output"], atol=1e-6)
    encoder.set_adapters_enabled(True)
    np.testing.assert_allclose(_outputs(encoder, inputs)["sequence_output"], on, atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        encoder.set_adapters_enabled(False, layers=[5])


def test_config_round_trip_and_weight_names():
    encoder = BertEncoder(tiny_config(activation="gelu"), adapter_size=4, adapter_init_scale=1e-3)
    clone = BertEncoder.from_config(encoder.get_config())
    assert clone.config == encoder.config
    assert (clone.adapter_size, clone.adapter_init_scale) == (4, 1e-3)
    assert list(clone.weight_map()) == list(encoder.weight_map())
    names = encoder.weight_map()
    assert len(names) == 5 + 2 * (16 + 8) + 2
    assert names["layer_1/output_adapter/up/kernel"].shape == (4, 8)
    assert names["layer_0/intermediate/kernel"].shape == (8, 16)


def test_set_canonical_weights_reports_every_problem():
    encoder = BertEncoder(tiny_config())
    weights = random_canonical_weights(encoder)
    del weights["layer_1/output/bias"]
    weights["pooler/kernel"] = np.zeros((8, 9), "float32")
    weights["layer_0/attention_adapter/down/kernel"] = np.zeros((8, 4), "float32")
    with pytest.raises(ValueError) as err:
        encoder.set_canonical_weights(weights, source="test.ckpt")
    message = str(err.value)
    assert "test.ckpt" in message
    assert "layer_1/output/bias" in message
    assert "pooler/kernel: expected (8, 8), found (8, 9)" in message
    assert "layer_0/attention_adapter/down/kernel" in message


@pytest.mark.parametrize("field,value", [("hidden_dim", 9), ("activation", "relu"),
                                         ("num_layers", 0)])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field if field != "hidden_dim" else "num_heads"):
        tiny_config(**{field: value})


def test_bert_large_preset():
    config = BertConfig.bert_large()
    assert (config.hidden_dim, config.num_layers, config.num_heads) == (1024, 24, 16)
