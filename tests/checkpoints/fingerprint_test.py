import numpy as np

from bert_adapters.model.bert_encoder import BertEncoder
from bert_adapters.checkpoints.fingerprint import base_fingerprint
from conftest import random_canonical_weights, tiny_config


def test_same_base_same_digest_whatever_the_adapters():
    config = tiny_config()
    a, b = BertEncoder(config), BertEncoder(config, adapter_size=4)
    weights = random_canonical_weights(a)
    a.set_canonical_weights(weights)
    b.set_canonical_weights(weights)
    assert base_fingerprint(a) == base_fingerprint(b)
    assert base_fingerprint(a).startswith("sha256:")


def test_any_weight_or_architecture_change_changes_the_digest():
    config = tiny_config()
    a = BertEncoder(config)
    weights = random_canonical_weights(a)
    a.set_canonical_weights(weights)
    digest = base_fingerprint(a)
    var = a.weight_map()["layer_1/output_layer_norm/beta"]
    value = np.asarray(var).copy()
    value[3] += 1e-6
    var.assign(value)
    assert base_fingerprint(a) != digest
    c = BertEncoder(tiny_config(activation="gelu"))
    c.set_canonical_weights(weights)
    assert base_fingerprint(c) != digest
