"""Which weights each tuning mode trains: stated once, pinned by tests.

The paper (section 3) compares:
  - `adapters`: the adapters, every LayerNorm (the embedding LayerNorm and
    two per layer: 2L+1) and the task head. The pre-trained pooler stays
    frozen, as in the authors' code (google-research/adapter-bert), which
    puts a fresh classifier on the frozen pooled output. With adapters in
    layers i..j only (`--adapter_layers`), the LayerNorms of those layers;
    the embedding LayerNorm only when i = 1: below the lowest adapted layer
    everything is frozen, which is what lets the backward pass stop there.
  - `full`: everything (full fine-tuning, BERT's baseline).
  - `top_k`: "variable fine-tuning": the top k Transformer layers, the
    pooler and the head.
  - `layer_norm`: only the LayerNorms and the head (figure 4's baseline).
The head is outside the encoder and always trained.
"""

import numpy as np

from bert_adapters.model.bert_encoder import is_adapter_weight
from bert_adapters.model.layer_span import parse_layer_span

TUNING_MODES = ("adapters", "full", "top_k", "layer_norm")


def _is_layer_norm(name):
    return "layer_norm/" in name


def _layer_index(name):
    head = name.split("/", 1)[0]
    return int(head[len("layer_"):]) if head.startswith("layer_") else None


def is_trained(name, mode, num_layers, num_tuned_layers=None, adapter_layers=None):
    """True if the encoder weight with canonical `name` is trained under `mode`.

    This is the single statement of every mode's trainable set.
    `adapter_layers`: `(i, j)` (1-based, inclusive) or None (every layer).
    """
    if mode == "adapters":
        if is_adapter_weight(name):
            return True
        first, last = parse_layer_span(adapter_layers) or (1, num_layers)
        index = _layer_index(name)
        if index is None:  # The embedding LayerNorm, below layer 1.
            return _is_layer_norm(name) and first == 1
        return _is_layer_norm(name) and first <= index + 1 <= last
    if mode == "full":
        return True
    if mode == "top_k":
        index = _layer_index(name)
        return name.startswith("pooler/") or (
            index is not None and index >= num_layers - num_tuned_layers)
    if mode == "layer_norm":
        return _is_layer_norm(name)
    raise ValueError(f"Unknown tuning mode {mode!r}: expected one of {TUNING_MODES}")


def check_tuning(mode, adapter_size, num_layers, num_tuned_layers=None, adapter_layers=None):
    """Validates a (mode, adapter_size, num_tuned_layers, adapter_layers) combination."""
    if mode not in TUNING_MODES:
        raise ValueError(f"Unknown tuning mode {mode!r}: expected one of {TUNING_MODES}")
    if mode == "adapters" and not adapter_size:
        raise ValueError("tuning='adapters' needs adapter_size (e.g. 64)")
    if mode != "adapters" and adapter_size:
        raise ValueError(f"tuning={mode!r} trains no adapters: leave adapter_size unset "
                         f"(got {adapter_size})")
    if mode != "adapters" and adapter_layers is not None:
        raise ValueError(f"--adapter_layers places adapters: it applies to tuning='adapters' "
                         f"only (got tuning={mode!r})")
    parse_layer_span(adapter_layers, num_layers)
    if mode == "top_k":
        if not isinstance(num_tuned_layers, int) or not 1 <= num_tuned_layers <= num_layers:
            raise ValueError(f"tuning='top_k' needs num_tuned_layers in [1, {num_layers}], "
                             f"got {num_tuned_layers!r}")
    elif num_tuned_layers is not None:
        raise ValueError(f"num_tuned_layers only applies to tuning='top_k' (got tuning={mode!r})")


def apply_tuning(encoder, mode, num_tuned_layers=None):
    """Marks the encoder's variables trainable or frozen for `mode`.

    Returns the sorted list of canonical names that will be trained.
    """
    num_layers = encoder.config.num_layers
    check_tuning(mode, encoder.adapter_size, num_layers, num_tuned_layers, encoder.adapter_layers)
    encoder.trainable = True
    trained = []
    for name, variable in encoder.weight_map().items():
        variable.trainable = is_trained(name, mode, num_layers, num_tuned_layers,
                                        encoder.adapter_layers)
        if variable.trainable:
            trained.append(name)
    return sorted(trained)


def count_trained_params(config, mode, adapter_size=None, num_tuned_layers=None,
                         adapter_layers=None):
    """Trained encoder parameters under `mode`, from the config alone.

    Closed form (d = hidden_dim, m = adapter_size, L = layers, I = FFN width):
    an adapter has 2md + d + m, a LayerNorm 2d, a layer 4(d^2 + d) + 2dI + I + d
    + 4d, the pooler d^2 + d. Adapters in layers i..j: n = j - i + 1 layers
    of two adapters and two LayerNorms, plus the embedding LayerNorm if i = 1.
    """
    check_tuning(mode, adapter_size, config.num_layers, num_tuned_layers, adapter_layers)
    d, L = config.hidden_dim, config.num_layers
    layer_norms = (2 * L + 1) * 2 * d
    per_layer = 4 * (d * d + d) + 2 * d * config.intermediate_dim + config.intermediate_dim + d \
        + 2 * 2 * d
    pooler = d * d + d
    if mode == "adapters":
        first, last = parse_layer_span(adapter_layers) or (1, L)
        n = last - first + 1
        return (2 * n * (2 * adapter_size * d + d + adapter_size)
                + (2 * n + int(first == 1)) * 2 * d)
    if mode == "layer_norm":
        return layer_norms
    if mode == "top_k":
        return num_tuned_layers * per_layer + pooler
    embeddings = (config.vocab_size + config.max_sequence_length + config.type_vocab_size) * d \
        + 2 * d
    return embeddings + L * per_layer + pooler


def parameter_report(model, encoder):
    """Total, trained, and trained as % of the base encoder (adapters excluded).

    Args:
        model: the whole task model (encoder and head).
        encoder: its BertEncoder.
    Returns:
        dict with `total_params`, `trained_params`, `base_params`,
        `trained_percent_of_base`.
    """
    total = sum(int(np.prod(v.shape)) for v in model.weights)
    trained = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    base = sum(int(np.prod(v.shape)) for v in encoder.base_weight_map().values())
    return {
        "total_params": total,
        "trained_params": trained,
        "base_params": base,
        "trained_percent_of_base": round(100.0 * trained / base, 4),
    }
