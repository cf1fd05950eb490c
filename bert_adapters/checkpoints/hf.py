"""Hugging Face BERT directories (`config.json` + `model.safetensors`).

Read with the `safetensors` package's NumPy API (no torch). Linear weights are
`[out, in]` in PyTorch and are transposed; embeddings are not. Tensor names
may carry a `bert.` prefix (`BertForPreTraining` and task models; everything
outside it is a head and is skipped); LayerNorms are `weight/bias`, or
`gamma/beta` in older conversions. `hidden_act: "gelu"` is the exact erf
GELU in HF, unlike TF1 BERT.
"""

import json

import tensorflow as tf

from bert_adapters.model.bert_encoder import BertConfig
from bert_adapters.checkpoints import canonical
from bert_adapters.checkpoints.canonical import Entry

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"

ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "gelu_fast": "gelu_tanh"}
_PREFIX = "bert."
# Buffers and pre-training heads that are not encoder weights.
_SKIPPED = ("embeddings.position_ids",)


def _join(path, name):
    return f"{str(path).rstrip('/')}/{name}"


def _read_json(path):
    with tf.io.gfile.GFile(path, "r") as f:
        return json.load(f)


# === Files ===
def read_config(model_dir):
    """Reads `config.json` of a HF BERT directory."""
    path = _join(model_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found: not a Hugging Face model directory")
    return _read_json(path)


def _safetensors_files(model_dir):
    single = _join(model_dir, WEIGHTS_FILE)
    if tf.io.gfile.exists(single):
        return [single]
    index = _join(model_dir, WEIGHTS_INDEX_FILE)
    if tf.io.gfile.exists(index):
        shards = sorted(set(_read_json(index)["weight_map"].values()))
        return [_join(model_dir, shard) for shard in shards]
    others = [name for name in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")
              if tf.io.gfile.exists(_join(model_dir, name))]
    found = f" (found only {others})" if others else ""
    raise FileNotFoundError(
        f"No {WEIGHTS_FILE} in {model_dir}{found}: Hugging Face checkpoints are read from "
        "safetensors only (no torch here). Convert it, e.g. save_pretrained(..., "
        "safe_serialization=True), or load the matching TF Hub / TF1 checkpoint")


def read_tensors(model_dir):
    """Reads the encoder's tensors: {name as in the file: np.ndarray}.

    Dropped: the `embeddings.position_ids` buffer, the `cls.*` pre-training
    heads and, when the names carry the `bert.` prefix, everything outside
    it (task heads such as `classifier.*`).
    """
    from safetensors import numpy as safetensors_np  # Lazy: only this format needs it.

    tensors = {}
    for path in _safetensors_files(model_dir):
        if "://" in path:  # gs:// and other gfile paths: read the bytes.
            with tf.io.gfile.GFile(path, "rb") as f:
                tensors.update(safetensors_np.load(f.read()))
        else:
            tensors.update(safetensors_np.load_file(path))
    prefix = _prefix(tensors)
    return {name: v for name, v in tensors.items()
            if name.startswith(prefix) and name[len(prefix):] not in _SKIPPED
            and not name.startswith("cls.")}


def _prefix(tensors):
    return _PREFIX if any(name.startswith(_PREFIX) for name in tensors) else ""


# === Translation ===
def convert_config(hf_config, source=CONFIG_FILE):
    """Translates a HF BERT `config.json` dict into a BertConfig.

    Raises:
        ValueError naming the value and file for an unsupported `hidden_act`,
        a `model_type` other than bert or a non-absolute position embedding.
    """
    model_type = hf_config.get("model_type", "bert")
    if model_type != "bert":
        raise ValueError(f"{source} describes model_type={model_type!r}; only 'bert' is supported")
    position_type = hf_config.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ValueError(f"Unsupported position_embedding_type={position_type!r} in {source}: "
                         "expected 'absolute'")
    act = hf_config.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise ValueError(f"Unsupported activation hidden_act={act!r} in {source}: expected one "
                         f"of {sorted(ACTIVATIONS)}")
    try:
        defaults = BertConfig()
        return BertConfig(
            vocab_size=hf_config["vocab_size"],
            hidden_dim=hf_config["hidden_size"],
            num_layers=hf_config["num_hidden_layers"],
            num_heads=hf_config["num_attention_heads"],
            intermediate_dim=hf_config["intermediate_size"],
            max_sequence_length=hf_config["max_position_embeddings"],
            type_vocab_size=hf_config.get("type_vocab_size", defaults.type_vocab_size),
            activation=ACTIVATIONS[act],
            dropout=hf_config.get("hidden_dropout_prob", defaults.dropout),
            attention_dropout=hf_config.get("attention_probs_dropout_prob",
                                            defaults.attention_dropout),
            layer_norm_epsilon=hf_config.get("layer_norm_eps", defaults.layer_norm_epsilon),
            initializer_range=hf_config.get("initializer_range", defaults.initializer_range),
        )
    except KeyError as e:
        raise ValueError(f"{source} lacks the BERT config field {e.args[0]!r}") from None


def weight_table(config, layer_norm_names=("weight", "bias"), prefix=""):
    """{canonical name: Entry} for a HF BERT whose names start with `prefix`."""
    h, i_dim, same, t = (config.hidden_dim, config.intermediate_dim, canonical.identity,
                         canonical.transpose)
    g, b = layer_norm_names
    table = {
        "embeddings/word_embeddings": Entry(
            "embeddings.word_embeddings.weight", (config.vocab_size, h), same),
        "embeddings/position_embeddings": Entry(
            "embeddings.position_embeddings.weight", (config.max_sequence_length, h), same),
        "embeddings/type_embeddings": Entry(
            "embeddings.token_type_embeddings.weight", (config.type_vocab_size, h), same),
        "embeddings/layer_norm/gamma": Entry(f"embeddings.LayerNorm.{g}", (h,), same),
        "embeddings/layer_norm/beta": Entry(f"embeddings.LayerNorm.{b}", (h,), same),
        "pooler/kernel": Entry("pooler.dense.weight", (h, h), t),
        "pooler/bias": Entry("pooler.dense.bias", (h,), same),
    }
    for i in range(config.num_layers):
        src, dst = f"encoder.layer.{i}", f"layer_{i}"
        dense = {"attention/query": ("attention.self.query", h, h),
                 "attention/key": ("attention.self.key", h, h),
                 "attention/value": ("attention.self.value", h, h),
                 "attention/output": ("attention.output.dense", h, h),
                 "intermediate": ("intermediate.dense", h, i_dim),
                 "output": ("output.dense", i_dim, h)}
        for name, (scope, d_in, d_out) in dense.items():
            # torch.nn.Linear stores [out, in].
            table[f"{dst}/{name}/kernel"] = Entry(f"{src}.{scope}.weight", (d_out, d_in), t)
            table[f"{dst}/{name}/bias"] = Entry(f"{src}.{scope}.bias", (d_out,), same)
        for name, scope in (("attention_layer_norm", "attention.output.LayerNorm"),
                            ("output_layer_norm", "output.LayerNorm")):
            table[f"{dst}/{name}/gamma"] = Entry(f"{src}.{scope}.{g}", (h,), same)
            table[f"{dst}/{name}/beta"] = Entry(f"{src}.{scope}.{b}", (h,), same)
    return {k: entry._replace(name=prefix + entry.name) for k, entry in table.items()}


def convert_weights(tensors, config, source="Hugging Face checkpoint"):
    """Translates HF BERT tensors into canonical weights.

    Args:
        tensors: dict {name: np.ndarray}, see `read_tensors`; names may all
            carry the `bert.` prefix.
        config: BertConfig, see `convert_config`.
        source: str naming the file (quoted in errors).
    """
    prefix = _prefix(tensors)
    old_style = f"{prefix}embeddings.LayerNorm.gamma" in tensors
    table = weight_table(config, ("gamma", "beta") if old_style else ("weight", "bias"), prefix)
    return canonical.translate(tensors, table, source)


# === Entry points ===
def load(model_dir):
    """Reads a HF BERT directory: returns (BertConfig, canonical weights, dir)."""
    config = convert_config(read_config(model_dir), source=_join(model_dir, CONFIG_FILE))
    source = ", ".join(_safetensors_files(model_dir))
    weights = convert_weights(read_tensors(model_dir), config, source=source)
    return config, weights, str(model_dir)


def locate_vocab(model_dir):
    """Returns (vocab.txt path, do_lower_case from tokenizer_config.json).

    Without `tokenizer_config.json` (or its `do_lower_case`) the answer is
    True, the default of HF's BertTokenizer.
    """
    vocab_file = _join(model_dir, VOCAB_FILE)
    if not tf.io.gfile.exists(vocab_file):
        raise FileNotFoundError(f"{vocab_file} not found (pass vocab_file)")
    tokenizer_config = _join(model_dir, TOKENIZER_CONFIG_FILE)
    do_lower_case = True
    if tf.io.gfile.exists(tokenizer_config):
        do_lower_case = bool(_read_json(tokenizer_config).get("do_lower_case", True))
    return vocab_file, do_lower_case
