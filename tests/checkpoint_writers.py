"""Writers of the four checkpoint formats, shared by tests.

Each writer states its format's names on its own (from the public sources:
google-research/bert, Model Garden's TF Hub export, HF transformers,
keras-hub), not from the package's tables, so a wrong name in a converter
fails a test.
"""

import json
import os

import keras_hub
import numpy as np
import tensorflow as tf
from safetensors.numpy import save_file

from bert_adapters.model.bert_encoder import BertEncoder
from conftest import random_canonical_weights

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(59)]


def _write_vocab(path):
    with open(path, "w") as f:
        f.write("\n".join(VOCAB) + "\n")


def _heads(x, config):
    """[H, H] -> [H, N, D] (TF Hub and keras-hub store attention per head)."""
    return x.reshape(config.hidden_dim, config.num_heads, -1)


# === Writers: one per format, names from the public sources ===
def write_tf1(directory, config, weights, adapters=None, hidden_act="gelu", extras=True,
              drop=()):
    """google-research/bert's layout; `adapters` {(layer, scope): (w1, b1, w2, b2)} as adapter-bert."""
    os.makedirs(directory, exist_ok=True)
    w = weights
    t = {"bert/embeddings/word_embeddings": w["embeddings/word_embeddings"],
         "bert/embeddings/position_embeddings": w["embeddings/position_embeddings"],
         "bert/embeddings/token_type_embeddings": w["embeddings/type_embeddings"],
         "bert/embeddings/LayerNorm/gamma": w["embeddings/layer_norm/gamma"],
         "bert/embeddings/LayerNorm/beta": w["embeddings/layer_norm/beta"],
         "bert/pooler/dense/kernel": w["pooler/kernel"],
         "bert/pooler/dense/bias": w["pooler/bias"]}
    for i in range(config.num_layers):
        s, c = f"bert/encoder/layer_{i}", f"layer_{i}"
        for part in ("query", "key", "value"):
            for p in ("kernel", "bias"):
                t[f"{s}/attention/self/{part}/{p}"] = w[f"{c}/attention/{part}/{p}"]
        for p in ("kernel", "bias"):
            t[f"{s}/attention/output/dense/{p}"] = w[f"{c}/attention/output/{p}"]
            t[f"{s}/intermediate/dense/{p}"] = w[f"{c}/intermediate/{p}"]
            t[f"{s}/output/dense/{p}"] = w[f"{c}/output/{p}"]
        for p in ("gamma", "beta"):
            t[f"{s}/attention/output/LayerNorm/{p}"] = w[f"{c}/attention_layer_norm/{p}"]
            t[f"{s}/output/LayerNorm/{p}"] = w[f"{c}/output_layer_norm/{p}"]
    for (i, scope), (w1, b1, w2, b2) in (adapters or {}).items():
        s = f"bert/encoder/layer_{i}/{scope}/adapters"
        t.update({f"{s}/weights1": w1, f"{s}/biases1": b1, f"{s}/weights2": w2,
                  f"{s}/biases2": b2})
    if extras:  # What a pre-training / fine-tuning run leaves beside the encoder.
        t["cls/predictions/output_bias"] = np.zeros(config.vocab_size, "float32")
        t["bert/pooler/dense/kernel/adam_m"] = np.zeros_like(w["pooler/kernel"])
        t["output_weights"] = np.zeros((2, config.hidden_dim), "float32")
        t["global_step"] = np.array(7, "int64")
    saver = tf.compat.v1.train.Saver(
        var_list={k: tf.Variable(v) for k, v in t.items() if k not in drop})
    saver.save(None, os.path.join(directory, "bert_model.ckpt"), write_meta_graph=False)
    with open(os.path.join(directory, "bert_config.json"), "w") as f:
        json.dump({"attention_probs_dropout_prob": 0.1, "hidden_act": hidden_act,
                   "hidden_dropout_prob": 0.1, "hidden_size": config.hidden_dim,
                   "initializer_range": 0.02, "intermediate_size": config.intermediate_dim,
                   "max_position_embeddings": config.max_sequence_length,
                   "num_attention_heads": config.num_heads,
                   "num_hidden_layers": config.num_layers,
                   "type_vocab_size": config.type_vocab_size,
                   "vocab_size": config.vocab_size}, f)
    _write_vocab(os.path.join(directory, "vocab.txt"))
    return directory


def write_tf_hub(directory, config, weights, do_lower_case=True):
    """A SavedModel whose `.variables` carry Model Garden's export names."""
    w = weights
    t = {"word_embeddings/embeddings": w["embeddings/word_embeddings"],
         "position_embedding/embeddings": w["embeddings/position_embeddings"],
         "type_embeddings/embeddings": w["embeddings/type_embeddings"],
         "embeddings/layer_norm/gamma": w["embeddings/layer_norm/gamma"],
         "embeddings/layer_norm/beta": w["embeddings/layer_norm/beta"],
         "pooler_transform/kernel": w["pooler/kernel"],
         "pooler_transform/bias": w["pooler/bias"]}
    n = config.num_heads
    for i in range(config.num_layers):
        s, c = f"transformer/layer_{i}", f"layer_{i}"
        for part in ("query", "key", "value"):
            t[f"{s}/self_attention/{part}/kernel"] = _heads(w[f"{c}/attention/{part}/kernel"], config)
            t[f"{s}/self_attention/{part}/bias"] = w[f"{c}/attention/{part}/bias"].reshape(n, -1)
        t[f"{s}/self_attention/attention_output/kernel"] = (
            w[f"{c}/attention/output/kernel"].reshape(n, -1, config.hidden_dim))
        t[f"{s}/self_attention/attention_output/bias"] = w[f"{c}/attention/output/bias"]
        for p in ("kernel", "bias"):
            t[f"{s}/intermediate/{p}"] = w[f"{c}/intermediate/{p}"]
            t[f"{s}/output/{p}"] = w[f"{c}/output/{p}"]
        for p in ("gamma", "beta"):
            t[f"{s}/self_attention_layer_norm/{p}"] = w[f"{c}/attention_layer_norm/{p}"]
            t[f"{s}/output_layer_norm/{p}"] = w[f"{c}/output_layer_norm/{p}"]
    variables = [tf.Variable(v, name=k) for k, v in t.items()]
    os.makedirs(f"{directory}_files", exist_ok=True)
    vocab = f"{directory}_files/vocab.txt"  # Saved as the asset `assets/vocab.txt`.
    _write_vocab(vocab)
    # Model Garden's export: the root carries `variables`, a `vocab_file`
    # asset, a bool `do_lower_case` and (version 4) an `.mlm` sub-object that
    # shares the encoder's variables.
    root = tf.train.Checkpoint()
    root.do_lower_case = tf.Variable(do_lower_case, trainable=False)
    root.vocab_file = tf.saved_model.Asset(vocab)
    mlm_only = tf.Variable(np.zeros(config.vocab_size, "float32"), name="cls/predictions/output_bias")
    root.mlm = tf.train.Checkpoint()
    root.mlm.variables = variables + [mlm_only]
    root.variables = variables + [root.do_lower_case, mlm_only]
    tf.saved_model.save(root, str(directory))
    return directory


def write_hf(directory, config, weights, hidden_act="gelu_new", prefix="bert.",
             layer_norm=("gamma", "beta"), do_lower_case=False):
    """A HF BERT directory: Linear weights [out, in], optional `bert.` prefix."""
    os.makedirs(directory, exist_ok=True)
    w, g, b = weights, layer_norm[0], layer_norm[1]
    t = {"embeddings.word_embeddings.weight": w["embeddings/word_embeddings"],
         "embeddings.position_embeddings.weight": w["embeddings/position_embeddings"],
         "embeddings.token_type_embeddings.weight": w["embeddings/type_embeddings"],
         f"embeddings.LayerNorm.{g}": w["embeddings/layer_norm/gamma"],
         f"embeddings.LayerNorm.{b}": w["embeddings/layer_norm/beta"],
         "embeddings.position_ids": np.arange(config.max_sequence_length)[None].astype("int64"),
         "pooler.dense.weight": w["pooler/kernel"].T,
         "pooler.dense.bias": w["pooler/bias"]}
    for i in range(config.num_layers):
        s, c = f"encoder.layer.{i}", f"layer_{i}"
        for src, dst in (("attention.self.query", "attention/query"),
                         ("attention.self.key", "attention/key"),
                         ("attention.self.value", "attention/value"),
                         ("attention.output.dense", "attention/output"),
                         ("intermediate.dense", "intermediate"), ("output.dense", "output")):
            t[f"{s}.{src}.weight"] = w[f"{c}/{dst}/kernel"].T
            t[f"{s}.{src}.bias"] = w[f"{c}/{dst}/bias"]
        for src, dst in (("attention.output.LayerNorm", "attention_layer_norm"),
                         ("output.LayerNorm", "output_layer_norm")):
            t[f"{s}.{src}.{g}"] = w[f"{c}/{dst}/gamma"]
            t[f"{s}.{src}.{b}"] = w[f"{c}/{dst}/beta"]
    t = {prefix + k: np.ascontiguousarray(v) for k, v in t.items()}
    if prefix:  # A pre-training checkpoint also holds the MLM head.
        t["cls.predictions.bias"] = np.zeros(config.vocab_size, "float32")
    save_file(t, os.path.join(directory, "model.safetensors"))
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({"architectures": ["BertModel"], "model_type": "bert",
                   "hidden_act": hidden_act, "hidden_size": config.hidden_dim,
                   "intermediate_size": config.intermediate_dim,
                   "max_position_embeddings": config.max_sequence_length,
                   "num_attention_heads": config.num_heads,
                   "num_hidden_layers": config.num_layers,
                   "type_vocab_size": config.type_vocab_size, "vocab_size": config.vocab_size,
                   "layer_norm_eps": config.layer_norm_epsilon,
                   "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
                   "position_embedding_type": "absolute"}, f)
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": do_lower_case, "tokenizer_class": "BertTokenizer"}, f)
    _write_vocab(os.path.join(directory, "vocab.txt"))
    return directory


def keras_hub_backbone(config, weights):
    """A `BertBackbone` holding `weights`, assigned by variable path."""
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size, num_layers=config.num_layers,
        num_heads=config.num_heads, hidden_dim=config.hidden_dim,
        intermediate_dim=config.intermediate_dim, dropout=0.0,
        max_sequence_length=config.max_sequence_length, num_segments=config.type_vocab_size)
    w, n = weights, config.num_heads
    t = {"token_embedding/embeddings": w["embeddings/word_embeddings"],
         "position_embedding/embeddings": w["embeddings/position_embeddings"],
         "segment_embedding/embeddings": w["embeddings/type_embeddings"],
         "embeddings_layer_norm/gamma": w["embeddings/layer_norm/gamma"],
         "embeddings_layer_norm/beta": w["embeddings/layer_norm/beta"],
         "pooled_dense/kernel": w["pooler/kernel"], "pooled_dense/bias": w["pooler/bias"]}
    for i in range(config.num_layers):
        s, c = f"transformer_layer_{i}", f"layer_{i}"
        for part in ("query", "key", "value"):
            t[f"{s}/self_attention_layer/{part}/kernel"] = _heads(w[f"{c}/attention/{part}/kernel"], config)
            t[f"{s}/self_attention_layer/{part}/bias"] = w[f"{c}/attention/{part}/bias"].reshape(n, -1)
        t[f"{s}/self_attention_layer/attention_output/kernel"] = (
            w[f"{c}/attention/output/kernel"].reshape(n, -1, config.hidden_dim))
        t[f"{s}/self_attention_layer/attention_output/bias"] = w[f"{c}/attention/output/bias"]
        for p in ("kernel", "bias"):
            t[f"{s}/feedforward_intermediate_dense/{p}"] = w[f"{c}/intermediate/{p}"]
            t[f"{s}/feedforward_output_dense/{p}"] = w[f"{c}/output/{p}"]
        for p in ("gamma", "beta"):
            t[f"{s}/self_attention_layer_norm/{p}"] = w[f"{c}/attention_layer_norm/{p}"]
            t[f"{s}/feedforward_layer_norm/{p}"] = w[f"{c}/output_layer_norm/{p}"]
    variables = {v.path: v for v in backbone.weights}
    assert set(variables) == set(t), set(variables) ^ set(t)
    for path, value in t.items():
        variables[path].assign(value)
    return backbone


def write_keras_hub(directory, config, weights, lowercase=True):
    keras_hub_backbone(config, weights).save_to_preset(str(directory))
    keras_hub.models.BertTokenizer(vocabulary=VOCAB, lowercase=lowercase).save_to_preset(
        str(directory))
    return directory


def keras_hub_inputs(inputs):
    return {"token_ids": inputs["input_word_ids"], "segment_ids": inputs["input_type_ids"],
            "padding_mask": inputs["input_mask"]}


# === Fixtures ===


def write_tiny_hf_encoder(directory, config, seed=0, hidden_act="gelu_new"):
    """A tiny random HF BERT directory for `config` (a loadable `--encoder`)."""
    weights = random_canonical_weights(BertEncoder(config), seed=seed)
    return write_hf(directory, config, weights, hidden_act=hidden_act, do_lower_case=True)
