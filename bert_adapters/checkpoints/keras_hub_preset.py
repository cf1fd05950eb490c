"""keras-hub BERT presets: a preset name (`bert_base_en_uncased`), a handle
(`kaggle://...`, `hf://...`) or a directory written by `save_to_preset`.

The backbone is built with `keras_hub.models.BertBackbone.from_preset` and its
layers' weights are read by variable path (`transformer_layer_0/
self_attention_layer/query/kernel`, ...); the `.h5` file is never parsed, as
its keys change with the Keras version. Attention kernels are per head
(`[H, N, D]`, output `[N, D, H]`) and are merged into `[H, H]`. keras-hub's
BERT always computes tanh GELU and LayerNorm epsilon 1e-12.
"""

import json
import os
import re
import tempfile

import tensorflow as tf

from bert_adapters.model.bert_encoder import BertConfig
from bert_adapters.checkpoints import canonical
from bert_adapters.checkpoints.canonical import Entry

VOCAB_ASSET = "assets/tokenizer/vocabulary.txt"
TOKENIZER_CONFIG_FILE = "tokenizer.json"


def _join(path, name):
    return f"{str(path).rstrip('/')}/{name}"


def _is_local_preset(preset):
    return tf.io.gfile.exists(_join(preset, "config.json"))


# === Files ===
def load_backbone(preset):
    """Returns `keras_hub.models.BertBackbone.from_preset(preset)`."""
    import keras_hub  # Lazy: importing keras-hub costs seconds.

    return keras_hub.models.BertBackbone.from_preset(str(preset))


def read_tensors(backbone):
    """Reads the backbone's weights: {`<top-level layer>/<path in it>`: np.ndarray}.

    Names are built from each top-level layer's name and the variable path
    below it, so they do not depend on what the enclosing model is called.
    """
    import keras

    tensors = {}
    for layer in backbone.layers:
        for var in layer.weights:
            relative = var.path.split(f"{layer.name}/", 1)[-1]
            tensors[f"{layer.name}/{relative}"] = keras.ops.convert_to_numpy(var)
    return tensors


# === Translation ===
def convert_config(backbone):
    """Reads the BertConfig from a `BertBackbone`'s attributes."""
    return BertConfig(
        vocab_size=int(backbone.vocabulary_size),
        hidden_dim=int(backbone.hidden_dim),
        num_layers=int(backbone.num_layers),
        num_heads=int(backbone.num_heads),
        intermediate_dim=int(backbone.intermediate_dim),
        max_sequence_length=int(backbone.max_sequence_length),
        type_vocab_size=int(backbone.num_segments),
        # keras-hub's BertBackbone hard-codes both.
        activation="gelu_tanh",
        layer_norm_epsilon=1e-12,
        dropout=float(backbone.dropout),
        attention_dropout=float(backbone.dropout),
    )


def weight_table(config):
    """{canonical name: Entry} for a keras-hub `BertBackbone`."""
    h, n = config.hidden_dim, config.num_heads
    d, i_dim, same = h // n, config.intermediate_dim, canonical.identity
    table = {
        "embeddings/word_embeddings": Entry(
            "token_embedding/embeddings", (config.vocab_size, h), same),
        "embeddings/position_embeddings": Entry(
            "position_embedding/embeddings", (config.max_sequence_length, h), same),
        "embeddings/type_embeddings": Entry(
            "segment_embedding/embeddings", (config.type_vocab_size, h), same),
        "embeddings/layer_norm/gamma": Entry("embeddings_layer_norm/gamma", (h,), same),
        "embeddings/layer_norm/beta": Entry("embeddings_layer_norm/beta", (h,), same),
        "pooler/kernel": Entry("pooled_dense/kernel", (h, h), same),
        "pooler/bias": Entry("pooled_dense/bias", (h,), same),
    }
    for i in range(config.num_layers):
        src, dst = f"transformer_layer_{i}", f"layer_{i}"
        for part in ("query", "key", "value"):
            table[f"{dst}/attention/{part}/kernel"] = Entry(
                f"{src}/self_attention_layer/{part}/kernel", (h, n, d), canonical.reshape_to(h, h))
            table[f"{dst}/attention/{part}/bias"] = Entry(
                f"{src}/self_attention_layer/{part}/bias", (n, d), canonical.reshape_to(h))
        table[f"{dst}/attention/output/kernel"] = Entry(
            f"{src}/self_attention_layer/attention_output/kernel", (n, d, h),
            canonical.reshape_to(h, h))
        table[f"{dst}/attention/output/bias"] = Entry(
            f"{src}/self_attention_layer/attention_output/bias", (h,), same)
        for name, scope, d_in, d_out in (
                ("intermediate", "feedforward_intermediate_dense", h, i_dim),
                ("output", "feedforward_output_dense", i_dim, h)):
            table[f"{dst}/{name}/kernel"] = Entry(f"{src}/{scope}/kernel", (d_in, d_out), same)
            table[f"{dst}/{name}/bias"] = Entry(f"{src}/{scope}/bias", (d_out,), same)
        for name, scope in (("attention_layer_norm", "self_attention_layer_norm"),
                            ("output_layer_norm", "feedforward_layer_norm")):
            table[f"{dst}/{name}/gamma"] = Entry(f"{src}/{scope}/gamma", (h,), same)
            table[f"{dst}/{name}/beta"] = Entry(f"{src}/{scope}/beta", (h,), same)
    return table


def convert_weights(backbone, config=None, source="keras-hub preset"):
    """Reads a `BertBackbone`'s weights as canonical weights.

    Args:
        backbone: keras_hub.models.BertBackbone.
        config: BertConfig; default `convert_config(backbone)`.
        source: str naming the preset (quoted in errors).
    """
    config = config or convert_config(backbone)
    return canonical.translate(read_tensors(backbone), weight_table(config), source)


# === Entry points ===
def load(preset):
    """Reads a keras-hub preset: returns (BertConfig, canonical weights, preset)."""
    backbone = load_backbone(preset)
    config = convert_config(backbone)
    return config, convert_weights(backbone, config, source=str(preset)), str(preset)


def locate_vocab(preset):
    """Returns (vocabulary file, lowercase) of a keras-hub BERT preset.

    A preset directory holds `assets/tokenizer/vocabulary.txt` and its
    tokenizer's `lowercase` in `tokenizer.json`. For a named or remote preset
    the tokenizer is loaded with `BertTokenizer.from_preset` (which downloads
    and caches it) and its vocabulary written once to a file under the
    temporary directory, since WordPiece tokenizers read a vocabulary file.
    """
    if _is_local_preset(preset):
        vocab_file = _join(preset, VOCAB_ASSET)
        config_file = _join(preset, TOKENIZER_CONFIG_FILE)
        if not (tf.io.gfile.exists(vocab_file) and tf.io.gfile.exists(config_file)):
            raise FileNotFoundError(f"The keras-hub preset {preset} has no tokenizer "
                                    f"({VOCAB_ASSET}, {TOKENIZER_CONFIG_FILE}): pass vocab_file")
        with tf.io.gfile.GFile(config_file, "r") as f:
            lowercase = json.load(f)["config"].get("lowercase", False)
        return vocab_file, bool(lowercase)

    import keras_hub

    tokenizer = keras_hub.models.BertTokenizer.from_preset(str(preset))
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(preset))
    vocab_file = os.path.join(tempfile.gettempdir(), "bert_adapters_vocab", safe_name,
                              "vocabulary.txt")
    if not os.path.exists(vocab_file):
        os.makedirs(os.path.dirname(vocab_file), exist_ok=True)
        tmp = f"{vocab_file}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(f"{token}\n" for token in tokenizer.get_vocabulary()))
        os.replace(tmp, vocab_file)
    return vocab_file, bool(tokenizer.lowercase)
