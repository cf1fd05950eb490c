"""A Keras 3 BERT encoder with the adapter slots of Houlsby et al. (2019)."""

import dataclasses

import keras
from keras import ops

from bert_adapters.ops import activations
from bert_adapters.model.embeddings import BertEmbeddings
from bert_adapters.model.layer_span import format_layer_span, parse_layer_span
from bert_adapters.model.transformer_layer import TransformerLayer

INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The architecture of a BERT base model (no task-specific settings)."""

    vocab_size: int = 30522
    hidden_dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_dim: int = 3072
    # Number of position embeddings: the longest sequence the model accepts.
    max_sequence_length: int = 512
    type_vocab_size: int = 2
    # TF1 BERT, TF Hub and keras-hub use the tanh approximation; HF's "gelu"
    # is exact. Getting this wrong shifts outputs by ~1e-3.
    activation: str = "gelu_tanh"
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_epsilon: float = 1e-12
    initializer_range: float = 0.02

    def __post_init__(self):
        for field in ("vocab_size", "hidden_dim", "num_layers", "num_heads", "intermediate_dim",
                      "max_sequence_length", "type_vocab_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"BertConfig.{field} must be a positive integer, got {value!r}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"BertConfig.hidden_dim={self.hidden_dim} is not divisible by "
                             f"num_heads={self.num_heads}")
        if self.activation not in activations.ACTIVATIONS:
            raise ValueError(f"BertConfig.activation={self.activation!r} is not supported: "
                             f"expected one of {activations.ACTIVATIONS}")

    @classmethod
    def bert_base(cls):
        return cls()

    @classmethod
    def bert_large(cls):
        return cls(hidden_dim=1024, num_layers=24, num_heads=16, intermediate_dim=4096)

    # Fields that define the base's function (dropout does not).
    ARCHITECTURE_FIELDS = ("vocab_size", "hidden_dim", "num_layers", "num_heads",
                           "intermediate_dim", "max_sequence_length", "type_vocab_size",
                           "activation", "layer_norm_epsilon")

    def architecture(self):
        return {f: getattr(self, f) for f in self.ARCHITECTURE_FIELDS}


@keras.saving.register_keras_serializable(package="bert_adapters")
class BertEncoder(keras.Model):
    """BERT (Devlin et al., 2019) with bottleneck adapters in every layer.

    Called like a TF Hub BERT encoder: a dict of int32 `[batch_size,
    seq_length]` tensors `input_word_ids`, `input_mask` (1 for real tokens)
    and `input_type_ids` gives a dict with `sequence_output` `[batch_size,
    seq_length, hidden_dim]`, `pooled_output` `[batch_size, hidden_dim]`
    (tanh dense on the first token) and `encoder_outputs` (the list of every
    layer's output).

    With `adapter_size` set, each layer holds two adapters (section 2.1,
    figure 2): one after the attention output projection, one after the
    feed-forward output projection. `set_adapters_enabled` switches them off
    per layer for the ablation of section 3.6.

    With `adapter_layers=(i, j)` only layers i..j (1-based, inclusive) hold
    adapters, and the layers below i are a frozen feature extractor: layer i
    stops gradients at its input (`TransformerLayer(stop_input_gradient)`),
    so a training step keeps no activations below it. Their LayerNorms, and
    the embedding LayerNorm under them, are frozen with them
    (`trainable.is_trained`).

    Args:
        config: BertConfig. The base architecture.
        adapter_size: int or None. Bottleneck size m; None builds no adapters.
        adapter_init_scale: float. Stddev of the adapters' truncated normal
            initialiser (paper 1e-2; the authors' code 1e-3).
        adapter_layers: `(i, j)`, `"i-j"` or None (every layer): the layers
            that hold adapters, 1-based and inclusive. Needs `adapter_size`.

    Example:
    >>> encoder = BertEncoder(BertConfig(vocab_size=100, hidden_dim=8,
    ...     num_layers=2, num_heads=2, intermediate_dim=16), adapter_size=4)
    >>> ids = np.ones((1, 5), "int32")
    >>> out = encoder({"input_word_ids": ids, "input_mask": ids,
    ...                "input_type_ids": 0 * ids})
    """

    def __init__(self, config, adapter_size=None, adapter_init_scale=1e-2, adapter_layers=None,
                 **kwargs):
        if isinstance(config, dict):
            config = BertConfig(**config)
        if adapter_size is not None and (not isinstance(adapter_size, int) or adapter_size < 1):
            raise ValueError(f"adapter_size must be a positive integer or None, got {adapter_size!r}")
        adapter_layers = parse_layer_span(adapter_layers, config.num_layers)
        if adapter_layers is not None and not adapter_size:
            raise ValueError(f"adapter_layers={format_layer_span(adapter_layers)} needs "
                             f"adapter_size: there are no adapters to place")
        first, last = adapter_layers or (1, config.num_layers)
        dtype = kwargs.pop("dtype", None)
        kernel_init = lambda: keras.initializers.TruncatedNormal(stddev=config.initializer_range)

        # === Layers ===
        embeddings = BertEmbeddings(
            config.vocab_size, config.hidden_dim, config.max_sequence_length,
            config.type_vocab_size, config.dropout, config.layer_norm_epsilon,
            config.initializer_range, dtype=dtype, name="embeddings")
        transformer_layers = [
            TransformerLayer(
                config.num_heads, config.intermediate_dim, config.activation, config.dropout,
                config.attention_dropout, config.layer_norm_epsilon,
                adapter_size if first <= number <= last else None, adapter_init_scale,
                kernel_initializer=kernel_init(), stop_input_gradient=(number == first and first > 1),
                dtype=dtype, name=f"transformer_layer_{number - 1}")
            for number in range(1, config.num_layers + 1)
        ]
        # The pre-trained pooler: frozen when training adapters (the paper's
        # code trains a fresh classifier on top of it).
        pooler = keras.layers.Dense(
            config.hidden_dim, activation="tanh", kernel_initializer=kernel_init(),
            dtype=dtype, name="pooler")

        # === Functional model ===
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
                  for name in INPUT_NAMES}
        x = embeddings(inputs["input_word_ids"], inputs["input_type_ids"])
        bias = attention_bias(inputs["input_mask"])
        encoder_outputs = []
        for layer in transformer_layers:
            x = layer(x, attention_bias=bias)
            encoder_outputs.append(x)
        pooled_output = pooler(x[:, 0, :])
        super().__init__(
            inputs=inputs,
            outputs={"sequence_output": x, "pooled_output": pooled_output,
                     "encoder_outputs": encoder_outputs},
            dtype=dtype, **kwargs)

        # === Config ===
        self.config = config
        self.adapter_size = adapter_size
        self.adapter_init_scale = adapter_init_scale
        self.adapter_layers = adapter_layers
        self.embeddings = embeddings
        self.transformer_layers = transformer_layers
        self.pooler = pooler

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "config": dataclasses.asdict(self.config),
            "adapter_size": self.adapter_size,
            "adapter_init_scale": self.adapter_init_scale,
            "adapter_layers": format_layer_span(self.adapter_layers),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # === Adapters ===
    def set_adapters_enabled(self, enabled, layers=None):
        """Switches the adapters of `layers` (0-based indices; default all) on or off.

        Sets each layer's `adapter_gate` variable: functions already traced
        (Keras' `predict`, a `tf.function`) follow the new setting without
        re-tracing. Layers without adapters (outside `adapter_layers`) have
        none to switch and are passed over.
        """
        if not self.adapter_size:
            raise ValueError("This encoder has no adapters (adapter_size=None)")
        indices = range(self.config.num_layers) if layers is None else list(layers)
        for i in indices:
            if not 0 <= i < self.config.num_layers:
                raise ValueError(f"Layer index {i} out of range [0, {self.config.num_layers})")
            if self.transformer_layers[i].adapter_size:
                self.transformer_layers[i].adapters_enabled = bool(enabled)

    # === [CLS] only ===
    def cls_pooled_output(self, inputs, training=None):
        """`pooled_output` with the top layer computed at the first position only.

        A classifier reads the top layer at [CLS] alone, so the top layer's
        queries, feed-forward and adapters run for that position only, over
        every position's keys and values (Model Garden's `output_range`).
        It equals `self(inputs)["pooled_output"]` up to float rounding, with
        dropout on too: the top layer's dropouts draw the full computation's
        masks at [CLS] (`ops.dropout.keep_bits`' `full_length`), from the
        same seeds.

        Args:
            inputs: the encoder's input dict.
            training: bool.

        Returns:
            `[batch_size, hidden_dim]`.
        """
        x = self.embeddings(inputs["input_word_ids"], inputs["input_type_ids"],
                            training=training)
        bias = attention_bias(inputs["input_mask"])
        for layer in self.transformer_layers[:-1]:
            x = layer(x, attention_bias=bias, training=training)
        x = self.transformer_layers[-1](x, attention_bias=bias, training=training,
                                        queries=x[:, :1, :])
        return self.pooler(x[:, 0, :])

    # === Canonical weights ===
    def weight_map(self):
        """Returns {canonical name: variable}, the names every loader targets.

        Names: `embeddings/{word,position,type}_embeddings`,
        `embeddings/layer_norm/{gamma,beta}`, `layer_{i}/attention/{query,key,
        value,output}/{kernel,bias}`, `layer_{i}/attention_layer_norm/...`,
        `layer_{i}/intermediate/...`, `layer_{i}/output/...`,
        `layer_{i}/output_layer_norm/...`, `layer_{i}/{attention,output}_adapter/
        {down,up}/{kernel,bias}` and `pooler/{kernel,bias}`. Kernels are
        `[in, out]`.
        """
        def dense(prefix, layer):
            return {f"{prefix}/kernel": layer.kernel, f"{prefix}/bias": layer.bias}

        def norm(prefix, layer):
            return {f"{prefix}/gamma": layer.gamma, f"{prefix}/beta": layer.beta}

        e = self.embeddings
        weights = {
            "embeddings/word_embeddings": e.word_embeddings.embeddings,
            "embeddings/position_embeddings": e.position_embeddings.embeddings,
            "embeddings/type_embeddings": e.type_embeddings.embeddings,
            **norm("embeddings/layer_norm", e.layer_norm),
        }
        for i, layer in enumerate(self.transformer_layers):
            p = f"layer_{i}"
            for part in ("query", "key", "value"):
                weights.update(dense(f"{p}/attention/{part}", getattr(layer.attention, part)))
            weights.update(dense(f"{p}/attention/output", layer.attention.output_dense))
            weights.update(norm(f"{p}/attention_layer_norm", layer.attention_layer_norm))
            weights.update(dense(f"{p}/intermediate", layer.intermediate))
            weights.update(dense(f"{p}/output", layer.output_dense))
            weights.update(norm(f"{p}/output_layer_norm", layer.output_layer_norm))
            if layer.adapter_size:
                for slot in ("attention_adapter", "output_adapter"):
                    adapter = getattr(layer, slot)
                    weights.update(dense(f"{p}/{slot}/down", adapter.down))
                    weights.update(dense(f"{p}/{slot}/up", adapter.up))
        weights.update(dense("pooler", self.pooler))
        return weights

    def base_weight_map(self):
        """`weight_map()` without the adapters: the shared pre-trained base."""
        return {k: v for k, v in self.weight_map().items() if not is_adapter_weight(k)}

    def set_canonical_weights(self, weights, source="checkpoint"):
        """Assigns {canonical name: array}. Adapters may be absent (kept at init).

        Raises ValueError listing every missing base tensor, every unexpected
        name and every shape mismatch (name, expected, found).
        """
        targets = self.weight_map()
        missing = [n for n in targets if n not in weights and not is_adapter_weight(n)]
        unexpected = [n for n in weights if n not in targets]
        mismatched = [
            f"{n}: expected {tuple(targets[n].shape)}, found {tuple(weights[n].shape)}"
            for n in weights if n in targets and tuple(weights[n].shape) != tuple(targets[n].shape)]
        problems = []
        if missing:
            problems.append(f"missing tensors: {missing}")
        if unexpected:
            problems.append(f"unexpected tensors (do adapter_size and adapter_layers match?): "
                            f"{unexpected}")
        if mismatched:
            problems.append(f"shape mismatches: {mismatched}")
        if problems:
            raise ValueError(f"Cannot load {source} into BertEncoder: " + "; ".join(problems))
        for name, value in weights.items():
            targets[name].assign(ops.cast(value, targets[name].dtype))


def attention_bias(input_mask):
    """`[batch, 1, 1, seq]` additive attention mask: 0 where a key is visible, -1e9 on padding."""
    mask = ops.cast(input_mask, "float32")
    return ops.expand_dims(ops.expand_dims((1.0 - mask) * -1e9, 1), 1)


def is_adapter_weight(name):
    """True for the canonical names of adapter weights."""
    return "_adapter/" in name
