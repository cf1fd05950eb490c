"""Original TF1 BERT checkpoints (google-research/bert and adapter-bert).

A checkpoint directory holds `bert_config.json`, `bert_model.ckpt.{index,
data-*}` and `vocab.txt`; run_classifier.py instead takes the three paths
(`--init_checkpoint` prefix, `--bert_config_file`, `--vocab_file`). Tensors
are read by name with `tf.train.load_checkpoint(prefix).get_tensor(name)`;
kernels are already `[in, out]`, so names are the only translation.

Checkpoints written by the paper's own code (google-research/adapter-bert)
also hold the adapters: `bert/encoder/layer_i/attention/output/adapters/
{weights1 [H, m], biases1 [1, m], weights2 [m, H], biases2 [1, H]}` and the
same under `bert/encoder/layer_i/output/adapters/`.
"""

import re

import tensorflow as tf

from bert_adapters import io_utils
from bert_adapters.model.bert_encoder import BertConfig
from bert_adapters.checkpoints import canonical
from bert_adapters.checkpoints.canonical import Entry

CONFIG_FILE = "bert_config.json"
CHECKPOINT_NAME = "bert_model.ckpt"
VOCAB_FILE = "vocab.txt"

# TF1 BERT's `gelu` is the tanh approximation (modeling.py's `gelu`).
_ACTIVATIONS = {"gelu": "gelu_tanh"}
_REQUIRED_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size", "max_position_embeddings", "type_vocab_size")
# adapter-bert's scopes: the attention sub-layer's output, then the layer's output.
_ADAPTER_SCOPES = {"attention_adapter": "attention/output/adapters",
                   "output_adapter": "output/adapters"}


# === Files ===
def find_checkpoint(path):
    """Returns the checkpoint prefix for a prefix or a directory.

    A directory is searched for its `checkpoint` state file (the latest
    checkpoint of a training run), then for `bert_model.ckpt`, then for a
    single `*.ckpt*.index`.

    Raises:
        FileNotFoundError if no checkpoint (or several) are found.
    """
    path = str(path)
    if tf.io.gfile.exists(path + ".index"):
        return path
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest and tf.io.gfile.exists(latest + ".index"):
            return latest
        prefixes = sorted(p[:-len(".index")] for p in
                          tf.io.gfile.glob(f"{path.rstrip('/')}/*.ckpt*.index"))
        named = [p for p in prefixes if p.endswith("/" + CHECKPOINT_NAME)]
        if named:
            return named[0]
        if len(prefixes) == 1:
            return prefixes[0]
        if prefixes:
            raise FileNotFoundError(
                f"Several TF1 checkpoints in {path}: {prefixes}; pass the prefix of one")
    raise FileNotFoundError(
        f"No TF1 checkpoint at {path}: expected a prefix P with P.index, or a directory "
        f"holding {CHECKPOINT_NAME}.index")


def _beside(prefix, filename):
    return f"{prefix.rsplit('/', 1)[0]}/{filename}" if "/" in prefix else filename


def read_config_file(bert_config_file):
    """Reads a `bert_config.json` into a dict."""
    if not tf.io.gfile.exists(bert_config_file):
        raise FileNotFoundError(
            f"BERT config file {bert_config_file} not found (pass bert_config_file)")
    config = io_utils.read_json(bert_config_file)  # Damaged: an error naming the line.
    if not isinstance(config, dict):
        raise ValueError(f"{bert_config_file}: expected a JSON object of BERT settings")
    return config


def read_tensors(prefix):
    """Reads the encoder's tensors from the TF1 checkpoint at `prefix`.

    Only `bert/*` tensors are kept: `cls/*` (pre-training heads), task heads
    (`output_weights`, ...), `global_step` and Adam's `*/adam_m`, `*/adam_v`
    slots are skipped.

    Returns:
        dict {name: np.ndarray}.
    """
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as err:
        raise ValueError(f"{prefix}.index: not a readable TF1 checkpoint index "
                         f"({_reason(err)}); the checkpoint is damaged or incomplete") from None
    tensors = {}
    for name in names:
        if not name.startswith("bert/") or name.endswith(("/adam_m", "/adam_v")):
            continue
        try:
            tensors[name] = reader.get_tensor(name)
        except (tf.errors.OpError, IndexError, ValueError) as err:
            # A truncated .data file: TensorFlow says only "Read less bytes than requested".
            data_files = tf.io.gfile.glob(f"{prefix}.data-*") or [f"{prefix}.data-*"]
            raise ValueError(f"{', '.join(data_files)}: cannot read tensor {name} "
                             f"({_reason(err)}); the checkpoint's data file is damaged or was "
                             f"cut short (download or copy it again)") from None
    return tensors


def _reason(err):
    return getattr(err, "message", None) or str(err) or type(err).__name__


# === Translation ===
def convert_config(bert_config, source=CONFIG_FILE):
    """Translates a `bert_config.json` dict into a BertConfig.

    Args:
        bert_config: dict read from `bert_config.json`.
        source: str, the file's path (quoted in errors).

    Raises:
        ValueError naming the field and file for a missing key or an
        activation other than TF1 BERT's `gelu`.
    """
    missing = [k for k in _REQUIRED_KEYS if k not in bert_config]
    if missing:
        raise ValueError(f"{source} lacks the BERT config field(s) {missing}")
    act = bert_config.get("hidden_act", "gelu")
    if act not in _ACTIVATIONS:
        raise ValueError(f"Unsupported activation hidden_act={act!r} in {source}: TF1 BERT "
                         f"checkpoints are supported with {sorted(_ACTIVATIONS)}")
    defaults = BertConfig()
    return BertConfig(
        vocab_size=bert_config["vocab_size"],
        hidden_dim=bert_config["hidden_size"],
        num_layers=bert_config["num_hidden_layers"],
        num_heads=bert_config["num_attention_heads"],
        intermediate_dim=bert_config["intermediate_size"],
        max_sequence_length=bert_config["max_position_embeddings"],
        type_vocab_size=bert_config["type_vocab_size"],
        activation=_ACTIVATIONS[act],
        dropout=bert_config.get("hidden_dropout_prob", defaults.dropout),
        attention_dropout=bert_config.get("attention_probs_dropout_prob",
                                          defaults.attention_dropout),
        initializer_range=bert_config.get("initializer_range", defaults.initializer_range),
    )


def detect_adapter_size(tensors):
    """The adapter size m of an adapter-bert checkpoint (None without adapters)."""
    sizes = {int(v.shape[-1]) for k, v in tensors.items()
             if re.fullmatch(r"bert/encoder/layer_\d+/.*adapters/weights1", k)}
    if len(sizes) > 1:
        raise ValueError(f"The checkpoint's adapters have different sizes: {sorted(sizes)}")
    return sizes.pop() if sizes else None


def weight_table(config, adapter_size=None):
    """{canonical name: Entry} for a TF1 BERT (or adapter-bert) checkpoint."""
    h, i_dim, same = config.hidden_dim, config.intermediate_dim, canonical.identity
    table = {
        "embeddings/word_embeddings": Entry(
            "bert/embeddings/word_embeddings", (config.vocab_size, h), same),
        "embeddings/position_embeddings": Entry(
            "bert/embeddings/position_embeddings", (config.max_sequence_length, h), same),
        "embeddings/type_embeddings": Entry(
            "bert/embeddings/token_type_embeddings", (config.type_vocab_size, h), same),
        "embeddings/layer_norm/gamma": Entry("bert/embeddings/LayerNorm/gamma", (h,), same),
        "embeddings/layer_norm/beta": Entry("bert/embeddings/LayerNorm/beta", (h,), same),
        "pooler/kernel": Entry("bert/pooler/dense/kernel", (h, h), same),
        "pooler/bias": Entry("bert/pooler/dense/bias", (h,), same),
    }
    for i in range(config.num_layers):
        src, dst = f"bert/encoder/layer_{i}", f"layer_{i}"
        for part in ("query", "key", "value"):
            table[f"{dst}/attention/{part}/kernel"] = Entry(
                f"{src}/attention/self/{part}/kernel", (h, h), same)
            table[f"{dst}/attention/{part}/bias"] = Entry(
                f"{src}/attention/self/{part}/bias", (h,), same)
        dense = {"attention/output": ("attention/output/dense", h, h),
                 "intermediate": ("intermediate/dense", h, i_dim),
                 "output": ("output/dense", i_dim, h)}
        for name, (scope, d_in, d_out) in dense.items():
            table[f"{dst}/{name}/kernel"] = Entry(f"{src}/{scope}/kernel", (d_in, d_out), same)
            table[f"{dst}/{name}/bias"] = Entry(f"{src}/{scope}/bias", (d_out,), same)
        for name, scope in (("attention_layer_norm", "attention/output/LayerNorm"),
                            ("output_layer_norm", "output/LayerNorm")):
            table[f"{dst}/{name}/gamma"] = Entry(f"{src}/{scope}/gamma", (h,), same)
            table[f"{dst}/{name}/beta"] = Entry(f"{src}/{scope}/beta", (h,), same)
        if adapter_size:
            m = adapter_size
            # adapter-bert keeps its biases 2-D ([1, m], [1, H]): squeeze them.
            squeeze = lambda x: x.reshape(-1)
            for slot, scope in _ADAPTER_SCOPES.items():
                names = canonical.adapter_names(i, slot)
                table[names["down/kernel"]] = Entry(f"{src}/{scope}/weights1", (h, m), same)
                table[names["down/bias"]] = Entry(f"{src}/{scope}/biases1", (1, m), squeeze)
                table[names["up/kernel"]] = Entry(f"{src}/{scope}/weights2", (m, h), same)
                table[names["up/bias"]] = Entry(f"{src}/{scope}/biases2", (1, h), squeeze)
    return table


def convert_weights(tensors, config, source="TF1 checkpoint"):
    """Translates TF1 BERT tensors into canonical weights (adapters included).

    Args:
        tensors: dict {TF1 name: np.ndarray}, see `read_tensors`.
        config: BertConfig of the checkpoint.
        source: str naming the checkpoint (quoted in errors).

    Raises:
        ValueError listing missing tensors, shape mismatches and leftovers.
    """
    table = weight_table(config, detect_adapter_size(tensors))
    return canonical.translate(tensors, table, source)


# === Entry points ===
def load(init_checkpoint, bert_config_file=None):
    """Reads a TF1 checkpoint: returns (BertConfig, canonical weights, prefix).

    Args:
        init_checkpoint: checkpoint prefix or directory.
        bert_config_file: path; default `bert_config.json` beside the checkpoint.
    """
    prefix = find_checkpoint(init_checkpoint)
    bert_config_file = bert_config_file or _beside(prefix, CONFIG_FILE)
    config = convert_config(read_config_file(bert_config_file), source=bert_config_file)
    weights = convert_weights(read_tensors(prefix), config, source=prefix)
    return config, weights, prefix


def lower_case_from_path(*paths):
    """BERT's naming convention for casing: `uncased` lower-cases, `cased` keeps.

    The path components are searched from the deepest up (so
    `.../cased_L-12_H-768_A-12/vocab.txt` is cased). Without either word the
    answer is True (lower-case), the convention of most English BERTs and of
    run_classifier.py's `--do_lower_case` default.
    """
    for path in paths:
        if not path:
            continue
        for part in reversed(re.split(r"[/\\]", str(path).lower())):
            if re.search(r"(?<![a-z])uncased", part):
                return True
            if re.search(r"(?<![a-z])cased", part):
                return False
    return True


def locate_vocab(init_checkpoint, vocab_file=None):
    """Returns (vocab file path, do_lower_case) for a TF1 checkpoint.

    Args:
        init_checkpoint: checkpoint prefix or directory.
        vocab_file: path; default `vocab.txt` beside the checkpoint.
    """
    if vocab_file is None:
        prefix = find_checkpoint(init_checkpoint)
        vocab_file = _beside(prefix, VOCAB_FILE)
    if not tf.io.gfile.exists(vocab_file):
        raise FileNotFoundError(f"Vocabulary file {vocab_file} not found (pass vocab_file)")
    return str(vocab_file), lower_case_from_path(init_checkpoint, vocab_file)
