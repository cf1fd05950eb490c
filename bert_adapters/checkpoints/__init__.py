"""Pre-trained BERT weights from every format the paper's stack meets.

One module per format, each a `convert_config` / `convert_weights` pair that
translates the format's names into the canonical layout of
`BertEncoder.weight_map()` (and nothing else does):
- `tf_hub`: TF Hub SavedModels (the paper's BERT-base and BERT-large);
- `tf1`: original TF1 checkpoints, also with adapter-bert's adapters;
- `keras_hub_preset`: keras-hub BERT presets;
- `hf`: Hugging Face BERT directories (safetensors), incl. the embedded
  `minilm_l6`.
`sources.resolve` tells them apart. Entry points:

    encoder = load_encoder("bert_base_uncased", adapter_size=64, dropout=0.1)
    encoder = load_encoder(init_checkpoint=".../bert_model.ckpt",
                           bert_config_file=".../bert_config.json")
    vocab_file, do_lower_case = locate_vocab("minilm_l6")
"""

import dataclasses

from bert_adapters.model.bert_encoder import BertConfig, BertEncoder
from bert_adapters.checkpoints import canonical, hf, keras_hub_preset, sources, tf1, tf_hub
from bert_adapters.checkpoints.sources import resolve

# With neither a source nor a TF1 checkpoint: the embedded encoder, the one
# that needs no download.
DEFAULT_SOURCE = sources.EMBEDDED_ALIAS

_FORMATS = {"tf_hub": tf_hub, "tf1": tf1, "keras_hub": keras_hub_preset, "hf": hf}


def _resolve(source, init_checkpoint):
    if source is not None and init_checkpoint is not None:
        raise ValueError(f"Pass either a source ({source!r}) or init_checkpoint "
                         f"({init_checkpoint!r}), not both")
    if init_checkpoint is not None:
        return "tf1", str(init_checkpoint)
    return resolve(DEFAULT_SOURCE if source is None else source)


def read_checkpoint(source=None, *, init_checkpoint=None, bert_config_file=None):
    """Reads a checkpoint into (BertConfig, canonical weights, description).

    Args:
        source: see `sources.resolve`; default `minilm_l6`.
        init_checkpoint: a TF1 checkpoint prefix or directory, as BERT's
            `--init_checkpoint` (instead of `source`).
        bert_config_file: the TF1 checkpoint's `bert_config.json` (default:
            beside the checkpoint).

    Returns:
        (BertConfig, {canonical name: np.ndarray}, str naming what was read,
        e.g. `"tf1:/path/bert_model.ckpt"`).
    """
    kind, path = _resolve(source, init_checkpoint)
    if kind == "tf1":
        config, weights, where = tf1.load(path, bert_config_file=bert_config_file)
    else:
        if bert_config_file is not None:
            raise ValueError(f"bert_config_file is for TF1 checkpoints; {source!r} is {kind}")
        config, weights, where = _FORMATS[kind].load(path)
    description = f"{kind}:{where}"
    if source is not None and str(source) != where:
        description += f" (from {source})"
    return config, weights, description


def _apply_overrides(config, overrides, description):
    """Returns `config` with non-architecture fields overridden.

    Architecture fields (`BertConfig.ARCHITECTURE_FIELDS`) are fixed by the
    checkpoint: an override may only repeat the checkpoint's value.
    """
    fields = {f.name for f in dataclasses.fields(BertConfig)}
    for name, value in overrides.items():
        if name not in fields:
            raise ValueError(f"Unknown BertConfig override {name!r}: expected one of "
                             f"{sorted(fields)}")
        if name in BertConfig.ARCHITECTURE_FIELDS and getattr(config, name) != value:
            raise ValueError(f"Override {name}={value!r} contradicts the checkpoint "
                             f"{description}, which has {name}={getattr(config, name)!r}")
    return dataclasses.replace(config, **overrides)


def load_encoder(source=None, *, adapter_size=None, adapter_init_scale=1e-2,
                 adapter_layers=None, init_checkpoint=None, bert_config_file=None,
                 vocab_file=None, checkpoint=None, **overrides):
    """Builds a `BertEncoder` holding a pre-trained checkpoint's weights.

    A checkpoint written by the paper's code (adapter-bert) brings its
    adapters: the encoder gets adapters of that size, loaded. Otherwise
    `adapter_size` adds fresh adapters (initialised with
    `adapter_init_scale`) to the pre-trained base.

    Args:
        source: alias, TF Hub handle or SavedModel directory, TF1 checkpoint
            directory or prefix, keras-hub preset, or HF directory (see
            `sources.resolve`). Default: the embedded `minilm_l6`.
        adapter_size: int or None. Bottleneck size m of the adapters.
        adapter_init_scale: float. Stddev of new adapters' initialiser.
        adapter_layers: `"i-j"`, `(i, j)` or None: adapters only in layers
            i..j (1-based, inclusive); default every layer.
        init_checkpoint: TF1 checkpoint prefix or directory, as BERT's
            `--init_checkpoint` (instead of `source`).
        bert_config_file: its `bert_config.json` (default: beside it).
        vocab_file: accepted so that BERT's three flags can be passed as they
            come; only `locate_vocab` uses it.
        checkpoint: what `read_checkpoint` returns for these arguments, read
            earlier (the trials of a sweep read the base once); None reads it.
        **overrides: BertConfig fields to change, e.g. `dropout=0.0`.
            Architecture fields may only repeat the checkpoint's values.

    Returns:
        A built BertEncoder; `encoder.source` is a string naming the
        checkpoint read (provenance for run configs and task artifacts).

    Raises:
        ValueError: unknown source or override, an override contradicting the
            checkpoint, `adapter_size` differing from the checkpoint's
            adapters, missing or mis-shaped tensors, unsupported activation
            (each names the file).
    """
    del vocab_file  # Tokenization only; see locate_vocab.
    config, weights, description = checkpoint or read_checkpoint(
        source, init_checkpoint=init_checkpoint, bert_config_file=bert_config_file)
    config = _apply_overrides(config, overrides, description)
    stored_size = canonical.adapter_size(weights)
    if stored_size is not None:
        if adapter_size is not None and adapter_size != stored_size:
            raise ValueError(f"adapter_size={adapter_size} differs from the adapters stored in "
                             f"{description}, of size {stored_size}")
        adapter_size = stored_size
    encoder = BertEncoder(config, adapter_size=adapter_size,
                          adapter_init_scale=adapter_init_scale, adapter_layers=adapter_layers)
    encoder.set_canonical_weights(weights, source=description)
    encoder.source = description
    return encoder


def locate_vocab(source=None, *, vocab_file=None, init_checkpoint=None):
    """Finds the WordPiece vocabulary and casing that go with a checkpoint.

    Args:
        source: as for `load_encoder` (default `minilm_l6`).
        vocab_file: an explicit vocabulary file (BERT's `--vocab_file`): it
            replaces the checkpoint's; casing still comes from the checkpoint
            (or, with no source at all, from the file's path name).
        init_checkpoint: TF1 checkpoint prefix or directory.

    Returns:
        (vocab_file_path: str, do_lower_case: bool). Casing comes from TF Hub's
        `do_lower_case` variable, keras-hub's tokenizer `lowercase`, HF's
        `tokenizer_config.json`, and for TF1 from the path name (`uncased` /
        `cased`, default lower-case).
    """
    if vocab_file is not None and source is None and init_checkpoint is None:
        return str(vocab_file), tf1.lower_case_from_path(vocab_file)
    kind, path = _resolve(source, init_checkpoint)
    if kind == "tf1":
        return tf1.locate_vocab(path, vocab_file=vocab_file)
    found, do_lower_case = _FORMATS[kind].locate_vocab(path)
    return (str(vocab_file) if vocab_file is not None else found), do_lower_case


__all__ = ["load_encoder", "locate_vocab", "read_checkpoint", "resolve", "DEFAULT_SOURCE"]
