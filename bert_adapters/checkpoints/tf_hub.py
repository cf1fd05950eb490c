"""TF Hub BERT encoders (SavedModels exported by TF Model Garden, version 3+).

`hub.KerasLayer` is a tf_keras layer and cannot sit inside a Keras 3 model,
so the SavedModel is only read: `tensorflow_hub.resolve(handle)` downloads and
caches it, `tf.saved_model.load(path).variables` gives its variables by name
(`transformer/layer_0/self_attention/query/kernel:0`, ...). Attention kernels
are stored per head (`[H, N, D]`, output `[N, D, H]`) and are merged into the
canonical `[H, H]` (head index major, no transpose).

The export also holds `vocab_file` (an asset, `assets/vocab.txt`), a bool
`do_lower_case` variable (named `Variable:0`, skipped) and, in version 4, an
`.mlm` sub-object with the pre-training head (skipped).
"""

import re

import tensorflow as tf

from bert_adapters.model.bert_encoder import BertConfig
from bert_adapters.checkpoints import canonical
from bert_adapters.checkpoints.canonical import Entry
from bert_adapters.checkpoints.tf1 import lower_case_from_path

VOCAB_ASSET = "assets/vocab.txt"
# Where the root object's `do_lower_case` variable sits in the SavedModel's
# variables checkpoint: read without loading the graph.
_DO_LOWER_CASE_KEY = "do_lower_case/.ATTRIBUTES/VARIABLE_VALUE"


# === Files ===
def resolve_handle(handle):
    """Returns a local (or gs://) directory for a TF Hub handle or path."""
    handle = str(handle)
    if tf.io.gfile.exists(f"{handle.rstrip('/')}/saved_model.pb"):
        return handle
    import tensorflow_hub  # Lazy: only remote handles need it.
    return tensorflow_hub.resolve(handle)


def _join(path, name):
    return f"{str(path).rstrip('/')}/{name}"


def read_variables(path):
    """Reads the encoder's variables from the SavedModel at `path`.

    Skips bool variables (`do_lower_case`) and the variables only the `.mlm`
    sub-object uses. The `:0` suffix is dropped from names.

    Returns:
        dict {name: np.ndarray}.
    """
    loaded = tf.saved_model.load(path)
    if not hasattr(loaded, "variables"):
        raise ValueError(f"The SavedModel at {path} has no `.variables`: not a TF Hub "
                         "BERT encoder exported by TF Model Garden")
    mlm = getattr(loaded, "mlm", None)
    mlm_ids = {id(v) for v in getattr(mlm, "variables", ())}
    tensors = {}
    for var in loaded.variables:
        if var.dtype == tf.bool:
            continue
        name = re.sub(r":\d+$", "", var.name)
        if id(var) in mlm_ids and not _is_encoder_name(name):
            continue
        if name in tensors:
            raise ValueError(f"Two variables named {name!r} in the SavedModel at {path}")
        tensors[name] = var.numpy()
    return tensors


def _is_encoder_name(name):
    return (name in ("word_embeddings/embeddings", "position_embedding/embeddings",
                     "type_embeddings/embeddings", "embeddings/layer_norm/gamma",
                     "embeddings/layer_norm/beta", "pooler_transform/kernel",
                     "pooler_transform/bias")
            or name.startswith("transformer/layer_"))


# === Translation ===
def convert_config(tensors, source="TF Hub SavedModel"):
    """Infers the BertConfig from the variables' shapes.

    Vocabulary, width, positions and token types come from the embedding
    tables, the depth from the `transformer/layer_i` indices, the
    intermediate width from layer 0's `intermediate/kernel` and the number of
    heads from the `[H, N, D]` query kernel. The activation is tanh GELU, as
    in every Model Garden BERT.
    """
    def shape(name):
        if name not in tensors:
            raise ValueError(f"Cannot read the BERT checkpoint {source}: missing tensor {name} "
                             "(a TF Hub BERT encoder of version 3 or later is expected)")
        return tensors[name].shape

    vocab_size, hidden_dim = shape("word_embeddings/embeddings")
    layers = sorted({int(m.group(1)) for name in tensors
                     if (m := re.match(r"transformer/layer_(\d+)/", name))})
    if layers != list(range(len(layers))) or not layers:
        raise ValueError(f"Cannot read the BERT checkpoint {source}: transformer layers "
                         f"{layers} are not 0..L-1")
    return BertConfig(
        vocab_size=int(vocab_size),
        hidden_dim=int(hidden_dim),
        num_layers=len(layers),
        num_heads=int(shape("transformer/layer_0/self_attention/query/kernel")[1]),
        intermediate_dim=int(shape("transformer/layer_0/intermediate/kernel")[1]),
        max_sequence_length=int(shape("position_embedding/embeddings")[0]),
        type_vocab_size=int(shape("type_embeddings/embeddings")[0]),
        activation="gelu_tanh",
    )


def weight_table(config):
    """{canonical name: Entry} for a TF Hub BERT encoder."""
    h, n = config.hidden_dim, config.num_heads
    d, i_dim, same = h // n, config.intermediate_dim, canonical.identity
    table = {
        "embeddings/word_embeddings": Entry(
            "word_embeddings/embeddings", (config.vocab_size, h), same),
        "embeddings/position_embeddings": Entry(
            "position_embedding/embeddings", (config.max_sequence_length, h), same),
        "embeddings/type_embeddings": Entry(
            "type_embeddings/embeddings", (config.type_vocab_size, h), same),
        "embeddings/layer_norm/gamma": Entry("embeddings/layer_norm/gamma", (h,), same),
        "embeddings/layer_norm/beta": Entry("embeddings/layer_norm/beta", (h,), same),
        "pooler/kernel": Entry("pooler_transform/kernel", (h, h), same),
        "pooler/bias": Entry("pooler_transform/bias", (h,), same),
    }
    for i in range(config.num_layers):
        src, dst = f"transformer/layer_{i}", f"layer_{i}"
        for part in ("query", "key", "value"):
            table[f"{dst}/attention/{part}/kernel"] = Entry(
                f"{src}/self_attention/{part}/kernel", (h, n, d), canonical.reshape_to(h, h))
            table[f"{dst}/attention/{part}/bias"] = Entry(
                f"{src}/self_attention/{part}/bias", (n, d), canonical.reshape_to(h))
        table[f"{dst}/attention/output/kernel"] = Entry(
            f"{src}/self_attention/attention_output/kernel", (n, d, h), canonical.reshape_to(h, h))
        table[f"{dst}/attention/output/bias"] = Entry(
            f"{src}/self_attention/attention_output/bias", (h,), same)
        for name, scope, d_in, d_out in (("intermediate", "intermediate", h, i_dim),
                                         ("output", "output", i_dim, h)):
            table[f"{dst}/{name}/kernel"] = Entry(f"{src}/{scope}/kernel", (d_in, d_out), same)
            table[f"{dst}/{name}/bias"] = Entry(f"{src}/{scope}/bias", (d_out,), same)
        for name, scope in (("attention_layer_norm", "self_attention_layer_norm"),
                            ("output_layer_norm", "output_layer_norm")):
            table[f"{dst}/{name}/gamma"] = Entry(f"{src}/{scope}/gamma", (h,), same)
            table[f"{dst}/{name}/beta"] = Entry(f"{src}/{scope}/beta", (h,), same)
    return table


def convert_weights(tensors, config, source="TF Hub SavedModel"):
    """Translates TF Hub variables into canonical weights.

    Args:
        tensors: dict {variable name without `:0`: np.ndarray}.
        config: BertConfig, see `convert_config`.
        source: str naming the SavedModel (quoted in errors).
    """
    return canonical.translate(tensors, weight_table(config), source)


# === Entry points ===
def load(handle):
    """Reads a TF Hub BERT: returns (BertConfig, canonical weights, local path)."""
    path = resolve_handle(handle)
    tensors = read_variables(path)
    config = convert_config(tensors, source=path)
    return config, convert_weights(tensors, config, source=path), path


def locate_vocab(handle):
    """Returns (vocab file path, do_lower_case) of a TF Hub BERT.

    The vocabulary is the `assets/vocab.txt` asset; casing is the exported
    `do_lower_case` variable, read from the variables checkpoint without
    loading the model (the whole SavedModel is loaded only if that fails).
    """
    path = resolve_handle(handle)
    vocab_file = _join(path, VOCAB_ASSET)
    do_lower_case = None
    try:
        reader = tf.train.load_checkpoint(_join(path, "variables/variables"))
        if reader.has_tensor(_DO_LOWER_CASE_KEY):
            do_lower_case = bool(reader.get_tensor(_DO_LOWER_CASE_KEY))
    except (tf.errors.OpError, ValueError):
        pass
    if do_lower_case is None or not tf.io.gfile.exists(vocab_file):
        loaded = tf.saved_model.load(path)
        if not tf.io.gfile.exists(vocab_file):
            if not hasattr(loaded, "vocab_file"):
                raise FileNotFoundError(
                    f"The TF Hub model at {path} has no {VOCAB_ASSET} and no vocab_file asset")
            vocab_file = loaded.vocab_file.asset_path.numpy().decode("utf-8")
        if do_lower_case is None:
            flag = getattr(loaded, "do_lower_case", None)
            # Without the flag, fall back to the model's name (`..._uncased_...`).
            do_lower_case = (bool(flag.numpy()) if flag is not None
                             else lower_case_from_path(str(handle)))
    return vocab_file, do_lower_case
